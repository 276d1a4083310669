//! `elb balance` with the local provider: a real `elb-balancer` process in front of real agents,
//! its config written from the fleet and pushed on every change. `ec2.rs`: the same on EC2
//! (moto), delivered over SSH to test hosts.

pub mod ec2;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::harness::local::ids;
use crate::harness::{raw_http, LocalProject};

/// Fast health checks, and the status printed once every target is healthy.
pub const UP: [&str; 6] = [
    "balance",
    "up",
    "--health-interval-ms",
    "100",
    "--wait",
    "20",
];

/// The balancer's client address, from `ls`.
pub(crate) fn balancer_addr(project: &LocalProject) -> SocketAddr {
    let ls = project.ls();
    let row = ls
        .iter()
        .find(|i| i["role"] == "balancer")
        .unwrap_or_else(|| panic!("ls lists the balancer: {ls:?}"));
    let ip = row["private_ip"].as_str().expect("an address");
    format!("{ip}:80").parse().expect("ip:80")
}

/// `balance status` as JSON: `(group, target id) -> state`.
pub(crate) fn states(project: &LocalProject) -> Vec<(String, String, String)> {
    let status = project.run(&["balance", "status"]).json();
    status["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .flat_map(|g| {
            g["targets"]
                .as_array()
                .expect("targets")
                .iter()
                .map(move |t| {
                    (
                        g["name"].as_str().unwrap().to_owned(),
                        t["id"].as_str().unwrap().to_owned(),
                        t["state"].as_str().unwrap().to_owned(),
                    )
                })
        })
        .collect()
}

/// Polls until `check` holds on the status, or fails with the last one.
fn until(project: &LocalProject, what: &str, check: impl Fn(&[(String, String, String)]) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let now = states(project);
        if check(&now) {
            return;
        }
        assert!(Instant::now() < deadline, "{what}: {now:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `balance up` puts every running instance behind the seed's rules; launch and kill of a
/// cluster change the targets; `kill` stops the balancer with the rest.
#[test]
fn the_balancer_fronts_the_fleet_and_follows_it() {
    let project = LocalProject::new();
    let big = ids(&project.launch("cluster1", "m4.large", 2));
    let small = ids(&project.launch("cluster2", "m4.large", 1));
    let status = project.run(&UP).json();
    let groups = status["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 2, "{status}");
    for (id, group) in big
        .iter()
        .map(|i| (i, "cluster1"))
        .chain(small.iter().map(|i| (i, "cluster2")))
    {
        assert!(
            states(&project).contains(&(group.into(), id.clone(), "healthy".into())),
            "{id} healthy in {group}"
        );
    }

    let addr = balancer_addr(&project);
    for (path, cluster) in [
        ("/cluster2", "cluster2"),
        ("/cluster1", "cluster1"),
        ("/", "cluster1"),
    ] {
        let answer = raw_http::get(addr, path);
        assert_eq!(answer.status, 200, "{path}: {}", answer.text());
        assert_eq!(
            answer.json()["cluster"],
            cluster,
            "{path} routes to {cluster}"
        );
    }
    let stats = project.run(&["stats"]).json();
    let polled: Vec<&str> = stats["instances"]
        .as_array()
        .expect("instances")
        .iter()
        .map(|i| i["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        polled.len(),
        3,
        "stats polls the agents, not the balancer: {stats}"
    );

    // A new instance enters the balancer and turns healthy; a killed cluster leaves it.
    let more = ids(&project.launch("cluster2", "m4.large", 1));
    until(&project, "the new instance is a healthy target", |s| {
        s.contains(&("cluster2".into(), more[0].clone(), "healthy".into()))
    });
    // Load on the cluster that stays, while the other one is killed: not one request fails.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut failures = Vec::new();
            let mut sent = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let answer = raw_http::get(addr, "/cluster2");
                sent += 1;
                if answer.status != 200 {
                    failures.push(answer.status);
                }
            }
            (sent, failures)
        })
    };
    project
        .run(&["kill", "--cluster", "cluster1", "--yes"])
        .expect_code(0);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (sent, failures) = load.join().expect("the load thread");
    assert!(
        sent > 0 && failures.is_empty(),
        "{} of {sent} failed: {failures:?}",
        failures.len()
    );
    until(&project, "cluster1's targets are gone or draining", |s| {
        s.iter()
            .filter(|(g, _, _)| g == "cluster1")
            .all(|(_, _, state)| state == "draining")
    });
    let answer = raw_http::get(addr, "/cluster2");
    assert_eq!(answer.status, 200);

    project.run(&["kill", "--yes"]).expect_code(0);
    assert!(project.records().is_empty(), "nothing recorded");
    assert!(
        project.processes().is_empty(),
        "no process left, balancer included"
    );
}

/// Through the balancer, the client's answers, the balancer's per-target requests and the
/// agents' counters give every instance the same count, and the sums are the requests sent:
/// the balancer's health checks (`/healthz`) are neither client requests nor counted on the
/// loaded path, and without failures nothing is retried.
pub fn assert_three_counts_agree(cluster: &serde_json::Value) {
    assert_eq!(
        cluster["balancer_counted"], cluster["requests"],
        "{cluster}"
    );
    let instances = cluster["instances"].as_array().expect("instances");
    assert!(!instances.is_empty(), "{cluster}");
    for i in instances {
        assert_eq!(i["served"], i["balancer_counted"], "{i}");
        assert_eq!(i["served"], i["agent_counted"], "{i}");
    }
}

/// The same load direct and through the balancer, side by side; each run's agents counted
/// every request, and through the balancer the three counts agree.
#[test]
fn bench_via_direct_and_balancer_writes_one_comparison() {
    let project = LocalProject::new();
    project.launch("cluster1", "m4.large", 2);
    project.launch("cluster2", "m4.large", 1);
    project.run(&UP).expect_code(0);
    let out = project.elb.state_dir().join("via");
    let run = project.run(&[
        "bench",
        "--via",
        "direct,balancer",
        "--requests",
        "2000",
        "--concurrency",
        "8",
        "--out",
        out.to_str().unwrap(),
    ]);
    let comparison = run.json();
    let rows = comparison["rows"].as_array().expect("rows");
    assert_eq!(rows.len(), 4, "two vias x two clusters: {comparison}");
    for (i, via) in ["direct", "direct", "balancer", "balancer"]
        .iter()
        .enumerate()
    {
        assert_eq!(rows[i]["via"], *via);
        assert_eq!(rows[i]["requests"], 2000);
        assert_eq!(rows[i]["errors"], 0);
        let total: f64 = rows[i]["shares"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s[1].as_f64().unwrap())
            .sum();
        assert!((total - 1.0).abs() < 1e-6, "shares add up: {}", rows[i]);
        assert_eq!(rows[i]["client_shares"], rows[i]["shares"], "{}", rows[i]);
        match *via {
            "balancer" => assert_eq!(rows[i]["balancer_shares"], rows[i]["shares"]),
            _ => assert!(rows[i]["balancer_shares"].is_null(), "{}", rows[i]),
        }
    }
    for via in ["direct", "balancer"] {
        let results: serde_json::Value =
            serde_json::from_slice(&std::fs::read(out.join(via).join("results.json")).unwrap())
                .unwrap();
        for cluster in results["clusters"].as_array().unwrap() {
            assert_eq!(
                cluster["agents_counted"], cluster["requests"],
                "{via}: {cluster}"
            );
            if via == "direct" {
                assert!(cluster["balancer_counted"].is_null(), "{cluster}");
                continue;
            }
            assert_three_counts_agree(cluster);
        }
    }
    assert!(out.join("comparison.json").is_file());
    assert!(out.join("comparison.png").is_file());
}

/// `--algorithms` reconfigures the balancer between runs and compares them.
#[test]
fn algorithms_are_run_one_after_the_other_and_compared() {
    let project = LocalProject::new();
    project.launch("cluster1", "m4.large", 2);
    project
        .run(&[
            "balance",
            "up",
            "--default",
            "all",
            "--health-interval-ms",
            "100",
        ])
        .expect_code(0);
    let before = project.run(&["balance", "status"]).json()["config_generation"]
        .as_u64()
        .unwrap();
    let out = project.elb.state_dir().join("algorithms");
    let comparison = project
        .run(&[
            "bench",
            "--algorithms",
            "round_robin,least_outstanding_requests",
            "--path",
            "/",
            "--requests",
            "1000",
            "--out",
            out.to_str().unwrap(),
        ])
        .json();
    let labels: Vec<&str> = comparison["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["via"].as_str().unwrap())
        .collect();
    assert_eq!(labels, ["round_robin", "least_outstanding_requests"]);
    let status = project.run(&["balance", "status"]).json();
    assert!(
        status["config_generation"].as_u64().unwrap() >= before + 2,
        "{status}"
    );
    assert!(status["groups"]
        .as_array()
        .unwrap()
        .iter()
        .all(|g| g["algorithm"] == "least_outstanding_requests"));
    for algorithm in ["round_robin", "least_outstanding_requests"] {
        assert!(out.join(algorithm).join("results.json").is_file());
    }
}

/// Bad input is refused before anything starts.
#[test]
fn bad_balance_input_is_refused() {
    let project = LocalProject::new();
    project
        .run(&["balance", "status"])
        .expect_code(2)
        .expect_failure_mentioning(&["no balancer", "balance up"]);
    project
        .run(&["balance", "up"])
        .expect_code(2)
        .expect_failure_mentioning(&["no running instances"]);
    project.launch("cluster1", "m4.large", 1);
    project
        .run(&["balance", "up", "--rule", "/x*=nope"])
        .expect_code(2)
        .expect_failure_mentioning(&["nope"]);
    project
        .run(&[
            "balance",
            "up",
            "--default",
            "all",
            "--rule",
            "/x*=cluster1",
        ])
        .expect_code(2)
        .expect_failure_mentioning(&["one group"]);
    project
        .run(&["bench", "--via", "balancer", "--requests", "10"])
        .expect_code(2)
        .expect_failure_mentioning(&["no balancer"]);
    // The balancer's own cluster name is not a cluster of agents.
    project
        .run(&[
            "launch",
            "--cluster",
            "balancer",
            "--type",
            "t3.micro",
            "--count",
            "1",
        ])
        .expect_code(2)
        .expect_failure_mentioning(&["balancer instance", "another cluster name"]);
    project
        .run(&["kill", "--yes", "--cluster", "balancer"])
        .expect_code(2)
        .expect_failure_mentioning(&["elb balance down"]);
    assert_eq!(project.ls().len(), 1, "nothing launched, nothing killed");
    assert!(!project.ls().iter().any(|i| i["role"] == "balancer"));
}

/// `balance up --access-log`: the balancer logs each request in ALB's format to the file; one
/// it cannot write is refused before anything starts, naming the field and the fix.
#[test]
fn the_balancer_writes_its_access_log_where_it_was_told() {
    let project = LocalProject::new();
    project.launch("cluster1", "m4.large", 1);
    let dir = crate::harness::TempDir::new("elb-access-log");
    let missing = dir.path().join("missing/access.log");
    let mut up = UP.to_vec();
    up.extend(["--default", "cluster1", "--rule", "/cluster1*=cluster1"]);
    let mut refused = up.clone();
    refused.extend(["--access-log", missing.to_str().expect("a UTF-8 path")]);
    project
        .run(&refused)
        .expect_code(2)
        .expect_failure_mentioning(&["access_log.path", "create the directory"]);
    assert!(!project.ls().iter().any(|i| i["role"] == "balancer"));

    let log = dir.path().join("access.log");
    up.extend(["--access-log", log.to_str().expect("a UTF-8 path")]);
    project.run(&up).expect_code(0);
    let address = balancer_addr(&project);
    assert_eq!(raw_http::get(address, "/cluster1?logged").status, 200);
    let deadline = Instant::now() + Duration::from_secs(5);
    let line = loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if let Some(line) = text.lines().find(|l| l.contains("/cluster1?logged")) {
            break line.to_owned();
        }
        assert!(Instant::now() < deadline, "no line for the request: {text}");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(line.starts_with("http "), "{line}");
    assert!(line.contains(" 200 200 "), "{line}");
    assert!(line.contains(" cluster1 "), "the group: {line}");
    project.run(&["balance", "down"]).expect_code(0);
}

/// `balance up --https-cert/--https-key`: an HTTPS listener beside HTTP, each name served its
/// certificate; the flags' mistakes refused before anything starts.
#[test]
fn the_balancer_serves_https_with_the_certificates_it_was_given() {
    use crate::harness::tls::{curl, Certificate};
    let project = LocalProject::new();
    project.launch("cluster1", "m4.large", 1);
    let shop = Certificate::for_names(&["shop.example.test"]);
    let api = Certificate::for_names(&["*.api.example.test"]);
    let path = |p: &std::path::Path| p.display().to_string();
    let (shop_cert, shop_key) = (path(&shop.cert), path(&shop.key));
    let (api_cert, api_key) = (path(&api.cert), path(&api.key));

    project
        .run(&["balance", "up", "--https-cert", &shop_cert])
        .expect_code(2)
        .expect_failure_mentioning(&["--https-key", "same order"]);
    project
        .run(&[
            "balance",
            "up",
            "--https-cert",
            &shop_cert,
            "--https-key",
            &shop_key,
            "--https-port",
            "80",
        ])
        .expect_code(2)
        .expect_failure_mentioning(&["--https-port 80", "port of its own"]);
    project
        .run(&[
            "balance",
            "up",
            "--https-certificate-arn",
            "arn:aws:acm:ca-central-1:123456789012:certificate/x",
        ])
        .expect_code(2)
        .expect_failure_mentioning(&["`elb alb up`", "--https-cert"]);

    let mut up: Vec<&str> = UP.to_vec();
    up.extend([
        "--default",
        "all",
        "--https-cert",
        &shop_cert,
        "--https-key",
        &shop_key,
        "--https-cert",
        &api_cert,
        "--https-key",
        &api_key,
        "--https-port",
        "8443",
        "--tls-policy",
        "ELBSecurityPolicy-TLS13-1-3-2021-06",
    ]);
    project.run(&up).expect_code(0);
    let ip = balancer_addr(&project).ip().to_string();

    for (name, certificate) in [("shop.example.test", &shop), ("v2.api.example.test", &api)] {
        let to_balancer = format!("{name}:8443:{ip}");
        let trusted = path(&certificate.cert);
        let got = curl(
            &["--resolve", &to_balancer, "--cacert", &trusted],
            &format!("https://{name}:8443/cluster1"),
        );
        assert!(got.ok, "{name}: {}", got.stderr);
        assert_eq!(
            (got.status.as_str(), got.version.as_str()),
            ("200", "2"),
            "{name}"
        );
        assert!(got.body.contains("Cluster 1"), "{}", got.body);
    }
    let tls12 = std::process::Command::new("openssl")
        .args(["s_client", "-connect", &format!("{ip}:8443"), "-tls1_2"])
        .stdin(std::process::Stdio::null())
        .output()
        .expect("openssl");
    assert!(!tls12.status.success(), "the TLS 1.3 policy refuses 1.2");

    // A listener cannot change on a reload: asking for another HTTPS port says how.
    let mut moved: Vec<&str> = up.clone();
    let at = moved
        .iter()
        .position(|a| *a == "8443")
        .expect("the port flag");
    moved[at] = "9443";
    project
        .run(&moved)
        .expect_code(2)
        .expect_failure_mentioning(&["cannot change", "balance down"]);
    project.run(&["balance", "down"]).expect_code(0);
}
