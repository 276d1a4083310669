//! Only a target's own failures count against it: no client, however it misbehaves, can get a
//! healthy target ejected or counted as failing, and a burst of clients is queued in the
//! balancer rather than poured onto a target as new connections. The real `elb-balancer` in
//! front of real agents, clients on raw sockets (they must send what no well-behaved client
//! library would).

use std::io::{Read, Write};
use std::time::Duration;

use proto::balancer_config::Algorithm;
use proto::BalancerStatus;

use crate::harness::balancer::{agent, config, group, target};
use crate::harness::raw_http;
use crate::harness::stub_target::{Misbehaviour, StubTarget};
use crate::harness::{Agent, Balancer};

/// Two agents behind a balancer, both healthy.
fn two_targets() -> ([Agent; 2], Balancer) {
    let agents = [agent("web", "i-a"), agent("web", "i-b")];
    let config = config(vec![group(
        "web",
        Algorithm::RoundRobin,
        vec![target("i-a", agents[0].addr), target("i-b", agents[1].addr)],
    )]);
    let balancer = Balancer::start(&config);
    balancer.wait_all_healthy();
    (agents, balancer)
}

/// Writes `request` on a new connection, then (with `hang_up`) closes the sending side, and
/// reads until the balancer closes the connection.
fn exchange(balancer: &Balancer, request: &[u8], hang_up: bool) -> String {
    let mut stream = raw_http::connect(balancer.addr()).expect("connect");
    stream.write_all(request).expect("send");
    if hang_up {
        stream
            .shutdown(std::net::Shutdown::Write)
            .expect("half-close");
    }
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).into_owned()
}

/// Asserts that every target of `status` is healthy, not ejected, and without errors (the
/// 200 the whole body got aside, every request of the test failed through its client).
fn all_blameless(status: &BalancerStatus) {
    for t in status.groups.iter().flat_map(|g| &g.targets) {
        assert!(
            t.state == proto::TargetState::Healthy && !t.ejected && t.errors == 0,
            "{t:#?}"
        );
    }
}

#[test]
fn malformed_chunked_bodies_get_400_and_never_eject_a_healthy_target() {
    let (_agents, balancer) = two_targets();
    let bad = b"POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n\
                5\r\nhello\r\nzz\r\nworld\r\n0\r\n\r\n";
    for _ in 0..20 {
        let answer = exchange(&balancer, bad, false);
        assert!(answer.starts_with("HTTP/1.1 400 "), "{answer}");
        assert!(answer.contains("\"reason\":\"bad_body\""), "{answer}");
    }
    all_blameless(&balancer.status());
    let metrics = balancer.metrics();
    assert_eq!(
        metrics.sum("elb_client_error_count_total", &[("reason", "bad_body")]),
        20.0,
        "{}",
        metrics.text
    );
    assert_eq!(metrics.sum("elb_ejection_count_total", &[]), 0.0);
    // Both targets still serve.
    for _ in 0..4 {
        assert_eq!(balancer.get("/").status, 200);
    }
}

#[test]
fn bodies_cut_short_stalled_or_too_large_and_heads_without_host_blame_no_target() {
    // Targets that answer only once they have the whole body, as most applications do: an
    // agent answers a POST at once, before the client has failed.
    let stubs = [
        StubTarget::start(Misbehaviour::AwaitBody),
        StubTarget::start(Misbehaviour::AwaitBody),
    ];
    let mut config = config(vec![group(
        "web",
        Algorithm::RoundRobin,
        vec![target("i-a", stubs[0].addr), target("i-b", stubs[1].addr)],
    )]);
    config.limits.read_timeout_ms = 300;
    config.limits.max_body_bytes = 1000;
    let balancer = Balancer::start(&config);
    balancer.wait_all_healthy();
    let whole =
        b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\nConnection: close\r\n\r\nten bytes!";
    let answer = exchange(&balancer, whole, false);
    assert!(
        answer.starts_with("HTTP/1.1 200 ") && answer.ends_with("0010"),
        "{answer}"
    );
    let short = b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\nten bytes!";
    for _ in 0..10 {
        // The client hangs up after part of its body.
        exchange(&balancer, short, true);
        // The client stalls after part of its body.
        let answer = exchange(&balancer, short, false);
        assert!(answer.starts_with("HTTP/1.1 408 "), "{answer}");
        assert!(answer.contains("client_timeout"), "{answer}");
    }
    let large = b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 1001\r\n\r\n";
    let answer = exchange(&balancer, large, false);
    assert!(answer.starts_with("HTTP/1.1 413 "), "{answer}");
    let hostless = b"GET / HTTP/1.1\r\n\r\n";
    let answer = exchange(&balancer, hostless, false);
    assert!(answer.starts_with("HTTP/1.1 400 "), "{answer}");
    assert!(answer.contains("missing_host"), "{answer}");

    all_blameless(&balancer.status());
    let metrics = balancer.metrics();
    for (reason, count) in [
        ("incomplete_body", 10.0),
        ("client_timeout", 10.0),
        ("body_too_large", 1.0),
        ("missing_host", 1.0),
    ] {
        assert_eq!(
            metrics.sum("elb_client_error_count_total", &[("reason", reason)]),
            count,
            "{reason}"
        );
    }
}

#[test]
fn a_burst_of_clients_at_once_is_queued_and_served_in_full() {
    const CLIENTS: usize = 2000;
    let served = agent("web", "i-a");
    let mut config = config(vec![group(
        "web",
        Algorithm::RoundRobin,
        vec![target("i-a", served.addr)],
    )]);
    // Far fewer than the clients: nearly all of them wait in the queue.
    config.target_groups[0].max_requests_per_target = 8;
    let balancer = Balancer::start(&config);
    balancer.wait_all_healthy();
    let front = balancer.addr();
    raise_file_limit();
    // Every client connects and sends its GET at once, and keeps its connection open.
    let statuses: Vec<Result<u16, String>> = crate::harness::runtime().block_on(async move {
        let clients: Vec<_> = (0..CLIENTS).map(|_| tokio::spawn(one_get(front))).collect();
        let mut statuses = Vec::with_capacity(CLIENTS);
        for client in clients {
            statuses.push(client.await.expect("client task"));
        }
        statuses
    });
    let failed: Vec<_> = statuses.iter().filter(|s| *s != &Ok(200)).collect();
    assert!(
        failed.is_empty(),
        "{} of {CLIENTS} failed, e.g. {:?}",
        failed.len(),
        &failed[..failed.len().min(5)]
    );
    let status = balancer.status();
    all_blameless(&status);
    let group = &status.groups[0];
    assert_eq!((group.queue_full, group.queue_timeouts), (0, 0));
    assert_eq!(group.targets[0].requests, CLIENTS as u64);
}

/// Raises this process's soft limit on open files to the hard one: the clients of the burst
/// hold a socket each, more than a default soft limit of 1024 allows.
fn raise_file_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct passed.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}

/// One keep-alive GET on a new connection; the status, or what went wrong.
async fn one_get(front: std::net::SocketAddr) -> Result<u16, String> {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
    let exchange = async {
        let stream = tokio::net::TcpStream::connect(front).await?;
        let mut stream = BufReader::new(stream);
        stream
            .get_mut()
            .write_all(format!("GET / HTTP/1.1\r\nHost: {front}\r\n\r\n").as_bytes())
            .await?;
        let mut line = String::new();
        stream.read_line(&mut line).await?;
        let status: u16 = line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| std::io::Error::other(format!("status line {line:?}")))?;
        let mut length = 0;
        loop {
            line.clear();
            stream.read_line(&mut line).await?;
            if line == "\r\n" || line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse().unwrap_or(0);
                }
            }
        }
        let mut body = vec![0; length];
        stream.read_exact(&mut body).await?;
        Ok::<_, std::io::Error>((status, stream))
    };
    match tokio::time::timeout(Duration::from_secs(60), exchange).await {
        // The connection stays open until every client has its answer.
        Ok(Ok((status, stream))) => {
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_secs(2)).await;
                drop(stream);
            });
            Ok(status)
        }
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("no answer in 60 s".into()),
    }
}
