//! WebSockets through the balancer, between two ends on Python's `websockets` library
//! (`websocket.py` beside this file): echo, a close from either side, a target killed
//! mid-session, an open socket counted as an outstanding request, SIGTERM with one open.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use proto::balancer_config::Algorithm;

use crate::harness::balancer::{config, group, target};
use crate::harness::{venv_python, Balancer};

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("system/balancer/websocket.py")
}

/// A running `websocket.py` process whose stdout is read line by line.
struct Python {
    child: Child,
    lines: std::io::Lines<BufReader<ChildStdout>>,
}

impl Python {
    fn start(args: &[&str]) -> Python {
        let mut child = Command::new(venv_python())
            .arg(script())
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("run websocket.py");
        let lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        Python { child, lines }
    }

    /// The next line it prints.
    fn line(&mut self) -> String {
        self.lines
            .next()
            .and_then(Result::ok)
            .unwrap_or_else(|| panic!("websocket.py ended: {:?}", self.child.wait()))
    }

    /// Waits for it to exit; whether it succeeded.
    fn success(&mut self) -> bool {
        self.child.wait().is_ok_and(|s| s.success())
    }
}

impl Drop for Python {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An echo target and a balancer in front of it (grace `grace_ms`).
fn setup(grace_ms: u64) -> (Python, Balancer) {
    setup_limited(grace_ms, 10_000)
}

/// [`setup`] with at most `max_connections` client connections.
fn setup_limited(grace_ms: u64, max_connections: usize) -> (Python, Balancer) {
    let mut target_process = Python::start(&["serve"]);
    let port = target_process
        .line()
        .strip_prefix("listening on ")
        .expect("`listening on PORT`")
        .to_string();
    let address: SocketAddr = format!("127.0.0.1:{port}").parse().expect("an address");
    let mut config = config(vec![group(
        "chat",
        Algorithm::LeastOutstandingRequests,
        vec![target("i-ws", address)],
    )]);
    config.limits.grace_ms = grace_ms;
    config.limits.max_connections = max_connections;
    let balancer = Balancer::start(&config);
    balancer.wait_all_healthy();
    (target_process, balancer)
}

fn url(balancer: &Balancer) -> String {
    format!("ws://{}/chat", balancer.addr())
}

fn open_websockets(balancer: &Balancer) -> f64 {
    balancer
        .metrics()
        .sum("elb_websocket_connections_open", &[])
}

#[test]
fn messages_echo_and_either_side_can_close() {
    let (_target, balancer) = setup(10_000);
    let mut client = Python::start(&["client", &url(&balancer), "echo", "50"]);
    assert_eq!(client.line(), "echoed 50");
    assert_eq!(client.line(), "closed 1000");
    assert!(client.success());

    let mut client = Python::start(&["client", &url(&balancer), "close"]);
    assert_eq!(client.line(), "closed by target 1000 bye");
    assert!(client.success());

    let deadline = Instant::now() + Duration::from_secs(5);
    while open_websockets(&balancer) > 0.0 {
        assert!(
            Instant::now() < deadline,
            "closed WebSockets still counted open"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn an_open_websocket_is_an_outstanding_request_and_a_killed_target_closes_it() {
    let (mut target_process, balancer) = setup(10_000);
    let mut client = Python::start(&["client", &url(&balancer), "hold"]);
    assert_eq!(client.line(), "open");
    assert_eq!(open_websockets(&balancer), 1.0);
    let status = balancer.status();
    assert_eq!(status.groups[0].targets[0].in_flight, 1, "{status:#?}");

    let _ = target_process.child.kill();
    assert_eq!(
        client.line(),
        "closed none",
        "the client learns the target went away"
    );
    let status = balancer.status_until(Duration::from_secs(5), "the socket closed", |s| {
        s.groups[0].targets[0].in_flight == 0
    });
    assert_eq!(status.groups[0].targets[0].in_flight, 0);
}

#[test]
fn sigterm_gives_an_open_websocket_the_grace_period_then_closes_it() {
    let (_target, mut balancer) = setup(1500);
    let mut client = Python::start(&["client", &url(&balancer), "hold"]);
    assert_eq!(client.line(), "open");
    let asked = Instant::now();
    balancer.signal(libc::SIGTERM);
    let ended = balancer
        .wait_exit(Duration::from_secs(10))
        .expect("the balancer exits after its grace period");
    let waited = asked.elapsed();
    assert!(
        waited >= Duration::from_millis(1400),
        "cut after {waited:?}"
    );
    assert_eq!(ended.code(), Some(1), "grace expired with a socket open");
    assert_eq!(client.line(), "closed none");
}

#[test]
fn an_open_websocket_keeps_its_place_under_the_connection_limit() {
    let (_target, balancer) = setup_limited(10_000, 1);
    let mut client = Python::start(&["client", &url(&balancer), "hold"]);
    assert_eq!(client.line(), "open");
    assert_eq!(
        balancer.status().active_connections,
        1,
        "the WebSocket's connection"
    );
    // The one place is taken: another client waits in the kernel's queue, unanswered.
    let waiting = crate::harness::tls::curl(
        &["--max-time", "1"],
        &format!("http://{}/healthz", balancer.addr()),
    );
    assert!(
        !waiting.ok,
        "served past max_connections = 1: {}",
        waiting.status
    );
    drop(client);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let served = crate::harness::tls::curl(
            &["--max-time", "2"],
            &format!("http://{}/healthz", balancer.addr()),
        );
        if served.status == "200" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the place never came back: {:?}; {}",
            balancer.status().active_connections,
            balancer.stderr()
        );
    }
}
