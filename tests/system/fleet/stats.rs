//! `elb stats` over a local fleet: every agent answers; a killed one stays in the table as down
//! with its reason, the others keep answering, and the exit code says so.

use std::time::{Duration, Instant};

use crate::harness::local::is_alive;
use crate::harness::LocalProject;

#[test]
fn stats_shows_a_killed_agent_as_down_and_keeps_the_rest() {
    let project = LocalProject::new();
    let cluster1 = project.launch("cluster1", "m4.large", 2);
    project.launch("cluster2", "t3.micro", 2);

    let all_up = project.run(&["stats", "--timeout-ms", "1000"]).json();
    let rows = all_up["instances"].as_array().expect("instances");
    assert_eq!(rows.len(), 4, "{all_up:#}");
    assert!(rows.iter().all(|r| r["status"] == "up"), "{all_up:#}");
    let clusters = all_up["clusters"].as_array().expect("clusters");
    assert_eq!(clusters.len(), 2);
    assert!(
        clusters.iter().all(|c| c["up"] == 2 && c["instances"] == 2),
        "{all_up:#}"
    );

    // Killed as a crash would, behind elb's back: the local state still lists it.
    let victim = cluster1[0]["id"].as_str().expect("instance id");
    let record = project
        .records()
        .into_iter()
        .find(|r| r.id == victim)
        .expect("recorded");
    // SAFETY: kill(2) has no memory-safety preconditions; the pid is an agent we started.
    assert_eq!(
        unsafe { libc::kill(record.pid as libc::pid_t, libc::SIGKILL) },
        0
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while is_alive(record.pid) {
        assert!(Instant::now() < deadline, "the agent survived SIGKILL");
        std::thread::sleep(Duration::from_millis(10));
    }

    let started = Instant::now();
    let one_down = project.run(&["stats", "--timeout-ms", "1000"]);
    one_down.expect_code(1);
    assert!(started.elapsed() < Duration::from_secs(5), "{one_down}");
    assert!(
        one_down.stderr.contains("1 of 4 agents did not answer"),
        "{one_down}"
    );
    let json: serde_json::Value = serde_json::from_str(&one_down.stdout).expect("JSON on stdout");
    let rows = json["instances"].as_array().expect("instances");
    assert_eq!(rows.len(), 4, "the dead agent keeps its row: {json:#}");
    for row in rows {
        if row["id"] == victim {
            assert_eq!(row["status"], "down", "{row:#}");
            assert!(row["cpu_percent"].is_null(), "{row:#}");
            // The local provider reports the instance stopped once it sees the process gone;
            // while the agent's last threads exit, its connections are refused or reset.
            let reason = row["reason"].as_str().expect("a reason");
            assert!(
                ["instance stopped", "connection refused", "connection reset"].contains(&reason),
                "{row:#}"
            );
        } else {
            assert_eq!(row["status"], "up", "{row:#}");
            assert!(row["cpu_percent"].is_number(), "{row:#}");
            assert!(row["requests"].is_u64(), "{row:#}");
        }
    }
    let cluster1 = &json["clusters"][0];
    assert_eq!(cluster1["cluster"], "cluster1");
    assert_eq!(cluster1["up"], 1, "{cluster1:#}");
}

/// Watching is not load: an instance polled by `elb stats` (and the launch's `/healthz`
/// checks) but sent no request reads 0 requests and 0 req/s; the polls are counted apart.
#[test]
fn an_idle_watched_instance_reads_no_requests() {
    let project = LocalProject::new();
    project.launch("cluster1", "m4.large", 1);
    for _ in 0..3 {
        project.run(&["stats"]).expect_code(0);
    }
    std::thread::sleep(std::time::Duration::from_millis(1200));
    let view = project.run(&["stats"]).json();
    let row = &view["instances"][0];
    assert_eq!(row["requests"], 0, "{view:#}");
    assert_eq!(row["requests_per_sec"], 0.0, "{view:#}");
}
