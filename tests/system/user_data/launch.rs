//! What `launch --deploy user-data` sends to EC2 (moto), and what it refuses before any call.

use std::process::Command;
use std::time::Duration;

use super::{launch, launched_user_data, user_data, write_shellcheck_clean, CLUSTER};
use crate::ec2::fixture::{rows, Fixture, REGION};
use crate::harness::static_agent;

const URL: &str = "https://example.invalid/releases/elb-agent";

/// `sha256sum <path>`'s digest.
fn sha256sum(path: &std::path::Path) -> String {
    let out = Command::new("sha256sum")
        .arg(path)
        .output()
        .expect("run sha256sum");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .expect("a digest")
        .to_owned()
}

#[test]
fn every_instance_gets_the_script_with_the_url_and_checksum_and_it_passes_shellcheck() {
    let fx = Fixture::new();
    let sha = "0123456789abcdef".repeat(4);
    let output = launch(
        &fx,
        2,
        &[
            "--agent-url",
            URL,
            "--agent-sha256",
            &sha,
            "--no-wait-healthy",
        ],
    );
    let scripts = launched_user_data(&fx, &output);
    assert_eq!(scripts.len(), 2, "{output}");
    assert_eq!(scripts[0], scripts[1], "one script serves every instance");
    let script = &scripts[0];
    assert!(
        script.starts_with("#!/bin/sh\n"),
        "cloud-init runs it:\n{script}"
    );
    for line in [
        format!("agent_url={URL}"),
        format!("agent_sha256={sha}"),
        "curl_proto='=https'".to_owned(),
        "install_dir=/opt/elb".to_owned(),
    ] {
        assert!(script.lines().any(|l| l == line), "{line}\n---\n{script}");
    }
    let exec_start = format!(
        "ExecStart=/opt/elb/elb-agent --listen 0.0.0.0:8000 --cluster \"{CLUSTER}\" \
         --instance-id \"\" --instance-type \"t3.micro\" --az \"\" --imds"
    );
    assert!(script.lines().any(|l| l == exec_start), "{script}");
    write_shellcheck_clean(script, &fx.elb.state_dir().join("user-data.sh"));
    // --no-wait-healthy: the launch ends once the instances run, no /healthz probe.
    assert!(!output.stderr.contains("/healthz"), "{output}");
    assert!(output.elapsed < Duration::from_secs(30), "{output}");
}

#[test]
fn without_a_checksum_the_local_agent_s_one_is_used() {
    let fx = Fixture::new();
    let agent = static_agent();
    let output = launch(
        &fx,
        1,
        &[
            "--agent-url",
            URL,
            "--agent",
            &agent.to_string_lossy(),
            "--no-wait-healthy",
        ],
    );
    let script = &launched_user_data(&fx, &output)[0];
    let line = format!("agent_sha256={}", sha256sum(&agent));
    assert!(script.lines().any(|l| l == line), "{line}\n---\n{script}");
}

#[test]
fn user_data_launches_that_cannot_work_are_refused_before_any_call() {
    let fx = Fixture::new();
    let user_data_file = fx.elb.state_dir().join("mine.sh");
    std::fs::create_dir_all(fx.elb.state_dir()).unwrap();
    std::fs::write(&user_data_file, "#!/bin/sh\n").unwrap();
    let user_data_file = user_data_file.to_string_lossy().into_owned();
    for (extra, needles) in [
        (&[][..], &["--agent-url"][..]),
        (
            &["--agent-url", "http://203.0.113.5/elb-agent"],
            &["https", "loopback"],
        ),
        (
            &["--agent-url", URL, "--agent-sha256", "abc"],
            &["--agent-sha256", "64 hex digits"],
        ),
        (
            &["--agent-url", URL, "--user-data", &user_data_file],
            &["--user-data", "cannot be combined"],
        ),
    ] {
        launch(&fx, 1, extra)
            .expect_code(2)
            .expect_failure_mentioning(needles);
    }
    fx.launch_without_ssh_cidr(CLUSTER, "t3.micro", 1, &["--deploy", "ssh", "--no-ssh"])
        .expect_code(2)
        .expect_failure_mentioning(&["--no-ssh", "--deploy user-data", "--deploy none"]);
    fx.assert_no_aws_call();
}

/// A minimal static aarch64 ELF executable header: what `elb` checks in `--agent-arm64`.
fn fake_aarch64_agent(path: &std::path::Path) {
    let mut elf = vec![0u8; 64 + 56];
    elf[..6].copy_from_slice(b"\x7fELF\x02\x01");
    elf[18..20].copy_from_slice(&183u16.to_le_bytes());
    elf[32..40].copy_from_slice(&64u64.to_le_bytes());
    elf[54..56].copy_from_slice(&56u16.to_le_bytes());
    elf[56..58].copy_from_slice(&1u16.to_le_bytes());
    elf[64..68].copy_from_slice(&1u32.to_le_bytes());
    std::fs::write(path, elf).expect("write the fake arm64 agent");
}

/// The architecture of the image instance `id` was launched from.
fn image_architecture(fx: &Fixture, id: &str) -> String {
    let text = |xml: &str, tag: &str| {
        roxmltree::Document::parse(xml)
            .expect("XML")
            .descendants()
            .find(|n| n.has_tag_name(tag))
            .and_then(|n| n.text())
            .unwrap_or_else(|| panic!("no {tag} in\n{xml}"))
            .to_owned()
    };
    let instances = fx
        .api
        .call(REGION, "DescribeInstances", &[("InstanceId.1", id)])
        .expect("DescribeInstances");
    let image = text(&instances, "imageId");
    let images = fx
        .api
        .call(REGION, "DescribeImages", &[("ImageId.1", &image)])
        .expect("DescribeImages");
    text(&images, "architecture")
}

#[test]
fn arm64_types_need_an_arm64_agent_and_then_get_the_arm64_image() {
    let fx = Fixture::new();
    let base = ["--deploy", "user-data", "--no-ssh", "--agent-url", URL];
    let refused = fx.launch_without_ssh_cidr("arm", "t4g.micro", 1, &base);
    refused.expect_failure_mentioning(&["t4g.micro", "--agent-arm64"]);
    assert_eq!(fx.shim.count("RunInstances"), 0, "{refused}");

    let agent = fx.elb.state_dir().join("elb-agent-aarch64");
    std::fs::create_dir_all(fx.elb.state_dir()).unwrap();
    fake_aarch64_agent(&agent);
    let agent_path = agent.to_string_lossy().into_owned();
    let extra = [
        &base[..],
        &["--agent-arm64", &agent_path, "--no-wait-healthy"],
    ]
    .concat();
    let output = fx.launch_without_ssh_cidr("arm", "t4g.micro", 1, &extra);
    let row = &rows(&output)[0];
    assert_eq!(image_architecture(&fx, &row.id), "arm64", "{output}");
    let script = user_data(&fx, &row.id);
    let line = format!("agent_sha256={}", sha256sum(&agent));
    assert!(script.lines().any(|l| l == line), "{line}\n---\n{script}");
}

#[test]
fn a_missing_agent_stops_the_launch_before_anything_is_created() {
    let fx = Fixture::new();
    let missing = "/nonexistent/elb-agent";
    for extra in [
        &["--deploy", "ssh", "--agent", missing][..],
        &[
            "--deploy",
            "user-data",
            "--agent",
            missing,
            "--agent-url",
            URL,
        ],
    ] {
        fx.launch(CLUSTER, "t3.micro", 1, extra)
            .expect_code(1)
            .expect_failure_mentioning(&[missing]);
    }
    for action in ["ImportKeyPair", "CreateSecurityGroup", "RunInstances"] {
        assert_eq!(fx.shim.count(action), 0, "{action}");
    }
}
