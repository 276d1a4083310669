//! The balancer's config file as the fleet makes it: one target group per cluster the routing
//! names (or `all`: every instance), every running instance of it a target, and the routing's
//! rules. [`retarget`] rewrites only the targets of an existing file, so a sync after `launch`
//! or `kill` keeps the algorithm, rules and timers the user chose.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use proto::balancer_config::{
    AccessLog, Admin, Algorithm, Certificate, Config, HealthCheck, Limits, Listener, Protocol,
    Target, TargetGroup, TlsPolicy,
};
use proto::AGENT_PORT;

use crate::cloud::Instance;
use crate::routing::{PathRule, Routing};

/// The pseudo-cluster of every instance of the project (a mixed group).
pub const ALL: &str = "all";

/// What `elb balance up` asks for.
#[derive(Debug, Clone)]
pub struct BalanceSpec {
    /// Which group serves which path.
    pub routing: Routing,
    /// The selection algorithm of every group.
    pub algorithm: Algorithm,
    /// The listener port.
    pub port: u16,
    /// Milliseconds between two health checks of a target.
    pub health_interval_ms: u64,
    /// An HTTPS listener beside the HTTP one, if asked for.
    pub https: Option<HttpsSpec>,
    /// The HTTP listener's redirect of every request (to HTTPS), if asked for.
    pub http_redirect: Option<proto::balancer_config::Redirect>,
    /// How long a newly healthy target's share ramps up (ALB's slow start; zero: off).
    pub slow_start: std::time::Duration,
    /// Every group's stickiness, if any.
    pub stickiness: Option<proto::balancer_config::Stickiness>,
    /// The access log's file: an absolute path for a local balancer, a file name in
    /// [`INSTANCE_LOG_DIR`] on EC2; none: off.
    pub access_log: Option<PathBuf>,
}

/// An HTTPS listener: its port, certificates and TLS policy.
#[derive(Debug, Clone)]
pub struct HttpsSpec {
    pub port: u16,
    /// The certificates' files, the first the default (the others chosen by SNI).
    pub certificates: Vec<CertificateFiles>,
    pub policy: TlsPolicy,
}

/// A certificate chain and its private key, PEM files on this machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Where the balancer finds the files it reads and writes: where the user named them (a local
/// balancer), or on its instance (EC2): the certificates copied into this directory
/// (`tls-<n>.crt` and `tls-<n>.key`), the access log in [`INSTANCE_LOG_DIR`].
#[derive(Debug, Clone, Copy)]
pub enum FilesAt<'a> {
    AsGiven,
    Copied(&'a str),
}

/// The balancer's logs directory on its instance.
pub const INSTANCE_LOG_DIR: &str = crate::deploy::unit::BALANCER_LOG_DIR;

impl HttpsSpec {
    /// The names of the copies of certificate `n` on a balancer's host (EC2).
    pub fn copy_names(n: usize) -> (String, String) {
        (format!("tls-{n}.crt"), format!("tls-{n}.key"))
    }

    /// The listener on `ip`, its certificates found at `at`.
    fn listener(&self, ip: IpAddr, at: FilesAt<'_>) -> Listener {
        let certificates = self
            .certificates
            .iter()
            .enumerate()
            .map(|(n, files)| match at {
                FilesAt::AsGiven => Certificate {
                    cert: files.cert.display().to_string(),
                    key: files.key.display().to_string(),
                },
                FilesAt::Copied(dir) => {
                    let (cert, key) = Self::copy_names(n);
                    Certificate {
                        cert: format!("{dir}/{cert}"),
                        key: format!("{dir}/{key}"),
                    }
                }
            })
            .collect();
        Listener {
            protocol: Protocol::Https,
            certificates,
            tls_policy: self.policy,
            ..Listener::http(SocketAddr::new(ip, self.port))
        }
    }
}

impl BalanceSpec {
    /// Refuses a routing that puts an instance in two groups: the balancer keeps a target's
    /// state by address, so each address serves one group ([`ALL`] holds every instance).
    pub fn check(&self) -> Result<(), crate::Error> {
        let clusters = self.routing.clusters();
        if clusters.contains(ALL) && clusters.len() > 1 {
            return Err(crate::Error::Usage(format!(
                "`{ALL}` (every instance) cannot be combined with other clusters in the rules: \
                 the balancer serves each instance in one group. Use --default {ALL} alone, or \
                 name the clusters"
            )));
        }
        Ok(())
    }

    /// The client-facing ports: HTTP's, then HTTPS's when there is one.
    pub fn ports(&self) -> Vec<u16> {
        std::iter::once(self.port)
            .chain(self.https.as_ref().map(|h| h.port))
            .collect()
    }

    /// The health check: the agents' `/healthz`, a timeout of half the interval (at most 1 s),
    /// 2 passing and 2 failing checks to flip (the balancer's experiment defaults).
    fn health_check(&self) -> HealthCheck {
        HealthCheck {
            interval_ms: self.health_interval_ms,
            timeout_ms: (self.health_interval_ms / 2).clamp(1, 1000),
            ..HealthCheck::default()
        }
    }
}

/// The config for `spec` over `fleet`, listening on `listen`, admin on `admin`. Clusters with
/// no running instance get an empty group (the balancer answers 503 for it).
pub fn build(
    spec: &BalanceSpec,
    fleet: &[Instance],
    listen: SocketAddr,
    admin: SocketAddr,
    files: FilesAt<'_>,
) -> Config {
    let mut groups: Vec<TargetGroup> = spec
        .routing
        .clusters()
        .into_iter()
        .map(|cluster| TargetGroup {
            algorithm: spec.algorithm,
            health_check: spec.health_check(),
            slow_start_ms: u64::try_from(spec.slow_start.as_millis()).unwrap_or(u64::MAX),
            stickiness: spec.stickiness.clone(),
            ..TargetGroup::named(cluster)
        })
        .collect();
    for group in &mut groups {
        group.targets = targets_of(&group.name, fleet);
    }
    Config {
        version: Some(format!("elb-{}", spec.algorithm.name())),
        listeners: std::iter::once(Listener {
            redirect: spec.http_redirect.clone(),
            ..Listener::http(listen)
        })
        .chain(
            spec.https
                .as_ref()
                .map(|https| https.listener(listen.ip(), files)),
        )
        .collect(),
        admin: Admin { address: admin },
        rules: spec
            .routing
            .rules
            .iter()
            .map(PathRule::balancer_rule)
            .collect(),
        default_action: spec.routing.balancer_default(),
        limits: Limits::default(),
        http2: Default::default(),
        target_groups: groups,
        access_log: spec.access_log.as_ref().map(|path| AccessLog {
            path: match files {
                FilesAt::AsGiven => path.display().to_string(),
                FilesAt::Copied(_) => format!(
                    "{INSTANCE_LOG_DIR}/{}",
                    path.file_name()
                        .map_or("access.log".into(), |n| n.to_string_lossy())
                ),
            },
        }),
    }
}

/// `config` with every group's targets replaced by the running instances of its cluster now.
pub fn retarget(mut config: Config, fleet: &[Instance]) -> Config {
    for group in &mut config.target_groups {
        group.targets = targets_of(&group.name, fleet);
    }
    config
}

/// Where the balancer reaches an instance: its private address (inside the VPC, where the
/// agents' group-to-group rule applies), else its public one.
fn private_address(instance: &Instance) -> Option<&str> {
    instance
        .private_ip
        .as_deref()
        .or(instance.public_ip.as_deref())
}

/// The running instances of `cluster` (every one for [`ALL`]) as targets on the agent port,
/// weighted by CPU capacity where the instance type is known (vCPUs x baseline %, so an
/// m4.large weighs ten t3.micros; 1 otherwise), labelled with their type and cluster.
fn targets_of(cluster: &str, fleet: &[Instance]) -> Vec<Target> {
    fleet
        .iter()
        .filter(|i| i.state == "running" && (cluster == ALL || i.cluster == cluster))
        .filter_map(|i| {
            Some(Target {
                id: Some(i.id.clone()),
                address: SocketAddr::new(private_address(i)?.parse().ok()?, AGENT_PORT).to_string(),
                weight: weight_of(&i.instance_type),
                instance_type: Some(i.instance_type.clone()),
                cluster: Some(i.cluster.clone()),
            })
        })
        .collect()
}

fn weight_of(instance_type: &str) -> u32 {
    crate::cloud::local::cpu_of(instance_type)
        .map(|cpu| {
            u32::try_from(cpu.vcpus * cpu.baseline_percent / 10)
                .unwrap_or(1)
                .max(1)
        })
        .unwrap_or(1)
}

/// The file's text.
pub fn render(config: &Config) -> String {
    toml::to_string(config).unwrap_or_default()
}

/// Parses a file written by [`render`].
pub fn parse(text: &str) -> Result<Config, toml::de::Error> {
    toml::from_str(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn instance(id: &str, cluster: &str, instance_type: &str, ip: &str) -> Instance {
        Instance {
            id: id.into(),
            name: format!("p-{cluster}"),
            cluster: cluster.into(),
            instance_type: instance_type.into(),
            az: "local".into(),
            public_ip: None,
            private_ip: Some(ip.into()),
            state: "running".into(),
            role: None,
            launched_at_unix_ms: None,
        }
    }

    fn fleet() -> Vec<Instance> {
        vec![
            instance("i-1", "cluster1", "m4.large", "127.77.0.1"),
            instance("i-2", "cluster2", "t3.micro", "127.77.0.2"),
            instance("i-3", "cluster2", "t3.micro", "127.77.0.3"),
        ]
    }

    fn spec(routing: Routing) -> BalanceSpec {
        BalanceSpec {
            routing,
            algorithm: Algorithm::P2cPeakEwma,
            port: 80,
            health_interval_ms: 200,
            https: None,
            http_redirect: None,
            slow_start: std::time::Duration::ZERO,
            stickiness: None,
            access_log: None,
        }
    }

    #[test]
    fn the_seed_routing_makes_a_group_per_cluster_with_its_instances() {
        let listen = "127.77.9.9:80".parse().unwrap();
        let admin = "127.77.9.9:9901".parse().unwrap();
        let config = build(
            &spec(Routing::seed()),
            &fleet(),
            listen,
            admin,
            FilesAt::AsGiven,
        );
        assert_eq!(config.listeners[0].address, listen);
        assert_eq!(config.listeners.len(), 1, "no HTTPS unless asked");
        assert_eq!(config.rules.len(), 2);
        assert_eq!(config.rules[1].path_pattern, "/cluster2*");
        assert_eq!(config.default_action.forward.as_deref(), Some("cluster1"));
        let group2 = config
            .target_groups
            .iter()
            .find(|g| g.name == "cluster2")
            .unwrap();
        assert_eq!(group2.algorithm, Algorithm::P2cPeakEwma);
        assert_eq!(group2.health_check.interval_ms, 200);
        assert_eq!(group2.health_check.timeout_ms, 100);
        let addresses: Vec<&str> = group2.targets.iter().map(|t| t.address.as_str()).collect();
        assert_eq!(addresses, ["127.77.0.2:8000", "127.77.0.3:8000"]);
        let group1 = config
            .target_groups
            .iter()
            .find(|g| g.name == "cluster1")
            .unwrap();
        assert_eq!(
            group1.targets[0].weight, 20,
            "an m4.large weighs ten t3.micros"
        );
        assert_eq!(group2.targets[0].weight, 2);
    }

    #[test]
    fn an_https_listener_names_the_certificates_where_the_balancer_finds_them() {
        let mut spec = spec(Routing::seed());
        spec.https = Some(HttpsSpec {
            port: 8443,
            certificates: vec![
                CertificateFiles {
                    cert: "/home/me/a.crt".into(),
                    key: "/home/me/a.key".into(),
                },
                CertificateFiles {
                    cert: "/home/me/b.crt".into(),
                    key: "/home/me/b.key".into(),
                },
            ],
            policy: TlsPolicy::Tls13Only,
        });
        let listen = "0.0.0.0:80".parse().unwrap();
        let admin = "0.0.0.0:9901".parse().unwrap();
        let local = build(&spec, &fleet(), listen, admin, FilesAt::AsGiven);
        let https = &local.listeners[1];
        assert_eq!(https.address, "0.0.0.0:8443".parse().unwrap());
        assert_eq!(https.protocol, Protocol::Https);
        assert_eq!(https.tls_policy, TlsPolicy::Tls13Only);
        assert_eq!(https.certificates[1].key, "/home/me/b.key");
        let remote = build(&spec, &fleet(), listen, admin, FilesAt::Copied("/opt/elb"));
        assert_eq!(
            remote.listeners[1].certificates[0].cert,
            "/opt/elb/tls-0.crt"
        );
        assert_eq!(
            remote.listeners[1].certificates[1].key,
            "/opt/elb/tls-1.key"
        );
    }

    #[test]
    fn the_all_group_holds_every_instance_and_a_sync_only_changes_targets() {
        let routing = Routing::from_flags(&[], Some(ALL)).unwrap();
        let routing = Routing {
            rules: Vec::new(),
            ..routing
        };
        let config = build(
            &spec(routing),
            &fleet(),
            "127.0.0.1:80".parse().unwrap(),
            "127.0.0.1:9901".parse().unwrap(),
            FilesAt::AsGiven,
        );
        assert_eq!(config.target_groups.len(), 1);
        assert_eq!(config.target_groups[0].targets.len(), 3);
        let text = render(&config);
        let parsed = parse(&text).unwrap();
        assert_eq!(parsed, config, "the file reads back as written:\n{text}");

        let smaller = retarget(parsed, &fleet()[..1]);
        assert_eq!(smaller.target_groups[0].targets.len(), 1);
        assert_eq!(smaller.target_groups[0].algorithm, Algorithm::P2cPeakEwma);
    }
}
