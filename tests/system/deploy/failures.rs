//! One host failing never stops the others; the table says which host failed and why.

use std::time::Duration;

use super::{agent_root, eventually, rows, Row, World};

/// The rows of a deploy that must have failed (exit 1), in host order.
fn failed_rows(output: &crate::harness::ElbOutput) -> Vec<Row> {
    output.expect_code(1);
    rows(output)
}

#[test]
fn a_cut_host_is_unreachable_within_the_connect_deadline_and_the_others_succeed() {
    let world = World::plain(3);
    world.hosts.hosts[1].cut();
    let output = world.deploy(&[]);
    let rows = failed_rows(&output);
    assert_eq!(rows[0].result, "ok", "{output}");
    assert_eq!(rows[2].result, "ok", "{output}");
    assert_eq!(rows[1].result, "unreachable", "{output}");
    let error = rows[1].error.as_deref().unwrap_or("");
    assert!(error.contains(&world.hosts.hosts[1].address), "{error}");
    // --connect-timeout 3 --ssh-wait 4: the last attempt may start just before 4 s and take 3.
    assert!(rows[1].seconds < 8.0, "{:?}", rows[1]);
    assert!(output.elapsed < Duration::from_secs(20), "{output}");
    assert!(
        output.stderr.contains("deployed to 2 of 3 hosts"),
        "{output}"
    );
    for i in [0, 2] {
        agent_root(&world.hosts.hosts[i].address);
    }
}

#[test]
fn a_changed_host_key_is_refused_with_the_fingerprints_and_the_fix() {
    let mut world = World::plain(2);
    super::assert_all_ok(&world.deploy(&[]), 2);
    let before = std::fs::read_to_string(world.known_hosts()).unwrap();
    world.hosts.new_host_key(0);

    let output = world.deploy(&[]);
    let rows = failed_rows(&output);
    assert_eq!(rows[0].result, "host key changed", "{output}");
    assert_eq!(rows[1].result, "ok", "{output}");
    let error = rows[0].error.as_deref().unwrap_or("");
    let known_hosts = world.known_hosts().display().to_string();
    for needle in [
        "SHA256:",
        "ssh-keygen -R",
        world.hosts.hosts[0].address.as_str(),
        known_hosts.as_str(),
    ] {
        assert!(error.contains(needle), "{needle:?} missing in: {error}");
    }
    // The new key was not recorded: the refusal holds until the user clears the entry.
    assert_eq!(
        std::fs::read_to_string(world.known_hosts()).unwrap(),
        before
    );
    crate::harness::run_checked(
        "ssh-keygen",
        &["-R", &world.hosts.hosts[0].address, "-f", &known_hosts],
    );
    super::assert_all_ok(&world.deploy(&[]), 2);
}

#[test]
fn an_agent_that_cannot_start_is_reported_not_healthy() {
    let world = World::plain(2);
    // Something else holds port 8000 on host 0 and never answers: the agent exits (port taken)
    // and /healthz never gives a 200.
    let host = &world.hosts.hosts[0];
    host.spawn(
        "/usr/bin/python3 -c 'import socket, time; s = socket.socket(); \
         s.bind((\"0.0.0.0\", 8000)); s.listen(); time.sleep(3600)'",
    );
    let port = format!("{}:8000", host.address)
        .parse()
        .expect("an address");
    assert!(
        eventually(Duration::from_secs(10), || {
            std::net::TcpStream::connect_timeout(&port, Duration::from_millis(200)).is_ok()
        }),
        "the port blocker did not start"
    );
    let output = world.deploy_to(&world.hosts.addresses(), "3", &[]);
    let rows = failed_rows(&output);
    assert_eq!(rows[0].result, "agent not healthy", "{output}");
    assert_eq!(rows[1].result, "ok", "{output}");
    let error = rows[0].error.as_deref().unwrap_or("");
    assert!(
        error.contains("/healthz") && error.contains("elb-agent.log"),
        "{error}"
    );
    let log = std::fs::read_to_string(world.hosts.hosts[0].install_file("elb-agent.log"))
        .unwrap_or_default();
    assert!(log.to_lowercase().contains("address"), "agent log: {log}");
}

#[test]
fn an_arm64_host_without_an_arm64_agent_gets_the_clear_error() {
    let world = World::plain(2);
    world.hosts.hosts[1].put_first_on_path(
        "uname",
        "#!/bin/sh\nif [ \"$1\" = -m ]; then echo aarch64; else exec /usr/bin/uname \"$@\"; fi\n",
    );
    let output = world.deploy(&[]);
    let rows = failed_rows(&output);
    assert_eq!(rows[0].result, "ok", "{output}");
    assert_eq!(rows[1].result, "no agent binary", "{output}");
    let error = rows[1].error.as_deref().unwrap_or("");
    assert!(
        error.contains("arm64") && error.contains("--agent-arm64"),
        "{error}"
    );
    assert!(!world.hosts.hosts[1].install_file("elb-agent").exists());
}

#[test]
fn a_key_the_host_does_not_accept_is_reported_as_auth_refused() {
    let world = World::plain(1);
    let other = world.hosts.install_dir.with_file_name("other_key");
    crate::harness::ssh_keygen(&other);
    let output = world.deploy(&["--ssh-key", &other.to_string_lossy()]);
    let rows = failed_rows(&output);
    assert_eq!(rows[0].result, "auth refused", "{output}");
    let error = rows[0].error.as_deref().unwrap_or("");
    assert!(
        error.contains("`root`") && error.contains("other_key"),
        "{error}"
    );
}
