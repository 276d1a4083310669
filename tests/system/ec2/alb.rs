//! `elb alb`: the managed ALB on moto, checked behind `elb`'s back through a raw ELBv2 client,
//! with the behaviours moto hides injected by the shim.

use std::collections::BTreeSet;

use super::fixture::{group_name, ids, Fixture, PROJECT, REGION};
use crate::harness::{ElbApi, ElbOutput, Fault};

mod conditions;
mod https;

/// The config `elb balance up <flags>` gives elb's balancer in a local project with the seed's
/// two clusters (one instance each), read from the file the balancer serves; the balancer is
/// taken down again.
fn local_balancer_config(flags: &[&str]) -> proto::balancer_config::Config {
    let project = crate::harness::LocalProject::new();
    project.launch("cluster1", "m4.large", 1);
    project.launch("cluster2", "t3.micro", 1);
    let mut up: Vec<&str> = crate::balance::UP.to_vec();
    up.extend(flags);
    project.run(&up).expect_code(0);
    let balancer = project
        .records()
        .into_iter()
        .find(|r| r.is_balancer())
        .expect("the balancer is recorded");
    let text = std::fs::read_to_string(balancer.log.with_extension("toml")).expect("the config");
    project.run(&["balance", "down"]).expect_code(0);
    toml::from_str(&text).expect("the balancer's config")
}

/// Waiting flags that keep `alb up` to a fraction of a second on moto.
const FAST_ALB: [&str; 4] = ["--poll-interval-ms", "100", "--wait", "5"];

fn alb_name() -> String {
    format!("{PROJECT}-alb")
}

fn group_of(cluster: &str) -> String {
    format!("{PROJECT}-{cluster}")
}

impl Fixture {
    fn elb_api(&self) -> ElbApi {
        ElbApi::new(self.api.clone())
    }

    /// The seed's two clusters: 2 + 3 instances; returns their ids.
    fn two_clusters(&self) -> (BTreeSet<String>, BTreeSet<String>) {
        (
            ids(&self.launched("cluster1", "t3.micro", 2)),
            ids(&self.launched("cluster2", "t3.micro", 3)),
        )
    }

    fn alb_up(&self, extra: &[&str]) -> ElbOutput {
        let mut args = vec!["alb", "up"];
        args.extend(FAST_ALB);
        args.extend(extra);
        self.elb.run(&args)
    }

    /// The ARN of the project's target group for `cluster`.
    fn target_group_arn(&self, cluster: &str) -> String {
        self.elb_api()
            .target_groups(REGION)
            .into_iter()
            .find(|g| g.name == group_of(cluster))
            .unwrap_or_else(|| panic!("target group {} exists", group_of(cluster)))
            .arn
    }

    /// The ARN of the project's ALB.
    fn alb_arn(&self) -> String {
        self.elb_api()
            .load_balancers(REGION)
            .into_iter()
            .find(|lb| lb.name == alb_name())
            .expect("the ALB exists")
            .arn
    }

    /// The ARN of the ALB's listener on `port`.
    fn listener_arn(&self, port: &str) -> String {
        self.elb_api()
            .listeners(REGION, &self.alb_arn())
            .into_iter()
            .find(|(_, p, _)| p == port)
            .unwrap_or_else(|| panic!("a listener on {port}"))
            .0
    }

    /// Runs `alb up <flags>` again and checks that it imports, creates, modifies, adds,
    /// removes and deletes nothing: what the first run made reads back equal.
    fn assert_second_up_changes_nothing(&self, flags: &[&str]) {
        let before = self.shim.actions().len();
        self.alb_up(flags).expect_code(0);
        let changes: Vec<String> = self.shim.actions()[before..]
            .iter()
            .filter(|a| {
                ["Import", "Create", "Modify", "Add", "Remove", "Delete"]
                    .iter()
                    .any(|verb| a.starts_with(verb))
            })
            .cloned()
            .collect();
        assert!(
            changes.is_empty(),
            "a second up changes nothing: {changes:?}"
        );
    }

    fn creations(&self) -> Vec<String> {
        self.shim
            .actions()
            .into_iter()
            .filter(|a| a.starts_with("Create") || a.starts_with("Register"))
            .collect()
    }
}

/// The seed's `aws_lb.py` as one command: everything it made by hand, tagged, read back.
#[test]
fn up_builds_the_seeds_alb_from_the_fleet() {
    let fx = Fixture::new();
    let (c1, c2) = fx.two_clusters();
    let json = fx.alb_up(&[]).json();
    let api = fx.elb_api();

    let lbs = api.load_balancers(REGION);
    assert_eq!(lbs.len(), 1, "{lbs:?}");
    let lb = &lbs[0];
    assert_eq!(lb.name, alb_name());
    assert_eq!(lb.scheme, "internet-facing");
    assert!(lb.zones.len() >= 2, "at least two zones: {lb:?}");
    assert_eq!(json["load_balancer"]["arn"], lb.arn.as_str());
    let urls: Vec<&str> = json["urls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["url"].as_str().unwrap())
        .collect();
    assert!(urls.iter().any(|u| u.ends_with("/cluster1")), "{urls:?}");
    assert!(urls.iter().any(|u| u.ends_with("/cluster2")), "{urls:?}");
    let tags = api.tags(REGION, &lb.arn);
    assert_eq!(tags["Project"], PROJECT);
    assert_eq!(tags["ManagedBy"], "elb");

    // Its own group, 80 from the clients; the agents' group opened on 8000 to it.
    let alb_group = &fx.api.security_groups(REGION, &alb_name())[0];
    assert_eq!(lb.security_groups, std::slice::from_ref(&alb_group.id));
    assert_eq!(alb_group.tags["Project"], PROJECT);
    assert!(
        alb_group
            .ingress
            .iter()
            .any(|r| r.from_port == "80" && r.cidr == "0.0.0.0/0"),
        "{alb_group:?}"
    );
    let agents = fx
        .api
        .call(
            REGION,
            "DescribeSecurityGroups",
            &[
                ("Filter.1.Name", "group-name"),
                ("Filter.1.Value.1", &group_name()),
            ],
        )
        .unwrap();
    assert!(
        agents.contains(&alb_group.id),
        "the agents' group names the ALB's group in a rule: {agents}"
    );

    // One target group per cluster, with the health check and the deregistration delay.
    for (cluster, members) in [("cluster1", &c1), ("cluster2", &c2)] {
        let group = api
            .target_groups(REGION)
            .into_iter()
            .find(|g| g.name == group_of(cluster))
            .unwrap();
        assert_eq!(
            (group.protocol.as_str(), group.port.as_str()),
            ("HTTP", "8000")
        );
        assert_eq!(group.health_path, "/healthz");
        assert_eq!(
            [
                &group.interval,
                &group.timeout,
                &group.healthy,
                &group.unhealthy
            ],
            ["5", "2", "2", "2"]
        );
        assert_eq!(group.matcher, "200");
        let tags = api.tags(REGION, &group.arn);
        assert_eq!(tags["Cluster"], cluster);
        assert_eq!(tags["Project"], PROJECT);
        assert_eq!(
            api.target_group_attribute(REGION, &group.arn, "deregistration_delay.timeout_seconds")
                .as_deref(),
            Some("10")
        );
        let registered: BTreeSet<String> = api.targets(REGION, &group.arn).into_iter().collect();
        assert_eq!(
            &registered, members,
            "{cluster}'s instances are its targets"
        );
    }

    // The listener on 80: default cluster1, rules 10 and 20.
    let listeners = api.listeners(REGION, &lb.arn);
    assert_eq!(listeners.len(), 1, "{listeners:?}");
    let (listener, port, default) = &listeners[0];
    assert_eq!(port, "80");
    assert_eq!(default, &fx.target_group_arn("cluster1"));
    let rules = api.rules(REGION, listener);
    assert_eq!(rules.len(), 2, "{rules:?}");
    assert_eq!(rules[0].priority, "10");
    assert_eq!(rules[0].patterns, ["/cluster1*"]);
    assert_eq!(rules[0].target_group_arn, fx.target_group_arn("cluster1"));
    assert_eq!(rules[1].priority, "20");
    assert_eq!(rules[1].patterns, ["/cluster2*"]);
    assert_eq!(rules[1].target_group_arn, fx.target_group_arn("cluster2"));
}

/// moto makes a second load balancer for an existing name; `up` must look before it creates.
#[test]
fn a_second_up_creates_nothing_and_fixes_what_drifted() {
    let fx = Fixture::new();
    fx.two_clusters();
    fx.alb_up(&[]).expect_code(0);
    let before = fx.creations();
    let json = fx.alb_up(&[]).json();
    assert_eq!(fx.creations(), before, "a re-run creates nothing");
    assert_eq!(fx.elb_api().load_balancers(REGION).len(), 1);
    assert_eq!(json["load_balancer"]["name"], alb_name().as_str());

    // Other flags: the health check and the rules follow.
    fx.alb_up(&[
        "--health-path",
        "/",
        "--rule",
        "/big*=cluster1",
        "--default",
        "cluster2",
    ])
    .expect_code(0);
    let api = fx.elb_api();
    let group = api
        .target_groups(REGION)
        .into_iter()
        .find(|g| g.name == group_of("cluster1"))
        .unwrap();
    assert_eq!(group.health_path, "/");
    let lb = &api.load_balancers(REGION)[0];
    let (listener, _, default) = api.listeners(REGION, &lb.arn).remove(0);
    assert_eq!(default, fx.target_group_arn("cluster2"));
    let rules = api.rules(REGION, &listener);
    assert_eq!(rules.len(), 1, "the stale rule 20 went: {rules:?}");
    assert_eq!(rules[0].patterns, ["/big*"]);
    assert_eq!(fx.shim.count("CreateLoadBalancer"), 1);
}

/// `elb launch` and `elb kill --cluster` keep the ALB's targets in step.
#[test]
fn launched_instances_join_and_killed_ones_leave_the_target_group() {
    let fx = Fixture::new();
    let (c1, _) = fx.two_clusters();
    fx.alb_up(&[]).expect_code(0);
    let api = fx.elb_api();

    let more = ids(&fx.launched("cluster1", "t3.micro", 1));
    let registered: BTreeSet<String> = api
        .targets(REGION, &fx.target_group_arn("cluster1"))
        .into_iter()
        .collect();
    assert_eq!(registered, c1.union(&more).cloned().collect());

    fx.kill(&["--cluster", "cluster2"]).expect_code(0);
    assert_eq!(fx.shim.count("DeregisterTargets"), 1);
    assert!(
        api.targets(REGION, &fx.target_group_arn("cluster2"))
            .is_empty(),
        "cluster2's instances were deregistered"
    );
    let actions = fx.shim.actions();
    let at = |a: &str| actions.iter().position(|x| x == a).unwrap();
    assert!(at("DeregisterTargets") < at("TerminateInstances"));
    assert_eq!(fx.live_ours(), c1.union(&more).cloned().collect());
    assert!(
        !actions
            .iter()
            .any(|a| a == "DeleteLoadBalancer" || a == "DeleteSecurityGroup"),
        "a cluster kill keeps the network: {actions:?}"
    );
}

/// The kill switch plans the ELBv2 resources by the exact tag, deletes them first in dependency
/// order, and never touches another project's ALB or an untagged target group.
#[test]
fn kill_removes_the_alb_in_order_and_spares_the_decoys() {
    let fx = Fixture::new();
    fx.two_clusters();
    fx.alb_up(&[]).expect_code(0);
    let api = fx.elb_api();
    let (vpc, subnets) = fx.api.default_subnets(REGION);
    let subnet_ids: Vec<String> = subnets.iter().map(|(id, _)| id.clone()).collect();
    let foreign_lb = api.create_load_balancer(REGION, "other-alb", &subnet_ids, "other-project");
    let untagged = api.create_target_group(REGION, "untagged", &vpc, &[]);
    let prefixed = api.create_target_group(
        REGION,
        &format!("{PROJECT}-decoy"),
        &vpc,
        &[("Project", "elb-from-scratch-2")],
    );

    let dry = fx.elb.run(&["kill", "--dry-run"]).json();
    let planned = |key: &str| -> BTreeSet<String> {
        dry["load_balancing"][key]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v[0].as_str().or(v.as_str()).unwrap().to_owned())
            .collect()
    };
    assert_eq!(planned("load_balancers").len(), 1, "{dry}");
    assert_eq!(planned("target_groups").len(), 2, "{dry}");
    assert_eq!(planned("listeners").len(), 1, "{dry}");
    assert_eq!(planned("rules").len(), 2, "{dry}");
    assert!(!planned("load_balancers").contains(&foreign_lb));
    fx.assert_nothing_deleted();

    fx.kill(&[]).expect_code(0);
    let actions = fx.shim.actions();
    let first = |a: &str| {
        actions
            .iter()
            .position(|x| x == a)
            .unwrap_or_else(|| panic!("{a}: {actions:?}"))
    };
    assert!(first("DeleteListener") < first("DeleteLoadBalancer"));
    assert!(first("DeleteLoadBalancer") < first("DeleteTargetGroup"));
    assert!(first("DeleteTargetGroup") < first("TerminateInstances"));
    assert!(first("TerminateInstances") < first("DeleteSecurityGroup"));
    assert!(first("DeleteSecurityGroup") < first("DeleteKeyPair"));
    assert_eq!(
        fx.shim.count("DeleteTargetGroup"),
        2,
        "what the plan said: {actions:?}"
    );

    let lbs: Vec<String> = api
        .load_balancers(REGION)
        .into_iter()
        .map(|l| l.arn)
        .collect();
    assert_eq!(lbs, [foreign_lb], "only the other project's ALB is left");
    let groups: BTreeSet<String> = api
        .target_groups(REGION)
        .into_iter()
        .map(|g| g.arn)
        .collect();
    assert_eq!(
        groups,
        [untagged, prefixed].into(),
        "the decoy groups are left"
    );
    assert!(fx.api.security_groups(REGION, &alb_name()).is_empty());
}

/// `elb alb down` removes what `up` made and nothing of the instances.
#[test]
fn down_removes_the_alb_and_keeps_the_instances() {
    let fx = Fixture::new();
    let (c1, c2) = fx.two_clusters();
    fx.alb_up(&[]).expect_code(0);
    fx.elb
        .run(&["alb", "down", "--poll-interval-ms", "100"])
        .expect_code(0);
    let api = fx.elb_api();
    assert!(api.load_balancers(REGION).is_empty());
    assert!(api.target_groups(REGION).is_empty());
    assert!(fx.api.security_groups(REGION, &alb_name()).is_empty());
    assert!(!fx.api.security_groups(REGION, &group_name()).is_empty());
    assert_eq!(fx.live_ours(), c1.union(&c2).cloned().collect());
    assert_eq!(fx.shim.count("TerminateInstances"), 0);
    fx.elb
        .run(&["alb", "status"])
        .expect_code(2)
        .expect_failure_mentioning(&["no ALB", "elb alb up"]);
}

/// moto reports every target healthy at once; a real ALB starts them `initial` and may fail
/// some. `up` waits through `initial` and reports the unhealthy one with its reason; `status`
/// shows the same.
#[test]
fn initial_then_unhealthy_targets_are_reported_truthfully() {
    let fx = Fixture::new();
    let (_, c2) = fx.two_clusters();
    let sick = c2.iter().next().unwrap().clone();
    fx.shim.target_health(4, std::slice::from_ref(&sick));
    let out = fx
        .elb
        .run(&["alb", "up", "--poll-interval-ms", "100", "--wait", "2"]);
    out.expect_code(1).expect_failure_mentioning(&[
        &sick,
        "unhealthy",
        "Target.ResponseCodeMismatch",
    ]);
    assert!(
        fx.shim.target_health_hits() >= 5,
        "initial answers were seen"
    );
    assert!(
        out.stderr.contains("health checks"),
        "progress was shown:\n{out}"
    );

    let status = fx.elb.run(&["alb", "status"]).json();
    let targets: Vec<&serde_json::Value> = status["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["targets"].as_array().unwrap())
        .collect();
    assert_eq!(targets.len(), 5);
    for t in targets {
        let expected = if t["id"] == sick.as_str() {
            "unhealthy"
        } else {
            "healthy"
        };
        assert_eq!(t["state"], expected, "{t}");
        if expected == "unhealthy" {
            assert_eq!(t["reason"], "Target.ResponseCodeMismatch");
            assert!(t["description"].as_str().unwrap().contains("503"));
        }
    }
}

/// Eventual consistency right after create, throttling, a target group still in use while its
/// load balancer goes, and a security group in use until then: each fired and survived.
#[test]
fn elbv2_weather_is_ridden_out() {
    let fx = Fixture::new();
    fx.two_clusters();
    let not_found = fx.shim.inject(
        Fault::error("DescribeLoadBalancers", 400, "LoadBalancerNotFound")
            .times(2)
            .after("CreateLoadBalancer"),
    );
    let throttled = fx
        .shim
        .inject(Fault::error("CreateTargetGroup", 400, "Throttling").times(2));
    fx.alb_up(&[]).expect_code(0);
    assert_eq!(fx.shim.hits(not_found), 2);
    assert_eq!(fx.shim.hits(throttled), 2);
    assert_eq!(fx.shim.count("CreateLoadBalancer"), 1);
    assert_eq!(fx.elb_api().target_groups(REGION).len(), 2);

    let in_use = fx
        .shim
        .inject(Fault::error("DeleteTargetGroup", 400, "ResourceInUse").times(2));
    let dependency = fx.shim.inject(
        Fault::error("DeleteSecurityGroup", 400, "DependencyViolation")
            .times(2)
            .after("DeleteLoadBalancer"),
    );
    fx.kill(&[]).expect_code(0);
    assert_eq!(fx.shim.hits(in_use), 2);
    assert_eq!(fx.shim.hits(dependency), 2);
    assert!(fx.elb_api().target_groups(REGION).is_empty());
    assert!(fx.api.security_groups(REGION, &alb_name()).is_empty());
}

/// Bad input is refused before anything is created.
#[test]
fn bad_input_is_refused_before_anything_is_created() {
    let fx = Fixture::new();
    fx.elb
        .run(&["alb", "up", "--client-cidr", "1.2.3.4"])
        .expect_code(2)
        .expect_failure_mentioning(&["invalid CIDR"]);
    fx.elb
        .run(&["alb", "up", "--rule", "no-slash=cluster1"])
        .expect_code(2)
        .expect_failure_mentioning(&["starts with `/`"]);
    fx.assert_no_aws_call();

    fx.two_clusters();
    let before = fx.creations();
    fx.alb_up(&["--rule", "/x*=cluster9"])
        .expect_code(2)
        .expect_failure_mentioning(&["cluster9", "elb launch"]);
    // A region whose default VPC has one zone left.
    let (_, subnets) = fx.api.default_subnets(REGION);
    for (id, _) in subnets.iter().skip(1) {
        fx.api.delete_subnet(REGION, id);
    }
    fx.alb_up(&[])
        .expect_code(2)
        .expect_failure_mentioning(&["two availability zones", &subnets[0].1]);
    assert_eq!(fx.creations(), before, "nothing was created");
    assert!(fx.elb_api().load_balancers(REGION).is_empty());

    // Without an ALB, a bench through it stops before sending anything.
    fx.elb
        .run(&["bench", "--via", "direct,alb", "--requests", "10"])
        .expect_code(2)
        .expect_failure_mentioning(&["--via alb", "elb alb up"]);

    fx.elb
        .run(&["--local", "alb", "status"])
        .expect_code(2)
        .expect_failure_mentioning(&["only on EC2"]);
}
