//! Settings from the global flags, at the edge: the only place that loads the AWS
//! configuration, so that the layers below take finished [`Settings`].

use aws_config::Region;

use crate::aws;
use crate::cloud::ec2;
use crate::cloud::errors::CloudError;
use crate::config::{local_state, Options, Provider, ProviderKind, Settings};
use crate::regions::{self, DEFAULT_REGION};
use crate::Error;

/// The settings of `global`: validates the options and, for EC2, loads the AWS configuration
/// and checks that credentials can be found. An explicit region is checked before anything is
/// loaded.
pub(crate) async fn load(global: &Options) -> Result<Settings, Error> {
    let state = local_state(global)?;
    let provider = match global.provider {
        ProviderKind::Ec2 => load_ec2(global).await?,
        ProviderKind::Local => Provider::Local,
    };
    tracing::debug!(project = %global.project, ?provider, state = %state.path().display(), "settings");
    Ok(Settings {
        project: global.project.clone(),
        state,
        output: global.output,
        provider,
        notes: std::sync::Arc::new(Stderr),
    })
}

async fn load_ec2(global: &Options) -> Result<Provider, Error> {
    if let Some(region) = &global.region {
        regions::validate(region)?;
    }
    let sdk = ec2::load_sdk_config(
        global.profile.as_deref(),
        global.region.as_deref(),
        global.endpoint_url.as_deref(),
    )
    .await;
    let region = sdk
        .region()
        .map_or(DEFAULT_REGION, |r| r.as_ref())
        .to_owned();
    regions::validate(&region)?;
    let sdk = sdk
        .into_builder()
        .region(Region::new(region.clone()))
        .build();
    let aws = aws::Client::new(&sdk).map_err(|e| CloudError::Unreachable {
        action: "the AWS APIs",
        detail: e.to_string(),
    })?;
    ec2::check_credentials(&aws).await?;
    Ok(Provider::Ec2 { region, aws })
}

/// The CLI's notes: each line on stderr (stdout holds results only).
#[derive(Debug)]
struct Stderr;

impl crate::notes::Notes for Stderr {
    fn note(&self, line: &str) {
        eprintln!("{line}");
    }
}
