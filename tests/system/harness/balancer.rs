//! A real `elb-balancer` process serving a config file the test wrote, killed when dropped, and
//! the config builders the tests share (fast timers, port 0, loopback only).

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use prometheus_parse::{Scrape, Value};
use proto::balancer_config::{
    Admin, Algorithm, Config, DefaultAction, HealthCheck, Limits, Listener, Rule, Target,
    TargetGroup,
};
use proto::{BalancerStatus, GroupStatus, TargetState, TargetStatus};

use super::raw_http::{self, HttpResponse};
use super::{bin_path, Agent, TempDir};

/// How long the balancer may take to print its addresses.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// A config with one listener and the admin listener on `127.0.0.1:0`, no rules, a default
/// action forwarding to the first group, and `groups`.
pub fn config(groups: Vec<TargetGroup>) -> Config {
    Config {
        version: None,
        listeners: vec![Listener::http("127.0.0.1:0".parse().expect("an address"))],
        admin: Admin {
            address: "127.0.0.1:0".parse().expect("an address"),
        },
        limits: Limits {
            read_timeout_ms: 5000,
            grace_ms: 5000,
            ..Limits::default()
        },
        http2: Default::default(),
        rules: Vec::new(),
        default_action: DefaultAction {
            forward: groups.first().map(|g| g.name.clone()),
            fixed_response: None,
        },
        target_groups: groups,
        access_log: None,
    }
}

/// A rule `path_pattern` -> `forward` at `priority`.
pub fn rule(priority: u32, path_pattern: &str, forward: &str) -> Rule {
    Rule {
        priority,
        path_pattern: path_pattern.into(),
        forward: Some(proto::balancer_config::Forward::Group(forward.into())),
        ..Rule::default()
    }
}

/// A group of `targets` with fast health checks (every 200 ms with a 150 ms timeout, which a
/// loaded machine still meets; 1 pass to become healthy, 2 failures to become unhealthy), a
/// 3 s deregistration delay and the other defaults.
pub fn group(name: &str, algorithm: Algorithm, targets: Vec<Target>) -> TargetGroup {
    TargetGroup {
        name: name.into(),
        algorithm,
        when_none_healthy: Default::default(),
        connect_timeout_ms: 500,
        response_timeout_ms: 5000,
        slow_start_ms: 0,
        stickiness: None,
        idle_timeout_ms: 4000,
        deregistration_delay_ms: 3000,
        health_check: HealthCheck {
            interval_ms: 200,
            timeout_ms: 150,
            healthy_threshold: 1,
            unhealthy_threshold: 2,
            ..HealthCheck::default()
        },
        outlier_detection: Default::default(),
        retry: Default::default(),
        targets,
        ..TargetGroup::named(name)
    }
}

/// The target `id` at `address`, weight 1.
pub fn target(id: &str, address: SocketAddr) -> Target {
    Target {
        id: Some(id.into()),
        address: address.to_string(),
        weight: 1,
        instance_type: None,
        cluster: None,
    }
}

/// An agent with `--cluster cluster --instance-id id`, `/sleep` enabled and a 100 ms sampler.
pub fn agent(cluster: &str, id: &str) -> Agent {
    Agent::start(&agent_args(cluster, id))
}

/// The flags of [`agent`], for agents started another way.
pub fn agent_args<'a>(cluster: &'a str, id: &'a str) -> [&'a str; 7] {
    [
        "--cluster",
        cluster,
        "--instance-id",
        id,
        "--enable-debug-endpoints",
        "--sample-interval",
        "100ms",
    ]
}

/// The TOML text of `config`.
pub fn to_toml(config: &Config) -> String {
    toml::to_string(config).expect("a config serializes to TOML")
}

/// A running `elb-balancer CONFIG`.
pub struct Balancer {
    child: Child,
    /// The bound client listeners, in config order.
    pub listeners: Vec<SocketAddr>,
    /// The bound admin listener.
    pub admin: SocketAddr,
    /// The config file it serves (rewrite it and [`Balancer::reload`]).
    pub config_path: PathBuf,
    stderr: Arc<Mutex<String>>,
    _dir: TempDir,
}

impl Balancer {
    /// Writes `config` to a file and serves it.
    pub fn start(config: &Config) -> Balancer {
        Self::start_toml(&to_toml(config))
    }

    /// Writes `text` to a config file and serves it; waits for the printed addresses.
    pub fn start_toml(text: &str) -> Balancer {
        let dir = TempDir::new("elb-balancer");
        let config_path = dir.path().join("lb.toml");
        std::fs::write(&config_path, text).expect("write the config");
        let mut child = Command::new(bin_path("elb-balancer"))
            .arg(&config_path)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn elb-balancer");

        let stderr = Arc::new(Mutex::new(String::new()));
        let mut pipe = child.stderr.take().expect("stderr is piped");
        let sink = stderr.clone();
        std::thread::spawn(move || {
            let mut chunk = [0u8; 4096];
            while let Ok(n @ 1..) = pipe.read(&mut chunk) {
                sink.lock()
                    .expect("stderr buffer")
                    .push_str(&String::from_utf8_lossy(&chunk[..n]));
            }
        });
        let stdout = child.stdout.take().expect("stdout is piped");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });

        let mut balancer = Balancer {
            child,
            listeners: Vec::new(),
            admin: "127.0.0.1:0".parse().expect("placeholder address"),
            config_path,
            stderr,
            _dir: dir,
        };
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let Ok(line) = rx.recv_timeout(left) else {
                panic!(
                    "elb-balancer printed no `admin on <addr>` within {START_TIMEOUT:?}; stderr:\n{}",
                    balancer.stderr()
                );
            };
            if let Some(addr) = line.strip_prefix("listening on ") {
                balancer
                    .listeners
                    .push(addr.parse().expect("`listening on` prints an address"));
            } else if let Some(addr) = line.strip_prefix("admin on ") {
                balancer.admin = addr.parse().expect("`admin on` prints an address");
                break;
            } else {
                panic!(
                    "unexpected stdout line {line:?}; stderr:\n{}",
                    balancer.stderr()
                );
            }
        }
        balancer
    }

    /// The first client listener.
    pub fn addr(&self) -> SocketAddr {
        self.listeners[0]
    }

    /// `GET path` on the first listener, one request per connection.
    pub fn get(&self, path: &str) -> HttpResponse {
        raw_http::get(self.addr(), path)
    }

    /// Everything the balancer wrote to stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().expect("stderr buffer").clone()
    }

    /// `GET /status` on the admin listener.
    pub fn status(&self) -> BalancerStatus {
        let response = raw_http::get(self.admin, "/status");
        assert_eq!(response.status, 200, "/status: {}", response.text());
        serde_json::from_slice(&response.body).unwrap_or_else(|e| {
            panic!("/status is not a BalancerStatus ({e}): {}", response.text())
        })
    }

    /// Polls `/status` every 10 ms until `done` holds, for at most `timeout`; panics naming
    /// `what` with the last status and the log.
    pub fn status_until(
        &self,
        timeout: Duration,
        what: &str,
        mut done: impl FnMut(&BalancerStatus) -> bool,
    ) -> BalancerStatus {
        let deadline = Instant::now() + timeout;
        loop {
            let status = self.status();
            if done(&status) {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: not within {timeout:?}; last /status: {status:#?}\nstderr:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits until every registered target of every group is `healthy`.
    pub fn wait_all_healthy(&self) -> BalancerStatus {
        self.status_until(Duration::from_secs(10), "every target healthy", |s| {
            s.groups.iter().all(|g| {
                g.targets
                    .iter()
                    .all(|t| t.state == TargetState::Healthy && !t.ejected)
            })
        })
    }

    /// `GET /metrics` on the admin listener, parsed.
    pub fn metrics(&self) -> Metrics {
        let response = raw_http::get(self.admin, "/metrics");
        assert_eq!(response.status, 200, "/metrics: {}", response.text());
        let text = response.text().to_string();
        let scrape = Scrape::parse(text.lines().map(|l| Ok(l.to_string())))
            .expect("/metrics parses as Prometheus text");
        Metrics { scrape, text }
    }

    /// Rewrites the config file with `config` (atomically) and sends SIGHUP.
    pub fn reload(&self, config: &Config) {
        self.reload_toml(&to_toml(config));
    }

    /// Rewrites the config file with `text` (atomically) and sends SIGHUP.
    pub fn reload_toml(&self, text: &str) {
        let part = self.config_path.with_extension("part");
        std::fs::write(&part, text).expect("write the new config");
        std::fs::rename(&part, &self.config_path).expect("replace the config");
        self.signal(libc::SIGHUP);
    }

    /// The balancer's resident memory now, in KiB.
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("the balancer's /proc status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS")
    }

    /// Sends `signal` to the balancer.
    pub fn signal(&self, signal: libc::c_int) {
        super::signal::send(self.child.id(), signal);
    }

    /// Waits up to `timeout` for the balancer to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Balancer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `elb-balancer --check path`.
pub fn check(path: &Path) -> Output {
    Command::new(bin_path("elb-balancer"))
        .arg("--check")
        .arg(path)
        .output()
        .expect("run elb-balancer --check")
}

/// A parsed `/metrics` page.
pub struct Metrics {
    scrape: Scrape,
    /// The page as text, for failure messages.
    pub text: String,
}

impl Metrics {
    /// The sum of `metric` over the samples whose labels include all of `labels` (0 if none).
    pub fn sum(&self, metric: &str, labels: &[(&str, &str)]) -> f64 {
        self.scrape
            .samples
            .iter()
            .filter(|s| s.metric == metric)
            .filter(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
            .map(|s| match s.value {
                Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => v,
                ref other => panic!("{metric} is {other:?}"),
            })
            .sum()
    }
}

/// The group called `name`.
pub fn group_status<'a>(status: &'a BalancerStatus, name: &str) -> &'a GroupStatus {
    status
        .groups
        .iter()
        .find(|g| g.name == name)
        .unwrap_or_else(|| panic!("no group {name} in {status:#?}"))
}

/// The target with `id` in any group.
pub fn target_status<'a>(status: &'a BalancerStatus, id: &str) -> Option<&'a TargetStatus> {
    status
        .groups
        .iter()
        .flat_map(|g| &g.targets)
        .find(|t| t.id == id)
}
