//! Every endpoint's shape.

use prometheus_parse::{Scrape, Value};

use crate::harness::Agent;

#[test]
fn seed_endpoints_keep_their_answers_and_add_identity_and_stats() {
    let agent = Agent::start(&[
        "--cluster",
        "cluster2",
        "--instance-id",
        "i-0123456789abcdef0",
        "--instance-type",
        "t3.micro",
        "--az",
        "ca-central-1b",
    ]);
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .expect("hostname")
        .trim()
        .to_string();
    for (path, message) in [
        ("/", "Instance is responding"),
        ("/cluster1", "Cluster 1 (Large) responding"),
        ("/cluster2", "Cluster 2 (Micro) responding"),
    ] {
        let response = agent.get(path);
        assert_eq!(response.status, 200, "{path}");
        assert_eq!(response.header("content-type"), Some("application/json"));
        let body = response.json();
        assert_eq!(body["message"], message);
        assert_eq!(
            body["instance_id"],
            hostname.as_str(),
            "the seed's key carries the hostname"
        );
        assert_eq!(body["hostname"], hostname.as_str());
        assert_eq!(body["cluster"], "cluster2");
        assert_eq!(body["ec2_instance_id"], "i-0123456789abcdef0");
        assert_eq!(body["ec2_instance_type"], "t3.micro");
        assert_eq!(body["availability_zone"], "ca-central-1b");
        assert_eq!(body["schema"], proto::SCHEMA);
        let answer: proto::InstanceAnswer =
            serde_json::from_value(body).expect("an InstanceAnswer");
        assert_eq!(answer.stats.hostname, hostname);
    }
}

#[test]
fn unknown_instance_facts_are_left_out() {
    let agent = Agent::start(&[]);
    let body = agent.get("/").json();
    for key in [
        "cluster",
        "ec2_instance_id",
        "ec2_instance_type",
        "availability_zone",
    ] {
        assert!(body.get(key).is_none(), "{key} should be absent: {body}");
    }
}

#[test]
fn stats_is_a_full_snapshot() {
    let agent = Agent::start(&["--sample-interval", "100ms"]);
    let first = agent.stats();
    let stats = agent.stats_until(std::time::Duration::from_secs(10), |s| {
        s.sampled_at_unix_ms > first.sampled_at_unix_ms
    });
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    assert_eq!(stats.schema, proto::SCHEMA);
    assert_eq!(stats.agent_version, env!("CARGO_PKG_VERSION"));
    assert_eq!(stats.sample_interval_ms, 100);
    assert!(stats.uptime_secs > 0.0);
    assert!(stats.started_at_unix_ms <= stats.sampled_at_unix_ms);
    assert!((0.0..=100.0).contains(&stats.cpu.busy_percent));
    assert!(stats.cpu.per_core_busy_percent.len() >= cores);
    assert!(stats.load.one >= 0.0 && stats.load.fifteen >= 0.0);
    assert!(stats.memory.total_bytes > 0);
    assert_eq!(
        stats.memory.used_bytes + stats.memory.available_bytes,
        stats.memory.total_bytes
    );
    assert!(stats.memory.swap_used_bytes <= stats.memory.swap_total_bytes);
    assert!(stats.network.rx_bytes_per_sec >= 0.0);
    assert!(stats.process.rss_bytes > 0 && stats.process.rss_bytes < 64 << 20);
    // Only this test's /stats polls and the harness's /healthz so far: monitoring, not load.
    assert_eq!(stats.requests.total, 0, "{:?}", stats.requests);
    assert!(stats.requests.monitoring >= 1);
    assert_eq!(stats.requests.latency.window_secs, 10.0);
}

#[test]
fn healthz_is_tiny_and_ok() {
    let agent = Agent::start(&[]);
    let response = agent.get("/healthz");
    assert_eq!(response.status, 200);
    assert!(response.body.len() <= 32, "{}", response.text());
    assert_eq!(response.json()["status"], "ok");
}

#[test]
fn metrics_parse_as_prometheus_text_with_node_exporter_names() {
    let agent = Agent::start(&["--cluster", "cluster1", "--sample-interval", "100ms"]);
    agent.get("/cluster1");
    let before = agent.stats();
    agent.stats_until(std::time::Duration::from_secs(10), |s| {
        s.sampled_at_unix_ms > before.sampled_at_unix_ms
    });
    let response = agent.get("/metrics");
    assert_eq!(response.status, 200);
    assert_eq!(
        response.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let text = response.text();
    let scrape = Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).expect("parses");

    // The parser skips what it cannot read: every sample line must have become a sample.
    let sample_lines = text
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .count();
    let parsed: usize = scrape
        .samples
        .iter()
        .map(|s| match &s.value {
            Value::Summary(quantiles) => quantiles.len(),
            _ => 1,
        })
        .sum();
    assert_eq!(parsed, sample_lines, "some lines did not parse:\n{text}");

    let value = |metric: &str, label: Option<(&str, &str)>| -> f64 {
        let sample = scrape
            .samples
            .iter()
            .find(|s| s.metric == metric && label.is_none_or(|(k, v)| s.labels.get(k) == Some(v)))
            .unwrap_or_else(|| panic!("no {metric} {label:?} in\n{text}"));
        match sample.value {
            Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => v,
            ref other => panic!("{metric} is {other:?}"),
        }
    };
    assert!(matches!(
        scrape
            .samples
            .iter()
            .find(|s| s.metric == "node_load1")
            .map(|s| &s.value),
        Some(Value::Gauge(_))
    ));
    for metric in [
        "node_load5",
        "node_load15",
        "node_memory_MemTotal_bytes",
        "node_memory_MemAvailable_bytes",
    ] {
        assert!(value(metric, None) >= 0.0);
    }
    assert!(value("node_cpu_seconds_total", Some(("mode", "idle"))) > 0.0);
    assert!(value("process_resident_memory_bytes", None) > 0.0);
    assert!(value("elb_agent_requests_total", Some(("endpoint", "/cluster1"))) >= 1.0);
    assert_eq!(value("elb_agent_info", Some(("cluster", "cluster1"))), 1.0);
    assert!(value("elb_agent_request_duration_seconds_count", None) >= 1.0);
    assert!(value("elb_agent_instance_cpu_capacity_cores", None) > 0.0);
    assert!(value("elb_agent_instance_cpu_usage_seconds_total", None) > 0.0);
    assert!(value("elb_agent_instance_memory_limit_bytes", None) > 0.0);
    assert_eq!(
        value("elb_agent_instance_info", Some(("cpu_source", "host"))),
        1.0,
        "an agent outside any CPU-limited group is its host"
    );
    let summary = scrape
        .samples
        .iter()
        .find(|s| s.metric == "elb_agent_request_duration_seconds")
        .expect("latency summary");
    match &summary.value {
        Value::Summary(q) => assert_eq!(q.len(), 2, "p50 and p99"),
        other => panic!("latency is {other:?}"),
    }
    for sample in &scrape.samples {
        let family = sample
            .metric
            .trim_end_matches("_sum")
            .trim_end_matches("_count");
        assert!(
            scrape.docs.contains_key(family) || scrape.docs.contains_key(&sample.metric),
            "{} has no HELP",
            sample.metric
        );
    }
}
