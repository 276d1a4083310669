//! Ctrl-C in the middle of a launch: `elb` stops promptly, and because every resource is tagged
//! at creation, `elb kill` still finds and removes all of it.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use super::fixture::{group_name, Fixture, REGION, SSH_CIDR};

#[test]
fn ctrl_c_during_launch_leaves_nothing_kill_cannot_find() {
    let fx = Fixture::new();
    fx.shim.hold_pending(usize::MAX);
    let launch = fx.elb.spawn(&[
        "launch",
        "--cluster",
        "cluster1",
        "--type",
        "t3.micro",
        "--count",
        "3",
        "--ssh-cidr",
        SSH_CIDR,
        "--poll-interval-ms",
        "100",
        "--timeout",
        "60",
    ]);
    // A pending answer went out: RunInstances has happened and launch is waiting.
    wait_for(
        "a poll that saw pending instances",
        Duration::from_secs(30),
        || fx.shim.pending_hits() >= 1,
    );
    assert_eq!(fx.shim.count("RunInstances"), 1);
    launch.interrupt();
    let interrupted = launch.wait(Duration::from_secs(10));
    assert_eq!(
        interrupted.code,
        Some(130),
        "Ctrl-C exits 130:\n{interrupted}"
    );
    interrupted.expect_failure_mentioning(&["elb kill"]);
    assert!(
        interrupted.elapsed < Duration::from_secs(30),
        "stopped promptly:\n{interrupted}"
    );
    let launched: BTreeSet<_> = fx.all_instances().into_iter().map(|i| i.id).collect();
    assert_eq!(launched.len(), 3, "RunInstances had happened");

    fx.shim.hold_pending(0);
    fx.kill(&[]).expect_code(0);
    let left: Vec<_> = fx
        .all_instances()
        .into_iter()
        .filter(|i| i.state != "terminated")
        .collect();
    assert!(
        left.is_empty(),
        "every launched instance is terminated: {left:#?}"
    );
    assert_eq!(fx.live_ours(), BTreeSet::new());
    assert!(
        fx.api.security_groups(REGION, &group_name()).is_empty(),
        "group deleted"
    );
    assert!(fx.api.key_pairs(REGION).is_empty(), "key pair deleted");
}

/// Polls `done` until it holds, failing the test after `deadline`.
fn wait_for(what: &str, deadline: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}
