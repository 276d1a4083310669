//! The fault shim itself, driven with raw EC2 requests: the other tests can only trust a fault
//! they asked for if these pass.

use super::fixture::{Fixture, REGION};
use crate::harness::{moto, Ec2Api, Fault};

/// A raw client that goes through the fixture's shim (the shim sets the account).
fn through_shim(fx: &Fixture) -> Ec2Api {
    Ec2Api::new(fx.shim.port(), "ignored-the-shim-sets-it".into())
}

#[test]
fn shims_isolate_tests_in_their_own_accounts() {
    let (a, b) = (Fixture::new(), Fixture::new());
    through_shim(&a)
        .call(REGION, "CreateKeyPair", &[("KeyName", "only-in-a")])
        .expect("create a key");
    assert_eq!(a.api.key_pairs(REGION).len(), 1, "a sees its key");
    assert!(b.api.key_pairs(REGION).is_empty(), "b does not see a's key");
    assert!(Ec2Api::new(moto().port, "123456789012".into())
        .key_pairs(REGION)
        .iter()
        .all(|k| k.name != "only-in-a"));
    assert_eq!(
        a.shim.actions(),
        vec!["CreateKeyPair"],
        "the shim logs the action"
    );
    assert_eq!(
        a.shim.calls()[0].region,
        REGION,
        "and the region of the credential scope"
    );
}

#[test]
fn injected_errors_fire_as_often_as_asked_and_only_when_armed() {
    let fx = Fixture::new();
    let client = through_shim(&fx);
    let fault = fx.shim.inject(
        Fault::error("DescribeKeyPairs", 400, "InvalidKeyPair.NotFound")
            .times(2)
            .after("CreateKeyPair"),
    );
    client
        .call(REGION, "DescribeKeyPairs", &[])
        .expect("dormant before CreateKeyPair");
    client
        .call(REGION, "CreateKeyPair", &[("KeyName", "k")])
        .expect("create a key");
    for _ in 0..2 {
        let error = client
            .call(REGION, "DescribeKeyPairs", &[])
            .expect_err("armed");
        assert_eq!(error.status, 400);
        assert!(
            error.body.contains("<Code>InvalidKeyPair.NotFound</Code>"),
            "{}",
            error.body
        );
    }
    client
        .call(REGION, "DescribeKeyPairs", &[])
        .expect("spent after 2");
    assert_eq!(fx.shim.hits(fault), 2);
    assert_eq!(
        fx.shim.count("DescribeKeyPairs"),
        4,
        "faulted calls are logged too"
    );
}

#[test]
fn slow_boot_rewrites_running_to_pending_a_set_number_of_times() {
    let fx = Fixture::new();
    fx.api.run_instances(REGION, 2, &[]);
    fx.shim.hold_pending(1);
    let client = through_shim(&fx);
    let states = |c: &Ec2Api| -> Vec<String> {
        c.instances(REGION, &[])
            .into_iter()
            .map(|i| i.state)
            .collect()
    };
    assert_eq!(states(&client), vec!["pending", "pending"]);
    assert_eq!(states(&client), vec!["running", "running"]);
    assert_eq!(fx.shim.pending_hits(), 1);
}

#[test]
fn repeated_client_token_replays_instead_of_launching() {
    let fx = Fixture::new();
    fx.shim.drop_run_instances_responses(1);
    let client = through_shim(&fx);
    let image = fx.api.amazon_linux_image(REGION);
    let run = [
        ("ImageId", image.as_str()),
        ("InstanceType", "t3.micro"),
        ("MinCount", "2"),
        ("MaxCount", "2"),
        ("ClientToken", "tok-1"),
    ];
    let lost = client
        .call(REGION, "RunInstances", &run)
        .expect_err("the first answer is lost");
    assert_eq!(lost.status, 0, "lost, not an HTTP error: {lost:?}");
    let replayed = client
        .call(REGION, "RunInstances", &run)
        .expect("the retry is answered");
    assert!(replayed.contains("<instanceId>"), "{replayed}");
    assert_eq!((fx.shim.dropped(), fx.shim.replays()), (1, 1));
    assert_eq!(fx.all_instances().len(), 2, "launched once");
}
