//! SIGTERM: stop accepting, let the requests in flight finish within the grace period, exit 0
//! (1 when the grace period runs out first).

use std::io::ErrorKind;
use std::net::TcpStream;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use proto::balancer_config::Algorithm;

use crate::harness::balancer::{agent, config, group, target};
use crate::harness::raw_http;
use crate::harness::{Agent, Balancer};

/// A request on a thread of its own: its status (or error) and when it was answered.
type Slow = JoinHandle<(Result<u16, String>, Instant)>;

/// Sends `GET /sleep?ms=<ms>` through the balancer on a thread of its own.
fn slow_request(balancer: &Balancer, ms: u64) -> Slow {
    let addr = balancer.addr();
    std::thread::spawn(move || {
        let response = raw_http::request(addr, "GET", &format!("/sleep?ms={ms}"));
        (
            response.map(|r| r.status).map_err(|e| e.to_string()),
            Instant::now(),
        )
    })
}

/// A balancer over two agents with `grace_ms`, and `n` slow requests of `ms` in flight.
fn with_slow_requests(grace_ms: u64, n: u64, ms: u64) -> (Vec<Agent>, Balancer, Vec<Slow>) {
    let agents: Vec<Agent> = (0..2).map(|i| agent("web", &format!("i-{i}"))).collect();
    let targets = agents
        .iter()
        .enumerate()
        .map(|(i, a)| target(&format!("i-{i}"), a.addr))
        .collect();
    let mut config = config(vec![group("web", Algorithm::RoundRobin, targets)]);
    config.limits.grace_ms = grace_ms;
    let balancer = Balancer::start(&config);
    balancer.wait_all_healthy();
    let slow: Vec<_> = (0..n).map(|_| slow_request(&balancer, ms)).collect();
    balancer.status_until(Duration::from_secs(5), "the slow requests in flight", |s| {
        s.groups[0].targets.iter().map(|t| t.in_flight).sum::<u64>() == n
    });
    (agents, balancer, slow)
}

#[test]
fn sigterm_lets_slow_requests_finish_with_200_stops_accepting_and_exits_0() {
    let (_agents, mut balancer, slow) = with_slow_requests(5000, 6, 1500);
    // An idle keep-alive connection must not hold the shutdown.
    let mut idle = raw_http::connect(balancer.addr()).expect("connect");
    std::io::Write::write_all(&mut idle, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").expect("send");
    assert_eq!(
        raw_http::read_response(&mut idle).expect("answer").status,
        200
    );

    let signalled = Instant::now();
    balancer.signal(libc::SIGTERM);
    // New connections are refused while the slow requests still run.
    let addr = balancer.addr();
    let deadline = Instant::now() + Duration::from_secs(1);
    loop {
        match TcpStream::connect(addr) {
            Err(e) if e.kind() == ErrorKind::ConnectionRefused => break,
            _ => {
                assert!(
                    Instant::now() < deadline,
                    "{addr} still accepts connections 1 s after SIGTERM"
                );
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
    assert!(signalled.elapsed() < Duration::from_millis(1400));

    for request in slow {
        let (status, _) = request.join().expect("a slow request thread");
        assert_eq!(status, Ok(200), "a request in flight at SIGTERM");
    }
    let status = balancer
        .wait_exit(Duration::from_secs(5))
        .expect("exits once the requests are done");
    assert_eq!(status.code(), Some(0), "stderr:\n{}", balancer.stderr());
    assert!(
        signalled.elapsed() < Duration::from_secs(4),
        "exited {:?} after SIGTERM",
        signalled.elapsed()
    );
}

#[test]
fn a_request_longer_than_the_grace_period_makes_it_exit_1_when_the_grace_ends() {
    let (_agents, mut balancer, _slow) = with_slow_requests(300, 1, 5000);
    let signalled = Instant::now();
    balancer.signal(libc::SIGTERM);
    let status = balancer
        .wait_exit(Duration::from_secs(4))
        .expect("exits when the grace period is over");
    assert_eq!(status.code(), Some(1), "stderr:\n{}", balancer.stderr());
    let took = signalled.elapsed();
    assert!(
        (Duration::from_millis(300)..Duration::from_millis(1500)).contains(&took),
        "exited {took:?} after SIGTERM with a 300 ms grace period"
    );
}
