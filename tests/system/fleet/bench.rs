//! `elb bench`: exactly the requested load goes out, the agents' counters agree with it, and
//! the instances' CPU figures are their cgroups'.

use std::path::Path;
use std::time::Duration;

use crate::harness::{now_unix_ms, Agent, LocalProject};

/// Checks the files a bench writes: results.json (returned), one CSV row per request, a
/// timeline whose per-second counts sum to each cluster's requests, and every plot as a
/// non-empty SVG and PNG.
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
    for cluster in json["clusters"].as_array().expect("clusters") {
        let seconds: u64 = cluster["timeline"]
            .as_array()
            .expect("a timeline")
            .iter()
            .flat_map(|s| s["client"].as_array().expect("client bins"))
            .map(|b| b["requests"].as_u64().expect("requests"))
            .sum();
        assert_eq!(
            cluster["requests"].as_u64(),
            Some(seconds),
            "the per-second counts sum to the requests sent"
        );
    }
    for plot in ["latency", "percentiles", "requests", "cpu", "timeline"] {
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

/// Under the same load, a t3.micro (0.2 cores of quota) runs at its quota ceiling and is
/// throttled, an m4.large (2 cores: this whole machine) is not; once idle, both read near zero.
/// The figures are the agents' cgroups', read before, during and after the run.
#[test]
fn a_micro_runs_at_its_quota_and_is_throttled_where_a_large_one_is_not() {
    let project = LocalProject::new();
    // The agent answers only the seed's paths, /cluster1 and /cluster2.
    project.launch("cluster2", "t3.micro", 1);
    project.launch("cluster1", "m4.large", 1);
    assert!(
        project.records().iter().all(|r| r.cgroup.is_some()),
        "CPU is limited on these machines"
    );
    let out = project.elb.state_dir().join("bench-out");
    let requests = 20_000;
    let run = project.run(&[
        "bench",
        "--cluster",
        "cluster2,cluster1",
        "--requests",
        &requests.to_string(),
        "--concurrency",
        "16",
        "--out",
        out.to_str().expect("utf-8 path"),
    ]);
    let json = run.json();
    bench_files(&out, 2 * requests);
    let instance = |i: usize| &json["clusters"][i]["instances"][0];
    let figure = |i: usize, key: &str| {
        instance(i)[key]
            .as_f64()
            .unwrap_or_else(|| panic!("{key} of {:#}", instance(i)))
    };
    for i in 0..2 {
        let source = instance(i)["cpu_source"].as_str().expect("a source");
        assert!(source.starts_with("cgroup_"), "{:#}", instance(i));
    }
    assert_eq!(instance(0)["instance_type"], "t3.micro");
    assert_eq!(figure(0, "cpu_capacity_cores"), 0.2);
    assert_eq!(figure(1, "cpu_capacity_cores"), 2.0);
    // Near the ceiling: the run's edges and the agents' idle seconds around it pull it down.
    let micro_cpu = figure(0, "cpu_percent");
    assert!(
        (60.0..=130.0).contains(&micro_cpu),
        "micro CPU {micro_cpu}%"
    );
    assert!(figure(0, "throttled_percent") > 0.0, "{:#}", instance(0));
    assert!(figure(1, "throttled_percent") < 2.0, "{:#}", instance(1));

    // The micro's run lasts seconds: its agent's intervals show it pinned at its quota.
    assert_eq!(json["clusters"][0]["errors"], 0);
    let series = &json["clusters"][0]["timeline"][0];
    let busiest = series["agent"]
        .as_array()
        .expect("agent intervals")
        .iter()
        .filter_map(|i| i["cpu_percent"].as_f64())
        .fold(0.0, f64::max);
    assert!(busiest > 60.0, "{series:#}");

    // Idle again: the agents' last sample interval shows next to nothing.
    std::thread::sleep(Duration::from_millis(2500));
    let stats = project.run(&["stats"]).json();
    for row in stats["instances"].as_array().expect("instances") {
        let cpu = row["cpu_percent"].as_f64().expect("cpu_percent");
        assert!(cpu < 20.0, "idle: {row:#}");
        assert_eq!(row["throttled_percent"], 0.0, "{row:#}");
        assert!(row["cpu_source"]
            .as_str()
            .expect("source")
            .starts_with("cgroup_"));
    }
}

/// Open loop: `--profile` sends each step's rate for its duration whatever the server does,
/// the steps set the number of requests, and the timeline shows the rate change.
#[test]
fn an_open_loop_profile_sends_each_steps_rate() {
    let agent = Agent::start(&["--cluster", "cluster1", "--instance-id", "i-0open"]);
    let project = LocalProject::new();
    let out = project.elb.state_dir().join("open-out");
    let target = format!("http://{}", agent.addr);
    let args = [
        "bench",
        "--target",
        &target,
        "--no-fleet",
        "--cluster",
        "cluster1",
        "--concurrency",
        "8",
        "--profile",
        "100:1s,300:1s",
        "--out",
        out.to_str().expect("utf-8 path"),
    ];
    project.run(&args);
    let json = bench_files(&out, 400);
    let cluster = &json["clusters"][0];
    assert_eq!(cluster["requests"], 400, "{cluster:#}");
    assert_eq!(cluster["errors"], 0, "{cluster:#}");
    let elapsed = cluster["elapsed_secs"].as_f64().expect("elapsed");
    assert!(
        (1.9..3.0).contains(&elapsed),
        "two seconds of load: {elapsed}"
    );
    let per_second: Vec<u64> = cluster["timeline"][0]["client"]
        .as_array()
        .expect("client bins")
        .iter()
        .map(|b| b["requests"].as_u64().unwrap())
        .collect();
    assert!(
        (70..=130).contains(&per_second[0]) && (250..=330).contains(&per_second[1]),
        "100 then 300 requests a second: {per_second:?}"
    );

    project
        .run(&[&args[..], &["--requests", "10"]].concat())
        .expect_code(2)
        .expect_failure_mentioning(&["--requests", "--profile"]);
    let mut bad = args.to_vec();
    bad[9] = "100";
    project
        .run(&bad)
        .expect_code(2)
        .expect_failure_mentioning(&["RATE:DURATION"]);
}
