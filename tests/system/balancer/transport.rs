//! The balancer's transports, through clients nobody here wrote: HTTPS with certificates chosen
//! by SNI (`curl`, `openssl s_client`), ALB's TLS policies, HTTP/2 by ALPN and by prior
//! knowledge (`curl`, `h2load`), certificates replaced on SIGHUP, bad TLS input refused.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

use proto::balancer_config::{Algorithm, Config, Listener, Protocol, TlsPolicy};

use crate::harness::balancer::{check, config, group, target, to_toml};
use crate::harness::stub_target::{Misbehaviour, StubTarget};
use crate::harness::tls::{curl, resolve, s_client, Certificate};
use crate::harness::{venv_python, Balancer, TempDir};

/// The seed's names for the two certificates: `a` is the default one.
const A: &str = "a.example.test";
const C: &str = "c.example.test";

/// A balancer with an HTTPS listener holding `certificates` (the first the default) and a
/// cleartext listener with HTTP/2 by prior knowledge, both in front of an echo target.
fn https_config(certificates: &[&Certificate], policy: TlsPolicy, echo: &StubTarget) -> Config {
    let mut config = config(vec![group(
        "web",
        Algorithm::RoundRobin,
        vec![target("i-echo", echo.addr)],
    )]);
    let address = "127.0.0.1:0".parse().expect("an address");
    config.listeners = vec![
        Listener {
            protocol: Protocol::Https,
            certificates: certificates.iter().map(|c| c.entry()).collect(),
            tls_policy: policy,
            ..Listener::http(address)
        },
        Listener {
            http2: Some(true),
            ..Listener::http(address)
        },
    ];
    config
}

fn header<'a>(echoed: &'a str, name: &str) -> Option<&'a str> {
    echoed
        .lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim())
}

#[test]
fn https_serves_each_name_its_certificate_and_tells_the_target_what_the_client_used() {
    let echo = StubTarget::start(Misbehaviour::Echo);
    let a = Certificate::for_names(&[A, &format!("*.{A}")]);
    let c = Certificate::for_names(&[C, &format!("*.{C}")]);
    let balancer = Balancer::start(&https_config(&[&a, &c], TlsPolicy::default(), &echo));
    balancer.wait_all_healthy();
    let port = balancer.listeners[0].port();

    // curl checks the chain and the name against the certificate it trusts.
    let url = |name: &str| format!("https://{name}:{port}/shop?q=1");
    let flags = resolve(A, port, &a);
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let got = curl(&flags, &url(A));
    assert!(got.ok, "{}", got.stderr);
    assert_eq!(got.status, "200");
    assert_eq!(
        header(&got.body, "x-forwarded-proto"),
        Some("https"),
        "{}",
        got.body
    );
    let port_text = port.to_string();
    assert_eq!(
        header(&got.body, "x-forwarded-port"),
        Some(port_text.as_str())
    );
    assert_eq!(
        header(&got.body, "host"),
        Some(format!("{A}:{port}").as_str())
    );
    let flags = resolve(&format!("www.{C}"), port, &c);
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let got = curl(&flags, &url(&format!("www.{C}")));
    assert!(
        got.ok,
        "a wildcard name gets its certificate: {}",
        got.stderr
    );

    // The certificate per name, as openssl sees it: exact, wildcard, unknown and no name.
    let subject = |name| s_client(port, name, &[]).subject().to_string();
    assert!(subject(Some(C)).contains(C), "{}", subject(Some(C)));
    assert!(subject(Some("x.c.example.test")).contains(C));
    assert!(
        subject(Some("deep.x.c.example.test")).contains(A),
        "one label only"
    );
    assert!(subject(Some("unknown.test")).contains(A), "the default");
    assert!(subject(None).contains(A), "no SNI: the default");

    // The cleartext listener still says http.
    let plain = curl(
        &[],
        &format!("http://127.0.0.1:{}/", balancer.listeners[1].port()),
    );
    assert_eq!(header(&plain.body, "x-forwarded-proto"), Some("http"));
}

#[test]
fn tls_policies_offer_the_versions_alb_names() {
    let echo = StubTarget::start(Misbehaviour::Echo);
    let a = Certificate::for_names(&[A]);
    let both = Balancer::start(&https_config(&[&a], TlsPolicy::Tls13And12, &echo));
    let only13 = Balancer::start(&https_config(&[&a], TlsPolicy::Tls13Only, &echo));
    let (both, only13) = (both.listeners[0].port(), only13.listeners[0].port());

    let handshake = |port, flag| s_client(port, Some(A), &[flag]);
    assert!(handshake(both, "-tls1_3").ok);
    let tls12 = handshake(both, "-tls1_2");
    assert!(tls12.ok, "{}", tls12.report);
    assert!(tls12.report.contains("TLSv1.2"), "{}", tls12.report);
    assert!(!handshake(both, "-tls1_1").ok, "TLS 1.1 is refused");
    assert!(handshake(only13, "-tls1_3").ok);
    assert!(
        !handshake(only13, "-tls1_2").ok,
        "the TLS 1.3 policy refuses 1.2"
    );
}

#[test]
fn http2_is_spoken_by_alpn_on_https_and_by_prior_knowledge_where_the_config_allows() {
    let echo = StubTarget::start(Misbehaviour::Echo);
    let a = Certificate::for_names(&[A]);
    let mut config = https_config(&[&a], TlsPolicy::default(), &echo);
    // A third listener: HTTPS with HTTP/2 turned off; a fourth: cleartext, HTTP/1.1 only.
    config.listeners.push(Listener {
        http2: Some(false),
        ..config.listeners[0].clone()
    });
    config
        .listeners
        .push(Listener::http("127.0.0.1:0".parse().expect("an address")));
    let balancer = Balancer::start(&config);
    balancer.wait_all_healthy();
    let (https, clear, https_h1, plain_h1) = (
        balancer.listeners[0].port(),
        balancer.listeners[1].port(),
        balancer.listeners[2].port(),
        balancer.listeners[3].port(),
    );

    let over = |port: u16, extra: &[&str]| {
        let mut flags = resolve(A, port, &a);
        flags.extend(extra.iter().map(|s| s.to_string()));
        let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
        curl(&flags, &format!("https://{A}:{port}/h2?x=1"))
    };
    let h2 = over(https, &["--http2", "-b", "session=abc"]);
    assert!(h2.ok, "{}", h2.stderr);
    assert_eq!((h2.status.as_str(), h2.version.as_str()), ("200", "2"));
    // The target gets HTTP/1.1, with Host from the :authority.
    assert!(
        h2.body.starts_with("GET /h2?x=1 HTTP/1.1\r\n"),
        "{}",
        h2.body
    );
    assert_eq!(
        header(&h2.body, "host"),
        Some(format!("{A}:{https}").as_str())
    );
    assert_eq!(header(&h2.body, "cookie"), Some("session=abc"));
    assert_eq!(over(https, &["--http1.1"]).version, "1.1");
    assert_eq!(
        over(https_h1, &["--http2"]).version,
        "1.1",
        "ALPN without h2"
    );

    let clear_url = format!("http://127.0.0.1:{clear}/");
    let prior = curl(&["--http2-prior-knowledge"], &clear_url);
    assert_eq!(
        (prior.status.as_str(), prior.version.as_str()),
        ("200", "2")
    );
    assert_eq!(curl(&[], &clear_url).version, "1.1");
    // A cleartext listener without `http2` does not take HTTP/2's preface.
    let plain_url = format!("http://127.0.0.1:{plain_h1}/");
    let refused = curl(&["--http2-prior-knowledge"], &plain_url);
    assert!(
        !(refused.ok && refused.version == "2"),
        "HTTP/2 by prior knowledge on an HTTP/1.1-only listener: {} {}",
        refused.status,
        refused.version
    );
    assert_eq!(curl(&[], &plain_url).status, "200");
}

#[test]
fn h2load_sends_many_streams_on_few_connections_and_every_one_is_answered() {
    let echo = StubTarget::start(Misbehaviour::Echo);
    let a = Certificate::for_names(&[A]);
    let balancer = Balancer::start(&https_config(&[&a], TlsPolicy::default(), &echo));
    balancer.wait_all_healthy();
    let out = Command::new("h2load")
        .args(["-n", "2000", "-c", "2", "-m", "50"])
        .arg(format!(
            "https://127.0.0.1:{}/load",
            balancer.listeners[0].port()
        ))
        .output()
        .expect("run h2load");
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        report.contains("requests: 2000 total, 2000 started, 2000 done, 2000 succeeded, 0 failed"),
        "{report}"
    );
    assert!(report.contains("status codes: 2000 2xx"), "{report}");
    assert!(report.contains("Application protocol: h2"), "{report}");
}

#[test]
fn a_certificate_replaced_on_disk_serves_new_connections_after_sighup_and_open_ones_go_on() {
    let echo = StubTarget::start(Misbehaviour::Echo);
    let old = Certificate::for_names(&[A]);
    let new = Certificate::for_names(&[A]);
    let live = Certificate::for_names(&[A]);
    std::fs::copy(&old.cert, &live.cert).expect("copy the cert");
    std::fs::copy(&old.key, &live.key).expect("copy the key");
    let balancer = Balancer::start(&https_config(&[&live], TlsPolicy::default(), &echo));
    balancer.wait_all_healthy();
    let port = balancer.listeners[0].port();
    assert_eq!(
        s_client(port, Some(A), &[]).fingerprint(),
        old.fingerprint()
    );

    // A keep-alive connection opened before the swap.
    let mut open = Command::new("openssl")
        .args([
            "s_client",
            "-quiet",
            "-connect",
            &format!("127.0.0.1:{port}"),
        ])
        .args(["-servername", A])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("run openssl s_client");
    let mut to_server = open.stdin.take().expect("stdin");
    let mut from_server = BufReader::new(open.stdout.take().expect("stdout"));
    let ask = |to: &mut dyn Write| {
        to.write_all(format!("GET /before HTTP/1.1\r\nHost: {A}\r\n\r\n").as_bytes())
            .expect("send");
        to.flush().expect("flush");
    };
    ask(&mut to_server);
    assert_eq!(status_line(&mut from_server), "HTTP/1.1 200 OK");
    skip_answer(&mut from_server);

    std::fs::copy(&new.cert, &live.cert).expect("replace the cert");
    std::fs::copy(&new.key, &live.key).expect("replace the key");
    let generation = balancer.status().config_generation;
    balancer.signal(libc::SIGHUP);
    balancer.status_until(Duration::from_secs(10), "the reload", |s| {
        s.config_generation > generation
    });
    assert_eq!(
        s_client(port, Some(A), &[]).fingerprint(),
        new.fingerprint()
    );

    ask(&mut to_server);
    assert_eq!(
        status_line(&mut from_server),
        "HTTP/1.1 200 OK",
        "the open connection"
    );
    drop(to_server);
    let _ = open.kill();
    let _ = open.wait();
}

/// Reads the status line of the next answer.
fn status_line(reader: &mut impl BufRead) -> String {
    let mut line = String::new();
    reader.read_line(&mut line).expect("an answer");
    line.trim_end().to_string()
}

/// Reads the rest of an answer: headers, then `Content-Length` bytes of body.
fn skip_answer(reader: &mut impl BufRead) {
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).expect("a header");
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().expect("a length");
            }
        }
    }
    let mut body = vec![0u8; length];
    reader.read_exact(&mut body).expect("the body");
}

#[test]
fn bad_tls_input_is_refused_at_check_and_on_reload_naming_the_field_and_the_fix() {
    let echo = StubTarget::start(Misbehaviour::Echo);
    let a = Certificate::for_names(&[A]);
    let c = Certificate::for_names(&[C]);
    let nameless = Certificate::for_names(&[]);
    let good = https_config(&[&a], TlsPolicy::default(), &echo);
    let dir = TempDir::new("elb-tls-bad");

    let readable = Certificate::for_names(&[A]);
    std::fs::set_permissions(
        &readable.key,
        std::os::unix::fs::PermissionsExt::from_mode(0o644),
    )
    .expect("chmod");
    let with = |edit: &dyn Fn(&mut Config)| {
        let mut config = good.clone();
        edit(&mut config);
        to_toml(&config)
    };
    let cases: Vec<(&str, String, &str, &str)> = vec![
        (
            "missing file",
            with(&|c| c.listeners[0].certificates[0].cert = "/nonexistent/cert.pem".into()),
            "listeners[0].certificates[0]: cannot read /nonexistent/cert.pem",
            "check the path",
        ),
        (
            "mismatched key",
            with(&|cfg| cfg.listeners[0].certificates[0].key = c.key.display().to_string()),
            "is not the key of the certificate",
            "pair each certificate with the key it was issued for",
        ),
        (
            "key readable by others",
            with(&|c| c.listeners[0].certificates = vec![readable.entry()]),
            "is readable by others (mode 644)",
            "chmod 600",
        ),
        (
            "no name",
            with(&|c| c.listeners[0].certificates = vec![nameless.entry()]),
            "names no DNS name",
            "subject alternative names",
        ),
        (
            "no certificate",
            with(&|c| c.listeners[0].certificates.clear()),
            "listeners[0].certificates: an HTTPS listener needs at least one certificate",
            "add a [[listeners.certificates]]",
        ),
        (
            "certificates on http",
            with(&|c| c.listeners[1].certificates = vec![a.entry()]),
            "listeners[1].certificates: an http listener has no use for certificates",
            "set protocol = \"https\"",
        ),
        (
            "unknown policy",
            to_toml(&good).replace(
                "protocol = \"https\"",
                "protocol = \"https\"\ntls_policy = \"ELBSecurityPolicy-2016-08\"",
            ),
            "unknown variant `ELBSecurityPolicy-2016-08`",
            "ELBSecurityPolicy-TLS13-1-2-2021-06",
        ),
    ];
    let balancer = Balancer::start(&good);
    balancer.wait_all_healthy();
    let port = balancer.listeners[0].port();
    for (case, text, problem, fix) in &cases {
        let path = dir.path().join("lb.toml");
        std::fs::write(&path, text).expect("write the config");
        let out = check(&path);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{case}: {stderr}");
        assert!(stderr.contains(problem), "{case}: {stderr}");
        assert!(stderr.contains(fix), "{case}: {stderr}");

        let refused = balancer.status().reloads_refused;
        balancer.reload_toml(text);
        let status = balancer.status_until(Duration::from_secs(10), case, |s| {
            s.reloads_refused > refused
        });
        let error = status.last_reload_error.unwrap_or_default();
        assert!(error.contains(problem), "{case}: {error}");
        assert_eq!(
            s_client(port, Some(A), &[]).fingerprint(),
            a.fingerprint(),
            "{case}"
        );
    }
}

/// Runs `h2_abuse.py MODE 127.0.0.1 PORT ARG` and returns what it saw of the server.
fn abuse(mode: &str, port: u16, arg: &str) -> String {
    let script =
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("system/balancer/h2_abuse.py");
    let out = Command::new(venv_python())
        .arg(script)
        .args([mode, "127.0.0.1", &port.to_string(), arg])
        .output()
        .expect("run h2_abuse.py");
    assert!(
        out.status.success(),
        "h2_abuse.py {mode}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn http2_floods_are_cut_at_their_bounds_and_the_balancer_keeps_serving() {
    let echo = StubTarget::start(Misbehaviour::Echo);
    let a = Certificate::for_names(&[A]);
    let balancer = Balancer::start(&https_config(&[&a], TlsPolicy::default(), &echo));
    balancer.wait_all_healthy();
    let clear = balancer.listeners[1].port();

    // Rapid reset: past http2.max_pending_reset_streams (20) the connection goes.
    let flood = abuse("rapid-reset", clear, "500");
    assert!(
        flood == "goaway 11" || flood == "closed",
        "500 resets: {flood}"
    );
    assert_eq!(
        abuse("rapid-reset", clear, "10"),
        "open",
        "10 resets are within the bound"
    );

    // A header block that never ends is cut at limits.max_header_bytes, not buffered.
    let before = balancer.rss_kib();
    let flood = abuse("continuation-flood", clear, "50000000");
    assert!(flood.starts_with("goaway") || flood == "closed", "{flood}");
    let grown = balancer.rss_kib().saturating_sub(before);
    assert!(
        grown < 16 * 1024,
        "RSS grew {grown} KiB under a 50 MB header flood"
    );

    let ok = curl(
        &["--http2-prior-knowledge"],
        &format!("http://127.0.0.1:{clear}/"),
    );
    assert_eq!(
        (ok.status.as_str(), ok.version.as_str()),
        ("200", "2"),
        "still serving"
    );
}

#[test]
fn chromium_loads_a_page_over_https_and_http2_through_the_balancer() {
    let agent = crate::harness::balancer::agent("cluster1", "i-web");
    let a = Certificate::for_names(&[A]);
    let mut config = https_config(
        &[&a],
        TlsPolicy::default(),
        &StubTarget::start(Misbehaviour::Echo),
    );
    config.target_groups[0].targets = vec![target("i-web", agent.addr)];
    let balancer = Balancer::start(&config);
    balancer.wait_all_healthy();
    let port = balancer.listeners[0].port();
    let flags = [
        format!("--host-resolver-rules=MAP {A} 127.0.0.1"),
        format!("--ignore-certificate-errors-spki-list={}", a.spki_sha256()),
    ];
    let mut browser = crate::harness::browser::Browser::open_with(
        &format!("https://{A}:{port}/cluster1"),
        &flags,
    );
    assert_eq!(browser.eval("location.protocol"), "https:");
    assert_eq!(
        browser.eval("performance.getEntriesByType('navigation')[0].nextHopProtocol"),
        "h2",
        "Chromium chose HTTP/2 by ALPN"
    );
    let text = browser.eval("document.body.innerText");
    assert!(
        text.as_str()
            .is_some_and(|t| t.contains("Cluster 1 (Large) responding")),
        "{text}"
    );
    let report = browser.report();
    assert!(
        report.console_errors.is_empty(),
        "{:?}",
        report.console_errors
    );
}
