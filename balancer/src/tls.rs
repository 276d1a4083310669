//! HTTPS listeners' TLS: certificates read from PEM files and chosen by the client's SNI name,
//! ALB's security policies, and the rustls server config a listener's handshakes use.
//!
//! Certificate choice follows ALB's listener certificates: a client that names a server gets
//! the first certificate whose subject alternative names hold that name exactly, else the
//! first with a wildcard covering it (`*.example.com` covers one label, `a.example.com`, as RFC
//! 6125 6.4.3 says), else the default certificate (the first listed), which a client that names
//! no server gets too. A certificate's names come from its DNS subject alternative names: one
//! with none is refused, since no client could ask for it.

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use proto::balancer_config::{Certificate, TlsPolicy};

/// ALPN names, in the order offered.
const H2: &[u8] = b"h2";
const HTTP11: &[u8] = b"http/1.1";

/// Why a listener's TLS could not be set up; each names the file and says the fix.
#[derive(Debug, thiserror::Error)]
pub(crate) enum TlsError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} holds no PEM certificate")]
    NoCertificate { path: String },
    #[error("{path} holds no PEM private key")]
    NoKey { path: String },
    #[error("{path} is readable by others (mode {mode:03o})")]
    KeyReadableByOthers { path: String, mode: u32 },
    #[error("the key in {path} is of a type rustls cannot sign with: {message}")]
    UnsupportedKey { path: String, message: String },
    #[error("the key in {key} is not the key of the certificate in {cert}")]
    KeyMismatch { cert: String, key: String },
    #[error("the certificate in {path} cannot be parsed: {message}")]
    BadCertificate { path: String, message: String },
    #[error("the certificate in {path} names no DNS name in its subject alternative names")]
    NoName { path: String },
    #[error("an HTTPS listener needs at least one certificate")]
    NoCertificates,
    #[error("{0}")]
    Policy(rustls::Error),
}

impl TlsError {
    /// What the user should do about it.
    pub(crate) fn fix(&self) -> &'static str {
        match self {
            TlsError::Read { .. } => "check the path and that the balancer's user can read it",
            TlsError::NoCertificate { .. } => {
                "give a PEM file with a -----BEGIN CERTIFICATE----- block, the server's first"
            }
            TlsError::NoKey { .. } => {
                "give a PEM file with a PRIVATE KEY block (PKCS#8, RSA or EC)"
            }
            TlsError::KeyReadableByOthers { .. } => {
                "chmod 600 the key file (or 640, with the balancer's user in its group)"
            }
            TlsError::UnsupportedKey { .. } => "use an RSA (2048+), ECDSA P-256/P-384 or Ed25519 key",
            TlsError::KeyMismatch { .. } => {
                "pair each certificate with the key it was issued for"
            }
            TlsError::BadCertificate { .. } => "give an X.509 certificate in PEM",
            TlsError::NoName { .. } => {
                "issue the certificate with the host names it serves as DNS subject alternative names"
            }
            TlsError::NoCertificates => "add a [[listeners.certificates]] table with cert and key",
            TlsError::Policy(_) => "choose another tls_policy",
        }
    }
}

/// A certificate with its key, ready to serve, and the names it covers (lowercase).
#[derive(Debug)]
struct Named {
    names: Vec<String>,
    key: Arc<CertifiedKey>,
}

/// The certificates of one listener, the default first.
#[derive(Debug)]
struct BySni(Vec<Named>);

impl BySni {
    /// The certificate for `server_name` (see the module's doc).
    fn choose(&self, server_name: Option<&str>) -> &Named {
        let exact = |name: &str| self.0.iter().find(|c| c.names.iter().any(|n| n == name));
        let wildcard = |name: &str| {
            self.0
                .iter()
                .find(|c| c.names.iter().any(|n| wildcard_covers(n, name)))
        };
        server_name
            .map(str::to_ascii_lowercase)
            .and_then(|name| exact(&name).or_else(|| wildcard(&name)))
            .unwrap_or(&self.0[0])
    }
}

impl ResolvesServerCert for BySni {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(&self.choose(hello.server_name()).key))
    }
}

/// Whether `pattern` (`*.example.com`) covers `name`: exactly one label in place of the `*`.
fn wildcard_covers(pattern: &str, name: &str) -> bool {
    pattern.strip_prefix("*.").is_some_and(|suffix| {
        name.split_once('.')
            .is_some_and(|(label, rest)| !label.is_empty() && rest == suffix)
    })
}

/// The rustls server config of an HTTPS listener: its certificates (read now), `policy`'s
/// versions and suites, and ALPN offering HTTP/2 when `http2` and HTTP/1.1.
///
/// `index` numbers the errors' fields (`certificates[index]`).
pub(crate) fn server_config(
    certificates: &[Certificate],
    policy: TlsPolicy,
    http2: bool,
) -> Result<Arc<ServerConfig>, (usize, TlsError)> {
    if certificates.is_empty() {
        return Err((0, TlsError::NoCertificates));
    }
    let provider = Arc::new(provider(policy));
    let named = certificates
        .iter()
        .enumerate()
        .map(|(i, c)| load(c, &provider).map_err(|e| (i, e)))
        .collect::<Result<Vec<_>, _>>()?;
    let versions: &[&rustls::SupportedProtocolVersion] = match policy {
        TlsPolicy::Tls13And12 => &[&rustls::version::TLS13, &rustls::version::TLS12],
        TlsPolicy::Tls13Only => &[&rustls::version::TLS13],
    };
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .map_err(|e| (0, TlsError::Policy(e)))?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(BySni(named)));
    config.alpn_protocols = if http2 {
        vec![H2.to_vec(), HTTP11.to_vec()]
    } else {
        vec![HTTP11.to_vec()]
    };
    Ok(Arc::new(config))
}

/// ring's suites that `policy` allows: TLS 1.3's three, and for 1.2 the ECDHE AES-GCM and
/// ChaCha20-Poly1305 ones (all that rustls has).
fn provider(policy: TlsPolicy) -> CryptoProvider {
    let mut provider = rustls::crypto::ring::default_provider();
    if policy == TlsPolicy::Tls13Only {
        provider
            .cipher_suites
            .retain(|s| s.version() == &rustls::version::TLS13);
    }
    provider
}

/// Checks a certificate chain and its key as an HTTPS listener loads them (PEM, a DNS name, the
/// key the certificate's and not readable by others), for `elb alb up`, which hands the same
/// files to ACM. Returns the certificate's DNS names, or the problem with its fix.
pub fn check_pair(certificate: &Certificate) -> Result<Vec<String>, String> {
    load(certificate, &provider(TlsPolicy::default()))
        .map(|named| named.names)
        .map_err(|e| format!("{e}; {}", e.fix()))
}

/// Reads one certificate chain and its key, and checks that they belong together.
fn load(certificate: &Certificate, provider: &CryptoProvider) -> Result<Named, TlsError> {
    let read = |path: &str| {
        std::fs::read(path).map_err(|source| TlsError::Read {
            path: path.to_string(),
            source,
        })
    };
    let chain = CertificateDer::pem_slice_iter(&read(&certificate.cert)?)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::BadCertificate {
            path: certificate.cert.clone(),
            message: e.to_string(),
        })?;
    let first = chain.first().ok_or_else(|| TlsError::NoCertificate {
        path: certificate.cert.clone(),
    })?;
    let names = dns_names(first).map_err(|message| TlsError::BadCertificate {
        path: certificate.cert.clone(),
        message,
    })?;
    if names.is_empty() {
        return Err(TlsError::NoName {
            path: certificate.cert.clone(),
        });
    }
    refuse_readable_by_others(Path::new(&certificate.key))?;
    let key =
        PrivateKeyDer::from_pem_slice(&read(&certificate.key)?).map_err(|_| TlsError::NoKey {
            path: certificate.key.clone(),
        })?;
    let signing =
        provider
            .key_provider
            .load_private_key(key)
            .map_err(|e| TlsError::UnsupportedKey {
                path: certificate.key.clone(),
                message: e.to_string(),
            })?;
    let key = CertifiedKey::new(chain, signing);
    key.keys_match().map_err(|_| TlsError::KeyMismatch {
        cert: certificate.cert.clone(),
        key: certificate.key.clone(),
    })?;
    Ok(Named {
        names,
        key: Arc::new(key),
    })
}

/// The DNS names (lowercase) in a certificate's subject alternative names.
fn dns_names(certificate: &CertificateDer<'_>) -> Result<Vec<String>, String> {
    let parsed = webpki::EndEntityCert::try_from(certificate).map_err(|e| e.to_string())?;
    Ok(parsed
        .valid_dns_names()
        .map(str::to_ascii_lowercase)
        .collect())
}

/// A private key readable by every user of the machine is refused, as OpenSSH refuses one.
fn refuse_readable_by_others(path: &Path) -> Result<(), TlsError> {
    let metadata = std::fs::metadata(path).map_err(|source| TlsError::Read {
        path: path.display().to_string(),
        source,
    })?;
    let mode = metadata.mode() & 0o777;
    if mode & 0o007 != 0 {
        return Err(TlsError::KeyReadableByOthers {
            path: path.display().to_string(),
            mode,
        });
    }
    Ok(())
}

/// Whether a TLS connection agreed on HTTP/2 by ALPN.
pub(crate) fn negotiated_h2(connection: &rustls::ServerConnection) -> bool {
    connection.alpn_protocol() == Some(H2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wildcard_covers_exactly_one_label() {
        assert!(wildcard_covers("*.example.com", "a.example.com"));
        assert!(!wildcard_covers("*.example.com", "example.com"));
        assert!(!wildcard_covers("*.example.com", "a.b.example.com"));
        assert!(!wildcard_covers("*.example.com", ".example.com"));
        assert!(!wildcard_covers("a.example.com", "a.example.com"));
    }
}
