//! `elb --local deploy`: the local instances' agents restart from the new binary, keeping who
//! and where they are.

use std::collections::BTreeSet;

use crate::harness::local::is_alive;
use crate::harness::{bin_path, raw_http, LocalProject};

#[test]
fn deploy_restarts_every_local_agent_with_the_same_identity_address_and_quota() {
    let project = LocalProject::new();
    project.launch("c1", "t3.micro", 2);
    let before = project.records();
    let agent = bin_path("elb-agent");
    project
        .run(&["deploy", "--agent", agent.to_str().expect("utf-8 path")])
        .expect_code(0);

    let after = project.records();
    assert_eq!(after.len(), 2);
    for old in &before {
        let new = after.iter().find(|r| r.id == old.id).expect("same ids");
        assert_ne!(new.pid, old.pid, "{}: a new process", old.id);
        assert!(!is_alive(old.pid), "{}: the old process is gone", old.id);
        assert_eq!(
            (new.address, &new.cgroup, &new.instance_type),
            (old.address, &old.cgroup, &old.instance_type),
            "{}: same address, cgroup and type",
            old.id
        );
        if let Some(group) = &new.cgroup {
            let procs = std::fs::read_to_string(group.join("cgroup.procs")).expect("procs");
            assert!(
                procs.lines().any(|p| p == new.pid.to_string()),
                "{}: the new agent runs under its quota",
                old.id
            );
        }
        let root = raw_http::get(new.addr(), "/").json();
        assert_eq!(root["ec2_instance_id"], new.id.as_str());
        assert_eq!(root["cluster"], "c1");
    }
    let running: BTreeSet<u32> = project.processes().into_iter().collect();
    let recorded: BTreeSet<u32> = after.iter().map(|r| r.pid).collect();
    assert_eq!(running, recorded, "exactly the new agents run");
}
