//! `elb kill`: deletes exactly what carries our `Project` tag in the chosen region, shows its
//! plan first, and refuses to act without a confirmation.

use std::collections::BTreeSet;

use serde::Deserialize;

use super::fixture::{group_name, ids, key_name, rows, Fixture, PROJECT, REGION};

/// The plan `elb kill --output json` prints before (or instead of) executing it.
#[derive(Debug, Deserialize)]
struct Plan {
    region: String,
    instances: Vec<String>,
    security_groups: Vec<String>,
    key_pairs: Vec<String>,
    dry_run: bool,
}

fn plan(output: &crate::harness::ElbOutput) -> Plan {
    serde_json::from_value(output.json())
        .unwrap_or_else(|e| panic!("stdout is not a kill plan ({e}):\n{output}"))
}

fn state_of(fx: &Fixture, region: &str, id: &str) -> String {
    let found = fx.api.instances(region, &[("instance-id", id)]);
    assert_eq!(found.len(), 1, "{id} exists in {region}");
    found[0].state.clone()
}

/// Ours go, everything else stays: untagged, someone else's, a project whose name merely starts
/// like ours, and ours in another region.
#[test]
fn kill_deletes_ours_and_spares_decoys() {
    let fx = Fixture::new();
    let ours = ids(&fx.launched("cluster1", "t3.micro", 2));
    // Global flags also work after the subcommand.
    let other_region = rows(&fx.launch("cluster1", "t3.micro", 1, &["--region", "us-east-1"]));
    let untagged = fx.api.run_instances(REGION, 1, &[]);
    let foreign = fx
        .api
        .run_instances(REGION, 1, &[("Project", "someone-else")]);
    let prefixed = fx
        .api
        .run_instances(REGION, 1, &[("Project", &format!("{PROJECT}-old"))]);
    let group = fx.api.security_groups(REGION, &group_name())[0].id.clone();

    let plan = plan(&fx.kill(&[]));
    assert_eq!(plan.region, REGION);
    assert!(!plan.dry_run);
    assert_eq!(
        plan.instances.iter().cloned().collect::<BTreeSet<_>>(),
        ours,
        "the plan lists exactly ours"
    );
    assert_eq!(plan.security_groups, vec![group]);
    assert_eq!(plan.key_pairs, vec![key_name()]);

    assert_eq!(fx.live_ours(), BTreeSet::new(), "ours are terminated");
    for id in untagged.iter().chain(&foreign).chain(&prefixed) {
        assert_eq!(state_of(&fx, REGION, id), "running", "decoy {id} untouched");
    }
    for row in &other_region {
        assert_eq!(
            state_of(&fx, "us-east-1", &row.id),
            "running",
            "{} in us-east-1 untouched",
            row.id
        );
    }
    assert!(
        fx.api.security_groups(REGION, &group_name()).is_empty(),
        "our group is deleted"
    );
    assert!(
        fx.api
            .key_pairs(REGION)
            .iter()
            .all(|k| k.name != key_name()),
        "our key pair is deleted"
    );
    assert_eq!(
        fx.api.security_groups("us-east-1", &group_name()).len(),
        1,
        "us-east-1's group stays"
    );
    assert_eq!(
        fx.api.key_pairs("us-east-1").len(),
        1,
        "us-east-1's key pair stays"
    );
    let terminate_regions: BTreeSet<_> = fx
        .shim
        .calls_of("TerminateInstances")
        .into_iter()
        .map(|c| c.region)
        .collect();
    assert_eq!(
        terminate_regions,
        [REGION.to_string()].into(),
        "kill stays in its region"
    );
}

/// No terminal, no `--yes`, no `--dry-run`: refuse with exit 2 and touch nothing.
#[test]
fn kill_without_confirmation_refuses() {
    let fx = Fixture::new();
    let ours = ids(&fx.launched("cluster1", "t3.micro", 1));
    let calls_before = fx.shim.actions().len();
    fx.elb
        .run(&["kill"])
        .expect_code(2)
        .expect_failure_mentioning(&["--yes"]);
    assert_eq!(
        fx.shim.actions().len(),
        calls_before,
        "refused before any API call"
    );
    fx.assert_nothing_deleted();
    assert_eq!(fx.live_ours(), ours);
    assert_eq!(fx.api.security_groups(REGION, &group_name()).len(), 1);
}

/// `--dry-run` prints the plan that `--yes` would run, and runs nothing.
#[test]
fn kill_dry_run_prints_the_plan_only() {
    let fx = Fixture::new();
    let ours = ids(&fx.launched("cluster1", "t3.micro", 2));
    let decoy = fx
        .api
        .run_instances(REGION, 1, &[("Project", "someone-else")]);

    let plan = plan(&fx.elb.run(&["kill", "--dry-run"]));
    assert!(plan.dry_run);
    assert_eq!(
        plan.instances.iter().cloned().collect::<BTreeSet<_>>(),
        ours,
        "exactly ours, not {decoy:?}"
    );
    assert_eq!(plan.key_pairs, vec![key_name()]);
    assert_eq!(plan.security_groups.len(), 1);
    fx.assert_nothing_deleted();
    assert_eq!(fx.live_ours(), ours);
}

/// `--keep-network` terminates the instances but keeps the group and the key pair.
#[test]
fn kill_keep_network_keeps_group_and_key() {
    let fx = Fixture::new();
    fx.launched("cluster1", "t3.micro", 1);
    let plan = plan(&fx.kill(&["--keep-network"]));
    assert!(
        plan.security_groups.is_empty() && plan.key_pairs.is_empty(),
        "{plan:?}"
    );
    assert_eq!(fx.live_ours(), BTreeSet::new());
    assert_eq!(
        fx.api.security_groups(REGION, &group_name()).len(),
        1,
        "group kept"
    );
    assert_eq!(fx.api.key_pairs(REGION).len(), 1, "key kept");
    assert_eq!(
        fx.shim.count("DeleteSecurityGroup") + fx.shim.count("DeleteKeyPair"),
        0
    );
}

/// TerminateInstances takes at most 1000 ids: 1001 instances need exactly two batches.
#[test]
fn kill_terminates_in_batches_of_at_most_1000() {
    let fx = Fixture::new();
    let ours: BTreeSet<_> = fx
        .api
        .run_instances(REGION, 1001, &[("Project", PROJECT)])
        .into_iter()
        .collect();
    assert_eq!(ours.len(), 1001);
    let plan = plan(&fx.kill(&[]));
    assert_eq!(
        plan.instances.len(),
        1001,
        "the plan covers every page of DescribeInstances"
    );
    assert_eq!(
        fx.shim.count("TerminateInstances"),
        2,
        "two batches: {:?}",
        fx.shim.actions()
    );
    assert_eq!(fx.live_ours(), BTreeSet::new());
}
