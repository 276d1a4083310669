//! The detached path (no systemd): fresh deploys and upgrades.

use std::time::Duration;

use super::{agent_pid, agent_root, alive, assert_all_ok, eventually, World, CLUSTER};

#[test]
fn three_hosts_each_run_an_agent_with_their_own_hostname_and_the_cluster() {
    let world = World::plain(3);
    let output = world.deploy(&[]);
    let rows = assert_all_ok(&output, 3);
    for (host, row) in world.hosts.hosts.iter().zip(&rows) {
        assert_eq!(row.host, host.address, "rows in --hosts order");
        let root = agent_root(&host.address);
        assert_eq!(root["hostname"], host.hostname.as_str(), "{root}");
        assert_eq!(root["cluster"], CLUSTER, "{root}");
        // Detached: pid and log files in the host's own install dir, the binary executable.
        assert!(host.install_file("elb-agent.log").is_file());
        assert!(!host.install_file("elb-agent.part").exists());
    }
    for i in 0..3 {
        assert!(alive(agent_pid(&world.hosts, i)));
    }
    // First contact recorded every host key.
    let known = std::fs::read_to_string(world.known_hosts()).expect("known_hosts written");
    for host in &world.hosts.hosts {
        assert!(
            known
                .lines()
                .any(|l| l.starts_with(&format!("{} ssh-ed25519 ", host.address))),
            "{known}"
        );
    }
}

#[test]
fn a_second_deploy_replaces_the_running_agent() {
    let world = World::plain(2);
    assert_all_ok(&world.deploy(&[]), 2);
    let old: Vec<u32> = (0..2).map(|i| agent_pid(&world.hosts, i)).collect();

    let output = world.deploy(&[]);
    assert_all_ok(&output, 2);
    for (i, host) in world.hosts.hosts.iter().enumerate() {
        let new = agent_pid(&world.hosts, i);
        assert_ne!(new, old[i], "a new agent process on {}", host.address);
        assert!(
            eventually(Duration::from_secs(5), || !alive(old[i])),
            "the old agent {} still runs on {}",
            old[i],
            host.address
        );
        assert!(alive(new));
        assert_eq!(
            agent_root(&host.address)["hostname"],
            host.hostname.as_str()
        );
    }
}
