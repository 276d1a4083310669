//! Bad requests get clean errors, and bad clients cannot hold the agent.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use crate::harness::raw_http::{self, read_response};
use crate::harness::Agent;

#[test]
fn unknown_path_is_404_and_wrong_method_405_with_json_bodies() {
    let agent = Agent::start(&[]);
    let response = agent.get("/nope?x=1");
    assert_eq!(response.status, 404);
    assert_eq!(
        response.json(),
        serde_json::json!({"schema": 1, "status": 404, "error": "not found"})
    );
    let body: proto::ErrorBody = serde_json::from_slice(&response.body).expect("an ErrorBody");
    assert_eq!(body.status, 404);

    for method in ["POST", "PUT", "DELETE", "PATCH"] {
        let response = raw_http::request(agent.addr, method, "/stats").expect("request");
        assert_eq!(response.status, 405, "{method}");
        assert_eq!(response.header("allow"), Some("GET, HEAD"));
        assert_eq!(response.json()["error"], "method not allowed");
    }
    let head = raw_http::request(agent.addr, "HEAD", "/").expect("HEAD");
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
}

#[test]
fn debug_endpoints_are_off_unless_enabled() {
    let agent = Agent::start(&[]);
    assert_eq!(agent.get("/sleep?ms=1").status, 404);
}

#[test]
fn oversized_header_is_rejected() {
    let agent = Agent::start(&[]);
    let mut stream = raw_http::connect(agent.addr).expect("connect");
    let big = "a".repeat(64 * 1024);
    let request = format!("GET / HTTP/1.1\r\nHost: x\r\nX-Big: {big}\r\n\r\n");
    // The agent may answer and close before reading it all; a failed write is fine.
    let _ = stream.write_all(request.as_bytes());
    let response = read_response(&mut stream).expect("an answer");
    assert_eq!(response.status, 431);
    // And it keeps serving.
    assert_eq!(agent.get("/healthz").status, 200);
}

#[test]
fn announced_oversized_body_is_refused_and_the_connection_closed() {
    let agent = Agent::start(&[]);
    let mut stream = raw_http::connect(agent.addr).expect("connect");
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 10000000\r\n\r\nsome")
        .expect("write");
    let response = read_response(&mut stream).expect("an answer");
    assert_eq!(response.status, 413);
    assert_eq!(response.json()["error"], "request body too large");
    let mut rest = Vec::new();
    let _ = stream.read_to_end(&mut rest);
    assert!(rest.is_empty(), "nothing follows the 413");
}

#[test]
fn a_client_that_stalls_mid_request_is_disconnected_after_the_read_timeout() {
    let agent = Agent::start(&["--read-timeout", "1s"]);
    let mut stream = raw_http::connect(agent.addr).expect("connect");
    stream
        .write_all(b"GET /stats HTTP/1.1\r\nHost: x\r\nX-Half: ")
        .expect("write half a request");
    let started = Instant::now();
    let mut buf = [0u8; 1024];
    // EOF or reset, but no answer, and neither before nor long after the timeout.
    let n = stream.read(&mut buf).unwrap_or(0);
    let waited = started.elapsed();
    assert_eq!(n, 0, "got {:?}", String::from_utf8_lossy(&buf[..n]));
    assert!(
        waited >= Duration::from_millis(900),
        "closed after {waited:?}"
    );
    assert!(waited < Duration::from_secs(8), "closed after {waited:?}");

    // An idle keep-alive connection is closed by the same timeout.
    let mut idle = raw_http::connect(agent.addr).expect("connect");
    let started = Instant::now();
    assert_eq!(idle.read(&mut buf).unwrap_or(0), 0);
    assert!(started.elapsed() < Duration::from_secs(8));
    assert_eq!(agent.get("/healthz").status, 200);
}

#[test]
fn garbage_never_takes_the_agent_down() {
    let agent = Agent::start(&[]);
    let inputs: [&[u8]; 6] = [
        b"\x00\x01\x02\xff\xfe\r\n\r\n",
        b"GET\r\n\r\n",
        b"GET / HTTP/9.9\r\n\r\n",
        b"GET /%%% HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
        b"GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    ];
    for input in inputs {
        let mut stream = raw_http::connect(agent.addr).expect("connect");
        let _ = stream.write_all(input);
        let _ = stream.shutdown(std::net::Shutdown::Write);
        let mut sink = Vec::new();
        let _ = stream.read_to_end(&mut sink);
    }
    assert_eq!(agent.get("/").status, 200);
}
