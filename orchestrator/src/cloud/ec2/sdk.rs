//! The AWS configuration: credentials and region like the AWS CLI, and for the credential
//! providers' own calls (SSO, STS), TLS, retries and timeouts.

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_smithy_http_client::tls::{rustls_provider::CryptoMode, Provider};

use crate::aws::{self, AwsError};
use crate::cloud::errors::CloudError;

/// Builds the AWS configuration the way the AWS CLI does (profiles, SSO, env, ...), with rustls on
/// ring for TLS, retries that outlast throttling bursts, and bounded operation times for the
/// credential providers' calls.
/// `region: None` leaves the region to the standard chain.
pub async fn load_sdk_config(
    profile: Option<&str>,
    region: Option<&str>,
    endpoint_url: Option<&str>,
) -> SdkConfig {
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https();
    let retry = RetryConfig::standard()
        .with_max_attempts(8)
        .with_initial_backoff(Duration::from_millis(200))
        .with_max_backoff(Duration::from_secs(5));
    let timeouts = TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(5))
        .operation_attempt_timeout(Duration::from_secs(30))
        .operation_timeout(Duration::from_secs(180))
        .build();
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .http_client(http)
        .retry_config(retry)
        .timeout_config(timeouts);
    if let Some(profile) = profile {
        loader = loader.profile_name(profile);
    }
    if let Some(region) = region {
        loader = loader.region(Region::new(region.to_owned()));
    }
    if let Some(url) = endpoint_url {
        loader = loader.endpoint_url(url);
    }
    loader.load().await
}

/// Resolves credentials once, so a missing configuration fails with advice before any call.
pub async fn check_credentials(client: &aws::Client) -> Result<(), CloudError> {
    client
        .resolve_credentials()
        .await
        .map_err(|e| CloudError::NoCredentials {
            detail: match e {
                AwsError::Credentials(chain) => one_line(&chain),
                other => other.to_string(),
            },
        })
}

/// The credential chain's error on one line. The default chain reports each provider it tried on
/// a line of its own (`  Environment: the credential provider was not enabled: ...`); those
/// become `tried Environment, Profile, ...`, anything else is joined with single spaces.
fn one_line(chain: &str) -> String {
    let tried: Vec<&str> = chain
        .lines()
        .skip(1)
        .filter(|l| l.starts_with("  "))
        .filter_map(|l| l.trim_start().split_once(':').map(|(name, _)| name))
        .filter(|name| !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric()))
        .collect();
    if tried.is_empty() {
        chain.split_whitespace().collect::<Vec<_>>().join(" ")
    } else {
        format!("tried {}", tried.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_credential_chain_is_summed_up_on_one_line() {
        let chain = "the credential provider was not enabled: no credentials found in chain. \
                     Attempted:\n  Environment: the credential provider was not enabled: \
                     environment variable not set\n  Profile: the credential provider was not \
                     enabled\n  Ec2InstanceMetadata: IMDS disabled by AWS_EC2_METADATA_DISABLED";
        assert_eq!(
            one_line(chain),
            "tried Environment, Profile, Ec2InstanceMetadata"
        );
        assert_eq!(
            one_line("profile `x` not found\n   in ~/.aws/config"),
            "profile `x` not found in ~/.aws/config"
        );
    }
}
