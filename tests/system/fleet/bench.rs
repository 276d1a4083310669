//! `elb bench`: exactly the requested load goes out, and the agents' counters agree with it.

use std::path::Path;
use std::time::Duration;

use crate::harness::{now_unix_ms, Agent, LocalProject};

/// Checks the files a bench writes: results.json (returned), one CSV row per request, and every
/// plot as a non-empty SVG and PNG.
pub(super) fn bench_files(out: &Path, requests: usize) -> serde_json::Value {
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("results.json")).expect("results.json"))
            .expect("results.json is JSON");
    assert_eq!(json["schema"], 1);
    let csv = std::fs::read_to_string(out.join("results.csv")).expect("results.csv");
    assert_eq!(
        csv.lines().count(),
        requests + 1,
        "a header and a row per request"
    );
    for plot in ["latency", "requests", "cpu"] {
        let svg = std::fs::read_to_string(out.join(format!("{plot}.svg"))).expect("svg");
        assert!(
            svg.starts_with("<svg") && svg.contains("</svg>"),
            "{plot}.svg"
        );
        let png = std::fs::read(out.join(format!("{plot}.png"))).expect("png");
        assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "{plot}.png");
    }
    json
}

#[test]
fn bench_through_a_target_sends_exactly_the_requests_and_the_agent_counts_each_once() {
    let agent = Agent::start(&[
        "--cluster",
        "cluster1",
        "--instance-id",
        "i-0bench",
        "--sample-interval",
        "100ms",
    ]);
    let before = agent.stats().requests.per_endpoint;
    let project = LocalProject::new();
    let out = project.elb.state_dir().join("bench-out");
    let target = format!("http://{}", agent.addr);
    let run = project.run(&[
        "bench",
        "--target",
        &target,
        "--no-fleet",
        "--cluster",
        "cluster1,cluster2",
        "--requests",
        "3000",
        "--concurrency",
        "16",
        "--out",
        out.to_str().expect("utf-8 path"),
    ]);
    let stdout = run.json();
    let done = now_unix_ms();
    let after = agent
        .stats_until(Duration::from_secs(10), |s| s.sampled_at_unix_ms > done)
        .requests
        .per_endpoint;

    let json = bench_files(&out, 6000);
    assert_eq!(stdout, json, "--output json prints results.json");
    for (i, path) in ["/cluster1", "/cluster2"].into_iter().enumerate() {
        let cluster = &json["clusters"][i];
        assert_eq!(cluster["path"], path);
        assert_eq!(cluster["requests"], 3000, "{cluster:#}");
        assert_eq!(cluster["errors"], 0, "{cluster:#}");
        assert_eq!(cluster["statuses"]["200"], 3000);
        let instances = cluster["instances"].as_array().expect("instances");
        assert_eq!(instances.len(), 1, "{cluster:#}");
        assert_eq!(instances[0]["instance"], "i-0bench");
        assert_eq!(instances[0]["served"], 3000);
        let counted = after[path] - before.get(path).copied().unwrap_or(0);
        assert_eq!(
            counted, 3000,
            "the agent counted every request to {path} once"
        );
        let l = &cluster["latency_ms"];
        let p = |k: &str| l[k].as_f64().expect("latency figure");
        assert!(
            0.0 < p("p50") && p("p50") <= p("p90") && p("p90") <= p("p99") && p("p99") <= p("max"),
            "{l}"
        );
    }
}

#[test]
fn bench_counts_agree_with_the_agents_counters_on_a_local_fleet() {
    let project = LocalProject::new();
    let fleet = [
        ("cluster1", project.launch("cluster1", "m4.large", 2)),
        ("cluster2", project.launch("cluster2", "t3.micro", 3)),
    ];
    let out = project.elb.state_dir().join("bench-out");
    let run = project.run(&[
        "bench",
        "--requests",
        "1000",
        "--concurrency",
        "50",
        "--out",
        out.to_str().expect("utf-8 path"),
    ]);
    let stdout = run.json();
    let json = bench_files(&out, 2000);
    assert_eq!(stdout, json);
    for (i, (cluster, launched)) in fleet.iter().enumerate() {
        let result = &json["clusters"][i];
        assert_eq!(result["cluster"], *cluster);
        assert_eq!(result["requests"], 1000);
        assert_eq!(result["errors"], 0, "{result:#}");
        assert_eq!(
            result["agents_counted"], 1000,
            "agents counted = requests sent: {result:#}"
        );
        let instances = result["instances"].as_array().expect("instances");
        assert_eq!(instances.len(), launched.len(), "{result:#}");
        let ids: Vec<&str> = launched.iter().filter_map(|i| i["id"].as_str()).collect();
        for row in instances {
            let id = row["instance"].as_str().expect("instance id");
            assert!(ids.contains(&id), "{id} is one of {ids:?}");
            assert!(
                row["served"].as_u64().expect("served") > 0,
                "round-robin reaches {id}"
            );
            assert_eq!(row["served"], row["agent_counted"], "{row:#}");
            assert!(row["cpu_percent_before"].is_number() && row["cpu_percent_after"].is_number());
        }
    }
}
