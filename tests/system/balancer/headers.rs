//! Headers on the way through: `X-Forwarded-*` added as ALB does, `Host` passed through,
//! hop-by-hop headers removed both ways.

use std::io::Write;

use proto::balancer_config::Algorithm;

use crate::harness::balancer::{config, group, target};
use crate::harness::raw_http;
use crate::harness::stub_target::{Misbehaviour, StubTarget};
use crate::harness::Balancer;

/// The value of header `name` in a raw head, if any (case-insensitive name).
fn header<'a>(head: &'a str, name: &str) -> Vec<&'a str> {
    head.lines()
        .filter_map(|l| l.split_once(':'))
        .filter(|(k, _)| k.trim().eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim())
        .collect()
}

#[test]
fn forwarded_headers_are_added_host_passes_and_hop_by_hop_headers_go_both_ways() {
    let echo = StubTarget::start(Misbehaviour::Echo);
    let balancer = Balancer::start(&config(vec![group(
        "web",
        Algorithm::RoundRobin,
        vec![target("i-echo", echo.addr)],
    )]));
    balancer.wait_all_healthy();

    let mut stream = raw_http::connect(balancer.addr()).expect("connect");
    stream
        .write_all(
            b"GET /x?y=1 HTTP/1.1\r\nHost: shop.example.com\r\nX-Forwarded-For: 203.0.113.7\r\n\
              Connection: keep-alive, x-secret\r\nX-Secret: s\r\nKeep-Alive: timeout=9\r\n\
              Proxy-Authorization: Basic eA==\r\nTE: trailers\r\nX-Kept: yes\r\n\r\n",
        )
        .expect("send");
    let response = raw_http::read_response(&mut stream).expect("an answer");
    assert_eq!(response.status, 200, "{}", response.text());
    let sent = response.text().to_string();

    assert!(sent.starts_with("GET /x?y=1 HTTP/1.1\r\n"), "{sent}");
    assert_eq!(header(&sent, "host"), ["shop.example.com"], "{sent}");
    assert_eq!(
        header(&sent, "x-forwarded-for"),
        ["203.0.113.7, 127.0.0.1"],
        "{sent}"
    );
    assert_eq!(header(&sent, "x-forwarded-proto"), ["http"], "{sent}");
    let port = balancer.addr().port().to_string();
    assert_eq!(header(&sent, "x-forwarded-port"), [port.as_str()], "{sent}");
    assert_eq!(header(&sent, "x-kept"), ["yes"], "{sent}");
    for gone in ["x-secret", "keep-alive", "proxy-authorization", "te"] {
        assert!(header(&sent, gone).is_empty(), "{gone} forwarded:\n{sent}");
    }
    // Connection may be the balancer's own (keep-alive), never the client's list.
    assert!(
        header(&sent, "connection")
            .iter()
            .all(|v| !v.to_ascii_lowercase().contains("x-secret")),
        "{sent}"
    );

    assert_eq!(response.header("x-kept"), Some("1"));
    for gone in ["x-internal", "keep-alive", "proxy-authenticate"] {
        assert_eq!(
            response.header(gone),
            None,
            "{gone} passed to the client: {:?}",
            response.headers
        );
    }
}
