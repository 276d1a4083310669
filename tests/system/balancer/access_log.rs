//! The access log in ALB's format: one line per request, its fields checked against the
//! request that made it (over HTTPS with `curl`, a redirect, a fixed response, a retried
//! request, a client that hung up), reopened on SIGUSR1 after a rotation, moved by a reload,
//! and a file that cannot be written refused at `--check` and on reload.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use proto::balancer_config::{
    AccessLog, Algorithm, Config, FixedResponse, Listener, Protocol, Redirect, Rule, TlsPolicy,
};

use crate::harness::balancer::{agent, check, config, group, rule, target, to_toml};
use crate::harness::raw_http;
use crate::harness::stub_target::{Misbehaviour, StubTarget};
use crate::harness::tls::{curl, resolve, Certificate};
use crate::harness::{Balancer, TempDir};

/// ALB's fields, by position in a line.
const TYPE: usize = 0;
const TIME: usize = 1;
const ELB: usize = 2;
const CLIENT: usize = 3;
const TARGET: usize = 4;
const REQUEST_TIME: usize = 5;
const TARGET_TIME: usize = 6;
const RESPONSE_TIME: usize = 7;
const ELB_STATUS: usize = 8;
const TARGET_STATUS: usize = 9;
const RECEIVED: usize = 10;
const SENT: usize = 11;
const REQUEST: usize = 12;
const USER_AGENT: usize = 13;
const CIPHER: usize = 14;
const PROTOCOL: usize = 15;
const GROUP: usize = 16;
const TRACE_ID: usize = 17;
const DOMAIN: usize = 18;
const PRIORITY: usize = 20;
const CREATED: usize = 21;
const ACTIONS: usize = 22;
const REDIRECT_URL: usize = 23;
const ERROR: usize = 24;
const TARGETS: usize = 25;
const TARGET_STATUSES: usize = 26;
const FIELDS: usize = 30;

/// A line split into ALB's fields: space-separated, `"..."` one field (its quotes removed).
fn fields(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = line.trim_end();
    while !rest.is_empty() {
        if let Some(quoted) = rest.strip_prefix('"') {
            let end = quoted.find('"').expect("a closing quote");
            out.push(quoted[..end].to_string());
            rest = quoted[end + 1..].trim_start();
        } else {
            let end = rest.find(' ').unwrap_or(rest.len());
            out.push(rest[..end].to_string());
            rest = rest[end..].trim_start();
        }
    }
    assert_eq!(out.len(), FIELDS, "ALB's {FIELDS} fields in {line:?}");
    out
}

/// The lines of `path` once there are at least `n` (within 5 s).
fn lines(path: &Path, n: usize) -> Vec<Vec<String>> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        if lines.len() >= n {
            return lines.into_iter().map(fields).collect();
        }
        assert!(
            Instant::now() < deadline,
            "{n} lines in {}, got:\n{text}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The one line whose request field contains `needle`.
fn line_of<'a>(lines: &'a [Vec<String>], needle: &str) -> &'a Vec<String> {
    let found: Vec<_> = lines
        .iter()
        .filter(|l| l[REQUEST].contains(needle))
        .collect();
    assert_eq!(found.len(), 1, "one line for {needle}: {lines:#?}");
    found[0]
}

/// A processing time: seconds with three decimals, or -1.
fn seconds(field: &str) -> f64 {
    let value: f64 = field.parse().expect("a number of seconds");
    assert!(value == -1.0 || value >= 0.0, "{field}");
    value
}

/// `config` logging to `log`.
fn logging(mut config: Config, log: &Path) -> Config {
    config.access_log = Some(AccessLog {
        path: log.display().to_string(),
    });
    config
}

#[test]
fn each_request_gets_one_line_in_albs_format_saying_what_happened_to_it() {
    let dir = TempDir::new("elb-access-log");
    let log = dir.path().join("access.log");
    let echo = StubTarget::start(Misbehaviour::Echo);
    let certificate = Certificate::for_names(&["a.example.test"]);
    let mut config = config(vec![group(
        "web",
        Algorithm::RoundRobin,
        vec![target("i-echo", echo.addr)],
    )]);
    let address = "127.0.0.1:0".parse().expect("an address");
    config.listeners = vec![
        Listener::http(address),
        Listener {
            protocol: Protocol::Https,
            certificates: vec![certificate.entry()],
            tls_policy: TlsPolicy::default(),
            ..Listener::http(address)
        },
    ];
    config.rules = vec![
        Rule {
            forward: None,
            redirect: Some(Redirect {
                status: 301,
                protocol: Some("HTTPS".into()),
                port: Some("8443".into()),
                ..Redirect::default()
            }),
            ..rule(10, "/moved*", "web")
        },
        Rule {
            forward: None,
            fixed_response: Some(FixedResponse {
                status: 503,
                content_type: Some("text/plain".into()),
                body: Some("down for maintenance".into()),
            }),
            ..rule(20, "/maintenance*", "web")
        },
    ];
    let balancer = Balancer::start(&logging(config, &log));
    balancer.wait_all_healthy();
    let (http, https) = (balancer.listeners[0], balancer.listeners[1]);

    // A POST over HTTPS from curl, with a user agent that needs escaping.
    let flags = resolve("a.example.test", https.port(), &certificate);
    let mut args: Vec<&str> = flags.iter().map(String::as_str).collect();
    args.extend([
        "-A",
        "tester \"one\"",
        "--data-binary",
        "hello",
        "--http1.1",
    ]);
    let url = format!("https://a.example.test:{}/shop?q=1", https.port());
    let got = curl(&args, &url);
    assert!(got.ok && got.status == "200", "{}", got.stderr);
    // Plain HTTP: a redirect, a fixed response, and a trace id the client brought.
    let moved = raw_http::get(http, "/moved/here?x=1");
    assert_eq!(moved.status, 301);
    assert_eq!(raw_http::get(http, "/maintenance").status, 503);
    let mut stream = raw_http::connect(http).expect("connect");
    write!(
        stream,
        "GET /traced HTTP/1.1\r\nHost: b.example.test\r\nX-Amzn-Trace-Id: Root=1-mine\r\n\
         Connection: close\r\n\r\n"
    )
    .expect("send");
    assert_eq!(
        raw_http::read_response(&mut stream).expect("answer").status,
        200
    );

    let all = lines(&log, 4);
    assert_eq!(all.len(), 4, "one line per request: {all:#?}");
    let post = line_of(&all, "/shop");
    assert_eq!(post[TYPE], "https");
    assert!(
        post[TIME].ends_with('Z') && post[TIME].len() == 27,
        "{}",
        post[TIME]
    );
    assert!(post[CREATED] <= post[TIME], "created before answered");
    assert_eq!(post[ELB], format!("listener/{}", https.port()));
    assert!(post[CLIENT].starts_with("127.0.0.1:"), "{}", post[CLIENT]);
    assert_eq!(post[TARGET], echo.addr.to_string());
    assert!(seconds(&post[REQUEST_TIME]) >= 0.0);
    assert!(seconds(&post[TARGET_TIME]) >= 0.0);
    assert!(seconds(&post[RESPONSE_TIME]) >= 0.0);
    assert_eq!(
        (post[ELB_STATUS].as_str(), post[TARGET_STATUS].as_str()),
        ("200", "200")
    );
    let received: usize = post[RECEIVED].parse().expect("bytes");
    let sent: usize = post[SENT].parse().expect("bytes");
    assert!(
        received > "hello".len() + 40,
        "the head and the body: {received}"
    );
    assert!(sent > got.body.len(), "the head and the body: {sent}");
    assert_eq!(
        post[REQUEST],
        format!(
            "POST https://a.example.test:{}/shop?q=1 HTTP/1.1",
            https.port()
        )
    );
    assert_eq!(post[USER_AGENT], r"tester \x22one\x22");
    assert!(post[CIPHER].starts_with("TLS_"), "{}", post[CIPHER]);
    assert_eq!(post[PROTOCOL], "TLSv1.3");
    assert_eq!(post[GROUP], "web");
    assert_eq!(post[DOMAIN], "a.example.test");
    assert_eq!(
        (post[PRIORITY].as_str(), post[ACTIONS].as_str()),
        ("0", "forward")
    );
    assert_eq!(
        (post[REDIRECT_URL].as_str(), post[ERROR].as_str()),
        ("-", "-")
    );
    assert_eq!(post[TARGETS], echo.addr.to_string());
    assert_eq!(post[TARGET_STATUSES], "200");
    // The target got the trace id the line has (the echo target answers with the head).
    assert!(post[TRACE_ID].starts_with("Root=1-"), "{}", post[TRACE_ID]);
    assert!(
        got.body
            .to_ascii_lowercase()
            .contains(&format!("x-amzn-trace-id: {}", post[TRACE_ID]).to_ascii_lowercase()),
        "{}",
        got.body
    );

    let redirect = line_of(&all, "/moved");
    assert_eq!(redirect[TYPE], "http");
    assert_eq!(
        (redirect[CIPHER].as_str(), redirect[PROTOCOL].as_str()),
        ("-", "-")
    );
    assert_eq!(
        (
            redirect[ELB_STATUS].as_str(),
            redirect[TARGET_STATUS].as_str()
        ),
        ("301", "-")
    );
    assert_eq!(
        (redirect[PRIORITY].as_str(), redirect[ACTIONS].as_str()),
        ("10", "redirect")
    );
    assert_eq!(
        Some(redirect[REDIRECT_URL].as_str()),
        moved.header("location")
    );
    assert_eq!(
        (redirect[TARGET].as_str(), redirect[GROUP].as_str()),
        ("-", "-")
    );
    assert_eq!(
        seconds(&redirect[REQUEST_TIME]),
        -1.0,
        "never sent to a target"
    );
    assert_eq!(seconds(&redirect[TARGET_TIME]), -1.0);

    let fixed = line_of(&all, "/maintenance");
    assert_eq!(
        (fixed[ELB_STATUS].as_str(), fixed[PRIORITY].as_str()),
        ("503", "20")
    );
    assert_eq!(fixed[ACTIONS], "fixed-response");
    let body = "down for maintenance".len();
    assert!(fixed[SENT].parse::<usize>().expect("bytes") > body);

    let traced = line_of(&all, "/traced");
    assert_eq!(
        traced[TRACE_ID], "Root=1-mine",
        "the client's own id is kept"
    );
    assert_eq!(
        traced[REQUEST],
        format!("GET http://b.example.test:{}/traced HTTP/1.1", http.port())
    );
    assert_eq!(traced[USER_AGENT], "-");
    let metrics = balancer.metrics();
    assert_eq!(metrics.sum("elb_access_log_lines_total", &[]), 4.0);
    assert_eq!(metrics.sum("elb_access_log_dropped_total", &[]), 0.0);
}

#[test]
fn a_retried_request_logs_every_try_and_a_client_that_hung_up_logs_460() {
    let dir = TempDir::new("elb-access-log");
    let log = dir.path().join("access.log");
    let steady = agent("web", "i-steady");
    let mut victim = agent("web", "i-victim");
    let mut web = group(
        "web",
        Algorithm::RoundRobin,
        vec![
            target("i-steady", steady.addr),
            target("i-victim", victim.addr),
        ],
    );
    // Checks too rare to notice the kill, no ejection: each request the victim gets first is
    // retried on the steady target.
    web.health_check.interval_ms = 10_000;
    web.health_check.timeout_ms = 1000;
    web.outlier_detection.consecutive_failures = 0;
    let balancer = Balancer::start(&logging(config(vec![web]), &log));
    balancer.wait_all_healthy();
    victim.signal(libc::SIGKILL);
    victim.wait_exit(Duration::from_secs(5)).expect("killed");

    for n in 0..4 {
        assert_eq!(balancer.get(&format!("/cluster1?n={n}")).status, 200);
    }
    let all = lines(&log, 4);
    let retried: Vec<_> = all.iter().filter(|l| l[TARGETS].contains(' ')).collect();
    assert!(
        !retried.is_empty(),
        "round robin sent some to the victim first: {all:#?}"
    );
    for line in retried {
        assert_eq!(
            line[TARGETS],
            format!("{} {}", victim.addr, steady.addr),
            "both tries, in order"
        );
        assert_eq!(line[TARGET_STATUSES], "- 200");
        assert_eq!(
            line[TARGET],
            steady.addr.to_string(),
            "the target that answered"
        );
        assert_eq!(
            (line[ELB_STATUS].as_str(), line[TARGET_STATUS].as_str()),
            ("200", "200")
        );
    }

    // A client that hangs up while its request waits for the target.
    let mut stream = raw_http::connect(balancer.addr()).expect("connect");
    write!(stream, "GET /sleep?ms=1500 HTTP/1.1\r\nHost: a\r\n\r\n").expect("send");
    std::thread::sleep(Duration::from_millis(200));
    drop(stream);
    let all = lines(&log, 5);
    let gone = line_of(&all, "/sleep");
    assert_eq!(
        gone[ELB_STATUS], "460",
        "ALB's status for a client that closed: {gone:?}"
    );
    assert_eq!(gone[ERROR], "client_closed");
    assert_eq!(gone[TARGET_STATUS], "-");
    assert!(
        gone[TARGET_STATUSES].split(' ').all(|s| s == "-"),
        "no try answered: {gone:?}"
    );
    assert!(
        gone[TARGETS].ends_with(&gone[TARGET]),
        "the last try's target: {gone:?}"
    );
    assert_eq!(
        seconds(&gone[TARGET_TIME]),
        -1.0,
        "the target never answered"
    );
}

#[test]
fn sigusr1_reopens_the_log_after_a_rotation_and_a_reload_moves_it() {
    let dir = TempDir::new("elb-access-log");
    let log = dir.path().join("access.log");
    let web = agent("web", "i-web");
    let config = logging(
        config(vec![group(
            "web",
            Algorithm::RoundRobin,
            vec![target("i-web", web.addr)],
        )]),
        &log,
    );
    let balancer = Balancer::start(&config);
    balancer.wait_all_healthy();
    assert_eq!(balancer.get("/cluster1?first").status, 200);
    lines(&log, 1);

    // logrotate's way: move the file, then tell the balancer.
    let rotated = dir.path().join("access.log.1");
    std::fs::rename(&log, &rotated).expect("rotate");
    balancer.signal(libc::SIGUSR1);
    wait_for_file(&log);
    assert_eq!(balancer.get("/cluster1?second").status, 200);
    assert_eq!(lines(&log, 1).len(), 1);
    line_of(&lines(&log, 1), "?second");
    line_of(&lines(&rotated, 1), "?first");

    // A reload naming another file (relative: beside the config) moves the lines there.
    let mut moved = config.clone();
    moved.access_log = Some(AccessLog {
        path: "moved.log".into(),
    });
    balancer.reload(&moved);
    balancer.status_until(Duration::from_secs(5), "the reload", |s| {
        s.config_generation == 2
    });
    assert_eq!(balancer.get("/cluster1?third").status, 200);
    let beside: PathBuf = balancer.config_path.with_file_name("moved.log");
    line_of(&lines(&beside, 1), "?third");
    assert_eq!(lines(&log, 1).len(), 1, "nothing more in the old file");
}

/// Waits until `path` exists (the writer reopens within a second of the signal).
fn wait_for_file(path: &Path) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !path.exists() {
        assert!(
            Instant::now() < deadline,
            "{} was not created",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn an_access_log_that_cannot_be_written_is_refused_at_check_and_on_reload() {
    let dir = TempDir::new("elb-access-log");
    let web = agent("web", "i-web");
    let good = config(vec![group(
        "web",
        Algorithm::RoundRobin,
        vec![target("i-web", web.addr)],
    )]);
    let cases = [
        (
            dir.path().join("missing/access.log"),
            "does not exist",
            "create the directory",
        ),
        (
            dir.path().to_path_buf(),
            "is a directory",
            "name a file in it",
        ),
    ];
    for (path, problem, fix) in &cases {
        let file = dir.path().join("bad.toml");
        std::fs::write(&file, to_toml(&logging(good.clone(), path))).expect("write");
        let out = check(&file);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{}: {stderr}", path.display());
        for part in ["access_log.path", problem, fix] {
            assert!(stderr.contains(part), "--check names {part:?}: {stderr}");
        }
    }
    let log = dir.path().join("access.log");
    let balancer = Balancer::start(&logging(good.clone(), &log));
    balancer.wait_all_healthy();
    for (refused, (path, problem, _)) in cases.iter().enumerate() {
        balancer.reload(&logging(good.clone(), path));
        let status = balancer.status_until(Duration::from_secs(5), "the reload refused", |s| {
            s.reloads_refused == refused as u64 + 1
                && s.last_reload_error
                    .as_deref()
                    .is_some_and(|e| e.contains(problem))
        });
        assert_eq!(status.config_generation, 1, "the running config stays");
    }
    assert_eq!(balancer.get("/cluster1?still").status, 200);
    line_of(&lines(&log, 1), "?still");
}
