//! The SigV4 signatures `elb` puts on its EC2 and ELBv2 calls, checked by a moto that verifies
//! them the way AWS does (with botocore's signer, from the IAM access keys it holds). The other
//! EC2 tests run on a moto that does not look at signatures.

use roxmltree::Document;

use super::fixture::{FAST, SSH_CIDR};
use crate::harness::{moto_checking_signatures, Ec2Api, Elb};

/// moto's default account, which the access keys below belong to.
const ACCOUNT: &str = "123456789012";
const USER: &str = "elb-signing";

/// Calls IAM on the checking moto, before its checks start.
fn iam(api: &Ec2Api, action: &str, params: &[(&str, &str)]) -> String {
    api.call_service(("iam", "2010-05-08"), "us-east-1", action, params)
        .unwrap_or_else(|e| panic!("iam:{action}: {e:?}"))
}

fn element(xml: &str, name: &str) -> String {
    let doc = Document::parse(xml).expect("IAM answers XML");
    doc.descendants()
        .find(|n| n.tag_name().name() == name)
        .and_then(|n| n.text())
        .unwrap_or_else(|| panic!("no <{name}> in {xml}"))
        .to_owned()
}

#[test]
fn a_moto_that_checks_signatures_accepts_elbs_and_refuses_a_wrong_secret() {
    // CreateUser, PutUserPolicy and CreateAccessKey go unchecked; every later request is checked.
    let moto = moto_checking_signatures(3);
    let api = Ec2Api::new(moto.port, ACCOUNT.into());
    iam(&api, "CreateUser", &[("UserName", USER)]);
    iam(
        &api,
        "PutUserPolicy",
        &[
            ("UserName", USER),
            ("PolicyName", "everything"),
            (
                "PolicyDocument",
                r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#,
            ),
        ],
    );
    let key = iam(&api, "CreateAccessKey", &[("UserName", USER)]);
    let (key_id, secret) = (
        element(&key, "AccessKeyId"),
        element(&key, "SecretAccessKey"),
    );
    let endpoint = format!("http://127.0.0.1:{}", moto.port);
    let elb = Elb::new(endpoint.clone()).with_credentials(&key_id, &secret);

    // A launch signs long bodies: tag specifications, a key pair, a group and its rules.
    let mut launch = vec![
        "launch",
        "--cluster",
        "signed",
        "--type",
        "t3.micro",
        "--count",
        "2",
        "--ssh-cidr",
        SSH_CIDR,
        "--deploy",
        "none",
    ];
    launch.extend(FAST);
    let launched = elb.run(&launch);
    launched.expect_code(0);
    assert_eq!(
        launched.json().as_array().map(Vec::len),
        Some(2),
        "{launched}"
    );
    // The kill switch's plan lists EC2 and ELBv2 (several pages' worth of calls, both services).
    let plan = elb.run(&["kill", "--dry-run"]);
    plan.expect_code(0);
    let mut kill = vec!["kill", "--yes"];
    kill.extend(FAST);
    elb.run(&kill).expect_code(0);
    let left = elb.run(&["ls"]);
    left.expect_code(0);
    assert_eq!(left.json().as_array().map(Vec::len), Some(0), "{left}");

    // The same key with a wrong secret: EC2's AuthFailure, told as rejected credentials.
    Elb::new(endpoint)
        .with_credentials(&key_id, "not-the-secret")
        .run(&["ls"])
        .expect_code(1)
        .expect_failure_mentioning(&["rejected the credentials", "AuthFailure"]);
}
