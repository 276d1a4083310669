//! Graceful shutdown on SIGTERM and SIGINT.

use std::io::Write;
use std::time::{Duration, Instant};

use crate::harness::raw_http::{self, read_response};
use crate::harness::Agent;

#[test]
fn sigterm_during_a_slow_request_still_answers_it_and_exits_0() {
    let mut agent = Agent::start(&[
        "--enable-debug-endpoints",
        "--grace",
        "10s",
        "--sample-interval",
        "100ms",
    ]);
    let mut slow = raw_http::connect(agent.addr).expect("connect");
    slow.write_all(b"GET /sleep?ms=1500 HTTP/1.1\r\nHost: x\r\n\r\n")
        .expect("send the slow request");
    // The request is in flight before the signal.
    agent.stats_until(Duration::from_secs(10), |s| s.requests.in_flight >= 1);
    let signalled = Instant::now();
    agent.signal(libc::SIGTERM);

    let response = read_response(&mut slow).expect("the in-flight request is answered");
    assert_eq!(response.status, 200);
    assert_eq!(response.json()["status"], "ok");
    let status = agent
        .wait_exit(Duration::from_secs(10))
        .expect("exits within the grace period");
    assert_eq!(status.code(), Some(0), "stderr:\n{}", agent.stderr());
    assert!(signalled.elapsed() < Duration::from_secs(10));
    assert!(agent.stderr().contains("SIGTERM"));
}

#[test]
fn sigint_with_idle_connections_exits_0_at_once_and_stops_accepting() {
    let mut agent = Agent::start(&[]);
    // An idle keep-alive connection must not hold the shutdown.
    let _idle = raw_http::connect(agent.addr).expect("connect");
    assert_eq!(agent.get("/").status, 200);
    agent.signal(libc::SIGINT);
    let status = agent
        .wait_exit(Duration::from_secs(5))
        .expect("exits promptly");
    assert_eq!(status.code(), Some(0), "stderr:\n{}", agent.stderr());
    assert!(raw_http::request(agent.addr, "GET", "/").is_err());
}

#[test]
fn a_request_longer_than_the_grace_period_makes_the_agent_exit_1_on_time() {
    let mut agent = Agent::start(&[
        "--enable-debug-endpoints",
        "--grace",
        "500ms",
        "--sample-interval",
        "100ms",
    ]);
    let mut slow = raw_http::connect(agent.addr).expect("connect");
    slow.write_all(b"GET /sleep?ms=20000 HTTP/1.1\r\nHost: x\r\n\r\n")
        .expect("send the slow request");
    agent.stats_until(Duration::from_secs(10), |s| s.requests.in_flight >= 1);
    let signalled = Instant::now();
    agent.signal(libc::SIGTERM);
    let status = agent.wait_exit(Duration::from_secs(10)).expect("exits");
    assert_eq!(status.code(), Some(1));
    assert!(signalled.elapsed() < Duration::from_secs(5));
}
