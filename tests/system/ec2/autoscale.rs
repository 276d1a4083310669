//! `elb autoscale` on EC2 (moto behind the shim): the instances it launches are tagged, get the
//! real agent over SSH on test hosts, and join elb's balancer and the ALB's target group; a
//! scale-in deregisters and terminates exactly the instances it chose; a refused RunInstances
//! is reported in its tick and retried.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use super::fixture::{Fixture, FAST, PROJECT, REGION, SSH_CIDR};
use crate::autoscale::ticks;
use crate::balance::ec2::{deploy_agents, up, world};
use crate::harness::{static_agent, ElbApi, Fault};

/// cluster1's live instances (the balancer's left out).
fn cluster1(fx: &Fixture) -> BTreeSet<String> {
    fx.ours()
        .into_iter()
        .filter(|i| i.state != "terminated")
        .filter(|i| i.tags.get("Cluster").map(String::as_str) == Some("cluster1"))
        .map(|i| i.id)
        .collect()
}

/// The ids registered in the ALB's target group of cluster1.
fn registered(fx: &Fixture) -> BTreeSet<String> {
    let api = ElbApi::new(fx.api.clone());
    let group = api
        .target_groups(REGION)
        .into_iter()
        .find(|g| g.name == format!("{PROJECT}-cluster1"))
        .expect("cluster1's target group");
    api.targets(REGION, &group.arn).into_iter().collect()
}

#[test]
fn autoscale_on_ec2_launches_joins_and_removes_exactly_the_chosen_instances() {
    let (fx, hosts) = world(4);
    fx.launch("cluster1", "t3.micro", 1, &[]).expect_code(0);
    let first = cluster1(&fx);
    let install_dir = hosts.install_dir.to_string_lossy().into_owned();
    deploy_agents(&fx, &install_dir);
    up(&fx, &install_dir, &[]).expect_code(0);
    fx.elb
        .run(&[
            "alb",
            "up",
            "--poll-interval-ms",
            "100",
            "--wait",
            "5",
            "--rule",
            "/cluster1*=cluster1",
            "--default",
            "cluster1",
        ])
        .expect_code(0);
    assert_eq!(registered(&fx), first);

    let refused = fx
        .shim
        .inject(Fault::error("RunInstances", 400, "InstanceLimitExceeded").times(1));
    let agent = static_agent().to_string_lossy().into_owned();
    let loop_args = |min: &'static str| {
        let mut args = vec![
            "autoscale",
            "--cluster",
            "cluster1",
            "--min",
            min,
            "--max",
            min,
            "--target-cpu",
            "50",
            "--interval",
            "1s",
            "--warmup",
            "1s",
            "--drain-timeout",
            "5s",
            "--deploy",
            "ssh",
            "--ssh-cidr",
            SSH_CIDR,
            "--ssh-user",
            "root",
            "--connect-timeout",
            "3",
            "--ssh-wait",
            "10",
            "--health-timeout",
            "10",
        ];
        args.extend(FAST);
        args
    };
    let mut grow = loop_args("2");
    grow.extend([
        "--agent",
        &agent,
        "--install-dir",
        &install_dir,
        "--publish",
    ]);
    let looping = fx.elb.spawn(&grow);
    let deadline = Instant::now() + Duration::from_secs(90);
    while cluster1(&fx).len() < 2 || registered(&fx).len() < 2 {
        assert!(
            Instant::now() < deadline,
            "scaled out to 2: {:?}",
            cluster1(&fx)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // One more tick, so that the launch's own tick has been printed.
    std::thread::sleep(Duration::from_secs(2));
    looping.interrupt();
    let out = looping.wait(Duration::from_secs(60));
    assert_eq!(out.code, Some(0), "{out}");
    assert_eq!(fx.shim.hits(refused), 1);
    let ticks = ticks(&out);
    let failed = ticks
        .iter()
        .find(|t| t["failure"].is_string())
        .unwrap_or_else(|| panic!("the refused launch is reported: {out}"));
    assert!(
        failed["failure"]
            .as_str()
            .unwrap()
            .contains("next attempt in"),
        "{failed}"
    );
    let launched: Vec<String> = ticks
        .iter()
        .flat_map(|t| t["launched"].as_array().unwrap().clone())
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(launched.len(), 1, "retried once, launched once: {out}");
    let new = launched[0].clone();
    // Each tick's figures went to CloudWatch.
    let cluster = super::cloudwatch::published(&fx, "Cluster", "cluster1");
    for metric in ["DesiredInstances", "InstanceCount", "ScalingMetric"] {
        assert!(
            cluster.iter().any(|m| m == metric),
            "{metric} in {cluster:?}"
        );
    }
    assert!(
        fx.shim.count("PutMetricData") >= 2,
        "one call per tick: {out}"
    );
    let per_target = super::cloudwatch::published(&fx, "InstanceId", first.first().unwrap());
    for metric in ["TargetErrorsPerSecond", "TargetRequestsPerSecond"] {
        assert!(
            per_target.iter().any(|m| m == metric),
            "{metric} (the balancer's view of a target) in {per_target:?}"
        );
    }

    let instance = fx
        .ours()
        .into_iter()
        .find(|i| i.id == new)
        .expect("the new instance");
    let at: u64 = instance.tags["LaunchedAt"]
        .parse()
        .expect("LaunchedAt is ms since the epoch");
    assert!(at > 1_700_000_000_000, "{instance:?}");
    for (key, value) in [
        ("Project", PROJECT),
        ("Cluster", "cluster1"),
        ("ManagedBy", "elb"),
        ("LaunchedBy", "elb-autoscale"),
    ] {
        assert_eq!(
            instance.tags.get(key).map(String::as_str),
            Some(value),
            "{instance:?}"
        );
    }
    let both: BTreeSet<String> = first.iter().cloned().chain([new.clone()]).collect();
    assert_eq!(registered(&fx), both, "the ALB's target group has it");
    let status = fx.elb.run(&["balance", "status"]).json();
    let targets: BTreeSet<String> = status["groups"][0]["targets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(targets, both, "elb's balancer has it: {status}");
    let agent_up = fx
        .shim
        .address_of(&new)
        .map(|a| crate::harness::raw_http::get(format!("{a}:8000").parse().unwrap(), "/healthz"));
    assert_eq!(
        agent_up.map(|r| r.status),
        Some(200),
        "the agent was delivered"
    );

    // Down to 1: the newest goes, deregistered before it is terminated.
    let shrink = fx.elb.spawn(&loop_args("1"));
    let deadline = Instant::now() + Duration::from_secs(60);
    while cluster1(&fx).len() > 1 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    shrink.interrupt();
    let out = shrink.wait(Duration::from_secs(60));
    assert_eq!(cluster1(&fx).len(), 1, "scaled in to 1: {out}");
    assert_eq!(
        cluster1(&fx),
        first,
        "exactly the newest was removed: {out}"
    );
    assert_eq!(registered(&fx), first);
    let terminated: Vec<String> = fx
        .ours()
        .into_iter()
        .filter(|i| i.state == "terminated")
        .map(|i| i.id)
        .collect();
    assert_eq!(terminated, [new], "exactly the chosen id was terminated");
    assert_eq!(fx.shim.count("TerminateInstances"), 1);
    let actions = fx.shim.actions();
    let last = |a: &str| actions.iter().rposition(|x| x == a).unwrap();
    assert!(
        last("DeregisterTargets") < last("TerminateInstances"),
        "{actions:?}"
    );
    fx.kill(&[]).expect_code(0);
}
