//! `--imds` against a fake IMDSv2 server on loopback.

use std::time::Duration;

use crate::harness::{Agent, FakeImds, ImdsMode};

#[test]
fn imds_fills_instance_id_type_and_az_using_a_session_token() {
    let imds = FakeImds::start(ImdsMode::Answering {
        instance_id: "i-0fedcba9876543210",
        instance_type: "t3.small",
        availability_zone: "ca-central-1a",
    });
    let agent = Agent::start(&["--imds", "--imds-endpoint", &imds.endpoint()]);
    let body = agent.get("/").json();
    assert_eq!(body["ec2_instance_id"], "i-0fedcba9876543210");
    assert_eq!(body["ec2_instance_type"], "t3.small");
    assert_eq!(body["availability_zone"], "ca-central-1a");
    let requests = imds.requests.lock().expect("request log").clone();
    assert_eq!(
        requests,
        [
            "PUT /latest/api/token",
            "GET /latest/meta-data/instance-id",
            "GET /latest/meta-data/instance-type",
            "GET /latest/meta-data/placement/availability-zone",
        ],
        "token first, then every GET carries it"
    );
}

#[test]
fn flags_win_over_imds() {
    let imds = FakeImds::start(ImdsMode::Answering {
        instance_id: "i-from-imds",
        instance_type: "t3.small",
        availability_zone: "ca-central-1a",
    });
    let agent = Agent::start(&[
        "--imds",
        "--imds-endpoint",
        &imds.endpoint(),
        "--instance-id",
        "i-from-flag",
        "--instance-type",
        "",
    ]);
    let body = agent.get("/").json();
    assert_eq!(body["ec2_instance_id"], "i-from-flag");
    assert_eq!(
        body["ec2_instance_type"], "t3.small",
        "an empty flag (unfilled placeholder) leaves the value to IMDS"
    );
}

#[test]
fn a_silent_imds_does_not_delay_startup_past_the_timeout() {
    let imds = FakeImds::start(ImdsMode::Silent);
    let agent = Agent::start(&["--imds", "--imds-endpoint", &imds.endpoint()]);
    // 1 s timeout plus a generous margin for process start on a busy machine.
    assert!(
        agent.startup < Duration::from_secs(4),
        "started in {:?}",
        agent.startup
    );
    assert!(
        agent.startup >= Duration::from_millis(900),
        "did it ask? {:?}",
        agent.startup
    );
    let body = agent.get("/").json();
    assert!(body.get("ec2_instance_id").is_none());
    assert_eq!(body["message"], "Instance is responding");
    assert!(
        agent.stderr().contains("instance metadata"),
        "{}",
        agent.stderr()
    );
}

#[test]
fn without_imds_flag_the_agent_never_contacts_the_endpoint() {
    let imds = FakeImds::start(ImdsMode::Answering {
        instance_id: "i-1",
        instance_type: "t3.small",
        availability_zone: "ca-central-1a",
    });
    let agent = Agent::start(&["--imds-endpoint", &imds.endpoint()]);
    assert!(agent.get("/").json().get("ec2_instance_id").is_none());
    assert!(imds.requests.lock().expect("request log").is_empty());
}
