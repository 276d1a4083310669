//! Failures are never 200: no target is 503, a target that cannot be reached or that hangs up
//! is 502, one that does not answer in time is 504, each with a JSON body naming the group and
//! the reason, and each counted in `/metrics`.

use std::net::{SocketAddr, TcpListener};
use std::time::{Duration, Instant};

use proto::balancer_config::{Algorithm, Rule, TargetGroup, WhenNoneHealthy};
use proto::TargetState;

use crate::harness::balancer::{agent, config, group, rule, target};
use crate::harness::raw_http;
use crate::harness::stub_target::{Misbehaviour, StubTarget};
use crate::harness::{Agent, Balancer};

/// An address where nothing listens: a port bound, then released.
fn closed_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("bound")
}

/// A rule sending every path for `host` to group `host`.
fn by_host(priority: u32, host: &str) -> Rule {
    Rule {
        host: Some(host.into()),
        ..rule(priority, "*", host)
    }
}

#[test]
fn failures_are_502_503_504_with_a_json_body_naming_the_group_and_the_reason() {
    let slow_agent = agent("slow", "i-slow");
    let hang_up = StubTarget::start(Misbehaviour::HangUp);
    let dead: Agent = agent("dead", "i-dead");
    let dead_addr = dead.addr;
    drop(dead);

    let groups = vec![
        group("empty", Algorithm::RoundRobin, Vec::new()),
        TargetGroup {
            when_none_healthy: WhenNoneHealthy::Reject,
            ..group(
                "rejecting",
                Algorithm::RoundRobin,
                vec![target("i-dead", dead_addr)],
            )
        },
        group(
            "refused",
            Algorithm::RoundRobin,
            vec![target("i-closed", closed_port())],
        ),
        group(
            "hangup",
            Algorithm::RoundRobin,
            vec![target("i-hangup", hang_up.addr)],
        ),
        TargetGroup {
            response_timeout_ms: 300,
            ..group(
                "slow",
                Algorithm::RoundRobin,
                vec![target("i-slow", slow_agent.addr)],
            )
        },
    ];
    let mut config = config(groups);
    config.rules = ["empty", "rejecting", "refused", "hangup", "slow"]
        .iter()
        .enumerate()
        .map(|(i, host)| by_host(i as u32 + 1, host))
        .collect();
    let balancer = Balancer::start(&config);
    balancer.status_until(Duration::from_secs(5), "the dead target unhealthy", |s| {
        s.groups[1].targets[0].state == TargetState::Unhealthy
            && s.groups[4].targets[0].state == TargetState::Healthy
    });

    // (Host, path, status, reason, longest time allowed)
    let second = Duration::from_secs(1);
    let cases = [
        ("empty", "/", 503, "no_target", second),
        ("rejecting", "/", 503, "no_target", second),
        ("refused", "/", 502, "connect_failed", second),
        ("hangup", "/", 502, "target_reset", second),
        (
            "slow",
            "/sleep?ms=3000",
            504,
            "target_timeout",
            Duration::from_millis(1000),
        ),
    ];
    for (host, path, status, reason, within) in cases {
        let mut stream = raw_http::connect(balancer.addr()).expect("connect");
        let sent = Instant::now();
        std::io::Write::write_all(
            &mut stream,
            format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .expect("send");
        let response = raw_http::read_response(&mut stream).expect("an answer");
        let took = sent.elapsed();
        assert_eq!(response.status, status, "{host}: {}", response.text());
        assert_eq!(
            response.header("content-type"),
            Some("application/json"),
            "{host}"
        );
        let body: proto::BalancerError = serde_json::from_slice(&response.body)
            .unwrap_or_else(|e| panic!("{host}: not a BalancerError ({e}): {}", response.text()));
        assert_eq!(body.status, status, "{host}: {body:?}");
        assert_eq!(body.reason, reason, "{host}: {body:?}");
        assert_eq!(body.group.as_deref(), Some(host), "{host}: {body:?}");
        assert!(!body.error.is_empty(), "{host}: {body:?}");
        assert!(took <= within, "{host}: answered after {took:?}");
        if status == 504 {
            assert!(
                took >= Duration::from_millis(300),
                "{host}: 504 after {took:?}"
            );
        }
    }

    let metrics = balancer.metrics();
    for (group, code) in [
        ("empty", "503"),
        ("rejecting", "503"),
        ("refused", "502"),
        ("hangup", "502"),
        ("slow", "504"),
    ] {
        assert_eq!(
            metrics.sum(
                "elb_httpcode_elb_count_total",
                &[("group", group), ("code", code)]
            ),
            1.0,
            "{group} {code}:\n{}",
            metrics.text
        );
    }
    assert_eq!(
        metrics.sum("elb_target_timeout_count_total", &[("target", "i-slow")]),
        1.0,
        "{}",
        metrics.text
    );
}
