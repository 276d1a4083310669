//! Rules with ALB semantics: priority order (not file order), `*` and `?`, case-sensitive
//! paths, case-insensitive hosts, the query left out, the default action, and the fixed JSON 404
//! without one. Which target served each request is read twice: from the agent's answer (its
//! `--instance-id`) where the agent knows the path, and from `/status` (the one target whose
//! `requests` rose), which also covers paths the agent itself answers with 404.

use std::io::Write;

use proto::balancer_config::{Algorithm, DefaultAction, Rule, TargetGroup};

use super::requests_by_target;
use crate::harness::balancer::{agent, config, group, rule, target};
use crate::harness::raw_http::{self, HttpResponse};
use crate::harness::{Agent, Balancer};

/// `GET path` with `Host: host`, one request on its own connection.
fn get_with_host(balancer: &Balancer, path: &str, host: &str) -> HttpResponse {
    let mut stream = raw_http::connect(balancer.addr()).expect("connect to the balancer");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .expect("send");
    raw_http::read_response(&mut stream).expect("an answer")
}

/// Sends `GET path` (with `host`) and returns the id of the one target it went to, per
/// `/status`, with the answer.
fn route(balancer: &Balancer, path: &str, host: &str) -> (String, HttpResponse) {
    went_to(balancer, &format!("GET {path} (Host {host})"), || {
        get_with_host(balancer, path, host)
    })
}

/// Runs `send` (one request, `what`) and returns the id of the one target it reached, per
/// `/status`, with the answer.
fn went_to(
    balancer: &Balancer,
    what: &str,
    send: impl FnOnce() -> HttpResponse,
) -> (String, HttpResponse) {
    let before = requests_by_target(balancer);
    let response = send();
    let after = requests_by_target(balancer);
    let went: Vec<&String> = after
        .iter()
        .filter(|(id, n)| before.get(*id) != Some(n))
        .map(|(id, _)| id)
        .collect();
    assert_eq!(
        went.len(),
        1,
        "{what} reached {went:?}: {before:?} -> {after:?}"
    );
    (went[0].clone(), response)
}

/// One group per name, each of one agent `i-<name>` (the agents live as long as the result).
fn one_agent_groups(names: &[&str]) -> (Vec<Agent>, Vec<TargetGroup>) {
    let agents: Vec<Agent> = names.iter().map(|n| agent(n, &format!("i-{n}"))).collect();
    let groups = names
        .iter()
        .zip(&agents)
        .map(|(n, a)| {
            group(
                n,
                Algorithm::RoundRobin,
                vec![target(&format!("i-{n}"), a.addr)],
            )
        })
        .collect();
    (agents, groups)
}

#[test]
fn rules_follow_priority_wildcards_case_and_host_then_the_default_action() {
    let names = ["exact2", "star", "quest", "upper", "hosted", "fallback"];
    let (_agents, groups) = one_agent_groups(&names);
    let mut config = config(groups);
    // File order is not evaluation order: the broad rule comes first in the file.
    config.rules = vec![
        rule(20, "/cluster*", "star"),
        rule(10, "/cluster2", "exact2"),
        rule(30, "/st?ts", "quest"),
        rule(5, "/CLUSTER1", "upper"),
        Rule {
            host: Some("API.example.*".into()),
            ..rule(1, "/*", "hosted")
        },
    ];
    config.default_action = DefaultAction {
        forward: Some("fallback".into()),
        ..DefaultAction::default()
    };
    let balancer = Balancer::start(&config);
    balancer.wait_all_healthy();
    let host = balancer.addr().to_string();

    // (path, Host, group that must serve it, whether the agent answers it itself)
    let cases: &[(&str, &str, &str, bool)] = &[
        // Priority 10 beats 20 although the file lists 20 first.
        ("/cluster2", &host, "exact2", true),
        ("/cluster1", &host, "star", true),
        // `*` matches an empty run, and slashes.
        ("/cluster", &host, "star", false),
        ("/cluster1/a/b?x=1", &host, "star", false),
        // Paths are case-sensitive both ways.
        ("/CLUSTER1", &host, "upper", false),
        ("/Cluster2", &host, "fallback", false),
        // `?` is exactly one character; the query string is not part of the path.
        ("/stats", &host, "quest", false),
        ("/stats?ms=1", &host, "quest", false),
        ("/stts", &host, "fallback", false),
        ("/staats", &host, "fallback", false),
        // Unmatched: the default action.
        ("/", &host, "fallback", true),
        // Hosts are case-insensitive, the port is ignored, and priority 1 wins over all.
        ("/", "api.EXAMPLE.com:8080", "hosted", true),
        ("/cluster2", "api.example.org", "hosted", true),
        ("/", "www.example.com", "fallback", true),
    ];
    for &(path, host, group, identified) in cases {
        let (went, response) = route(&balancer, path, host);
        let id = format!("i-{group}");
        assert_eq!(went, id, "GET {path} with Host {host}");
        if identified {
            assert_eq!(response.status, 200, "GET {path}: {}", response.text());
            let json = response.json();
            assert_eq!(
                json["ec2_instance_id"],
                id.as_str(),
                "GET {path} answered {json}"
            );
            assert_eq!(json["cluster"], group, "GET {path} answered {json}");
        }
    }
}

#[test]
fn without_a_default_action_an_unmatched_request_gets_the_fixed_json_404() {
    let served = agent("c1", "i-1");
    let mut config = config(vec![group(
        "c1",
        Algorithm::RoundRobin,
        vec![target("i-1", served.addr)],
    )]);
    config.rules = vec![rule(1, "/cluster1*", "c1")];
    config.default_action = DefaultAction::default();
    let balancer = Balancer::start(&config);
    balancer.wait_all_healthy();

    let matched = balancer.get("/cluster1");
    assert_eq!(matched.status, 200, "{}", matched.text());
    assert_eq!(matched.json()["ec2_instance_id"], "i-1");

    for path in ["/", "/cluster2", "/Cluster1"] {
        let before = requests_by_target(&balancer);
        let response = balancer.get(path);
        assert_eq!(response.status, 404, "GET {path}: {}", response.text());
        assert_eq!(response.header("content-type"), Some("application/json"));
        let body: proto::BalancerError =
            serde_json::from_slice(&response.body).expect("a BalancerError body");
        assert_eq!(body.status, 404);
        assert_eq!(body.reason, "no_rule");
        assert_eq!(body.group, None);
        assert_eq!(
            requests_by_target(&balancer),
            before,
            "GET {path} reached a target"
        );
    }
}

/// Sends `raw` (one whole request, `Connection: close`) and returns the id of the one target
/// it went to, per `/status`.
fn route_raw(balancer: &Balancer, raw: &str) -> String {
    let send = || {
        let mut stream = raw_http::connect(balancer.addr()).expect("connect to the balancer");
        stream.write_all(raw.as_bytes()).expect("send");
        raw_http::read_response(&mut stream).expect("an answer")
    };
    went_to(balancer, &format!("{raw:?}"), send).0
}

/// ALB's conditions beyond path and host: method, header, query string and source address,
/// AND across conditions and OR within one, each rule falling through to the next.
#[test]
fn conditions_on_method_header_query_and_source_combine_as_on_alb() {
    use proto::balancer_config::{HeaderCondition, QueryCondition, QueryPair};
    let names = ["canary", "v2", "elsewhere", "local", "fallback"];
    let (_agents, groups) = one_agent_groups(&names);
    let mut config = config(groups);
    config.rules = vec![
        Rule {
            methods: vec!["POST".into(), "PUT".into()],
            headers: vec![HeaderCondition {
                name: "X-Canary".into(),
                values: vec!["yes*".into()],
            }],
            ..rule(1, "/*", "canary")
        },
        Rule {
            query: vec![QueryCondition {
                pairs: vec![
                    QueryPair {
                        key: Some("version".into()),
                        value: "2*".into(),
                    },
                    QueryPair {
                        key: None,
                        value: "beta channel".into(),
                    },
                ],
            }],
            ..rule(2, "/*", "v2")
        },
        Rule {
            source_ips: vec!["10.0.0.0/8".into(), "2001:db8::/32".into()],
            ..rule(3, "/*", "elsewhere")
        },
        Rule {
            source_ips: vec!["127.0.0.0/8".into()],
            ..rule(4, "/local*", "local")
        },
    ];
    config.default_action = DefaultAction {
        forward: Some("fallback".into()),
        ..DefaultAction::default()
    };
    let balancer = Balancer::start(&config);
    balancer.wait_all_healthy();
    let host = balancer.addr().to_string();
    let request = |method: &str, target: &str, headers: &str| {
        format!(
            "{method} {target} HTTP/1.1\r\nHost: {host}\r\n{headers}Content-Length: 0\r\n\
             Connection: close\r\n\r\n"
        )
    };
    let cases = [
        // Both conditions of rule 1: a POST or PUT with the header (case-insensitive value).
        (request("POST", "/", "X-Canary: YES-please\r\n"), "canary"),
        (request("PUT", "/x", "x-canary: yes\r\n"), "canary"),
        // One condition alone is not enough; methods are exact.
        (request("GET", "/", "X-Canary: yes\r\n"), "fallback"),
        (request("POST", "/", ""), "fallback"),
        (request("POST", "/", "X-Canary: no\r\n"), "fallback"),
        // Query pairs: either alternative, percent-decoded and case-insensitive, any position.
        (request("GET", "/?a=1&VERSION=2.1", ""), "v2"),
        (request("GET", "/?x=Beta+Channel", ""), "v2"),
        (request("GET", "/?x=beta%20channel", ""), "v2"),
        (request("GET", "/?version=3", ""), "fallback"),
        // The source is the connection's peer (loopback here), not what X-Forwarded-For says.
        (
            request("GET", "/local/a", "X-Forwarded-For: 10.1.2.3\r\n"),
            "local",
        ),
        (
            request("GET", "/", "X-Forwarded-For: 10.1.2.3\r\n"),
            "fallback",
        ),
    ];
    for (raw, group) in cases {
        assert_eq!(route_raw(&balancer, &raw), format!("i-{group}"), "{raw:?}");
    }
}

/// ALB's actions: a weighted forward splits requests by weight (counted by the targets, within
/// a binomial tolerance), a redirect sends curl to the rebuilt URL, a fixed response is
/// answered by the balancer with its status, type and body; all three counted in `/metrics`.
#[test]
fn weighted_forwards_redirects_and_fixed_responses_act_as_on_alb() {
    use proto::balancer_config::{FixedResponse, Forward, Redirect, WeightedGroup};

    use crate::harness::tls::curl;
    let names = ["blue", "green"];
    let (_agents, groups) = one_agent_groups(&names);
    let mut config = config(groups);
    config.rules = vec![
        Rule {
            forward: Some(Forward::Weighted(vec![
                WeightedGroup {
                    group: "blue".into(),
                    weight: 80,
                },
                WeightedGroup {
                    group: "green".into(),
                    weight: 20,
                },
            ])),
            ..rule(10, "/app*", "blue")
        },
        Rule {
            forward: None,
            redirect: Some(Redirect {
                status: 301,
                host: Some("new.#{host}".into()),
                path: Some("/v2/#{path}".into()),
                ..Redirect::default()
            }),
            ..rule(20, "/old/*", "blue")
        },
        Rule {
            forward: None,
            fixed_response: Some(FixedResponse {
                status: 503,
                content_type: Some("application/json".into()),
                body: Some(r#"{"maintenance":true}"#.into()),
            }),
            ..rule(30, "/down*", "blue")
        },
    ];
    let balancer = Balancer::start(&config);
    balancer.wait_all_healthy();
    let base = format!("http://{}", balancer.addr());

    let before = requests_by_target(&balancer);
    let n = 1000;
    for _ in 0..n {
        let got = curl(&[], &format!("{base}/app"));
        assert!(got.ok, "{}", got.stderr);
    }
    let after = requests_by_target(&balancer);
    let served =
        |id: &str| after.get(id).copied().unwrap_or(0) - before.get(id).copied().unwrap_or(0);
    let green = served("i-green");
    assert_eq!(served("i-blue") + green, n);
    // Binomial(1000, 0.2): mean 200, sd 12.6; five sd either way.
    assert!(
        (137..=263).contains(&green),
        "green got {green} of {n} at weight 20 of 100"
    );

    let moved = curl(
        &["-D", "-", "-o", "/dev/null"],
        &format!("{base}/old/items?id=3"),
    );
    assert_eq!(moved.status, "301", "{}", moved.body);
    let location = format!("location: http://new.{}/v2/old/items?id=3", balancer.addr());
    assert!(
        moved
            .body
            .to_ascii_lowercase()
            .contains(&location.to_ascii_lowercase()),
        "{location} in {}",
        moved.body
    );

    let down = curl(&["-D", "-"], &format!("{base}/down"));
    assert_eq!(down.status, "503");
    assert!(
        down.body
            .to_ascii_lowercase()
            .contains("content-type: application/json"),
        "{}",
        down.body
    );
    assert!(
        down.body.ends_with(r#"{"maintenance":true}"#),
        "{}",
        down.body
    );

    let metrics = balancer.metrics();
    for name in [
        "elb_http_redirect_count_total",
        "elb_http_fixed_response_count_total",
    ] {
        assert_eq!(metrics.sum(name, &[]), 1.0, "{name}: {}", metrics.text);
    }
}

/// A listener that redirects every request (ALB's HTTP-to-HTTPS listener): the rules are not
/// consulted, the `Location` keeps host, path and query.
#[test]
fn a_redirecting_listener_sends_every_request_to_https() {
    use proto::balancer_config::Redirect;

    use crate::harness::tls::curl;
    let (_agents, groups) = one_agent_groups(&["web"]);
    let mut config = config(groups);
    config.listeners[0].redirect = Some(Redirect {
        status: 301,
        protocol: Some("HTTPS".into()),
        port: Some("443".into()),
        ..Redirect::default()
    });
    let balancer = Balancer::start(&config);
    balancer.wait_all_healthy();
    let before = requests_by_target(&balancer);
    let got = curl(
        &[
            "-D",
            "-",
            "-o",
            "/dev/null",
            "-H",
            "Host: shop.example.test",
        ],
        &format!("http://{}/cart?item=3", balancer.addr()),
    );
    assert_eq!(got.status, "301", "{}", got.body);
    assert!(
        got.body
            .to_ascii_lowercase()
            .contains("location: https://shop.example.test/cart?item=3"),
        "{}",
        got.body
    );
    assert_eq!(requests_by_target(&balancer), before, "no target was asked");
}
