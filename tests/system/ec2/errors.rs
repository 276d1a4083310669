//! Failures a user can fix: each must end with a message that names the fix, and refusals of
//! bad input must come before any AWS call.

use super::fixture::{key_name, Fixture, REGION, SSH_CIDR};
use crate::harness::{Elb, ElbOutput, Fault};

/// Launches while the shim answers every RunInstances with `code`; checks that the fault fired
/// and that nothing was left running.
fn launch_refused_with(status: u16, code: &str) -> ElbOutput {
    let fx = Fixture::new();
    let fault = fx.shim.inject(Fault::error("RunInstances", status, code));
    let output = fx.launch("cluster1", "t3.micro", 2, &[]);
    assert!(fx.shim.hits(fault) >= 1, "{code} was injected:\n{output}");
    assert!(fx.all_instances().is_empty(), "nothing was launched");
    output
}

#[test]
fn unauthorized_names_the_iam_action() {
    launch_refused_with(403, "UnauthorizedOperation")
        .expect_code(1)
        .expect_failure_mentioning(&["ec2:RunInstances"]);
}

/// Capacity and support errors suggest another instance type or another subnet / AZ.
#[test]
fn insufficient_capacity_suggests_another_type_or_zone() {
    for (status, code) in [(500, "InsufficientInstanceCapacity"), (400, "Unsupported")] {
        let output = launch_refused_with(status, code);
        output.expect_code(1).expect_failure_mentioning(&["type"]);
        let stderr = output.stderr.to_lowercase();
        assert!(
            ["subnet", "zone", " az"].iter().any(|w| stderr.contains(w)),
            "{code}: suggests a subnet or AZ:\n{output}"
        );
    }
}

#[test]
fn limits_point_at_service_quotas() {
    for code in ["VcpuLimitExceeded", "InstanceLimitExceeded"] {
        launch_refused_with(400, code)
            .expect_code(1)
            .expect_failure_mentioning(&["quota"]);
    }
}

/// No credentials anywhere: say how to configure them, and send nothing unsigned.
#[test]
fn missing_credentials_say_how_to_configure_them() {
    let fx = Fixture::new();
    let elb = Elb::new(fx.shim.endpoint()).without_credentials();
    elb.run(&["ls"]).expect_failure_mentioning(&["credentials"]);
    fx.assert_no_aws_call();
}

/// Without credentials the terminal shows elb's one error line with its fix, and none of the
/// AWS SDK's logs (its credential chain warns at every step it tries).
#[test]
fn missing_credentials_are_one_line_on_a_quiet_terminal() {
    let fx = Fixture::new();
    let elb = Elb::new(fx.shim.endpoint()).without_credentials();
    for args in [&["ls"][..], &["stats"]] {
        let out = elb.run(args);
        out.expect_code(1);
        let lines: Vec<&str> = out.stderr.lines().collect();
        assert_eq!(lines.len(), 1, "stderr should be one line:\n{out}");
        let line = lines[0];
        assert!(line.starts_with("error: no AWS credentials"), "{out}");
        assert!(
            line.contains("aws configure") && line.contains("--profile"),
            "the line should say how to fix it:\n{out}"
        );
    }
    fx.assert_no_aws_call();
}

#[test]
fn unknown_region_is_a_usage_error() {
    let fx = Fixture::new();
    fx.elb
        .run(&["--region", "mars-north-1", "ls"])
        .expect_code(2)
        .expect_failure_mentioning(&["mars-north-1"]);
    fx.assert_no_aws_call();
}

/// SSH stays closed unless the user names who may reach it (or opts out with --no-ssh).
#[test]
fn launch_without_ssh_cidr_is_refused_before_any_call() {
    let fx = Fixture::new();
    fx.launch_without_ssh_cidr("c", "t3.micro", 1, &[])
        .expect_code(2)
        .expect_failure_mentioning(&["--ssh-cidr"]);
    fx.assert_no_aws_call();
}

#[test]
fn invalid_cidrs_are_refused_before_any_call() {
    let fx = Fixture::new();
    for bad in [
        ["--ssh-cidr", "10.0.0.0/33"],
        ["--app-cidr", "not-a-cidr"],
        ["--ssh-cidr", "300.1.2.3/32"],
    ] {
        fx.launch("c", "t3.micro", 1, &bad)
            .expect_code(2)
            .expect_failure_mentioning(&[bad[1]]);
    }
    fx.assert_no_aws_call();
}

/// The agent is built for x86_64 only: arm64 types are refused, and nothing is launched.
#[test]
fn arm64_types_are_refused() {
    let fx = Fixture::new();
    let output = fx.elb.run(&[
        "launch",
        "--cluster",
        "c",
        "--type",
        "t4g.micro",
        "--count",
        "1",
        "--ssh-cidr",
        SSH_CIDR,
    ]);
    output.expect_failure_mentioning(&["t4g.micro"]);
    assert_eq!(fx.shim.count("RunInstances"), 0, "{output}");
    assert!(fx.all_instances().is_empty());
}

/// A key pair of our name holding someone else's public key is never silently used or replaced.
#[test]
fn foreign_key_pair_of_our_name_stops_the_launch() {
    let fx = Fixture::new();
    fx.api
        .call(
            REGION,
            "CreateKeyPair",
            &[("KeyName", &key_name()), ("KeyType", "ed25519")],
        )
        .expect("create a foreign key pair");
    let output = fx.launch("cluster1", "t3.micro", 1, &[]);
    output
        .expect_code(1)
        .expect_failure_mentioning(&[&key_name()]);
    assert_eq!(fx.shim.count("RunInstances"), 0, "{output}");
    assert_eq!(
        fx.shim.count("DeleteKeyPair") + fx.shim.count("ImportKeyPair"),
        0,
        "the foreign key is left alone"
    );
    assert!(fx.all_instances().is_empty());
}
