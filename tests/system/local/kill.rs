//! `elb --local kill`: stops exactly the project's agents and removes every trace of them;
//! `--dry-run` only shows the plan.

use std::time::Duration;

use serde::Deserialize;

use crate::harness::local::is_alive;
use crate::harness::{raw_http, ElbOutput, LocalProject};

/// The plan `elb kill --output json` prints.
#[derive(Debug, Deserialize)]
struct Plan {
    region: String,
    instances: Vec<String>,
    #[serde(default)]
    cgroups: Vec<String>,
    dry_run: bool,
}

fn plan(output: &ElbOutput) -> Plan {
    serde_json::from_value(output.json())
        .unwrap_or_else(|e| panic!("stdout is not a kill plan ({e}):\n{output}"))
}

/// After kill: no agent process, no state file, no log, no cgroup, and `ls` is empty.
#[test]
fn kill_leaves_no_process_no_state_and_no_cgroup() {
    let project = LocalProject::new();
    project.launch("c1", "t3.micro", 2);
    let records = project.records();
    assert!(records
        .iter()
        .all(|r| r.cgroup.as_ref().is_some_and(|g| g.is_dir())));

    let plan = plan(&project.run(&["kill", "--yes"]));
    assert_eq!(plan.region, "local");
    assert!(!plan.dry_run);
    let mut planned = plan.instances.clone();
    planned.sort();
    let mut ids: Vec<String> = records.iter().map(|r| r.id.clone()).collect();
    ids.sort();
    assert_eq!(planned, ids);
    assert_eq!(plan.cgroups.len(), 2);

    for r in &records {
        assert!(
            !is_alive(r.pid),
            "agent {} (pid {}) still runs",
            r.id,
            r.pid
        );
        assert!(!r.log.exists(), "{} is left", r.log.display());
        assert!(!r.cgroup.as_ref().expect("cgroup").exists());
    }
    assert!(project.processes().is_empty());
    assert!(!project.state_file().exists());
    assert!(
        !project.cgroup_dir().exists(),
        "the project's cgroup is removed"
    );
    assert!(project.ls().is_empty());
}

/// `--dry-run` prints the plan and changes nothing.
#[test]
fn kill_dry_run_changes_nothing() {
    let project = LocalProject::new();
    project.launch("c1", "t3.small", 1);
    let before = std::fs::read(project.state_file()).expect("state file");
    let record = project.records().remove(0);

    let out = project.run(&["kill", "--dry-run"]);
    let plan = plan(&out);
    assert!(plan.dry_run);
    assert_eq!(plan.instances, vec![record.id.clone()]);
    assert!(out.stderr.contains("dry run: nothing was deleted"), "{out}");

    assert_eq!(std::fs::read(project.state_file()).expect("state"), before);
    assert!(is_alive(record.pid));
    assert!(record.cgroup.as_ref().expect("cgroup").is_dir());
    assert_eq!(raw_http::get(record.addr(), "/healthz").status, 200);
}

/// An agent that died shows as `stopped` (not running), and kill still cleans it up.
#[test]
fn a_dead_agent_shows_stopped_and_is_still_cleaned_up() {
    let project = LocalProject::new();
    project.launch("c1", "t3.micro", 2);
    let records = project.records();
    let dead = &records[0];
    // SAFETY: kill(2) on the agent this test started.
    unsafe { libc::kill(dead.pid as libc::pid_t, libc::SIGKILL) };
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while is_alive(dead.pid) {
        assert!(
            std::time::Instant::now() < deadline,
            "SIGKILL did not end the agent"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let listed = project.ls();
    let state_of = |id: &str| {
        listed
            .iter()
            .find(|i| i["id"] == id)
            .map(|i| i["state"].clone())
            .expect("listed")
    };
    assert_eq!(state_of(&dead.id), "stopped");
    assert_eq!(state_of(&records[1].id), "running");

    let out = project.run(&["kill", "--yes"]);
    assert!(
        out.stderr.contains(&format!("{} was not running", dead.id)),
        "{out}"
    );
    assert!(project.processes().is_empty());
    assert!(project.records().is_empty());
    assert!(!project.cgroup_dir().exists());
}

/// Kill touches only its own project's agents.
#[test]
fn kill_spares_other_projects() {
    let ours = LocalProject::new();
    let theirs = LocalProject::new();
    ours.launch("c1", "t3.micro", 1);
    theirs.launch("c1", "t3.micro", 1);
    ours.run(&["kill", "--yes"]).expect_code(0);
    let survivor = theirs.records().remove(0);
    assert!(is_alive(survivor.pid));
    assert_eq!(raw_http::get(survivor.addr(), "/healthz").status, 200);
    assert_eq!(theirs.ls()[0]["state"], "running");
}
