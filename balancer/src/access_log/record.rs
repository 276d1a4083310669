//! One request's access log line: what the request path notes in a [`Record`] as the request
//! goes, and its formatting in ALB's field order (docs/balancer.md lists the fields).
//!
//! The fields ALB has and the balancer fills differently: `elb` is the listener
//! (`listener/<port>`); `target_group_arn` is the group's name; `chosen_cert_arn`,
//! `classification`, `classification_reason` and `conn_trace_id` are `-`; `ssl_cipher` is the
//! IANA name of the suite (`TLS_AES_128_GCM_SHA256`, `TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256`),
//! where ALB writes OpenSSL's; `sent_bytes` counts the response head as the balancer passed it
//! to the connection (without the framing HTTP/1.1 adds), `received_bytes` the request head as
//! it was parsed, each with its body. `error_reason` is the balancer's reason code (the one in
//! its own error answers), `client_closed` when the client hung up before its answer (status
//! 460, as ALB), `client_closed_during_body` or `target_body_error` when the answer's body was
//! cut.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use hyper::header::{HeaderName, HeaderValue, HOST, USER_AGENT};
use hyper::{Request, Response, Version};
use tokio::time::Instant;

use super::AccessLog;
use crate::request_body::RequestBody;

/// `X-Amzn-Trace-Id`, which ALB adds to every request and logs.
static TRACE_ID: HeaderName = HeaderName::from_static("x-amzn-trace-id");
/// ALB's status for a request whose client hung up before its answer.
const CLIENT_CLOSED: u16 = 460;

/// A connection's TLS session, for the log's `ssl_cipher`, `ssl_protocol` and `domain_name`.
#[derive(Debug, Clone)]
pub(crate) struct Tls {
    /// IANA's name of the suite.
    pub cipher: Cow<'static, str>,
    pub protocol: &'static str,
    /// The name the client asked for (SNI).
    pub server_name: Option<String>,
}

impl Tls {
    /// What the log says of `connection`'s session.
    pub(crate) fn of(connection: &rustls::ServerConnection) -> Self {
        let cipher = connection
            .negotiated_cipher_suite()
            .and_then(|suite| suite.suite().as_str())
            // rustls names TLS 1.3's suites `TLS13_...`; IANA's names are `TLS_...`.
            .map_or(Cow::Borrowed("-"), |name| {
                match name.strip_prefix("TLS13_") {
                    Some(rest) => Cow::Owned(format!("TLS_{rest}")),
                    None => Cow::Borrowed(name),
                }
            });
        let protocol = match connection.protocol_version() {
            Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3",
            Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2",
            _ => "-",
        };
        Self {
            cipher,
            protocol,
            server_name: connection.server_name().map(String::from),
        }
    }
}

/// A request's line, filled as it goes.
#[derive(Debug)]
pub(crate) struct Record {
    /// `http`, `https`, `h2`, `ws` or `wss`.
    kind: &'static str,
    received_at: SystemTime,
    ended_at: SystemTime,
    listener_port: u16,
    client: SocketAddr,
    /// The request line as ALB writes it: `GET http://host:80/path?q HTTP/1.1`.
    request: String,
    user_agent: Option<String>,
    trace_id: String,
    tls: Option<Tls>,
    head_bytes: u64,
    body: Option<RequestBody>,
    received_bytes: u64,
    sent_bytes: u64,
    elb_status: Option<u16>,
    /// The rule's priority, 0 for the default action; none before routing.
    rule: Option<u32>,
    action: &'static str,
    group: Option<String>,
    redirect_url: Option<String>,
    error: Option<&'static str>,
    /// Each try: its target and the status it answered.
    tries: Vec<(SocketAddr, Option<u16>)>,
    started: Instant,
    dispatched: Option<Instant>,
    answered: Option<Instant>,
    returned: Option<Instant>,
}

/// Where the request path notes what happened; [`Trail::off`] when the log is off.
#[derive(Debug)]
pub(crate) struct Trail<'a>(Option<&'a mut Record>);

impl Trail<'_> {
    /// Notes nothing.
    pub(crate) fn off() -> Trail<'static> {
        Trail(None)
    }

    /// The rule that matched (0: the default action) and what it did.
    pub(crate) fn routed(&mut self, priority: u32, action: &'static str) {
        if let Some(r) = self.0.as_deref_mut() {
            r.rule = Some(priority);
            r.action = action;
        }
    }

    /// The target group the request went to.
    pub(crate) fn group(&mut self, name: &str) {
        if let Some(r) = self.0.as_deref_mut() {
            r.group = Some(name.to_string());
        }
    }

    /// The request's body, whose bytes are counted when the line is written.
    pub(crate) fn body(&mut self, body: &RequestBody) {
        if let Some(r) = self.0.as_deref_mut() {
            r.body = Some(body.clone());
        }
    }

    /// A try sent to `target`, now.
    pub(crate) fn sent(&mut self, target: SocketAddr) {
        if let Some(r) = self.0.as_deref_mut() {
            r.tries.push((target, None));
            r.dispatched = Some(Instant::now());
        }
    }

    /// The last try's answer head, now.
    pub(crate) fn answered(&mut self, status: u16) {
        if let Some(r) = self.0.as_deref_mut() {
            if let Some(last) = r.tries.last_mut() {
                last.1 = Some(status);
            }
            r.answered = Some(Instant::now());
        }
    }

    /// Why the balancer answered itself.
    pub(crate) fn failed(&mut self, reason: &'static str) {
        if let Some(r) = self.0.as_deref_mut() {
            r.error = Some(reason);
        }
    }
}

/// A request's record until its line is sent: when the answer's body has been passed on, or
/// when it is dropped unanswered (the client hung up: status 460).
#[derive(Debug)]
pub(crate) struct Pending {
    /// Taken when the line is sent.
    record: Option<Box<Record>>,
    log: &'static AccessLog,
}

impl Pending {
    /// Starts the record of `request`, which came on a connection from `client` to the
    /// listener on `listener_port` with `scheme`; gives the request ALB's `X-Amzn-Trace-Id`
    /// (`Root=1-<epoch seconds, hex>-<96 random bits, hex>`) when it has none, so that the
    /// targets' logs can be joined with this one.
    pub(crate) fn start<B>(
        log: &'static AccessLog,
        request: &mut Request<B>,
        client: SocketAddr,
        listener_port: u16,
        tls: Option<&Tls>,
        websocket: bool,
    ) -> Self {
        let received_at = SystemTime::now();
        let scheme = if tls.is_some() { "https" } else { "http" };
        let kind = match (websocket, tls.is_some(), request.version()) {
            (true, false, _) => "ws",
            (true, true, _) => "wss",
            (false, _, Version::HTTP_2) => "h2",
            (false, _, _) => scheme,
        };
        let trace_id = match request.headers().get(&TRACE_ID) {
            Some(id) => String::from_utf8_lossy(id.as_bytes()).into_owned(),
            None => {
                let id = new_trace_id(received_at);
                if let Ok(value) = HeaderValue::from_str(&id) {
                    request.headers_mut().insert(TRACE_ID.clone(), value);
                }
                id
            }
        };
        let record = Record {
            kind,
            received_at,
            ended_at: received_at,
            listener_port,
            client,
            request: request_line(request, scheme, listener_port),
            user_agent: request
                .headers()
                .get(USER_AGENT)
                .map(|ua| String::from_utf8_lossy(ua.as_bytes()).into_owned()),
            trace_id,
            tls: tls.cloned(),
            head_bytes: request_head_bytes(request),
            body: None,
            received_bytes: 0,
            sent_bytes: 0,
            elb_status: None,
            rule: None,
            action: "-",
            group: None,
            redirect_url: None,
            error: None,
            tries: Vec::new(),
            started: Instant::now(),
            dispatched: None,
            answered: None,
            returned: None,
        };
        Self {
            record: Some(Box::new(record)),
            log,
        }
    }

    fn record(&mut self) -> &mut Record {
        self.record
            .as_mut()
            .unwrap_or_else(|| unreachable!("the record is only taken when dropped"))
    }

    /// The trail the request path fills.
    pub(crate) fn trail(&mut self) -> Trail<'_> {
        Trail(Some(self.record()))
    }

    /// The answer's head, about to be passed on.
    pub(crate) fn respond<B>(&mut self, response: &Response<B>) {
        let r = self.record();
        r.elb_status = Some(response.status().as_u16());
        r.sent_bytes = response_head_bytes(response);
        r.returned = Some(Instant::now());
        if r.action == "redirect" {
            r.redirect_url = response
                .headers()
                .get(hyper::header::LOCATION)
                .map(|l| String::from_utf8_lossy(l.as_bytes()).into_owned());
        }
    }

    /// `bytes` more of the answer's body passed on.
    pub(crate) fn sent(&mut self, bytes: usize) {
        self.record().sent_bytes += bytes as u64;
    }

    /// The answer's body failed on the target's side.
    pub(crate) fn target_body_failed(&mut self) {
        self.record().error.get_or_insert("target_body_error");
    }

    /// The answer's body ended here, `complete` or not (the client hung up).
    pub(crate) fn ended(&mut self, complete: bool) {
        if !complete {
            self.record()
                .error
                .get_or_insert("client_closed_during_body");
        }
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        let Some(mut r) = self.record.take() else {
            return;
        };
        if r.elb_status.is_none() {
            r.elb_status = Some(CLIENT_CLOSED);
            r.error.get_or_insert("client_closed");
        }
        r.ended_at = SystemTime::now();
        r.received_bytes = r.head_bytes + r.body.take().map_or(0, |b| b.received());
        self.log.send(r);
    }
}

impl Record {
    /// Appends the line, newline included, in ALB's field order.
    pub(super) fn format(&self, out: &mut String) {
        let answered_by = self.tries.iter().rev().find(|(_, status)| status.is_some());
        let target = answered_by.or(self.tries.last());
        let seconds = |from: Option<Instant>, to: Option<Instant>| match (from, to) {
            (Some(from), Some(to)) => format!("{:.3}", to.duration_since(from).as_secs_f64()),
            _ => "-1".to_string(),
        };
        let _ = write!(out, "{} ", self.kind);
        iso8601(self.ended_at, out);
        let _ = write!(out, " listener/{} {} ", self.listener_port, self.client);
        match target {
            Some((address, _)) => {
                let _ = write!(out, "{address} ");
            }
            None => out.push_str("- "),
        }
        let _ = write!(
            out,
            "{} {} {} {} ",
            seconds(Some(self.started), self.dispatched),
            seconds(self.dispatched, self.answered),
            seconds(
                self.answered,
                self.returned.filter(|_| answered_by.is_some())
            ),
            self.elb_status.unwrap_or(CLIENT_CLOSED),
        );
        match answered_by.and_then(|(_, s)| *s) {
            Some(status) => {
                let _ = write!(out, "{status} ");
            }
            None => out.push_str("- "),
        }
        let _ = write!(out, "{} {} ", self.received_bytes, self.sent_bytes);
        quoted(Some(&self.request), out);
        out.push(' ');
        quoted(self.user_agent.as_deref(), out);
        match &self.tls {
            Some(tls) => {
                let _ = write!(out, " {} {} ", tls.cipher, tls.protocol);
            }
            None => out.push_str(" - - "),
        }
        out.push_str(self.group.as_deref().unwrap_or("-"));
        out.push(' ');
        quoted(Some(&self.trace_id), out);
        out.push(' ');
        quoted(
            self.tls.as_ref().and_then(|t| t.server_name.as_deref()),
            out,
        );
        out.push_str(" \"-\" ");
        match self.rule {
            Some(priority) => {
                let _ = write!(out, "{priority} ");
            }
            None => out.push_str("-1 "),
        }
        iso8601(self.received_at, out);
        out.push(' ');
        quoted(Some(self.action), out);
        out.push(' ');
        quoted(self.redirect_url.as_deref(), out);
        out.push(' ');
        quoted(self.error, out);
        let targets: Vec<String> = self.tries.iter().map(|(a, _)| a.to_string()).collect();
        let statuses: Vec<String> = self
            .tries
            .iter()
            .map(|(_, s)| s.map_or("-".into(), |s| s.to_string()))
            .collect();
        out.push(' ');
        quoted(
            Some(targets.join(" ").as_str()).filter(|t| !t.is_empty()),
            out,
        );
        out.push(' ');
        quoted(
            Some(statuses.join(" ").as_str()).filter(|s| !s.is_empty()),
            out,
        );
        out.push_str(" \"-\" \"-\" -\n");
    }
}

/// A new `X-Amzn-Trace-Id` value, as ALB makes them.
fn new_trace_id(now: SystemTime) -> String {
    let seconds = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (high, low) = crate::selection::with_rng(|rng| (rng.next_u64(), rng.next_u64()));
    format!(
        "Root=1-{:08x}-{:08x}{:016x}",
        seconds as u32, high as u32, low
    )
}

/// ALB's `request` field: method, the URL the client asked for (scheme, host, listener port,
/// path and query), protocol version.
fn request_line<B>(request: &Request<B>, scheme: &str, port: u16) -> String {
    let host = request
        .uri()
        .host()
        .map(String::from)
        .or_else(|| {
            request
                .headers()
                .get(HOST)
                .and_then(|h| h.to_str().ok())
                .map(|h| crate::rules::strip_port(h).to_string())
        })
        .unwrap_or_else(|| "-".into());
    let path = request.uri().path_and_query().map_or("/", |p| p.as_str());
    format!(
        "{} {scheme}://{host}:{port}{path} {:?}",
        request.method(),
        request.version()
    )
}

/// The request head's bytes as HTTP/1.1 writes it.
fn request_head_bytes<B>(request: &Request<B>) -> u64 {
    let line = request.method().as_str().len()
        + 1
        + request
            .uri()
            .path_and_query()
            .map_or(1, |p| p.as_str().len())
        + " HTTP/1.1\r\n".len();
    (line + headers_bytes(request.headers())) as u64
}

/// The response head's bytes as HTTP/1.1 writes it.
fn response_head_bytes<B>(response: &Response<B>) -> u64 {
    let status = response.status();
    let line = "HTTP/1.1 200 ".len() + status.canonical_reason().map_or(0, str::len) + 2;
    (line + headers_bytes(response.headers())) as u64
}

/// `name: value\r\n` per header, and the blank line.
fn headers_bytes(headers: &hyper::HeaderMap) -> usize {
    headers
        .iter()
        .map(|(name, value)| name.as_str().len() + 2 + value.len() + 2)
        .sum::<usize>()
        + 2
}

/// `"text"` with `"`, `\` and bytes outside printable ASCII as `\xHH` (ALB escapes them so),
/// or `"-"` for none.
fn quoted(text: Option<&str>, out: &mut String) {
    out.push('"');
    match text {
        None => out.push('-'),
        Some(text) => {
            for byte in text.bytes() {
                match byte {
                    b'"' | b'\\' | ..=0x1f | 0x7f.. => {
                        let _ = write!(out, "\\x{byte:02x}");
                    }
                    _ => out.push(byte as char),
                }
            }
        }
    }
    out.push('"');
}

/// `2026-12-08T00:36:48.123456Z`: UTC, microseconds, as ALB's `time` fields.
fn iso8601(at: SystemTime, out: &mut String) {
    let since = at
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or(Duration::ZERO);
    let secs = since.as_secs();
    let (year, month, day) = civil_from_days((secs / 86_400) as i64);
    let rest = secs % 86_400;
    let _ = write!(
        out,
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:06}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60,
        since.subsec_micros()
    );
}

/// The proleptic Gregorian date of a day counted from 1970-01-01: Howard Hinnant's
/// `civil_from_days` (chrono-compatible date algorithms, public domain), eras of 400 years.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_utc_and_microseconds() {
        let mut out = String::new();
        iso8601(SystemTime::UNIX_EPOCH, &mut out);
        assert_eq!(out, "1970-01-01T00:00:00.000000Z");
        out.clear();
        // 2024-02-29 (a leap day) 23:59:59.5, and 2100-03-01 (2100 is no leap year).
        iso8601(
            SystemTime::UNIX_EPOCH + Duration::from_micros(1_709_251_199_500_000),
            &mut out,
        );
        assert_eq!(out, "2024-02-29T23:59:59.500000Z");
        assert_eq!(civil_from_days(47_541), (2100, 3, 1));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
    }

    #[test]
    fn quoted_fields_escape_quotes_and_unprintable_bytes() {
        let mut out = String::new();
        quoted(Some("curl/8 \"x\"\té"), &mut out);
        assert_eq!(out, r#""curl/8 \x22x\x22\x09\xc3\xa9""#);
        out.clear();
        quoted(None, &mut out);
        assert_eq!(out, "\"-\"");
    }

    #[test]
    fn a_request_line_names_scheme_host_listener_port_and_version() {
        let request = Request::builder()
            .uri("/a?b=c")
            .header(HOST, "example.com:8080")
            .body(())
            .unwrap();
        assert_eq!(
            request_line(&request, "http", 80),
            "GET http://example.com:80/a?b=c HTTP/1.1"
        );
        assert_eq!(
            request_head_bytes(&request),
            ("GET /a?b=c HTTP/1.1\r\nhost: example.com:8080\r\n\r\n".len()) as u64
        );
    }

    #[test]
    fn trace_ids_have_albs_shape() {
        let id = new_trace_id(SystemTime::UNIX_EPOCH + Duration::from_secs(0x5833_7262));
        assert!(id.starts_with("Root=1-58337262-"), "{id}");
        assert_eq!(id.len(), "Root=1-58337262-".len() + 24);
        assert_ne!(id, new_trace_id(SystemTime::UNIX_EPOCH));
    }
}
