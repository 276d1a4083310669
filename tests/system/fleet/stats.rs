//! `elb stats` over a local fleet: every agent answers; a killed one stays in the table as down
//! with its reason, the others keep answering, and the exit code says so.

use std::time::{Duration, Instant};

use super::local::LocalFleet;

#[test]
#[ignore = "needs the local provider (branch local)"]
fn stats_shows_a_killed_agent_as_down_and_keeps_the_rest() {
    let fleet = LocalFleet::launch(&[("cluster1", 2), ("cluster2", 2)]);

    let all_up = fleet
        .elb
        .run(&["--local", "stats", "--timeout-ms", "1000"])
        .json();
    let rows = all_up["instances"].as_array().expect("instances");
    assert_eq!(rows.len(), 4, "{all_up:#}");
    assert!(rows.iter().all(|r| r["status"] == "up"), "{all_up:#}");
    let clusters = all_up["clusters"].as_array().expect("clusters");
    assert_eq!(clusters.len(), 2);
    assert!(
        clusters.iter().all(|c| c["up"] == 2 && c["instances"] == 2),
        "{all_up:#}"
    );

    let victim = &fleet.ids("cluster1")[0];
    fleet.kill_agent(victim);
    let started = Instant::now();
    let one_down = fleet.elb.run(&["--local", "stats", "--timeout-ms", "1000"]);
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
        if row["id"] == victim.as_str() {
            assert_eq!(row["status"], "down", "{row:#}");
            assert_eq!(row["reason"], "connection refused", "{row:#}");
            assert!(row["cpu_percent"].is_null());
        } else {
            assert_eq!(row["status"], "up", "{row:#}");
            assert!(row["requests"].as_u64().expect("requests") >= 1, "{row:#}");
        }
    }
    let cluster1 = &json["clusters"][0];
    assert_eq!(
        (cluster1["cluster"].as_str(), cluster1["up"].as_u64()),
        (Some("cluster1"), Some(1))
    );
}
