//! A `--rule` with ALB's conditions beside the path (method, header, query string, source
//! CIDR) or ALB's actions (weighted forward, redirect, fixed response): `elb alb up` makes the
//! ALB rule that `elb balance up` puts in its balancer's config, from the same flag; a second
//! `alb up` finds it equal and changes nothing; what ALB would refuse is refused before any
//! call.

use super::super::fixture::{Fixture, REGION};
use super::local_balancer_config;

/// Five comparison values, ALB's most for one rule.
const RULE: &str = "/api*;method=POST;header=X-Canary:yes*;query=v=2*;source=10.0.0.0/8=cluster2";

#[test]
fn alb_up_and_balance_up_make_the_same_conditions_from_the_same_rule() {
    let fx = Fixture::new();
    fx.two_clusters();
    let flags = [
        "--rule",
        RULE,
        "--rule",
        "/cluster1*=cluster1",
        "--default",
        "cluster1",
    ];
    fx.alb_up(&flags).expect_code(0);
    let elb_api = fx.elb_api();
    let listener = fx.listener_arn("80");
    let rules = elb_api.rule_conditions(REGION, &listener);
    let owned = |pairs: &[(&str, &[&str])]| -> Vec<(String, Vec<String>)> {
        pairs
            .iter()
            .map(|(f, v)| ((*f).to_owned(), v.iter().map(|s| (*s).to_owned()).collect()))
            .collect()
    };
    let first = rules
        .iter()
        .find(|(priority, _)| priority == "10")
        .expect("the first rule at priority 10");
    let mut got = first.1.clone();
    got.sort();
    assert_eq!(
        got,
        owned(&[
            ("http-header", &["X-Canary:yes*"]),
            ("http-request-method", &["POST"]),
            ("path-pattern", &["/api*"]),
            ("query-string", &["v=2*"]),
            ("source-ip", &["10.0.0.0/8"]),
        ]),
    );
    let second = rules.iter().find(|(p, _)| p == "20").expect("priority 20");
    assert_eq!(second.1, owned(&[("path-pattern", &["/cluster1*"])]));

    // Read back equal: a second run modifies nothing.
    fx.assert_second_up_changes_nothing(&flags);

    // elb's own balancer, from the same flags.
    let config = local_balancer_config(&flags);
    let rule = config
        .rules
        .iter()
        .find(|r| r.priority == 10)
        .expect("priority 10");
    assert_eq!(
        (rule.path_pattern.as_str(), rule.forward.as_ref()),
        (
            "/api*",
            Some(&proto::balancer_config::Forward::Group("cluster2".into()))
        )
    );
    assert_eq!(rule.methods, ["POST"]);
    assert_eq!(
        (rule.headers[0].name.as_str(), &rule.headers[0].values[..]),
        ("X-Canary", &["yes*".to_owned()][..])
    );
    let pair = &rule.query[0].pairs[0];
    assert_eq!(
        (pair.key.as_deref(), pair.value.as_str()),
        (Some("v"), "2*")
    );
    assert_eq!(rule.source_ips, ["10.0.0.0/8"]);
}

#[test]
fn a_condition_alb_would_refuse_is_refused_before_any_call() {
    let fx = Fixture::new();
    for (rule, needle) in [
        ("/a;method=get=cluster1", "in capitals"),
        (
            "/a;method=A,B,C,D,E=cluster1",
            "at most 5 comparison values",
        ),
        ("/a;header=Host:x=cluster1", "use the rule's host"),
        ("/a;weight=3=cluster1", "unknown condition"),
        ("/a=cluster1:0,cluster2:0", "weight above 0"),
        ("/a=redirect:301:#{protocol}://#{host}", "leads back"),
    ] {
        fx.elb
            .run(&["alb", "up", "--rule", rule])
            .expect_code(2)
            .expect_failure_mentioning(&[needle]);
    }
    fx.elb
        .run(&["alb", "up", "--slow-start", "10s"])
        .expect_code(2)
        .expect_failure_mentioning(&["30 s to 15 min"]);
    for (stickiness, needle) in [
        ("app_cookie:AWSALBAPP-1:1h", "not starting with AWSALB"),
        ("lb_cookie:200h", "7 days"),
        ("sticky", "lb_cookie:DURATION"),
    ] {
        fx.elb
            .run(&["alb", "up", "--stickiness", stickiness])
            .expect_code(2)
            .expect_failure_mentioning(&[needle]);
    }
    // What the ALB cannot do as elb's balancer does it is refused with why.
    fx.elb
        .run(&["alb", "up", "--access-log", "access.log"])
        .expect_code(2)
        .expect_failure_mentioning(&["S3 bucket", "elb balance up"]);
    for (flags, needle) in [
        (["--fixed-response", "302"], "2XX, 4XX or 5XX"),
        (["--default", "cluster1:5,cluster2:5"], "last --rule"),
        (["--rule", "/a=cluster1@1h"], "one cluster"),
    ] {
        let mut args = vec!["alb", "up"];
        args.extend(flags);
        fx.elb
            .run(&args)
            .expect_code(2)
            .expect_failure_mentioning(&[needle]);
    }
    fx.assert_no_aws_call();
}

#[test]
fn alb_up_and_balance_up_make_the_same_actions_from_the_same_rules() {
    use proto::balancer_config::{FixedResponse, Forward, Redirect, WeightedGroup};

    let fx = Fixture::new();
    fx.two_clusters();
    let flags = [
        "--rule",
        "/canary*=cluster1:90,cluster2:10@1h",
        "--rule",
        "/old/*=redirect:301:https://#{host}:443/new/#{path}?#{query}",
        "--rule",
        "/down*=fixed-response:503:text/plain:back soon",
        "--rule",
        "/c2*=cluster2",
        "--fixed-response",
        "404:text/plain:no route",
        "--slow-start",
        "60s",
        "--stickiness",
        "lb_cookie:1h",
    ];
    fx.alb_up(&flags).expect_code(0);
    let elb_api = fx.elb_api();
    let listener = fx.listener_arn("80");
    let arn = |cluster: &str| fx.target_group_arn(cluster);
    let actions = elb_api.rule_actions(REGION, &listener);
    let action = |priority: &str| {
        actions
            .iter()
            .find(|(p, _)| p == priority)
            .map(|(_, a)| a.clone())
            .unwrap_or_else(|| panic!("a rule at {priority}: {actions:?}"))
    };
    assert_eq!(
        action("10"),
        format!(
            "weighted {}:90,{}:10 sticky 3600",
            arn("cluster1"),
            arn("cluster2")
        )
    );
    assert_eq!(
        elb_api.default_action(REGION, &listener),
        "fixed 404 text/plain no route"
    );
    assert_eq!(
        action("20"),
        "redirect HTTP_301 HTTPS #{host} 443 /new/#{path} #{query}"
    );
    assert_eq!(action("30"), "fixed 503 text/plain back soon");
    for cluster in ["cluster1", "cluster2"] {
        assert_eq!(
            elb_api
                .target_group_attribute(REGION, &arn(cluster), "slow_start.duration_seconds")
                .as_deref(),
            Some("60"),
            "{cluster}'s group ramps new targets for 60 s"
        );
        for (key, value) in [
            ("stickiness.enabled", "true"),
            ("stickiness.type", "lb_cookie"),
            ("stickiness.lb_cookie.duration_seconds", "3600"),
        ] {
            assert_eq!(
                elb_api
                    .target_group_attribute(REGION, &arn(cluster), key)
                    .as_deref(),
                Some(value),
                "{cluster}: {key}"
            );
        }
    }

    fx.assert_second_up_changes_nothing(&flags);

    let config = local_balancer_config(&flags);
    let rule = |priority: u32| {
        config
            .rules
            .iter()
            .find(|r| r.priority == priority)
            .unwrap_or_else(|| panic!("priority {priority}"))
    };
    assert_eq!(
        rule(10).forward,
        Some(Forward::Weighted(vec![
            WeightedGroup {
                group: "cluster1".into(),
                weight: 90
            },
            WeightedGroup {
                group: "cluster2".into(),
                weight: 10
            },
        ]))
    );
    assert_eq!(rule(10).group_stickiness_ms, 3_600_000);
    assert_eq!(
        config.default_action.fixed_response,
        Some(FixedResponse {
            status: 404,
            content_type: Some("text/plain".into()),
            body: Some("no route".into()),
        })
    );
    assert_eq!(config.default_action.forward, None);
    assert_eq!(
        rule(20).redirect,
        Some(Redirect {
            status: 301,
            protocol: Some("HTTPS".into()),
            host: Some("#{host}".into()),
            port: Some("443".into()),
            path: Some("/new/#{path}".into()),
            query: Some("#{query}".into()),
        })
    );
    assert!(
        config
            .target_groups
            .iter()
            .all(|g| g.slow_start_ms == 60_000),
        "every group ramps new targets for 60 s"
    );
    assert_eq!(
        rule(30).fixed_response,
        Some(FixedResponse {
            status: 503,
            content_type: Some("text/plain".into()),
            body: Some("back soon".into()),
        })
    );
}
