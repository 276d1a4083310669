//! `elb deploy --hosts` against real OpenSSH servers in network namespaces (test hosts), with the
//! real static agent. The test hosts have no systemd, so the detached path runs for real; the
//! systemd path runs against a stand-in `systemctl`.

mod bench;
mod detached;
mod ec2;
mod failures;
mod sudo;
mod systemd;

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::harness::{raw_http, static_agent, Elb, ElbOutput, HostSpec, TestHosts};

/// The cluster the tests deploy.
pub const CLUSTER: &str = "blue";
/// The project whose state dir holds the key and known_hosts (elb's default).
const PROJECT: &str = "elb-from-scratch";

/// One row of `elb deploy --output json`.
#[derive(Debug, Clone, Deserialize)]
pub struct Row {
    pub host: String,
    pub result: String,
    pub seconds: f64,
    pub error: Option<String>,
}

/// Test hosts and an `elb` user whose project key they accept.
pub struct World {
    pub hosts: TestHosts,
    pub elb: Elb,
}

impl World {
    /// `specs.len()` test hosts, and an `elb` whose project key (made here with ssh-keygen, as a
    /// user's own key would be) logs in as root on them.
    pub fn new(specs: &[HostSpec]) -> Self {
        // deploy --hosts needs no AWS: no credentials, and nothing listens at this endpoint.
        let elb = Elb::new("http://127.0.0.1:9".to_owned()).without_credentials();
        let key_dir = elb.state_dir().join(PROJECT);
        std::fs::create_dir_all(&key_dir).expect("create the state dir");
        let key = key_dir.join("id_ed25519");
        crate::harness::ssh_keygen(&key);
        let public = std::fs::read_to_string(key.with_extension("pub")).expect("public key");
        Self {
            hosts: TestHosts::new(specs, &public),
            elb,
        }
    }

    /// `n` plain hosts.
    pub fn plain(n: usize) -> Self {
        Self::new(&vec![HostSpec::default(); n])
    }

    /// The project's known_hosts file.
    pub fn known_hosts(&self) -> PathBuf {
        self.elb.state_dir().join(PROJECT).join("known_hosts")
    }

    /// `elb deploy --hosts <all> --cluster blue` as root (unless `extra` has `--ssh-user`) into
    /// the common install dir, with short
    /// deadlines (10 s for /healthz), plus `extra` flags.
    pub fn deploy(&self, extra: &[&str]) -> ElbOutput {
        self.deploy_to(&self.hosts.addresses(), "10", extra)
    }

    /// [`deploy`](Self::deploy) to `hosts` (comma-separated) with `--health-timeout <seconds>`.
    pub fn deploy_to(&self, hosts: &str, seconds: &str, extra: &[&str]) -> ElbOutput {
        let install_dir = self.hosts.install_dir.to_string_lossy().into_owned();
        let agent = static_agent().to_string_lossy().into_owned();
        let mut args = vec![
            "deploy",
            "--hosts",
            hosts,
            "--cluster",
            CLUSTER,
            "--install-dir",
            &install_dir,
            "--agent",
            &agent,
            "--connect-timeout",
            "3",
            "--ssh-wait",
            "4",
            "--health-timeout",
            seconds,
        ];
        if !extra.contains(&"--ssh-user") {
            args.extend(["--ssh-user", "root"]);
        }
        args.extend(extra);
        self.elb.run(&args)
    }
}

/// The rows of a deploy's JSON output, whatever its exit code.
pub fn rows(output: &ElbOutput) -> Vec<Row> {
    serde_json::from_str(&output.stdout)
        .unwrap_or_else(|e| panic!("stdout is not a JSON array of rows ({e}):\n{output}"))
}

/// Asserts that every host succeeded (exit 0, every row `ok`).
pub fn assert_all_ok(output: &ElbOutput, hosts: usize) -> Vec<Row> {
    output.expect_code(0);
    let rows = rows(output);
    assert_eq!(rows.len(), hosts, "{output}");
    for row in &rows {
        assert_eq!(row.result, "ok", "{row:?}\n{output}");
    }
    rows
}

/// `GET /` on the agent of `address`, as JSON.
pub fn agent_root(address: &str) -> serde_json::Value {
    let addr = format!("{address}:8000").parse().expect("an address");
    let response = raw_http::get(addr, "/");
    assert_eq!(response.status, 200, "{}", response.text());
    response.json()
}

/// The pid in the host's pid file.
pub fn agent_pid(hosts: &TestHosts, i: usize) -> u32 {
    let path = hosts.hosts[i].install_file("elb-agent.pid");
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .trim()
        .parse()
        .expect("a pid")
}

/// Whether `pid` is a live (not zombie) process.
pub fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            stat.rsplit_once(") ")
                .map(|(_, rest)| !rest.starts_with('Z'))
        })
        .unwrap_or(false)
}

/// Polls `done` every 50 ms for at most `timeout`.
pub fn eventually(timeout: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + timeout;
    while std::time::Instant::now() < deadline {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    done()
}
