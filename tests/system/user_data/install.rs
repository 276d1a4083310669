//! The script run inside test hosts, as cloud-init runs it (`sh` as root), downloading the real
//! static agent from a server on the test network's bridge address.
//!
//! The agent runs with `--imds`. Its metadata endpoint comes from `ELB_AGENT_IMDS_ENDPOINT` in
//! the environment the script is run with (the agent's documented variable, inherited by the
//! detached agent): a fake IMDS on the bridge, so nothing reaches 169.254.169.254.

use std::path::PathBuf;
use std::time::Duration;

use super::{launch, launched_user_data, write_shellcheck_clean, FileServer, CLUSTER};
use crate::deploy::{agent_root, eventually};
use crate::ec2::fixture::Fixture;
use crate::harness::{raw_http, static_agent, FakeImds, HostSpec, ImdsMode, TestHosts};

const INSTANCE_ID: &str = "i-0feedc0ffee000001";

/// One test host, the agent served from the bridge, a fake IMDS there, and the user data that
/// `launch` renders for them (`extra` adds launch flags).
struct Boot {
    hosts: TestHosts,
    server: FileServer,
    imds: FakeImds,
    script: PathBuf,
}

impl Boot {
    fn new(spec: HostSpec, extra: &[&str]) -> Self {
        let hosts = TestHosts::new(&[spec], "");
        let address = &hosts.hosts[0].address;
        let (subnet, _) = address.rsplit_once('.').expect("an IPv4 address");
        let bridge = format!("{subnet}.1");
        let agent = static_agent();
        let server = FileServer::start(&bridge, std::fs::read(&agent).expect("the static agent"));
        let imds = FakeImds::start_at(
            &bridge,
            ImdsMode::Answering {
                instance_id: INSTANCE_ID,
                instance_type: "t3.micro",
                availability_zone: "ca-central-1b",
            },
        );

        let fx = Fixture::new();
        let install_dir = hosts.install_dir.to_string_lossy().into_owned();
        let (url, agent_path) = (server.url(), agent.to_string_lossy().into_owned());
        let flags = [
            &[
                "--agent-url",
                &url,
                "--agent",
                &agent_path,
                "--install-dir",
                &install_dir,
                "--no-wait-healthy",
            ][..],
            extra,
        ]
        .concat();
        let user_data = launched_user_data(&fx, &launch(&fx, 1, &flags)).remove(0);
        let script = hosts.hosts[0].dir.join("user-data.sh");
        write_shellcheck_clean(&user_data, &script);
        Self {
            hosts,
            server,
            imds,
            script,
        }
    }

    /// Runs the script as root inside the host with `PATH` starting at the host's `bin` dir;
    /// returns its exit code and its output (stdout and stderr).
    fn run(&self) -> (i32, String) {
        let host = &self.hosts.hosts[0];
        let out = host.sh(&format!(
            "PATH={bin}:$PATH ELB_AGENT_IMDS_ENDPOINT={imds} sh {script} 2>&1; echo \"exit=$?\"",
            bin = host.dir.join("bin").display(),
            imds = self.imds.endpoint(),
            script = self.script.display(),
        ));
        let (output, code) = out.trim_end().rsplit_once("exit=").expect("an exit line");
        (code.parse().expect("an exit code"), output.to_owned())
    }

    /// The names in the host's own install dir.
    fn installed(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.hosts.hosts[0].dir.join("install"))
            .expect("the host's install dir")
            .map(|e| {
                e.expect("an entry")
                    .file_name()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        names.sort();
        names
    }

    /// A stand-in `systemctl` that only records its arguments; returns the record's path.
    fn fake_systemctl(&self) -> PathBuf {
        let host = &self.hosts.hosts[0];
        let calls = host.dir.join("systemctl.calls");
        host.put_first_on_path(
            "systemctl",
            &format!("#!/bin/sh\necho \"$*\" >> {}\n", calls.display()),
        );
        calls
    }
}

#[test]
fn the_script_installs_and_starts_an_agent_that_learns_its_instance_id() {
    let boot = Boot::new(HostSpec::default(), &[]);
    let host = &boot.hosts.hosts[0];
    let (code, output) = boot.run();
    assert_eq!(code, 0, "{output}");
    assert_eq!(
        boot.server
            .downloads
            .load(std::sync::atomic::Ordering::SeqCst),
        1
    );
    assert_eq!(
        boot.installed(),
        ["elb-agent", "elb-agent.log", "elb-agent.pid"],
        "binary, and without systemd the pid and log files; no .part left"
    );
    assert_eq!(
        std::fs::read(host.install_file("elb-agent")).unwrap(),
        std::fs::read(static_agent()).unwrap()
    );

    // The script returns once the agent is started; `launch` then polls /healthz, as here.
    let addr = format!("{}:8000", host.address).parse().unwrap();
    assert!(
        eventually(Duration::from_secs(10), || {
            raw_http::request(addr, "GET", "/healthz").is_ok_and(|r| r.status == 200)
        }),
        "the agent answers /healthz; its log:\n{}",
        std::fs::read_to_string(host.install_file("elb-agent.log")).unwrap_or_default()
    );
    let root = agent_root(&host.address);
    assert_eq!(root["cluster"], CLUSTER, "{root}");
    assert_eq!(root["hostname"], host.hostname.as_str(), "{root}");
    assert_eq!(root["ec2_instance_type"], "t3.micro", "{root}");
    assert_eq!(root["ec2_instance_id"], INSTANCE_ID, "--imds: {root}");
    assert_eq!(root["availability_zone"], "ca-central-1b", "--imds: {root}");
}

#[test]
fn a_wrong_checksum_fails_the_script_and_installs_nothing() {
    let wrong = "ab".repeat(32);
    let boot = Boot::new(
        HostSpec {
            systemd: true,
            ..HostSpec::default()
        },
        &["--agent-sha256", &wrong],
    );
    let host = &boot.hosts.hosts[0];
    let calls = boot.fake_systemctl();
    let (code, output) = boot.run();
    assert_ne!(code, 0, "{output}");
    assert!(
        output.contains("SHA-256 mismatch") && output.contains(&wrong),
        "the reason is logged: {output}"
    );
    assert_eq!(
        boot.server
            .downloads
            .load(std::sync::atomic::Ordering::SeqCst),
        1
    );
    assert_eq!(
        boot.installed(),
        Vec::<String>::new(),
        "no binary, no .part, no pid"
    );
    assert_eq!(host.sh("ls -A /etc/systemd/system"), "", "no unit");
    assert!(!calls.exists(), "systemctl never ran");
    let addr = format!("{}:8000", host.address).parse().unwrap();
    assert!(
        raw_http::request(addr, "GET", "/healthz").is_err(),
        "no agent answers"
    );
}

#[test]
fn with_systemd_the_unit_is_installed_then_enabled_and_started() {
    let boot = Boot::new(
        HostSpec {
            systemd: true,
            ..HostSpec::default()
        },
        &[],
    );
    let host = &boot.hosts.hosts[0];
    let calls = boot.fake_systemctl();
    let (code, output) = boot.run();
    assert_eq!(code, 0, "{output}");
    assert_eq!(
        std::fs::read_to_string(&calls).unwrap(),
        "daemon-reload\nenable --now elb-agent.service\n"
    );
    assert_eq!(host.sh("ls -A /etc/systemd/system"), "elb-agent.service\n");
    let unit = host.sh("cat /etc/systemd/system/elb-agent.service");
    let exec_start = format!(
        "ExecStart={}/elb-agent --listen 0.0.0.0:8000 --cluster \"{CLUSTER}\" --instance-id \"\" \
         --instance-type \"t3.micro\" --az \"\" --imds",
        boot.hosts.install_dir.display()
    );
    assert!(
        unit.lines().any(|l| l == exec_start),
        "{exec_start}\n---\n{unit}"
    );
    assert!(
        unit.lines().any(|l| l == "WantedBy=multi-user.target"),
        "{unit}"
    );
    assert_eq!(
        boot.installed(),
        ["elb-agent"],
        "systemd owns the process: no pid or log file"
    );
}
