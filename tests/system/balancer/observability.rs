//! `/metrics` counts exactly the requests the test sent, and `/status` and the agents' own
//! counts agree with it.

use std::time::Duration;

use proto::balancer_config::{Algorithm, DefaultAction};

use crate::harness::balancer::{agent, config, group, group_status, rule, target};
use crate::harness::load::{self, failures, KeepAlive};
use crate::harness::{Agent, Balancer};

#[test]
fn metrics_count_the_requests_sent_and_status_and_the_agents_agree() {
    let c1: Vec<Agent> = (0..2)
        .map(|i| agent("cluster1", &format!("i-1{i}")))
        .collect();
    let c2 = agent("cluster2", "i-20");
    let mut config = config(vec![
        group(
            "c1",
            Algorithm::RoundRobin,
            c1.iter()
                .enumerate()
                .map(|(i, a)| target(&format!("i-1{i}"), a.addr))
                .collect(),
        ),
        group("c2", Algorithm::P2cPeakEwma, vec![target("i-20", c2.addr)]),
    ]);
    config.rules = vec![rule(10, "/cluster1*", "c1"), rule(20, "/cluster2*", "c2")];
    config.default_action = DefaultAction::default();
    let balancer = Balancer::start(&config);
    balancer.wait_all_healthy();

    // 40 to c1 over 4 connections, 25 to c2 over 1, 7 unmatched over 7.
    let outcomes = load::run(balancer.addr(), "/cluster1", 4, 10);
    assert!(failures(&outcomes).is_empty(), "{:?}", failures(&outcomes));
    let mut client = KeepAlive::new(balancer.addr());
    for _ in 0..25 {
        assert_eq!(client.get("/cluster2").expect("an answer").status, 200);
    }
    drop(client);
    for _ in 0..7 {
        assert_eq!(balancer.get("/nowhere").status, 404);
    }

    let metrics = balancer.metrics();
    let m = |metric: &str, labels: &[(&str, &str)]| metrics.sum(metric, labels);
    let text = &metrics.text;
    assert_eq!(
        m("elb_request_count_total", &[("group", "c1")]),
        40.0,
        "{text}"
    );
    assert_eq!(
        m("elb_request_count_total", &[("group", "c2")]),
        25.0,
        "{text}"
    );
    assert_eq!(
        m(
            "elb_httpcode_elb_count_total",
            &[("group", ""), ("code", "4xx")]
        ),
        7.0,
        "{text}"
    );
    assert_eq!(m("elb_httpcode_elb_count_total", &[("code", "502")]), 0.0);
    assert_eq!(m("elb_new_connection_count_total", &[]), 12.0, "{text}");
    assert_eq!(
        m("elb_healthy_host_count", &[("group", "c1")]),
        2.0,
        "{text}"
    );
    assert_eq!(
        m("elb_unhealthy_host_count", &[("group", "c1")]),
        0.0,
        "{text}"
    );
    assert_eq!(m("elb_retry_count_total", &[]), 0.0, "{text}");
    for (group, n) in [("c1", 40), ("c2", 25)] {
        let line = format!("elb_target_response_time_seconds_count{{group=\"{group}\"}} {n}");
        assert!(text.lines().any(|l| l == line), "no `{line}` in\n{text}");
    }

    let status = balancer.status();
    for (name, agents, path, sent) in [
        ("c1", c1.iter().collect::<Vec<_>>(), "/cluster1", 40),
        ("c2", vec![&c2], "/cluster2", 25),
    ] {
        let group = group_status(&status, name);
        assert_eq!(group.requests, sent, "{group:#?}");
        let by_targets: u64 = group.targets.iter().map(|t| t.requests).sum();
        assert_eq!(by_targets, sent, "{group:#?}");
        for (t, agent) in group.targets.iter().zip(agents) {
            let answered = m(
                "elb_target_request_count_total",
                &[("target", &t.id), ("code_class", "2xx")],
            );
            assert_eq!(answered, t.requests as f64, "{}: {text}", t.id);
            assert_eq!(t.errors, 0, "{t:#?}");
            // The agent saw exactly as many.
            let seen = agent.stats_until(Duration::from_secs(5), |s| {
                s.requests.per_endpoint.get(path).copied().unwrap_or(0) >= t.requests
            });
            assert_eq!(
                seen.requests.per_endpoint.get(path).copied(),
                Some(t.requests),
                "{}: {:?}",
                t.id,
                seen.requests
            );
        }
    }
    // Round robin split c1's 40 evenly.
    let c1 = group_status(&status, "c1");
    assert!(c1.targets.iter().all(|t| t.requests == 20), "{c1:#?}");
}
