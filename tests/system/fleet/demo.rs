//! `elb demo`: the whole experiment on this machine, and nothing left behind, finished or
//! interrupted.

use std::time::{Duration, Instant};

use super::bench::bench_files;
use crate::harness::LocalProject;

/// Asserts that the project has no agent process, no recorded instance and no cgroup left.
fn nothing_left(project: &LocalProject) {
    assert!(project.processes().is_empty(), "agents still running");
    assert!(project.records().is_empty(), "instances still recorded");
    assert!(!project.cgroup_dir().exists(), "cgroups left behind");
}

#[test]
fn the_demo_launches_both_clusters_loads_them_reports_and_removes_everything() {
    let project = LocalProject::new();
    let out = project.elb.state_dir().join("demo-out");
    let run = project.run(&[
        "demo",
        "--requests",
        "2000",
        "--concurrency",
        "16",
        "--autoscale-step-secs",
        "8",
        "--out",
        out.to_str().expect("utf-8 path"),
    ]);
    let stdout = run.json();
    let json = bench_files(&out, 4000);
    assert_eq!(stdout, json, "--output json prints results.json");
    let clusters = json["clusters"].as_array().expect("clusters");
    let shape: Vec<(&str, usize)> = clusters
        .iter()
        .map(|c| {
            let instances = c["instances"].as_array().expect("instances").len();
            (c["cluster"].as_str().expect("name"), instances)
        })
        .collect();
    assert_eq!(
        shape,
        [("cluster1", 2), ("cluster2", 3)],
        "2 x m4.large, 3 x t3.micro"
    );
    for cluster in clusters {
        assert_eq!(cluster["requests"], 2000, "{cluster:#}");
        assert_eq!(cluster["errors"], 0, "{cluster:#}");
        assert_eq!(
            cluster["agents_counted"], 2000,
            "the agents counted every request"
        );
        for instance in cluster["instances"].as_array().expect("instances") {
            assert!(instance["served"].as_u64() > Some(0), "{instance:#}");
        }
    }
    let stderr = &run.stderr;
    assert!(
        stderr.contains("report:") && stderr.contains(out.to_str().expect("utf-8")),
        "the demo says where the report is:\n{stderr}"
    );

    // The same clusters through elb's balancer, with the seed's rules.
    let through = bench_files(&out.join("balancer"), 4000);
    for cluster in through["clusters"].as_array().expect("clusters") {
        assert_eq!(cluster["errors"], 0, "{cluster:#}");
        assert_eq!(cluster["agents_counted"], 2000, "{cluster:#}");
    }
    // The algorithms on one mixed group of all five.
    let comparison: serde_json::Value = serde_json::from_slice(
        &std::fs::read(out.join("algorithms/comparison.json")).expect("comparison.json"),
    )
    .expect("JSON");
    let runs: Vec<&str> = comparison["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| r["via"].as_str().expect("a label"))
        .collect();
    assert_eq!(
        runs,
        [
            "round_robin",
            "least_outstanding_requests",
            "p2c_peak_ewma",
            "agent_load",
            "lowest_latency"
        ]
    );
    for row in comparison["rows"].as_array().expect("rows") {
        assert_eq!(row["errors"], 0, "{row:#}");
        assert_eq!(
            row["shares"].as_array().expect("shares").len(),
            5,
            "{row:#}"
        );
        let run = &out
            .join("algorithms")
            .join(row["via"].as_str().expect("label"));
        // The costly endpoint, counted by the agents as `/work` whatever its query.
        let results = bench_files(run, 2000);
        let cluster = &results["clusters"][0];
        assert_eq!(cluster["path"], "/work?us=200", "{cluster:#}");
        assert_eq!(cluster["agents_counted"], 2000, "{cluster:#}");
        assert_eq!(cluster["balancer_counted"], 2000, "{cluster:#}");
        let served: u64 = cluster["instances"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["served"].as_u64().unwrap())
            .sum();
        assert_eq!(served, 2000, "the client sees who served each: {cluster:#}");
    }
    assert!(out.join("algorithms/comparison.png").is_file());

    // The autoscaling part: a micro cluster under 30 -> 250 -> 30 requests/s, scaled from 1.
    let scaling: serde_json::Value = serde_json::from_slice(
        &std::fs::read(out.join("autoscaling/scaling.json")).expect("scaling.json"),
    )
    .expect("JSON");
    let seconds = scaling["per_second"].as_array().expect("per second");
    let failed: u64 = seconds.iter().map(|s| s["errors"].as_u64().unwrap()).sum();
    if failed > 0 {
        let run: serde_json::Value = serde_json::from_slice(
            &std::fs::read(out.join("autoscaling/results.json")).expect("results.json"),
        )
        .expect("JSON");
        let cluster = &run["clusters"][0];
        panic!(
            "{failed} request(s) failed while the cluster changed: reasons {}, statuses {}, \
             seconds {}, events {}",
            cluster["error_reasons"],
            cluster["statuses"],
            serde_json::Value::Array(
                seconds
                    .iter()
                    .filter(|s| s["errors"] != 0)
                    .cloned()
                    .collect()
            ),
            scaling["events"]
        );
    }
    let most = seconds
        .iter()
        .filter_map(|s| s["instances"].as_u64())
        .max()
        .unwrap_or(0);
    let events = scaling["events"].as_array().expect("events");
    assert!(
        events.iter().any(|e| e["action"] == "scale_out"),
        "it scaled out under the step: {events:?}"
    );
    assert!(most <= 4, "never above the maximum: {most}");
    assert!(out.join("autoscaling/scaling.png").is_file());
    nothing_left(&project);
}

#[test]
fn the_demo_with_keep_leaves_both_clusters_running() {
    let project = LocalProject::new();
    let out = project.elb.state_dir().join("demo-out");
    project
        .run(&[
            "demo",
            "--keep",
            "--no-autoscale",
            "--requests",
            "200",
            "--out",
            out.to_str().expect("utf-8"),
        ])
        .expect_code(0);
    let listed = project.ls();
    assert_eq!(listed.len(), 6, "five agents and the balancer: {listed:#?}");
    assert_eq!(
        listed.iter().filter(|i| i["role"] == "balancer").count(),
        1,
        "{listed:#?}"
    );
    assert!(
        listed.iter().all(|i| i["state"] == "running"),
        "{listed:#?}"
    );
    project.run(&["kill", "--yes"]).expect_code(0);
    nothing_left(&project);
}

#[test]
fn ctrl_c_during_the_demo_removes_everything_it_started() {
    let project = LocalProject::new();
    let out = project.elb.state_dir().join("demo-out");
    // Far more requests than the test waits for: the interruption lands during the load.
    let demo = project.elb.spawn(&[
        "demo",
        "--requests",
        "5000000",
        "--concurrency",
        "8",
        "--out",
        out.to_str().expect("utf-8"),
    ]);
    let deadline = Instant::now() + Duration::from_secs(60);
    while project.records().len() < 5 {
        assert!(
            Instant::now() < deadline,
            "the demo never launched its 5 agents"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(500));
    demo.interrupt();
    let run = demo.wait(Duration::from_secs(60));
    run.expect_code(130)
        .expect_failure_mentioning(&["interrupted", "stopped"]);
    nothing_left(&project);
}

#[test]
fn the_demo_refuses_a_project_that_already_has_instances() {
    let project = LocalProject::new();
    let launched = project.launch("mine", "t3.small", 1);
    project
        .run(&["demo", "--requests", "10"])
        .expect_code(2)
        .expect_failure_mentioning(&["already has 1 local instance", "--project"]);
    let listed = project.ls();
    assert_eq!(listed.len(), 1, "the demo touched nothing: {listed:#?}");
    assert_eq!(listed[0]["id"], launched[0]["id"]);
    assert_eq!(listed[0]["state"], "running");
}
