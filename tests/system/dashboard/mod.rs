//! `elb dashboard` against a real local fleet and balancer: its API and event stream read over
//! raw sockets, and the page in a real headless Chromium (Debian's, through playwright-core).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::time::{Duration, Instant};

use crate::harness::browser::{artifacts_dir, Browser};
use crate::harness::local::ids;
use crate::harness::{raw_http, LocalProject};

/// A loopback port nobody listens on (the dashboard is told to take it).
fn free_port() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
}

/// Starts `elb dashboard` for `project` and waits until its first frame is served.
fn start_dashboard(project: &LocalProject) -> (crate::harness::Running, SocketAddr) {
    let addr = free_port();
    let running = project
        .elb
        .spawn(&["dashboard", "--listen", &addr.to_string()]);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(answer) = raw_http::request(addr, "GET", "/api/snapshot") {
            if answer.status == 200 {
                return (running, addr);
            }
        }
        assert!(
            Instant::now() < deadline,
            "the dashboard did not serve a frame"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The complete events of a raw (chunked) event stream: `(name, data as JSON)`. Each event is
/// one chunk, so its lines are whole between the chunk-size lines.
fn sse_events(stream: &str) -> Vec<(String, serde_json::Value)> {
    let mut events = Vec::new();
    let mut rest = stream;
    while let Some(start) = rest.find("event: ") {
        let after = &rest[start + "event: ".len()..];
        let Some(end) = after.find("\n\n") else {
            break;
        };
        let (name, data) = after[..end]
            .split_once("\ndata: ")
            .expect("an event has data");
        let data = serde_json::from_str(data).unwrap_or_else(|e| panic!("{e}: {data}"));
        events.push((name.to_owned(), data));
        rest = &after[end..];
    }
    events
}

/// The agent's count of `/stats` requests.
fn stats_requests(agent: SocketAddr) -> u64 {
    raw_http::get(agent, "/stats").json()["requests"]["per_endpoint"]["/stats"]
        .as_u64()
        .expect("a /stats count")
}

/// Five pages' event streams and a script's snapshots cost the agents one `/stats` per tick;
/// every stream gets the history and then a frame per tick; the API's answers are JSON; a
/// foreign `Host` is refused; a busy `--listen` is a clear error.
#[test]
fn one_poll_per_tick_feeds_every_page_and_script() {
    let project = LocalProject::new();
    let launched = project.launch("web", "m4.large", 1);
    let id = launched[0]["id"].as_str().unwrap().to_owned();
    let agent = project.records()[0].addr();
    let (dashboard, addr) = start_dashboard(&project);

    let mut streams: Vec<_> = (0..5)
        .map(|_| {
            let mut s = raw_http::connect(addr).unwrap();
            s.set_read_timeout(Some(Duration::from_millis(200)))
                .unwrap();
            write!(s, "GET /api/events HTTP/1.1\r\nHost: {addr}\r\n\r\n").unwrap();
            (s, Vec::<u8>::new())
        })
        .collect();
    let before = stats_requests(agent);
    let window = Duration::from_secs(4);
    let started = Instant::now();
    while started.elapsed() < window {
        for (stream, seen) in &mut streams {
            let mut buf = [0u8; 16384];
            if let Ok(n) = stream.read(&mut buf) {
                seen.extend_from_slice(&buf[..n]);
            }
        }
        // A script reading the snapshot as often as it likes costs nothing more either.
        let snapshot = raw_http::get(addr, "/api/snapshot").json();
        assert_eq!(snapshot["instances"][0]["id"], id.as_str());
    }
    // Our own two reads of /stats count once each.
    let polls = stats_requests(agent) - before - 1;
    assert!(
        (2..=6).contains(&polls),
        "{polls} polls of the agent in {window:?} with 5 pages and a script open: once per tick"
    );
    for (_, seen) in &streams {
        let text = String::from_utf8_lossy(seen);
        assert!(text.starts_with("HTTP/1.1 200"), "{text}");
        assert!(text.contains("content-type: text/event-stream"), "{text}");
        let history = text.find("event: history").expect("the history first");
        let frame = text.find("event: frame").expect("then frames");
        assert!(history < frame, "{text}");
        assert!(
            text.matches("event: frame").count() >= 3,
            "a frame per tick: {text}"
        );
        // No tick lost or repeated between the history and the frames, nor between frames.
        let events = sse_events(&text);
        let (name, history) = &events[0];
        assert_eq!(name, "history");
        let first = history["last_tick"].as_u64().expect("last_tick") + 1;
        for (expected, (name, frame)) in (first..).zip(&events[1..]) {
            assert_eq!(name, "frame");
            assert_eq!(frame["tick"].as_u64(), Some(expected), "{text}");
        }
    }

    let snapshot = raw_http::get(addr, "/api/snapshot").json();
    let row = &snapshot["instances"][0];
    assert_eq!(row["status"], "up", "{snapshot}");
    assert_eq!(
        (row["cluster"].as_str(), row["instance_type"].as_str()),
        (Some("web"), Some("m4.large"))
    );
    assert!(
        row["cpu_percent"].is_number() && row["memory_used_bytes"].is_number(),
        "{row}"
    );
    assert!(
        snapshot["balancer"].is_null(),
        "no balancer in this project"
    );
    let history = raw_http::get(addr, "/api/history").json();
    let t = history["t"].as_array().expect("times").len();
    assert!(t >= 4, "{history}");
    assert_eq!(history["instances"][0]["id"], id.as_str());
    assert_eq!(
        history["instances"][0]["cpu_percent"]
            .as_array()
            .unwrap()
            .len(),
        t
    );

    // DNS rebinding: a page of another site reaching 127.0.0.1 sends its own Host.
    let mut s = raw_http::connect(addr).unwrap();
    write!(
        s,
        "GET /api/snapshot HTTP/1.1\r\nHost: rebind.example:80\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let refused = raw_http::read_response(&mut s).unwrap();
    assert_eq!(refused.status, 421);
    assert!(
        refused.text().contains("loopback Host"),
        "{}",
        refused.text()
    );
    assert_eq!(
        raw_http::request(addr, "POST", "/api/snapshot")
            .unwrap()
            .status,
        405
    );
    let missing = raw_http::get(addr, "/nope");
    assert_eq!(missing.status, 404);
    assert_eq!(missing.json()["status"], 404);
    let head = raw_http::request(addr, "HEAD", "/").unwrap();
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty() && head.header("content-length").is_some());
    let page = raw_http::get(addr, "/");
    assert!(page
        .header("content-security-policy")
        .unwrap()
        .contains("default-src 'self'"));

    let busy = project.run(&["dashboard", "--listen", &addr.to_string()]);
    busy.expect_code(2)
        .expect_failure_mentioning(&["cannot listen on", "--listen"]);
    drop(dashboard);
}

/// The page in Chromium: every instance with its cluster and type and the balancer's targets;
/// `elb bench` moves the request-rate chart; an agent SIGKILLed turns red within 3 s with the
/// reason while the others stay green; no console error, no request to another origin; a
/// screenshot for people to look at.
#[test]
fn the_page_shows_the_fleet_and_the_balancer_live() {
    let project = LocalProject::new();
    let big = ids(&project.launch("cluster1", "m4.large", 2));
    let small = ids(&project.launch("cluster2", "t3.micro", 1));
    project.run(&crate::balance::UP).expect_code(0);
    let (dashboard, addr) = start_dashboard(&project);
    let mut page = Browser::open(&format!("http://{addr}/"));
    let rows_js = "[...document.querySelectorAll('#instances tr[data-instance]')]\
                   .map(r => [r.dataset.instance, r.dataset.status, r.cells[2].textContent, \
                   r.cells[3].textContent, r.cells[9].textContent])";

    page.until(
        "every instance listed",
        "document.querySelectorAll('#instances tr[data-instance]').length === 3",
        rows_js,
        Duration::from_secs(10),
    );
    let rows = page.eval(rows_js);
    for (id, cluster, instance_type) in big
        .iter()
        .map(|id| (id, "cluster1", "m4.large"))
        .chain(small.iter().map(|id| (id, "cluster2", "t3.micro")))
    {
        let row = rows
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r[0] == id.as_str())
            .unwrap_or_else(|| panic!("{id} listed: {rows}"));
        assert_eq!(
            (row[1].as_str(), row[2].as_str(), row[3].as_str()),
            (Some("up"), Some(cluster), Some(instance_type)),
            "{row}"
        );
    }
    let targets_js = "[...document.querySelectorAll('#balancer tr[data-target]')]\
                      .map(r => [r.closest('table').dataset.group, r.dataset.target, r.dataset.state])";
    page.until(
        "the balancer's targets listed, healthy",
        "(() => { const t = [...document.querySelectorAll('#balancer tr[data-target]')]; \
         return t.length === 3 && t.every(r => r.dataset.state === 'healthy'); })()",
        targets_js,
        Duration::from_secs(10),
    );
    let targets = page.eval(targets_js);
    for id in big.iter().chain(&small) {
        assert!(
            targets
                .as_array()
                .unwrap()
                .iter()
                .any(|t| t[1] == id.as_str()),
            "{id} among the targets: {targets}"
        );
    }

    let out = project.elb.state_dir().join("bench");
    project
        .run(&[
            "bench",
            "--via",
            "balancer",
            "--requests",
            "20000",
            "--concurrency",
            "8",
            "--out",
            out.to_str().unwrap(),
        ])
        .expect_code(0);
    page.until(
        "the request-rate chart shows the load",
        "elbDashboard.charts.plots.requests_per_sec.data.slice(1).some(s => s.some(v => v > 50))",
        "elbDashboard.charts.plots.requests_per_sec.data",
        Duration::from_secs(5),
    );
    page.until(
        "the balancer's targets show their share of the traffic",
        "[...document.querySelectorAll('#balancer tr[data-target]')].every(r => r.cells[9].textContent !== '–')",
        targets_js,
        Duration::from_secs(5),
    );

    let victim = project
        .records()
        .into_iter()
        .find(|r| r.id == small[0])
        .expect("the micro's record");
    // SAFETY: plain kill(2) on a process this test's project started.
    unsafe { libc::kill(victim.pid as libc::pid_t, libc::SIGKILL) };
    let row = format!(
        "document.querySelector('#instances tr[data-instance=\"{}\"]')",
        victim.id
    );
    let took = page.until(
        "the killed agent's row turns red",
        &format!("{row}.dataset.status === 'down'"),
        rows_js,
        Duration::from_secs(3),
    );
    let reason = page.eval(&format!("{row}.cells[9].textContent"));
    // The local provider sees the process gone (`instance stopped`), or the poll came first.
    let why = reason.as_str().unwrap();
    assert!(
        why.contains("stopped") || why.contains("refused"),
        "the reason shown: {reason} (after {took:?})"
    );
    let colour = page.eval(&format!("getComputedStyle({row}).backgroundColor"));
    assert_eq!(colour, "rgb(255, 235, 233)", "red");
    let rows = page.eval(rows_js);
    for r in rows
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r[0] != victim.id.as_str())
    {
        assert_eq!(r[1], "up", "the others stay green: {rows}");
    }

    let shot = artifacts_dir().join("dashboard.png");
    page.screenshot(&shot);
    let png = std::fs::read(&shot).expect("the screenshot");
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 20_000,
        "a real screenshot"
    );
    eprintln!("dashboard screenshot: {}", shot.display());

    let report = page.report();
    assert!(
        report.console_errors.is_empty(),
        "console errors: {:?}",
        report.console_errors
    );
    assert!(
        report.foreign_requests.is_empty(),
        "requests elsewhere: {:?}",
        report.foreign_requests
    );
    drop(page);
    drop(dashboard);
}

/// `elb demo --dashboard` prints the page's URL first and serves the demo's fleet under load
/// until the demo ends.
#[test]
fn the_demo_serves_its_dashboard_throughout() {
    let project = LocalProject::new();
    let addr = free_port();
    let out = project.elb.state_dir().join("demo-out");
    // Far more requests than the test waits for: it interrupts the demo during the load.
    let demo = project.elb.spawn(&[
        "demo",
        "--no-balancer",
        "--dashboard",
        "--dashboard-listen",
        &addr.to_string(),
        "--requests",
        "5000000",
        "--concurrency",
        "8",
        "--out",
        out.to_str().unwrap(),
    ]);
    let deadline = Instant::now() + Duration::from_secs(60);
    let loaded = loop {
        assert!(
            Instant::now() < deadline,
            "the dashboard never showed the demo's load"
        );
        std::thread::sleep(Duration::from_millis(200));
        let Ok(answer) = raw_http::request(addr, "GET", "/api/snapshot") else {
            continue;
        };
        if answer.status != 200 {
            continue;
        }
        let frame = answer.json();
        let instances = frame["instances"].as_array().unwrap().clone();
        let busy = instances
            .iter()
            .filter(|i| i["status"] == "up" && i["requests_per_sec"].as_f64() > Some(100.0))
            .count();
        if instances.len() == 5 && busy > 0 {
            break instances;
        }
    };
    let types: Vec<&str> = loaded
        .iter()
        .map(|i| i["instance_type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types.iter().filter(|t| **t == "m4.large").count(),
        2,
        "{types:?}"
    );
    assert_eq!(
        types.iter().filter(|t| **t == "t3.micro").count(),
        3,
        "{types:?}"
    );
    demo.interrupt();
    let run = demo.wait(Duration::from_secs(60));
    run.expect_code(130);
    assert_eq!(
        run.stdout.lines().next(),
        Some(format!("dashboard: http://{addr}/").as_str()),
        "the URL first:\n{}",
        run.stdout
    );
    assert!(
        raw_http::request(addr, "GET", "/").is_err(),
        "the page stops with the demo"
    );
}

/// On EC2 (moto behind the shim, the instances on test hosts with real agents and the real
/// static balancer): the dashboard finds the fleet and the balancer through the EC2 API and
/// shows them live, as with the local provider.
#[test]
fn on_ec2_the_dashboard_shows_the_fleet_and_the_balancer() {
    use crate::balance::ec2::{deploy_agents, up, world};
    let (fx, hosts) = world(3);
    fx.launch("cluster1", "t3.micro", 2, &[]).expect_code(0);
    let install_dir = hosts.install_dir.to_string_lossy().into_owned();
    deploy_agents(&fx, &install_dir);
    up(&fx, &install_dir, &[]).expect_code(0);
    let addr = free_port();
    let dashboard = fx.elb.spawn(&["dashboard", "--listen", &addr.to_string()]);
    let deadline = Instant::now() + Duration::from_secs(20);
    let frame = loop {
        let frame = raw_http::request(addr, "GET", "/api/snapshot")
            .ok()
            .filter(|a| a.status == 200)
            .map(|a| a.json());
        let ready = frame.as_ref().is_some_and(|f| {
            let up = f["instances"]
                .as_array()
                .is_some_and(|i| i.len() == 2 && i.iter().all(|i| i["status"] == "up"));
            let targets = f["balancer"]["groups"][0]["targets"]
                .as_array()
                .is_some_and(|t| t.len() == 2 && t.iter().all(|t| t["state"] == "healthy"));
            up && targets
        });
        if ready {
            break frame.unwrap();
        }
        assert!(
            Instant::now() < deadline,
            "the dashboard never showed both agents up and healthy behind the balancer: {frame:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(frame["provider"], "ec2");
    assert!(
        frame["fleet_error"].is_null() && frame["balancer_error"].is_null(),
        "{frame}"
    );
    for instance in frame["instances"].as_array().unwrap() {
        assert_eq!(instance["cluster"], "cluster1");
        assert_eq!(instance["instance_type"], "t3.micro");
    }
    assert_eq!(frame["balancer"]["status"], "up", "{frame}");
    drop(dashboard);
    fx.kill(&[]).expect_code(0);
}

/// A cluster under `elb autoscale` gets a row in the page's autoscaling table: its bounds,
/// whether its loop runs, and its last decision with the reason; the snapshot carries the same.
#[test]
fn the_page_shows_each_autoscaled_cluster_and_its_last_decision() {
    let project = LocalProject::new();
    project.launch("c1", "m4.large", 1);
    let looping = project.elb.spawn(&[
        "autoscale",
        "--cluster",
        "c1",
        "--min",
        "2",
        "--max",
        "3",
        "--target-cpu",
        "50",
        "--interval",
        "1s",
    ]);
    let (dashboard, addr) = start_dashboard(&project);
    let mut page = Browser::open(&format!("http://{addr}/"));
    let row_js = "[...document.querySelectorAll('#autoscaling tr[data-cluster]')]\
                  .map(r => [...r.cells].map(c => c.textContent))";
    page.until(
        "c1's loop listed, running, with a decision",
        "(() => { const r = document.querySelector('#autoscaling tr[data-cluster=\"c1\"]'); \
         return !!r && r.cells[2].textContent === 'running' && r.cells[3].textContent !== '–'; })()",
        row_js,
        Duration::from_secs(20),
    );
    let rows = page.eval(row_js);
    assert_eq!(rows[0][1], "2–3", "{rows}");
    let snapshot = raw_http::get(addr, "/api/snapshot").json();
    let scaled = &snapshot["autoscaling"][0];
    assert_eq!(scaled["cluster"], "c1", "{snapshot}");
    assert_eq!(scaled["running"], true, "{snapshot}");
    assert!(scaled["last"]["reason"].as_str().is_some(), "{snapshot}");
    looping.interrupt();
    looping.wait(Duration::from_secs(30));
    dashboard.interrupt();
    dashboard.wait(Duration::from_secs(10));
}
