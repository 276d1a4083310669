//! `elb --local launch`: agents on their own loopback addresses, recorded so that later runs
//! see them, and nothing started that the state does not list.

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use crate::harness::{bin_path, raw_http, LocalProject, TempDir};

/// A second launch in the same project adds to the first; every instance is a live agent that
/// answers on its own 127.77 address with its own identity.
#[test]
fn two_launches_in_one_project_add_up() {
    let project = LocalProject::new();
    let first = project.launch("c1", "t3.micro", 2);
    let second = project.launch("c2", "m4.large", 3);
    assert_eq!((first.len(), second.len()), (2, 3));

    let listed = project.ls();
    assert_eq!(listed.len(), 5, "ls lists both launches: {listed:#?}");
    let records = project.records();
    let addresses: BTreeSet<_> = records.iter().map(|r| r.address).collect();
    assert_eq!(addresses.len(), 5, "one address per instance");
    for instance in &listed {
        let id = instance["id"].as_str().expect("id");
        let record = records.iter().find(|r| r.id == id).expect("recorded");
        let ip = instance["private_ip"].as_str().expect("private_ip");
        assert!(ip.starts_with("127.77."), "{ip}");
        assert_eq!(ip, record.address.to_string());
        assert_eq!(instance["state"], "running");
        assert_eq!(instance["az"], "local");
        assert_eq!(raw_http::get(record.addr(), "/healthz").status, 200);
        let root = raw_http::get(record.addr(), "/").json();
        assert_eq!(root["ec2_instance_id"], id);
        assert_eq!(root["cluster"], instance["cluster"]);
        assert_eq!(root["ec2_instance_type"], instance["instance_type"]);
    }
    let recorded: BTreeSet<u32> = records.iter().map(|r| r.pid).collect();
    let running: BTreeSet<u32> = project.processes().into_iter().collect();
    assert_eq!(running, recorded, "exactly the recorded agents run");
}

/// Two launches at once in the same project both land in the state file (it is locked).
#[test]
fn concurrent_launches_in_one_project_both_land() {
    let project = LocalProject::new();
    let launch = |cluster, count| {
        project.elb.spawn(&[
            "launch",
            "--cluster",
            cluster,
            "--type",
            "t3.small",
            "--count",
            count,
        ])
    };
    let (first, second) = (launch("c1", "3"), launch("c2", "4"));
    for out in [first, second] {
        out.wait(Duration::from_secs(60)).expect_code(0);
    }
    let records = project.records();
    assert_eq!(records.len(), 7, "{records:#?}");
    let addresses: BTreeSet<_> = records.iter().map(|r| r.address).collect();
    assert_eq!(addresses.len(), 7, "no address given twice");
    assert_eq!(project.processes().len(), 7);
}

/// An unknown type is refused with the known ones, before anything starts or is written.
#[test]
fn an_unknown_type_is_refused_before_anything_starts() {
    let project = LocalProject::new();
    project
        .run(&[
            "launch",
            "--cluster",
            "c1",
            "--type",
            "x9.huge",
            "--count",
            "2",
        ])
        .expect_code(2)
        .expect_failure_mentioning(&["x9.huge", "t3.micro", "m4.large", "--type"]);
    assert!(project.records().is_empty());
    assert!(!project.state_file().exists());
    assert!(project.processes().is_empty());
}

/// EC2-only flags of launch and kill are refused rather than ignored.
#[test]
fn ec2_only_flags_are_refused() {
    let project = LocalProject::new();
    let base = [
        "launch",
        "--cluster",
        "c1",
        "--type",
        "t3.micro",
        "--count",
        "1",
    ];
    for extra in [["--ami", "ami-12345678"], ["--ssh-cidr", "203.0.113.7/32"]] {
        let args: Vec<&str> = base.iter().chain(&extra).copied().collect();
        project
            .run(&args)
            .expect_code(2)
            .expect_failure_mentioning(&[extra[0], "EC2 only"]);
    }
    project
        .run(&["kill", "--yes", "--keep-network"])
        .expect_code(2)
        .expect_failure_mentioning(&["--keep-network", "EC2 only"]);
    assert!(project.processes().is_empty());
}

/// Ctrl-C while the agents start leaves nothing running that the state does not list, and says
/// how to remove it; `kill` then removes everything.
#[test]
fn ctrl_c_during_launch_leaves_nothing_kill_cannot_find() {
    let project = LocalProject::new();
    // An agent that never answers on its instance address: it listens elsewhere.
    let dir = TempDir::new("silent-agent");
    let script = dir.path().join("silent-agent");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nshift 2\nexec {} --listen 127.0.0.1:0 \"$@\"\n",
            bin_path("elb-agent").display()
        ),
    )
    .expect("write the script");
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let script = script.to_string_lossy().into_owned();

    let launch = project.elb.spawn(&[
        "launch",
        "--cluster",
        "c1",
        "--type",
        "t3.nano",
        "--count",
        "3",
        "--agent",
        &script,
        "--timeout",
        "60",
    ]);
    let deadline = Instant::now() + Duration::from_secs(30);
    while project.records().len() < 3 {
        assert!(
            Instant::now() < deadline,
            "the three agents were never recorded"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    launch.interrupt();
    let out = launch.wait(Duration::from_secs(30));
    out.expect_code(130).expect_failure_mentioning(&[
        "interrupted",
        &format!("elb --local kill --project {}", project.elb.project()),
    ]);
    let recorded: BTreeSet<u32> = project.records().iter().map(|r| r.pid).collect();
    let running: BTreeSet<u32> = project.processes().into_iter().collect();
    assert_eq!(running, recorded, "every agent still running is recorded");
    assert_eq!(running.len(), 3);

    let listed = project.ls();
    assert!(
        listed.iter().all(|i| i["state"] == "running"),
        "{listed:#?}"
    );
    project.run(&["kill", "--yes"]).expect_code(0);
    assert!(project.processes().is_empty());
    assert!(project.records().is_empty());
}

/// An agent that dies before it answers fails the launch at once (two looks a poll apart, not
/// the whole timeout), with the end of its log; `kill` removes what the launch left.
#[test]
fn an_agent_that_dies_fails_the_launch_with_its_log() {
    let project = LocalProject::new();
    let dir = TempDir::new("dying-agent");
    let script = dir.path().join("dying-agent");
    std::fs::write(&script, "#!/bin/sh\necho 'cannot bind: boom' >&2\nexit 3\n")
        .expect("write the script");
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let started = Instant::now();
    project
        .run(&[
            "launch",
            "--cluster",
            "c1",
            "--type",
            "t3.nano",
            "--count",
            "1",
            "--agent",
            &script.to_string_lossy(),
            "--timeout",
            "60",
        ])
        .expect_code(1)
        .expect_failure_mentioning(&["exited before answering /healthz", "boom", "kill"]);
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "reported at once, not after the timeout: {:?}",
        started.elapsed()
    );
    project.run(&["kill", "--yes"]).expect_code(0);
    assert!(project.records().is_empty());
}
