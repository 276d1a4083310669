//! The AWS APIs elb calls, spoken directly: EC2 and Elastic Load Balancing v2 in their query
//! protocols (a form-encoded POST per call, answered in XML), and Certificate Manager in the JSON
//! protocol (a JSON POST named by `X-Amz-Target`). Every call is signed with SigV4
//! (`aws-sigv4`) and retried as the SDKs' standard mode retries. Credentials and the region
//! still come from `aws-config`, exactly as the AWS CLI finds them (profiles, SSO, environment,
//! instance roles).
//!
//! Why not `aws-sdk-ec2` and `aws-sdk-elasticloadbalancingv2`: their generated code models every
//! operation of both APIs (EC2 has over 700); `aws-sdk-ec2` alone took 240 s of a cold build
//! on two cores, most of it on the critical path, for the 15 EC2, 24 ELBv2 and 4 ACM operations
//! elb calls. What elb needs of each answer is read in `cloud/ec2/`, by element name
//! ([`xml::Node`]).
//!
//! Plumbing: this module knows the protocols, not what elb does with them.

mod error;
mod params;
mod retry;
mod xml;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_config::SdkConfig;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_credential_types::Credentials;
use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::HeaderValue;
use hyper::{Method, Request, Uri};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::sync::Mutex;

pub use error::AwsError;
pub use params::Params;
pub use xml::{Document, Node};

use params::Lists;
use retry::Policy;

/// How long a TCP connect may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one attempt (request sent to answer read) may take.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a call may take, retries included.
const CALL_TIMEOUT: Duration = Duration::from_secs(180);
/// Credentials this close to their expiry are fetched again before a call.
const REFRESH_BEFORE_EXPIRY: Duration = Duration::from_secs(300);

/// An API elb calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    /// Amazon EC2, API version 2016-11-15 (the EC2 Query protocol).
    Ec2,
    /// Elastic Load Balancing v2, API version 2015-12-01 (the Query protocol).
    Elbv2,
    /// AWS Certificate Manager (JSON 1.1, target prefix `CertificateManager`).
    Acm,
    /// Amazon CloudWatch, API version 2010-08-01 (the Query protocol, which CloudWatch serves
    /// beside JSON and CBOR).
    CloudWatch,
    /// Amazon EC2 Auto Scaling, API version 2011-01-01 (the Query protocol).
    AutoScaling,
}

/// The body type of a query call.
const FORM: &str = "application/x-www-form-urlencoded; charset=utf-8";
/// The body type of a JSON 1.1 call.
const JSON: &str = "application/x-amz-json-1.1";

impl Service {
    /// The name SigV4 signs for, which is also the endpoint's first label.
    fn signing_name(self) -> &'static str {
        match self {
            Self::Ec2 => "ec2",
            Self::Elbv2 => "elasticloadbalancing",
            Self::Acm => "acm",
            Self::CloudWatch => "monitoring",
            Self::AutoScaling => "autoscaling",
        }
    }

    /// The API version a query call names (the JSON protocol names none).
    fn version(self) -> &'static str {
        match self {
            Self::Ec2 => "2016-11-15",
            Self::Elbv2 => "2015-12-01",
            Self::Acm => "2015-12-08",
            Self::CloudWatch => "2010-08-01",
            Self::AutoScaling => "2011-01-01",
        }
    }

    /// The `X-Amz-Target` prefix of a JSON call.
    fn json_target(self) -> &'static str {
        match self {
            Self::Acm => "CertificateManager",
            Self::Ec2 | Self::Elbv2 | Self::CloudWatch | Self::AutoScaling => "",
        }
    }

    fn lists(self) -> Lists {
        match self {
            Self::Ec2 => Lists::Ec2,
            Self::Elbv2 | Self::Acm | Self::CloudWatch | Self::AutoScaling => Lists::Member,
        }
    }

    /// The variable that sends this service's calls elsewhere, as the SDKs read it.
    fn endpoint_variable(self) -> &'static str {
        match self {
            Self::Ec2 => "AWS_ENDPOINT_URL_EC2",
            Self::Elbv2 => "AWS_ENDPOINT_URL_ELASTIC_LOAD_BALANCING_V2",
            Self::Acm => "AWS_ENDPOINT_URL_ACM",
            Self::CloudWatch => "AWS_ENDPOINT_URL_CLOUDWATCH",
            Self::AutoScaling => "AWS_ENDPOINT_URL_AUTO_SCALING",
        }
    }

    /// Parameters for a call of this service (lists flattened its way).
    pub fn params(self) -> Params {
        Params::new(self.lists())
    }
}

/// The regional endpoint of `service` in `region` (China's regions end in `.com.cn`).
fn regional_endpoint(service: Service, region: &str) -> String {
    let suffix = if region.starts_with("cn-") {
        "amazonaws.com.cn"
    } else {
        "amazonaws.com"
    };
    format!("https://{}.{region}.{suffix}/", service.signing_name())
}

/// A client for both APIs in one region, with one connection pool and one credentials cache.
/// Cheap to clone.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    http: hyper_util::client::legacy::Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    credentials: SharedCredentialsProvider,
    cached: Mutex<Option<Credentials>>,
    region: String,
    /// `--endpoint-url` / `AWS_ENDPOINT_URL` / the profile's `endpoint_url`, for both services.
    endpoint: Option<String>,
    retry: Policy,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("region", &self.inner.region)
            .field("endpoint", &self.inner.endpoint)
            .finish_non_exhaustive()
    }
}

/// One answer of a successful call.
pub struct Answer {
    action: &'static str,
    service: Service,
    body: Document,
}

impl Answer {
    /// Hands the answer's result element to `read`: the root for EC2, `<{Action}Result>` for the
    /// Query protocol (absent when the call returns nothing, which reads as the root).
    pub fn read<T>(&self, read: impl FnOnce(Node<'_, '_>) -> T) -> Result<T, AwsError> {
        let wrapper = format!("{}Result", self.action);
        let service = self.service;
        self.body.read(|root| match service {
            Service::Ec2 => read(root),
            Service::Elbv2 | Service::Acm | Service::CloudWatch | Service::AutoScaling => {
                read(root.child(&wrapper).unwrap_or(root))
            }
        })
    }
}

impl Client {
    /// A client for the region and credentials of `sdk`. Fails when `sdk` has no region or no
    /// credentials provider (the caller resolves both first), or no CA certificates are found.
    pub fn new(sdk: &SdkConfig) -> Result<Self, AwsError> {
        let region = sdk
            .region()
            .ok_or_else(|| AwsError::Credentials("no region configured".into()))?
            .to_string();
        let credentials = sdk
            .credentials_provider()
            .ok_or_else(|| AwsError::Credentials("no credentials provider configured".into()))?;
        let mut tcp = HttpConnector::new();
        tcp.set_connect_timeout(Some(CONNECT_TIMEOUT));
        tcp.set_nodelay(true);
        tcp.enforce_http(false);
        let tls = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_native_roots(rustls::crypto::ring::default_provider())
            .map_err(|e| {
                AwsError::Transport(format!(
                    "no CA certificates to check AWS's TLS certificate with ({e}): install the \
                     system's CA certificates (Debian: ca-certificates)"
                ))
            })?
            .https_or_http()
            .enable_http1()
            .wrap_connector(tcp);
        let http = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(20))
            .build(tls);
        Ok(Self {
            inner: Arc::new(Inner {
                http,
                credentials,
                cached: Mutex::new(None),
                region,
                endpoint: sdk.endpoint_url().map(str::to_owned),
                retry: Policy::default(),
            }),
        })
    }

    /// The region calls go to.
    pub fn region(&self) -> &str {
        &self.inner.region
    }

    /// Calls `action` of `service` (a query protocol: EC2 or ELBv2) with `params`, retrying
    /// throttling, transient errors and lost answers (see `retry.rs`) for at most three
    /// minutes. A call that creates something must be safe to send twice: elb's either carry an
    /// idempotency token or treat "already exists" as done.
    pub async fn call(
        &self,
        service: Service,
        action: &'static str,
        params: &Params,
    ) -> Result<Answer, AwsError> {
        let body = Bytes::from(params.body(action, service.version()));
        let text = self.send(service, FORM, None, body).await?;
        Ok(Answer {
            action,
            service,
            body: Document::new(text),
        })
    }

    /// Calls `action` of a JSON-protocol `service` (ACM) with `input`, retried as [`call`]
    /// is; returns the answer's JSON (`null` for an empty one).
    ///
    /// [`call`]: Self::call
    pub async fn call_json(
        &self,
        service: Service,
        action: &str,
        input: &serde_json::Value,
    ) -> Result<serde_json::Value, AwsError> {
        let target = format!("{}.{action}", service.json_target());
        let body = Bytes::from(input.to_string());
        let text = self.send(service, JSON, Some(&target), body).await?;
        if text.trim().is_empty() {
            return Ok(serde_json::Value::Null);
        }
        serde_json::from_str(&text)
            .map_err(|e| AwsError::Malformed(format!("not JSON ({e}): {}", xml::excerpt(&text))))
    }

    /// Sends one call's `body` (of `content_type`, named by `target` in the JSON protocol) with
    /// retries; the answer's body.
    async fn send(
        &self,
        service: Service,
        content_type: &'static str,
        target: Option<&str>,
        body: Bytes,
    ) -> Result<String, AwsError> {
        let uri = self.endpoint(service)?;
        let attempts = async {
            let mut attempt = 0;
            loop {
                let once = self.attempt(service, &uri, content_type, target, body.clone());
                let result = tokio::time::timeout(ATTEMPT_TIMEOUT, once)
                    .await
                    .unwrap_or_else(|_| {
                        Err(AwsError::Transport(format!(
                            "no answer within {} s",
                            ATTEMPT_TIMEOUT.as_secs()
                        )))
                    });
                match result {
                    Ok(text) => return Ok(text),
                    Err(e) if retry::retryable(&e) && attempt + 1 < self.inner.retry.attempts => {
                        let wait = self.inner.retry.backoff(attempt);
                        tracing::debug!(?target, attempt, ?wait, error = %e, "retrying");
                        tokio::time::sleep(wait).await;
                        attempt += 1;
                    }
                    Err(e) => return Err(e),
                }
            }
        };
        tokio::time::timeout(CALL_TIMEOUT, attempts)
            .await
            .unwrap_or_else(|_| {
                Err(AwsError::Transport(format!(
                    "no answer within {} s, retries included",
                    CALL_TIMEOUT.as_secs()
                )))
            })
    }

    /// Where `service`'s calls go: its own variable, else the configured endpoint, else AWS's.
    fn endpoint(&self, service: Service) -> Result<Uri, AwsError> {
        let url = std::env::var(service.endpoint_variable())
            .ok()
            .filter(|v| !v.is_empty())
            .or_else(|| self.inner.endpoint.clone())
            .unwrap_or_else(|| regional_endpoint(service, &self.inner.region));
        url.parse().map_err(|e| {
            AwsError::Transport(format!(
                "endpoint `{url}` is not a URL ({e}): check --endpoint-url / AWS_ENDPOINT_URL"
            ))
        })
    }

    /// Fetches the credentials now (and keeps them), so that a missing configuration is found
    /// before the first call.
    pub async fn resolve_credentials(&self) -> Result<(), AwsError> {
        self.credentials().await.map(drop)
    }

    /// Credentials, fetched once and again shortly before they expire.
    async fn credentials(&self) -> Result<Credentials, AwsError> {
        let mut cached = self.inner.cached.lock().await;
        if let Some(credentials) = cached.as_ref() {
            let fresh = credentials
                .expiry()
                .is_none_or(|at| at > SystemTime::now() + REFRESH_BEFORE_EXPIRY);
            if fresh {
                return Ok(credentials.clone());
            }
        }
        let credentials = self
            .inner
            .credentials
            .provide_credentials()
            .await
            .map_err(|e| AwsError::Credentials(error::error_chain(&e)))?;
        *cached = Some(credentials.clone());
        Ok(credentials)
    }

    /// One signed POST of `body` (of `content_type`, with `X-Amz-Target: target` when given);
    /// the answer's body when it is a 2xx, else AWS's error.
    async fn attempt(
        &self,
        service: Service,
        uri: &Uri,
        content_type: &'static str,
        target: Option<&str>,
        body: Bytes,
    ) -> Result<String, AwsError> {
        let credentials = self.credentials().await?;
        let host = uri
            .authority()
            .ok_or_else(|| AwsError::Transport(format!("endpoint `{uri}` names no host")))?
            .as_str()
            .to_owned();
        let mut headers = vec![("host", host.as_str()), ("content-type", content_type)];
        headers.extend(target.map(|t| ("x-amz-target", t)));
        let mut request = Request::builder().method(Method::POST).uri(uri.clone());
        for (name, value) in &headers {
            request = request.header(*name, *value);
        }
        let mut request = request
            .body(Full::new(body.clone()))
            .map_err(|e| AwsError::Transport(e.to_string()))?;
        let identity = credentials.into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.inner.region)
            .name(service.signing_name())
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .map_err(|e| AwsError::Credentials(e.to_string()))?
            .into();
        let uri_text = uri.to_string();
        let signable = SignableRequest::new(
            "POST",
            &uri_text,
            headers.iter().copied(),
            SignableBody::Bytes(&body),
        )
        .map_err(|e| AwsError::Credentials(e.to_string()))?;
        let (instructions, _) = sign(signable, &params)
            .map_err(|e| AwsError::Credentials(e.to_string()))?
            .into_parts();
        instructions.apply_to_request_http1x(&mut request);
        request.headers_mut().insert(
            "user-agent",
            HeaderValue::from_static(concat!("elb/", env!("CARGO_PKG_VERSION"))),
        );

        let response = self
            .inner
            .http
            .request(request)
            .await
            .map_err(|e| AwsError::Transport(error::error_chain(&e)))?;
        let status = response.status();
        let bytes = response
            .into_body()
            .collect()
            .await
            .map_err(|e| AwsError::Transport(error::error_chain(&e)))?
            .to_bytes();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        if status.is_success() {
            return Ok(text);
        }
        Err(service_error(status.as_u16(), &text))
    }
}

/// AWS's error in a non-2xx answer: the first `<Code>` and `<Message>` (EC2 nests them in
/// `<Errors><Error>`, the Query protocol in `<Error>`), or the JSON protocol's `__type` (after
/// its `namespace#`) and `message`. An answer without a code (a proxy's page) keeps its status
/// as the code.
fn service_error(status: u16, text: &str) -> AwsError {
    if let Ok(json) = serde_json::from_str::<serde_json::Value>(text) {
        if let Some(kind) = json["__type"].as_str() {
            let code = kind.rsplit('#').next().unwrap_or(kind).to_owned();
            let message = json["message"]
                .as_str()
                .or_else(|| json["Message"].as_str())
                .unwrap_or("no message")
                .to_owned();
            return AwsError::Service {
                status,
                code,
                message,
            };
        }
    }
    let parsed = Document::new(text.to_owned()).read(|root| {
        let code = root.find("Code").map(|c| c.own_text().trim().to_owned());
        let message = root.find("Message").map(|m| m.own_text().trim().to_owned());
        (code, message)
    });
    match parsed {
        Ok((Some(code), message)) if !code.is_empty() => AwsError::Service {
            status,
            code,
            message: message.unwrap_or_else(|| "no message".into()),
        },
        _ => AwsError::Service {
            status,
            code: format!("HTTP{status}"),
            message: xml::excerpt(text),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_of_both_protocols_give_their_code_and_message() {
        let ec2 = "<Response><Errors><Error><Code>InvalidInstanceID.NotFound</Code>\
                   <Message>The instance ID 'i-1' does not exist</Message></Error></Errors>\
                   <RequestID>r</RequestID></Response>";
        let err = service_error(400, ec2);
        assert!(err.is("InvalidInstanceID.NotFound"), "{err}");
        assert!(err.to_string().contains("does not exist"));
        let query = "<ErrorResponse xmlns=\"x\"><Error><Type>Sender</Type>\
                     <Code>LoadBalancerNotFound</Code><Message>gone</Message></Error>\
                     <RequestId>r</RequestId></ErrorResponse>";
        assert!(service_error(400, query).is("LoadBalancerNotFound"));
        let json = r#"{"__type":"com.amazonaws.acm#ResourceInUseException","message":"in use"}"#;
        let err = service_error(400, json);
        assert!(
            err.is("ResourceInUseException") && err.to_string().contains("in use"),
            "{err}"
        );
        let page = service_error(502, "<html>Bad Gateway</html>");
        assert!(page.is("HTTP502"), "{page}");
        assert!(retry::retryable(&page));
    }

    #[test]
    fn endpoints_are_regional_and_chinas_end_in_cn() {
        assert_eq!(
            regional_endpoint(Service::Ec2, "ca-central-1"),
            "https://ec2.ca-central-1.amazonaws.com/"
        );
        assert_eq!(
            regional_endpoint(Service::Elbv2, "cn-north-1"),
            "https://elasticloadbalancing.cn-north-1.amazonaws.com.cn/"
        );
    }
}
