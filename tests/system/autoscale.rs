//! `elb autoscale` with the local provider: the real `elb` loop scaling real agents (each held
//! to its instance type's CPU by a cgroup) behind a real `elb-balancer`, under load from real
//! sockets. Short intervals keep each test within a minute.

use std::time::{Duration, Instant};

use crate::balance::{balancer_addr, states};
use crate::harness::load::{failures, Load, Outcome};
use crate::harness::local::{ids, is_alive};
use crate::harness::{ElbOutput, LocalProject, Running};

/// `balance up` for one cluster `c1` behind `/*`, with fast health checks.
fn balance_up(project: &LocalProject) {
    project.run(&[
        "balance",
        "up",
        "--rule",
        "/*=c1",
        "--algorithm",
        "least_outstanding_requests",
        "--health-interval-ms",
        "200",
        "--wait",
        "20",
    ]);
}

/// The loop's flags for a quick test: 1 s ticks, 2 s warm-up.
fn quick(extra: &[&'static str]) -> Vec<&'static str> {
    let mut args = vec![
        "autoscale",
        "--cluster",
        "c1",
        "--interval",
        "1s",
        "--warmup",
        "2s",
        "--drain-timeout",
        "10s",
        "--grace",
        "5",
    ];
    args.extend_from_slice(extra);
    args
}

/// The ticks a loop printed (`--output json`: one object per line).
pub(crate) fn ticks(out: &ElbOutput) -> Vec<serde_json::Value> {
    out.stdout
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// A project whose cluster `c1` (`count` x `instance_type`) is behind elb's balancer and
/// scaled by a quick loop with `flags`, under `clients` keep-alive clients sending `GET path`;
/// returns it with the cluster's first ids, the loop and the load.
fn scaled_under_load(
    (instance_type, count): (&str, u32),
    flags: &[&'static str],
    (path, clients): (&str, usize),
) -> (LocalProject, Vec<String>, Running, Load) {
    let project = LocalProject::new();
    let first = ids(&project.launch("c1", instance_type, count));
    balance_up(&project);
    let addr = balancer_addr(&project);
    let looping = project.elb.spawn(&quick(flags));
    let load = Load::start(addr, path, clients);
    (project, first, looping, load)
}

/// Fails with examples unless every request of `outcomes` was answered with a 2xx.
fn assert_all_answered(outcomes: &[Outcome]) {
    let bad = failures(outcomes);
    assert!(
        bad.is_empty(),
        "{} of {} requests failed, e.g. {:?}",
        bad.len(),
        outcomes.len(),
        &bad[..bad.len().min(5)]
    );
}

/// Waits until the project records `check`-satisfying instances, or fails saying `what`.
fn until_records(project: &LocalProject, what: &str, check: impl Fn(usize) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !check(project.agents().len()) {
        assert!(
            Instant::now() < deadline,
            "{what}: {} instance(s) recorded",
            project.agents().len()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Under a load several times one t3.micro's capacity the loop adds instances (never above
/// --max), the balancer takes each one in (initial, then healthy); when the load stops it
/// removes them again after the stabilization window, draining them through the balancer; no
/// request fails on the way, and the kill switch leaves nothing.
#[test]
fn a_cluster_scales_out_under_load_and_back_in_without_a_failed_request() {
    // 3 ms of CPU per request at 0.2 of a core: about 66 requests/s fill one instance.
    let flags = [
        "--max",
        "3",
        "--max-step",
        "1",
        "--target-cpu",
        "50",
        "--scale-in-stabilization",
        "4s",
    ];
    let (project, first, looping, load) =
        scaled_under_load(("t3.micro", 1), &flags, ("/work?us=3000", 6));
    until_records(&project, "scaled out to 3", |n| n == 3);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let now = states(&project);
        if now.len() == 3 && now.iter().all(|(_, _, state)| state == "healthy") {
            break;
        }
        assert!(Instant::now() < deadline, "every target healthy: {now:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let outcomes = load.stop();
    until_records(&project, "scaled back in to 1", |n| n == 1);
    looping.interrupt();
    let out = looping.wait(Duration::from_secs(30));
    assert_eq!(out.code, Some(0), "{out}");

    assert_all_answered(&outcomes);
    let ticks = ticks(&out);
    assert!(ticks
        .iter()
        .all(|t| t["current"].as_u64() <= Some(3) && t["desired"].as_u64() <= Some(3)));
    let out_ticks: Vec<_> = ticks
        .iter()
        .filter(|t| t["action"] == "scale_out")
        .collect();
    assert!(
        out_ticks.len() >= 2,
        "one instance per tick (--max-step 1): {ticks:?}"
    );
    assert!(out_ticks
        .iter()
        .all(|t| t["launched"].as_array().unwrap().len() == 1));
    let scale_in = ticks
        .iter()
        .find(|t| t["action"] == "scale_in")
        .unwrap_or_else(|| panic!("a scale-in: {ticks:?}"));
    // The newest go first; the instance the cluster started with stays.
    let removed = scale_in["removed"].as_array().unwrap();
    assert!(
        !removed.iter().any(|r| r == first[0].as_str()),
        "{scale_in}"
    );
    let left: Vec<String> = project.agents().into_iter().map(|r| r.id).collect();
    assert_eq!(left, first, "the first instance stays");
    assert!(out.stderr.contains("drained, then terminated"), "{out}");

    // `ls` shows the loop's last decision; the kill switch forgets it with the rest.
    let ls = project
        .elb
        .command(&["ls"])
        .arg("--output")
        .arg("table")
        .output()
        .unwrap();
    let ls = String::from_utf8_lossy(&ls.stdout);
    assert!(ls.contains("autoscale c1: min 1 max 3"), "{ls}");
    project.run(&["kill", "--yes"]);
    assert!(project.agents().is_empty());
    assert!(project.processes().is_empty());
    assert!(!project
        .elb
        .state_dir()
        .join(project.elb.project())
        .join("autoscale/c1.json")
        .exists());
}

/// An agent SIGKILLed under load is replaced within --unhealthy-ticks ticks, and the
/// balancer's retries keep every request answered meanwhile.
#[test]
fn a_killed_instance_is_replaced_without_a_failed_request() {
    let flags = [
        "--min",
        "2",
        "--max",
        "2",
        "--target-cpu",
        "50",
        "--unhealthy-ticks",
        "2",
    ];
    let (project, _, looping, load) =
        scaled_under_load(("m4.large", 2), &flags, ("/work?us=200", 4));
    load.wait_for_more(50, Duration::from_secs(10));
    let victim = project.agents()[0].clone();
    // SAFETY: kill(2) on an agent this test's project started.
    unsafe { libc::kill(victim.pid as libc::pid_t, libc::SIGKILL) };
    let killed_at = Instant::now();
    let deadline = killed_at + Duration::from_secs(40);
    loop {
        let records = project.agents();
        let replaced = records.len() == 2 && records.iter().all(|r| r.id != victim.id);
        let healthy = states(&project)
            .iter()
            .filter(|(_, _, s)| s == "healthy")
            .count();
        if replaced && healthy == 2 {
            break;
        }
        assert!(Instant::now() < deadline, "replaced: {records:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let replaced_in = killed_at.elapsed();
    load.wait_for_more(50, Duration::from_secs(10));
    let outcomes = load.stop();
    looping.interrupt();
    let out = looping.wait(Duration::from_secs(30));
    assert_all_answered(&outcomes);
    let ticks = ticks(&out);
    let replace = ticks
        .iter()
        .find(|t| t["action"] == "replace")
        .unwrap_or_else(|| panic!("a replacement: {ticks:?}"));
    assert_eq!(replace["removed"][0], victim.id.as_str(), "{replace}");
    assert!(
        replace["reason"]
            .as_str()
            .unwrap()
            .contains("no longer running"),
        "{replace}"
    );
    assert!(
        replaced_in < Duration::from_secs(20),
        "replaced after {replaced_in:?}"
    );
    assert!(!is_alive(victim.pid));
}

/// A loop stopped and started again still knows the instance it launched is warming up, and
/// does not launch it a second time; a second loop on the same cluster is refused.
#[test]
fn a_restarted_loop_resumes_without_a_double_launch() {
    let project = LocalProject::new();
    project.launch("c1", "m4.large", 1);
    let args = [
        "autoscale",
        "--cluster",
        "c1",
        "--min",
        "2",
        "--max",
        "4",
        "--target-cpu",
        "50",
        "--interval",
        "1s",
        "--warmup",
        "5m",
    ];
    let first = project.elb.spawn(&args);
    until_records(&project, "raised to --min 2", |n| n == 2);
    // A second loop on the same cluster is refused while the first runs.
    project
        .run(&args)
        .expect_code(2)
        .expect_failure_mentioning(&["another `elb autoscale --cluster c1`", "pid"]);
    first.interrupt();
    let out = first.wait(Duration::from_secs(30));
    let launched: Vec<String> = ticks(&out)
        .iter()
        .flat_map(|t| t["launched"].as_array().unwrap().clone())
        .map(|id| id.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(launched.len(), 1, "{out}");

    let second = project.elb.spawn(&args);
    std::thread::sleep(Duration::from_secs(3));
    second.interrupt();
    let out = second.wait(Duration::from_secs(30));
    let resumed = ticks(&out);
    assert!(!resumed.is_empty(), "{out}");
    for tick in &resumed {
        assert_eq!(tick["current"], 2, "{tick}");
        assert_eq!(tick["warming"], 1, "the restarted loop still knows: {tick}");
        assert!(tick["launched"].as_array().unwrap().is_empty(), "{tick}");
    }
    assert_eq!(project.agents().len(), 2);

    // Without its state file, the instance's LaunchedAt tag still tells when it was launched.
    let state = project
        .elb
        .state_dir()
        .join(project.elb.project())
        .join("autoscale/c1.json");
    std::fs::remove_file(&state).expect("the loop's state file");
    let third = project.elb.spawn(&args);
    std::thread::sleep(Duration::from_secs(3));
    third.interrupt();
    let out = third.wait(Duration::from_secs(30));
    for tick in ticks(&out) {
        assert_eq!(tick["warming"], 1, "known from its tag: {tick}");
        assert!(tick["launched"].as_array().unwrap().is_empty(), "{tick}");
    }
    let tagged = project.ls();
    let new = tagged
        .iter()
        .find(|i| i["id"] == launched[0].as_str())
        .expect("the launched instance");
    assert!(new["launched_at_unix_ms"].as_u64().is_some(), "{new}");

    // The kill switch stops a running loop before it removes the fleet.
    let third = project.elb.spawn(&args);
    std::thread::sleep(Duration::from_secs(2));
    let kill = project.run(&["kill", "--yes"]);
    assert!(
        kill.stderr
            .contains("stopped the autoscaling loop of cluster c1"),
        "{kill}"
    );
    let out = third.wait(Duration::from_secs(30));
    assert_eq!(out.code, Some(0), "{out}");
    assert!(project.agents().is_empty());
}

/// Bad input is refused before anything runs, naming the fix.
#[test]
fn bad_autoscale_input_is_refused() {
    let project = LocalProject::new();
    let base = ["autoscale", "--cluster", "c1", "--target-cpu", "50"];
    let with = |extra: &[&'static str]| [&base[..], extra].concat();
    project
        .run(&with(&["--min", "3", "--max", "2"]))
        .expect_code(2)
        .expect_failure_mentioning(&["--min 3 is above --max 2"]);
    project
        .run(&with(&["--max", "2"]))
        .expect_code(2)
        .expect_failure_mentioning(&["no instances", "elb --local launch --cluster c1"]);
    project.launch("c1", "t3.micro", 1);
    project
        .run(&with(&["--max", "2", "--type", "t9.huge"]))
        .expect_code(2)
        .expect_failure_mentioning(&["t9.huge"]);
    assert_eq!(project.agents().len(), 1, "nothing launched");
}

/// A bench that runs while a loop scales the cluster carries, in results.json and a plot, the
/// cluster's instance count second by second and the loop's decisions.
#[test]
fn a_bench_during_a_loop_carries_the_instance_count_and_the_decisions() {
    let project = LocalProject::new();
    project.launch("c1", "m4.large", 1);
    let out = project.elb.state_dir().join("bench-out");
    let bench = project.elb.spawn(&[
        "bench",
        "--cluster",
        "c1",
        "--rate",
        "100",
        "--requests",
        "600",
        "--out",
        out.to_str().expect("utf-8 path"),
    ]);
    std::thread::sleep(Duration::from_millis(1500));
    let looping = project
        .elb
        .spawn(&quick(&["--min", "2", "--max", "2", "--target-cpu", "50"]));
    let ran = bench.wait(Duration::from_secs(60));
    assert_eq!(ran.code, Some(0), "{ran}");
    looping.interrupt();
    looping.wait(Duration::from_secs(30));
    let results: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("results.json")).expect("results.json"))
            .expect("JSON");
    let scaling = &results["clusters"][0]["scaling"];
    let events = scaling["events"]
        .as_array()
        .unwrap_or_else(|| panic!("{results:#}"));
    let out_event = events
        .iter()
        .find(|e| e["action"] == "scale_out")
        .unwrap_or_else(|| panic!("the scale-out during the run: {scaling:#}"));
    assert_eq!(
        (out_event["from"].as_u64(), out_event["to"].as_u64()),
        (Some(1), Some(2))
    );
    let counts: Vec<u64> = scaling["per_second"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["instances"].as_u64())
        .collect();
    assert!(counts.contains(&2), "the count rose to 2: {counts:?}");
    assert!(out.join("scaling.svg").is_file() && out.join("scaling.png").is_file());
}

/// Instances removed while the load goes on leave the balancer first and drain: every request
/// of an open-loop load through the balancer is answered while the loop takes the cluster from
/// three instances to one.
#[test]
fn a_scale_in_under_load_drains_without_a_failed_request() {
    let project = LocalProject::new();
    project.launch("c1", "t3.micro", 3);
    balance_up(&project);
    let out = project.elb.state_dir().join("bench-out");
    let bench = project.elb.spawn(&[
        "bench",
        "--via",
        "balancer",
        "--cluster",
        "c1",
        "--path",
        "/work?us=2000",
        "--rate",
        "30",
        "--requests",
        "450",
        "--out",
        out.to_str().expect("utf-8 path"),
    ]);
    std::thread::sleep(Duration::from_secs(3));
    let looping = project
        .elb
        .spawn(&quick(&["--max", "1", "--target-cpu", "50"]));
    until_records(&project, "scaled in to 1", |n| n == 1);
    let ran = bench.wait(Duration::from_secs(60));
    looping.interrupt();
    let out_loop = looping.wait(Duration::from_secs(30));
    assert_eq!(ran.code, Some(0), "{ran}");
    let results: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("results.json")).expect("results.json"))
            .expect("JSON");
    let cluster = &results["clusters"][0];
    assert_eq!(cluster["requests"], 450, "{cluster:#}");
    assert_eq!(cluster["errors"], 0, "{cluster:#}");
    let removed: usize = ticks(&out_loop)
        .iter()
        .map(|t| t["removed"].as_array().unwrap().len())
        .sum();
    assert_eq!(removed, 2, "{out_loop}");
}
