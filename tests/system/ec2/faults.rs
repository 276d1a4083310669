//! EC2's weather, injected by the shim: `elb` must ride out each fault, and each test checks
//! that its fault actually fired.

use std::collections::BTreeSet;

use super::fixture::{group_name, Fixture, REGION};
use crate::harness::Fault;

/// Right after RunInstances, EC2 may not know the new ids yet (eventual consistency).
#[test]
fn launch_survives_not_found_after_run_instances() {
    let fx = Fixture::new();
    let fault = fx.shim.inject(
        Fault::error("DescribeInstances", 400, "InvalidInstanceID.NotFound")
            .times(3)
            .after("RunInstances"),
    );
    let rows = fx.launched("cluster1", "t3.micro", 2);
    assert_eq!(
        fx.shim.hits(fault),
        3,
        "the NotFound fault fired: {:?}",
        fx.shim.actions()
    );
    assert_eq!(fx.live_ours().len(), rows.len());
    assert_eq!(
        fx.shim.count("RunInstances"),
        1,
        "NotFound is not a reason to launch again"
    );
}

/// A burst of throttling answers on whatever calls come first.
#[test]
fn launch_survives_a_throttling_burst() {
    let fx = Fixture::new();
    let fault = fx.shim.inject(Fault::throttling(4));
    let rows = fx.launched("cluster1", "t3.micro", 2);
    assert_eq!(
        fx.shim.hits(fault),
        4,
        "all 4 throttles fired: {:?}",
        fx.shim.actions()
    );
    assert_eq!(
        fx.live_ours().len(),
        rows.len(),
        "throttling created no extra instance"
    );
}

/// Instances that stay pending for a few polls: launch waits and reports them running.
#[test]
fn launch_waits_through_a_slow_boot() {
    let fx = Fixture::new();
    fx.shim.hold_pending(3);
    fx.launched("cluster1", "t3.micro", 2);
    assert_eq!(
        fx.shim.pending_hits(),
        3,
        "3 polls saw pending: {:?}",
        fx.shim.actions()
    );
    assert!(
        fx.shim.count("DescribeInstances") >= 4,
        "kept polling until running"
    );
}

/// The RunInstances answer is lost after EC2 acted on it: the retry must carry the same
/// ClientToken, so EC2 (the shim standing in for its idempotency) does not launch twice.
#[test]
fn lost_run_instances_answer_launches_once() {
    let fx = Fixture::new();
    fx.shim.drop_run_instances_responses(1);
    fx.launched("cluster1", "t3.micro", 3);
    assert_eq!(fx.shim.dropped(), 1, "the RunInstances answer was lost");
    assert!(
        fx.shim.replays() >= 1,
        "the retry was answered from its ClientToken"
    );
    let tokens: BTreeSet<_> = fx
        .shim
        .calls_of("RunInstances")
        .into_iter()
        .map(|c| c.client_token)
        .collect();
    assert_eq!(
        tokens.len(),
        1,
        "every RunInstances attempt carries one token: {tokens:?}"
    );
    assert!(
        tokens.iter().all(Option::is_some),
        "RunInstances carries a ClientToken"
    );
    assert_eq!(fx.all_instances().len(), 3, "exactly 3 instances exist");
}

/// A group still in use by terminating instances cannot be deleted yet: kill retries.
#[test]
fn kill_survives_dependency_violation() {
    let fx = Fixture::new();
    fx.launched("cluster1", "t3.micro", 1);
    let fault = fx
        .shim
        .inject(Fault::error("DeleteSecurityGroup", 400, "DependencyViolation").times(3));
    fx.kill(&[]).expect_code(0);
    assert_eq!(
        fx.shim.hits(fault),
        3,
        "the DependencyViolation fault fired 3 times"
    );
    assert_eq!(
        fx.shim.count("DeleteSecurityGroup"),
        4,
        "retried until it went through"
    );
    assert!(
        fx.api.security_groups(REGION, &group_name()).is_empty(),
        "the group is gone"
    );
    assert!(fx.api.key_pairs(REGION).is_empty(), "the key pair is gone");
    assert_eq!(fx.live_ours(), BTreeSet::new());
}
