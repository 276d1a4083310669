//! `elb asg`: a cluster scaled by EC2 Auto Scaling, read back through moto's own APIs: the
//! launch template (IMDSv2 required, the agent installed by user data, tags at launch), the
//! group in the default subnets with tags propagated, the target tracking policy; a second `up`
//! creates nothing; the kill switch deletes the project's groups and templates before the
//! instances, and nobody else's.

use roxmltree::Document;

use super::fixture::{Fixture, FAST, PROJECT, REGION};

const AUTOSCALING: (&str, &str) = ("autoscaling", "2011-01-01");
const AGENT_URL: &str = "https://downloads.example.test/elb-agent";
const SHA: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

/// `elb asg up` for cluster `web` with `extra` flags.
fn up(fx: &Fixture, extra: &[&str]) -> crate::harness::ElbOutput {
    let mut args = vec![
        "asg",
        "up",
        "--cluster",
        "web",
        "--max",
        "3",
        "--deploy",
        "user-data",
        "--agent-url",
        AGENT_URL,
        "--agent-sha256",
        SHA,
        "--no-ssh",
    ];
    args.extend(extra);
    fx.elb.run(&args)
}

/// `text` decoded from base64 by coreutils' `base64 -d`.
fn decode(text: &str) -> String {
    use std::io::Write;
    let mut child = std::process::Command::new("base64")
        .arg("-d")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("base64");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("base64 -d");
    String::from_utf8(out.stdout).expect("a script")
}

/// The text of every element called `name` in `xml`.
fn texts(xml: &str, name: &str) -> Vec<String> {
    let doc = Document::parse(xml).expect("XML");
    doc.descendants()
        .filter(|n| n.has_tag_name(name))
        .filter_map(|n| n.text().map(str::to_owned))
        .collect()
}

#[test]
fn asg_up_makes_a_template_a_group_and_a_policy_once_and_the_kill_switch_takes_them() {
    let fx = Fixture::new();
    for (flags, needle) in [
        (
            vec!["--target-cpu", "50", "--deploy", "none"],
            "--deploy user-data",
        ),
        (vec![], "give the group a target"),
        (vec!["--target-cpu", "150"], "below 100"),
        (vec!["--target-cpu", "50", "--min", "5"], "above --max 3"),
    ] {
        let mut args = vec![
            "asg",
            "up",
            "--cluster",
            "web",
            "--max",
            "3",
            "--agent-url",
            AGENT_URL,
            "--agent-sha256",
            SHA,
            "--no-ssh",
        ];
        if !flags.contains(&"--deploy") {
            args.extend(["--deploy", "user-data"]);
        }
        args.extend(flags.iter().copied());
        fx.elb
            .run(&args)
            .expect_code(2)
            .expect_failure_mentioning(&[needle]);
    }
    fx.assert_no_aws_call();

    // Another project's group, which nothing of ours may touch.
    let decoy_template = fx
        .api
        .call(
            REGION,
            "CreateLaunchTemplate",
            &[
                ("LaunchTemplateName", "someone-else"),
                ("LaunchTemplateData.InstanceType", "t3.micro"),
                ("TagSpecification.1.ResourceType", "launch-template"),
                ("TagSpecification.1.Tag.1.Key", "Project"),
                ("TagSpecification.1.Tag.1.Value", "someone-else"),
            ],
        )
        .expect("the decoy template");
    assert!(decoy_template.contains("lt-"));

    up(&fx, &["--target-cpu", "50", "--min", "1"]).expect_code(0);
    let name = format!("{PROJECT}-web");
    let templates = fx
        .api
        .call(
            REGION,
            "DescribeLaunchTemplateVersions",
            &[("LaunchTemplateName", &name)],
        )
        .expect("the template's versions");
    assert_eq!(
        texts(&templates, "httpTokens"),
        ["required"],
        "IMDSv2: {templates}"
    );
    assert_eq!(texts(&templates, "instanceType"), ["t3.micro"]);
    let user_data = texts(&templates, "userData");
    let script = decode(&user_data[0]);
    assert!(
        script.contains(AGENT_URL) && script.contains(SHA),
        "{script}"
    );
    assert!(
        texts(&templates, "value").contains(&"web".to_owned()),
        "the instances are tagged with the cluster at launch: {templates}"
    );

    let groups = fx
        .api
        .call_service(
            AUTOSCALING,
            REGION,
            "DescribeAutoScalingGroups",
            &[("AutoScalingGroupNames.member.1", &name)],
        )
        .expect("the group");
    assert_eq!(texts(&groups, "MinSize"), ["1"]);
    assert_eq!(texts(&groups, "MaxSize"), ["3"]);
    assert!(
        !texts(&groups, "VPCZoneIdentifier")[0].is_empty(),
        "{groups}"
    );
    assert!(
        texts(&groups, "PropagateAtLaunch")
            .iter()
            .all(|p| p == "true"),
        "{groups}"
    );
    let policies = fx
        .api
        .call_service(
            AUTOSCALING,
            REGION,
            "DescribePolicies",
            &[("AutoScalingGroupName", &name)],
        )
        .expect("the policy");
    assert_eq!(
        texts(&policies, "PredefinedMetricType"),
        ["ASGAverageCPUUtilization"]
    );
    assert_eq!(texts(&policies, "TargetValue"), ["50.0"]);

    // A second run updates; it creates nothing. (It leaves the desired count alone: moto
    // stores a new template version's user data in a form its own scaling then refuses.)
    up(&fx, &["--target-cpu", "60", "--min", "1", "--max", "4"]).expect_code(0);
    assert_eq!(fx.shim.count("CreateAutoScalingGroup"), 1);
    assert_eq!(fx.shim.count("CreateLaunchTemplate"), 1);
    let status = fx.elb.run(&["asg", "status", "--output", "json"]).json();
    let ours = &status.as_array().expect("groups")[0];
    assert_eq!(
        (ours["min"].as_u64(), ours["max"].as_u64()),
        (Some(1), Some(4)),
        "{status}"
    );
    assert_eq!(ours["policy"], "ASGAverageCPUUtilization 60.0");
    assert_eq!(ours["cluster"], "web");

    // The kill switch: groups and templates first, ours only.
    let plan = fx
        .elb
        .run(&["kill", "--dry-run", "--output", "json"])
        .json();
    assert_eq!(plan["auto_scaling_groups"], serde_json::json!([name]));
    assert_eq!(plan["launch_templates"][0][1], name.as_str());
    let mut kill = vec!["kill", "--yes"];
    kill.extend(FAST);
    fx.elb.run(&kill).expect_code(0);
    let left = fx
        .api
        .call_service(AUTOSCALING, REGION, "DescribeAutoScalingGroups", &[])
        .expect("groups");
    assert!(texts(&left, "AutoScalingGroupName").is_empty(), "{left}");
    let templates = fx
        .api
        .call(REGION, "DescribeLaunchTemplates", &[])
        .expect("templates");
    assert_eq!(texts(&templates, "launchTemplateName"), ["someone-else"]);
    assert!(fx.live_ours().is_empty(), "the group's instances went too");
}
