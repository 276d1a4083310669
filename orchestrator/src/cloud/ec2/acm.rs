//! The managed ALB's certificates in AWS Certificate Manager: imported from the PEM files
//! `elb alb up` is given, tagged as the project's, found again by the SHA-256 of the certificate
//! (so a second run imports nothing), and deleted with the ALB. ACM speaks the JSON protocol.

use std::time::Duration;

use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tokio::time::Instant;

use super::elbv2::LoadBalancing;
use crate::aws::Service;
use crate::cloud::errors::CloudError;
use crate::cloud::MANAGED_BY;

/// The tag that holds the hex SHA-256 of an imported certificate's PEM block.
const FINGERPRINT_TAG: &str = "Fingerprint";
/// Every key type ACM knows: `ListCertificates` lists only RSA 2048 ones unless told.
const KEY_TYPES: &[&str] = &[
    "RSA_1024",
    "RSA_2048",
    "RSA_3072",
    "RSA_4096",
    "EC_prime256v1",
    "EC_secp384r1",
    "EC_secp521r1",
];

/// A certificate and its key as PEM text, to import.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificatePem {
    /// The server's certificate (the first PEM block of the chain file).
    pub certificate: String,
    /// The rest of the chain, if any.
    pub chain: Option<String>,
    /// The private key.
    pub key: String,
}

impl CertificatePem {
    /// Splits a chain file's text into the server's certificate and the rest.
    pub fn new(chain_file: &str, key: String) -> Option<Self> {
        const END: &str = "-----END CERTIFICATE-----";
        let mut blocks = chain_file
            .split_inclusive(END)
            .filter_map(|part| {
                part.find("-----BEGIN CERTIFICATE-----")
                    .map(|at| &part[at..])
            })
            .map(|block| format!("{}\n", block.trim_end()));
        let certificate = blocks.next()?;
        let rest: String = blocks.collect();
        Some(Self {
            certificate,
            chain: (!rest.is_empty()).then_some(rest),
            key,
        })
    }

    /// The hex SHA-256 of the server's certificate block.
    pub fn fingerprint(&self) -> String {
        Sha256::digest(self.certificate.trim().as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

/// A certificate of the project in ACM.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AcmCertificate {
    /// Its ARN.
    pub arn: String,
    /// The domain name it was issued for.
    pub domain: String,
    /// The `Fingerprint` tag of one elb imported.
    #[serde(skip)]
    pub fingerprint: Option<String>,
}

impl LoadBalancing {
    /// Calls the ACM action IAM names `iam` with `input`.
    async fn acm(&self, iam: &'static str, input: Value) -> Result<Value, CloudError> {
        let action = iam.trim_start_matches("acm:");
        self.client()
            .call_json(Service::Acm, action, &input)
            .await
            .map_err(|e| CloudError::from_aws(iam, e))
    }

    /// The project's certificates in ACM (exact `Project` tag).
    pub async fn project_certificates(&self) -> Result<Vec<AcmCertificate>, CloudError> {
        let mut summaries = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut input = json!({ "Includes": { "keyTypes": KEY_TYPES } });
            if let Some(token) = &token {
                input["NextToken"] = json!(token);
            }
            let page = self.acm("acm:ListCertificates", input).await?;
            summaries.extend(
                page["CertificateSummaryList"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|s| {
                        Some((
                            s["CertificateArn"].as_str()?.to_owned(),
                            s["DomainName"].as_str().unwrap_or_default().to_owned(),
                        ))
                    }),
            );
            match page["NextToken"].as_str().filter(|t| !t.is_empty()) {
                Some(next) => token = Some(next.to_owned()),
                None => break,
            }
        }
        let mut ours = Vec::new();
        for (arn, domain) in summaries {
            let tags = self
                .acm(
                    "acm:ListTagsForCertificate",
                    json!({ "CertificateArn": arn }),
                )
                .await;
            // A certificate deleted between the two calls is not ours to list.
            if matches!(&tags, Err(e) if e.code() == Some("ResourceNotFoundException")) {
                continue;
            }
            let tags = tags?;
            let tag = |key: &str| {
                tags["Tags"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .find(|t| t["Key"] == key)
                    .and_then(|t| t["Value"].as_str())
                    .map(str::to_owned)
            };
            if tag("Project").as_deref() == Some(self.project()) {
                ours.push(AcmCertificate {
                    arn,
                    domain,
                    fingerprint: tag(FINGERPRINT_TAG),
                });
            }
        }
        Ok(ours)
    }

    /// The ARN of `pem`'s certificate in ACM: the project's copy when one with the same
    /// fingerprint is there, else a new import tagged `Project`, `ManagedBy`, `Name` and its
    /// fingerprint. Returns the ARN and whether this call imported it.
    pub async fn ensure_certificate(
        &self,
        pem: &CertificatePem,
        name: &str,
    ) -> Result<(String, bool), CloudError> {
        let fingerprint = pem.fingerprint();
        if let Some(found) = self
            .project_certificates()
            .await?
            .into_iter()
            .find(|c| c.fingerprint.as_deref() == Some(fingerprint.as_str()))
        {
            return Ok((found.arn, false));
        }
        let encode = |text: &str| aws_smithy_types::base64::encode(text.as_bytes());
        let mut input = json!({
            "Certificate": encode(&pem.certificate),
            "PrivateKey": encode(&pem.key),
            "Tags": [
                { "Key": "Project", "Value": self.project() },
                { "Key": "ManagedBy", "Value": MANAGED_BY },
                { "Key": "Name", "Value": name },
                { "Key": FINGERPRINT_TAG, "Value": fingerprint },
            ],
        });
        if let Some(chain) = &pem.chain {
            input["CertificateChain"] = json!(encode(chain));
        }
        let out = self.acm("acm:ImportCertificate", input).await?;
        let arn = out["CertificateArn"]
            .as_str()
            .ok_or_else(|| CloudError::Unexpected {
                action: "acm:ImportCertificate",
                what: "no certificate ARN in the answer".into(),
            })?;
        Ok((arn.to_owned(), true))
    }

    /// Deletes a certificate, retrying with backoff while a listener being deleted still holds
    /// it (`ResourceInUseException`), until `deadline`. One already gone is no error.
    pub async fn delete_certificate(&self, arn: &str, deadline: Instant) -> Result<(), CloudError> {
        let mut backoff = Duration::from_millis(250);
        loop {
            let result = self
                .acm("acm:DeleteCertificate", json!({ "CertificateArn": arn }))
                .await
                .map(drop);
            let code = result.as_ref().err().and_then(CloudError::code);
            if code == Some("ResourceNotFoundException") {
                return Ok(());
            }
            let now = Instant::now();
            if code != Some("ResourceInUseException") || now >= deadline {
                return result;
            }
            tracing::info!(%arn, ?backoff, "certificate still in use; retrying");
            tokio::time::sleep(backoff.min(deadline - now)).await;
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----";
    const B: &str = "-----BEGIN CERTIFICATE-----\nBBBB\n-----END CERTIFICATE-----";

    #[test]
    fn a_chain_file_splits_into_the_servers_certificate_and_the_rest() {
        let pem = CertificatePem::new(&format!("{A}\n{B}\n"), "key".into()).unwrap();
        assert_eq!(pem.certificate, format!("{A}\n"));
        assert_eq!(pem.chain.as_deref(), Some(format!("{B}\n").as_str()));
        let alone = CertificatePem::new(&format!("junk\n{A}\n"), "key".into()).unwrap();
        assert_eq!(
            (alone.certificate.as_str(), alone.chain),
            (format!("{A}\n").as_str(), None)
        );
        assert_eq!(CertificatePem::new("no certificate", "key".into()), None);
    }

    #[test]
    fn the_fingerprint_is_the_certificates_not_the_chains_or_keys() {
        let one = CertificatePem::new(A, "k1".into()).unwrap();
        let two = CertificatePem::new(&format!("{A}\n{B}"), "k2".into()).unwrap();
        let other = CertificatePem::new(B, "k1".into()).unwrap();
        assert_eq!(one.fingerprint(), two.fingerprint());
        assert_ne!(one.fingerprint(), other.fingerprint());
        assert_eq!(one.fingerprint().len(), 64);
    }
}
