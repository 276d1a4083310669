//! Every bad input and the answer it must get: addresses a client names are never used, heads
//! with ambiguous framing get 400 and lose their connection, big heads get 431, trickled heads
//! are cut at the read timeout, the connection limit holds, and `--check` refuses a bad config
//! naming file, field and fix.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use proto::balancer_config::{Algorithm, Config};

use super::requests_by_target;
use crate::harness::balancer::{self, agent, config, group, target, to_toml};
use crate::harness::raw_http::{self, HttpResponse};
use crate::harness::{Agent, Balancer, TempDir};

/// One agent `i-a` behind a balancer built from `config` after `edit`.
fn one_target(edit: impl FnOnce(&mut Config)) -> (Agent, Balancer) {
    let served = agent("web", "i-a");
    let mut config = config(vec![group(
        "web",
        Algorithm::RoundRobin,
        vec![target("i-a", served.addr)],
    )]);
    edit(&mut config);
    let balancer = Balancer::start(&config);
    balancer.wait_all_healthy();
    (served, balancer)
}

/// Sends `raw` on a new connection and reads one answer.
fn exchange(balancer: &Balancer, raw: &[u8]) -> (TcpStream, HttpResponse) {
    let mut stream = raw_http::connect(balancer.addr()).expect("connect to the balancer");
    stream.write_all(raw).expect("send the request");
    let response = raw_http::read_response(&mut stream).expect("an answer");
    (stream, response)
}

/// Asserts that the server closes `stream` (EOF or reset) within 5 s, sending nothing more.
fn assert_closed(mut stream: TcpStream, what: &str) {
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("set a read timeout");
    let mut rest = Vec::new();
    if let Err(e) = stream.read_to_end(&mut rest) {
        assert!(
            !matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
            "{what}: the connection is still open after 5 s"
        );
    }
    assert!(
        rest.is_empty(),
        "{what}: more was answered: {:?}",
        String::from_utf8_lossy(&rest)
    );
}

#[test]
fn an_absolute_uri_or_a_host_header_never_picks_the_address() {
    let (_served, balancer) = one_target(|_| {});
    // A live agent the config does not name: it must never hear from the balancer.
    let elsewhere = agent("web", "i-elsewhere");
    let other = elsewhere.addr;
    let requests = [
        format!("GET http://{other}/ HTTP/1.1\r\nHost: {other}\r\nConnection: close\r\n\r\n"),
        format!("GET http://{other}/cluster1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
        format!("GET / HTTP/1.1\r\nHost: {other}\r\nConnection: close\r\n\r\n"),
    ];
    for request in &requests {
        let (_, response) = exchange(&balancer, request.as_bytes());
        assert_eq!(response.status, 200, "{request:?}: {}", response.text());
        assert_eq!(
            response.json()["ec2_instance_id"],
            "i-a",
            "{request:?} went elsewhere"
        );
    }
    let asked = crate::harness::now_unix_ms();
    let stats = elsewhere.stats_until(Duration::from_secs(5), |s| s.sampled_at_unix_ms > asked);
    let heard: u64 = stats
        .requests
        .per_endpoint
        .iter()
        .filter(|(path, _)| *path != "/stats")
        .map(|(_, n)| n)
        .sum();
    assert_eq!(
        heard, 0,
        "the unnamed agent got requests: {:?}",
        stats.requests
    );
}

#[test]
fn content_length_with_transfer_encoding_gets_400_and_the_connection_closes() {
    let (_served, balancer) = one_target(|_| {});
    let before = requests_by_target(&balancer);
    // Each smuggles a second request behind the first, in case the framing were believed.
    let heads = [
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
    ];
    for head in heads {
        let raw = format!("{head}0\r\n\r\nGET /cluster2 HTTP/1.1\r\nHost: x\r\n\r\n");
        let (stream, response) = exchange(&balancer, raw.as_bytes());
        assert_eq!(response.status, 400, "{head:?}: {}", response.text());
        let body: proto::BalancerError =
            serde_json::from_slice(&response.body).expect("a BalancerError body");
        assert_eq!(body.reason, "bad_framing");
        assert_closed(stream, head);
    }
    // The same head in pieces of a few bytes, each its own TCP segment.
    let raw =
        "POST / HTTP/1.1\r\nHost: x\r\ntransfer-ENCODING: chunked\r\nCONTENT-length: 5\r\n\r\n";
    let mut stream = raw_http::connect(balancer.addr()).expect("connect");
    stream.set_nodelay(true).expect("nodelay");
    for (i, piece) in raw.as_bytes().chunks(3).enumerate() {
        if let Err(e) = stream.write_all(piece) {
            let answer = raw_http::read_response(&mut stream);
            panic!("piece {i} of the head: {e}; the balancer answered {answer:?}");
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let response = raw_http::read_response(&mut stream).expect("an answer");
    assert_eq!(
        response.status,
        400,
        "a head in pieces: {}",
        response.text()
    );
    assert_closed(stream, "a head in pieces");
    assert_eq!(
        requests_by_target(&balancer),
        before,
        "nothing reached the target"
    );
}

#[test]
fn content_length_with_transfer_encoding_behind_a_pipelined_request_still_gets_400() {
    let (_served, balancer) = one_target(|_| {});
    // One write: the benign first request and the smuggling one arrive in the same read.
    let raw = "GET / HTTP/1.1\r\nHost: x\r\n\r\n\
               POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n\
               0\r\n\r\nGET /cluster2 HTTP/1.1\r\nHost: x\r\n\r\n";
    let (mut stream, first) = exchange(&balancer, raw.as_bytes());
    assert_eq!(first.status, 200, "{}", first.text());
    let before = requests_by_target(&balancer);
    let second = raw_http::read_response(&mut stream).expect("a second answer");
    assert_eq!(
        second.status,
        400,
        "the pipelined CL+TE request: {}",
        second.text()
    );
    let body: proto::BalancerError =
        serde_json::from_slice(&second.body).expect("a BalancerError body");
    assert_eq!(body.reason, "bad_framing");
    assert_closed(stream, "CL+TE behind a pipelined request");
    assert_eq!(
        requests_by_target(&balancer),
        before,
        "the CL+TE request reached the target"
    );
}

#[test]
fn two_different_content_lengths_get_400_and_the_connection_closes() {
    let (_served, balancer) = one_target(|_| {});
    let before = requests_by_target(&balancer);
    for lengths in [
        "Content-Length: 5\r\nContent-Length: 6",
        "Content-Length: 5, 6",
    ] {
        let raw = format!(
            "POST / HTTP/1.1\r\nHost: x\r\n{lengths}\r\n\r\n12345GET / HTTP/1.1\r\nHost: x\r\n\r\n"
        );
        let (stream, response) = exchange(&balancer, raw.as_bytes());
        assert_eq!(response.status, 400, "{lengths:?}: {}", response.text());
        assert_closed(stream, &format!("{lengths:?}"));
    }
    assert_eq!(requests_by_target(&balancer), before);
}

#[test]
fn a_head_over_the_limit_gets_431() {
    let (_served, balancer) = one_target(|c| c.limits.max_header_bytes = 1024);
    let head = |padding: usize| {
        format!(
            "GET / HTTP/1.1\r\nHost: x\r\nX-Pad: {}\r\nConnection: close\r\n\r\n",
            "a".repeat(padding)
        )
    };
    let (_, under) = exchange(&balancer, head(500).as_bytes());
    assert_eq!(under.status, 200, "a head under the limit passes");
    let (stream, over) = exchange(&balancer, head(2000).as_bytes());
    assert_eq!(over.status, 431, "{}", over.text());
    assert_closed(stream, "a head over the limit");
}

#[test]
fn a_client_trickling_its_head_is_cut_at_the_read_timeout() {
    let (_served, balancer) = one_target(|c| c.limits.read_timeout_ms = 600);
    let mut stream = raw_http::connect(balancer.addr()).expect("connect");
    let mut writer = stream.try_clone().expect("clone the stream");
    let connected = Instant::now();
    // One byte every 50 ms: never idle, never done.
    std::thread::spawn(move || {
        let head = format!("GET / HTTP/1.1\r\nHost: x\r\nX-Slow: {}", "a".repeat(200));
        for byte in head.as_bytes() {
            if writer.write_all(&[*byte]).is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    });
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let cut = connected.elapsed();
    assert!(
        (Duration::from_millis(500)..Duration::from_millis(1600)).contains(&cut),
        "cut after {cut:?} with a 600 ms read timeout"
    );
    assert!(
        !String::from_utf8_lossy(&answer).contains(" 200 "),
        "a trickled head was served: {}",
        String::from_utf8_lossy(&answer)
    );
}

#[test]
fn an_idle_keep_alive_connection_is_closed_at_the_read_timeout() {
    let (_served, balancer) = one_target(|c| c.limits.read_timeout_ms = 600);
    let (stream, response) = exchange(&balancer, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(response.status, 200);
    let answered = Instant::now();
    assert_closed(stream, "an idle keep-alive connection");
    let idle = answered.elapsed();
    assert!(
        (Duration::from_millis(500)..Duration::from_millis(1600)).contains(&idle),
        "closed after {idle:?} idle with a 600 ms read timeout"
    );
}

#[test]
fn max_connections_holds_and_a_waiting_client_is_served_when_one_closes() {
    let (_served, balancer) = one_target(|c| c.limits.max_connections = 2);
    let request = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    let mut open: Vec<TcpStream> = (0..2)
        .map(|_| {
            let mut stream = raw_http::connect(balancer.addr()).expect("connect");
            stream.write_all(request).expect("send");
            let response = raw_http::read_response(&mut stream).expect("an answer");
            assert_eq!(response.status, 200);
            stream
        })
        .collect();
    // A third connection is queued, not served.
    let mut third = raw_http::connect(balancer.addr()).expect("the kernel queues it");
    third.write_all(request).expect("send");
    third
        .set_read_timeout(Some(Duration::from_millis(500)))
        .expect("set a read timeout");
    let mut byte = [0u8; 1];
    match third.read(&mut byte) {
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
        other => panic!("the third connection was served past max_connections = 2: {other:?}"),
    }
    assert_eq!(balancer.status().active_connections, 2);

    drop(open.remove(0));
    third
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("set a read timeout");
    let response = raw_http::read_response(&mut third).expect("served once a slot frees");
    assert_eq!(response.status, 200);
    assert!(balancer.status().active_connections <= 2);
}

#[test]
fn check_refuses_a_bad_config_naming_file_field_and_fix_and_passes_a_good_one() {
    let dir = TempDir::new("elb-balancer-check");
    let good = config(vec![group(
        "web",
        Algorithm::RoundRobin,
        vec![target("i-a", "127.0.0.1:8000".parse().expect("an address"))],
    )]);
    let path = dir.path().join("good.toml");
    std::fs::write(
        &path,
        to_toml(&Config {
            version: Some("v7".into()),
            ..good.clone()
        }),
    )
    .expect("write");
    let out = balancer::check(&path);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("ok: {} (1 groups, 1 targets, version v7)", path.display())
    );

    let mut host_name = good.clone();
    host_name.target_groups[0].targets[0].address = "web1:8000".into();
    let mut slow_check = good.clone();
    slow_check.target_groups[0].health_check.timeout_ms = 500;
    slow_check.target_groups[0].health_check.interval_ms = 500;
    let mut unknown_group = good.clone();
    unknown_group.rules = vec![balancer::rule(1, "/x*", "nowhere")];
    let cases = [
        (
            to_toml(&host_name),
            "target_groups[0].targets[0].address",
            "write an IP address and a port",
        ),
        (
            to_toml(&slow_check),
            "target_groups[0].health_check.timeout_ms",
            "make the timeout shorter than health_check.interval_ms",
        ),
        (
            to_toml(&unknown_group),
            "rules[0].forward",
            "name one of the [[target_groups]]",
        ),
        (
            format!("{}\nhealth_interval = 5\n", to_toml(&good)),
            "unknown field `health_interval`",
            "",
        ),
    ];
    for (i, (text, field, fix)) in cases.iter().enumerate() {
        let path = dir.path().join(format!("bad{i}.toml"));
        std::fs::write(&path, text).expect("write");
        let out = balancer::check(&path);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{field}: {stderr}");
        assert!(out.stdout.is_empty(), "nothing on stdout: {out:?}");
        let file = path.display().to_string();
        assert!(
            stderr.contains(&file) && stderr.contains(field) && stderr.contains(fix),
            "the error names {file}, {field} and {fix:?}: {stderr}"
        );
    }
}
