//! `elb deploy` on the project's EC2 instances (moto): the architecture comes from the instance
//! type. moto's instances have made-up 10.x addresses, so only what must happen before any
//! connection is tested here.

use std::time::Duration;

use super::rows;
use crate::ec2::fixture::Fixture;
use crate::harness::static_agent;

#[test]
fn an_arm64_instance_type_without_an_arm64_agent_fails_before_any_connection() {
    let fx = Fixture::new();
    fx.launch("arm", "t4g.micro", 2, &[]).expect_code(0);
    let agent = static_agent().to_string_lossy().into_owned();
    let output = fx
        .elb
        .run(&["deploy", "--cluster", "arm", "--agent", &agent]);
    output.expect_code(1);
    let rows = rows(&output);
    assert_eq!(rows.len(), 2, "{output}");
    for row in &rows {
        assert_eq!(row.result, "no agent binary", "{output}");
        let error = row.error.as_deref().unwrap_or("");
        assert!(error.contains("instance type t4g.micro"), "{error}");
        assert!(error.contains("--agent-arm64"), "{error}");
    }
    assert!(!output.stderr.contains("connecting"), "{output}");
    assert!(output.elapsed < Duration::from_secs(20), "{output}");
}
