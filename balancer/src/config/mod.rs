//! The balancer's configuration: one TOML file, read at start and on every SIGHUP.
//!
//! The doc comment of each field is its reference (docs/balancer.md repeats them): name, unit,
//! default, meaning. Durations are integers in milliseconds (`_ms`), so tests can make every
//! timer fast. Unknown fields are refused, so a misspelt field is an error, not a silent default.

mod matcher;
mod validate;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

pub(crate) use matcher::Matcher;
pub(crate) use proto::balancer_config::*;
pub(crate) use validate::ConfigError;
pub use validate::{check_rule, check_stickiness};

use crate::tls;

/// A config read from a file and validated, with what `/status` reports about it.
#[derive(Debug, Clone)]
pub(crate) struct Loaded {
    pub config: Config,
    /// The targets' addresses, parsed, in the order of `config.target_groups[g].targets`.
    pub addresses: Vec<Vec<SocketAddr>>,
    /// How each listener's connections are served, in the order of `config.listeners`.
    pub transports: Vec<Transport>,
    /// `version` from the file, else a hash of its bytes.
    pub version: String,
    /// The access log's file, resolved against the config file's directory; none: off.
    pub access_log: Option<std::path::PathBuf>,
}

/// How one listener's connections are served: over TLS (HTTPS, its certificates read when the
/// config was) or not, and whether clients may speak HTTP/2.
#[derive(Debug, Clone)]
pub(crate) struct Transport {
    pub tls: Option<Arc<rustls::ServerConfig>>,
    pub http2: bool,
    /// The listener's redirect of every request, if it has one.
    pub redirect: Option<Arc<Redirect>>,
}

impl Transport {
    /// The `X-Forwarded-Proto` its requests carry.
    pub(crate) fn scheme(&self) -> &'static str {
        if self.tls.is_some() {
            "https"
        } else {
            "http"
        }
    }
}

/// Builds each listener's transport; an HTTPS listener's certificates are read and checked
/// here, so `--check` and a reload refuse bad ones before anything serves them.
fn transports(file: &str, config: &Config) -> Result<Vec<Transport>, ConfigError> {
    config
        .listeners
        .iter()
        .enumerate()
        .map(|(i, listener)| {
            let tls = match listener.protocol {
                Protocol::Http => None,
                Protocol::Https => Some(
                    tls::server_config(
                        &listener.certificates,
                        listener.tls_policy,
                        listener.http2_enabled(),
                    )
                    .map_err(|(c, e)| ConfigError::Invalid {
                        file: file.to_string(),
                        field: match e {
                            tls::TlsError::NoCertificates => format!("listeners[{i}].certificates"),
                            tls::TlsError::Policy(_) => format!("listeners[{i}].tls_policy"),
                            _ => format!("listeners[{i}].certificates[{c}]"),
                        },
                        problem: e.to_string(),
                        fix: e.fix().to_string(),
                    })?,
                ),
            };
            Ok(Transport {
                tls,
                http2: listener.http2_enabled(),
                redirect: listener.redirect.clone().map(Arc::new),
            })
        })
        .collect()
}

/// Where the access log of the config file `file` goes: its `path`, relative to the file's
/// directory unless absolute.
pub(crate) fn access_log_path(file: &Path, log: &AccessLog) -> std::path::PathBuf {
    let path = Path::new(&log.path);
    match file.parent() {
        Some(dir) if path.is_relative() => dir.join(path),
        _ => path.to_path_buf(),
    }
}

/// Reads, parses and validates the config at `path`.
pub(crate) fn load(path: &Path) -> Result<Loaded, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        file: path.display().to_string(),
        source,
    })?;
    parse(path, &text)
}

/// Parses and validates `text`, read from `path` (named in errors).
pub(crate) fn parse(path: &Path, text: &str) -> Result<Loaded, ConfigError> {
    let file = path.display().to_string();
    let config: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
        file: file.clone(),
        message: e.to_string(),
    })?;
    let addresses = validate::validate(&file, &config)?;
    let transports = transports(&file, &config)?;
    let version = config
        .version
        .clone()
        .unwrap_or_else(|| format!("{:016x}", fnv1a(text.as_bytes())));
    let access_log = config
        .access_log
        .as_ref()
        .map(|log| access_log_path(path, log));
    Ok(Loaded {
        config,
        addresses,
        transports,
        version,
        access_log,
    })
}

/// FNV-1a: a stable hash (unlike std's `DefaultHasher`, fixed across Rust versions) so the same
/// file always reports the same version.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The seed's layout: two groups, `/cluster1*` and `/cluster2*`, default cluster1.
    pub(crate) const SEED: &str = r#"
        [[listeners]]
        address = "127.0.0.1:0"

        [[rules]]
        priority = 10
        path_pattern = "/cluster1*"
        forward = "cluster1"

        [[rules]]
        priority = 20
        path_pattern = "/cluster2*"
        forward = "cluster2"

        [default_action]
        forward = "cluster1"

        [[target_groups]]
        name = "cluster1"
        [[target_groups.targets]]
        address = "127.0.0.1:8001"
        [[target_groups.targets]]
        address = "127.0.0.1:8002"

        [[target_groups]]
        name = "cluster2"
        algorithm = "p2c_peak_ewma"
        [[target_groups.targets]]
        id = "i-3"
        address = "127.0.0.1:8003"
        weight = 3
    "#;

    pub(crate) fn seed() -> Loaded {
        parse(Path::new("seed.toml"), SEED).expect("the seed config is valid")
    }

    #[test]
    fn the_seed_config_parses_with_defaults_filled_in() {
        let loaded = seed();
        let c = &loaded.config;
        assert_eq!(c.admin.address, "127.0.0.1:9901".parse().unwrap());
        assert_eq!(c.target_groups[0].algorithm, Algorithm::RoundRobin);
        assert_eq!(c.target_groups[0].health_check.interval_ms, 2000);
        assert_eq!(c.target_groups[0].health_check.healthy_threshold, 2);
        assert_eq!(c.target_groups[0].deregistration_delay_ms, 10_000);
        assert_eq!(c.target_groups[1].targets[0].weight, 3);
        assert_eq!(loaded.addresses[1][0], "127.0.0.1:8003".parse().unwrap());
    }

    #[test]
    fn the_version_is_the_files_label_or_a_stable_hash_of_its_bytes() {
        assert_eq!(seed().version, seed().version);
        assert_eq!(seed().version.len(), 16);
        let labelled = format!("version = \"v7\"\n{SEED}");
        assert_eq!(parse(Path::new("a.toml"), &labelled).unwrap().version, "v7");
    }

    #[test]
    fn a_misspelt_field_is_refused_with_the_file_named() {
        let text = SEED.replace("path_pattern = \"/cluster1*\"", "path = \"/cluster1*\"");
        let e = parse(Path::new("lb.toml"), &text).unwrap_err().to_string();
        assert!(e.starts_with("lb.toml: "), "{e}");
        assert!(e.contains("unknown field `path`"), "{e}");
    }
}
