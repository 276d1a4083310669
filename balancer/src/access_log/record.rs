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
    suite: Option<rustls::CipherSuite>,
    protocol: Option<rustls::ProtocolVersion>,
    /// The name the client asked for (SNI).
    server_name: Option<String>,
}

impl Tls {
    /// What the log says of `connection`'s session (its names are written by the log's writer,
    /// not on the connection's path).
    pub(crate) fn of(connection: &rustls::ServerConnection) -> Self {
        Self {
            suite: connection.negotiated_cipher_suite().map(|s| s.suite()),
            protocol: connection.protocol_version(),
            server_name: connection.server_name().map(String::from),
        }
    }

    /// `ssl_cipher ssl_protocol`: the suite's IANA name (rustls names TLS 1.3's suites
    /// `TLS13_...`, IANA `TLS_...`) and `TLSv1.2`/`TLSv1.3`.
    fn write(&self, out: &mut String) {
        match self.suite.and_then(|s| s.as_str()) {
            Some(name) => match name.strip_prefix("TLS13_") {
                Some(rest) => {
                    out.push_str("TLS_");
                    out.push_str(rest);
                }
                None => out.push_str(name),
            },
            None => out.push('-'),
        }
        out.push_str(match self.protocol {
            Some(rustls::ProtocolVersion::TLSv1_3) => " TLSv1.3",
            Some(rustls::ProtocolVersion::TLSv1_2) => " TLSv1.2",
            _ => " -",
        });
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
    pub(crate) fn off() -> Self {
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
    /// listener on `listener_port` (over `tls` if any); gives the request ALB's `X-Amzn-Trace-Id`
    /// (`Root=1-<epoch seconds, hex>-<96 random bits, hex>`) when it has none, so that the
    /// targets' logs can be joined with this one.
    pub(crate) fn start<B>(
        log: &'static AccessLog,
        request: &mut Request<B>,
        (client, listener_port): (SocketAddr, u16),
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
        out.push_str(self.kind);
        out.push(' ');
        iso8601(self.ended_at, out);
        out.push_str(" listener/");
        decimal(u64::from(self.listener_port), 0, out);
        out.push(' ');
        address(self.client, out);
        out.push(' ');
        match target {
            Some((target, _)) => address(*target, out),
            None => out.push('-'),
        }
        out.push(' ');
        seconds(Some(self.started), self.dispatched, out);
        seconds(self.dispatched, self.answered, out);
        let returned = self.returned.filter(|_| answered_by.is_some());
        seconds(self.answered, returned, out);
        decimal(u64::from(self.elb_status.unwrap_or(CLIENT_CLOSED)), 0, out);
        out.push(' ');
        match answered_by.and_then(|(_, s)| *s) {
            Some(status) => decimal(u64::from(status), 0, out),
            None => out.push('-'),
        }
        out.push(' ');
        decimal(self.received_bytes, 0, out);
        out.push(' ');
        decimal(self.sent_bytes, 0, out);
        out.push(' ');
        quoted(Some(&self.request), out);
        out.push(' ');
        quoted(self.user_agent.as_deref(), out);
        match &self.tls {
            Some(tls) => {
                out.push(' ');
                tls.write(out);
                out.push(' ');
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
            Some(priority) => decimal(u64::from(priority), 0, out),
            None => out.push_str("-1"),
        }
        out.push(' ');
        iso8601(self.received_at, out);
        out.push(' ');
        quoted(Some(self.action), out);
        out.push(' ');
        quoted(self.redirect_url.as_deref(), out);
        out.push(' ');
        quoted(self.error, out);
        out.push_str(" \"");
        for (i, (target, _)) in self.tries.iter().enumerate() {
            out.push_str(if i > 0 { " " } else { "" });
            address(*target, out);
        }
        if self.tries.is_empty() {
            out.push('-');
        }
        out.push_str("\" \"");
        for (i, (_, status)) in self.tries.iter().enumerate() {
            out.push_str(if i > 0 { " " } else { "" });
            match status {
                Some(status) => decimal(u64::from(*status), 0, out),
                None => out.push('-'),
            }
        }
        if self.tries.is_empty() {
            out.push('-');
        }
        out.push_str("\" \"-\" \"-\" -\n");
    }
}

/// A processing time from `from` to `to` in seconds with three decimals and a space, or `-1 `
/// when either is missing.
fn seconds(from: Option<Instant>, to: Option<Instant>, out: &mut String) {
    match (from, to) {
        (Some(from), Some(to)) => {
            let ms = u64::try_from(to.duration_since(from).as_millis()).unwrap_or(u64::MAX);
            decimal(ms / 1000, 0, out);
            out.push('.');
            decimal(ms % 1000, 3, out);
            out.push(' ');
        }
        _ => out.push_str("-1 "),
    }
}

/// `value` in decimal, zero-padded to `width` digits. The line is written with these digit
/// helpers rather than `write!`: `core::fmt`'s padding and `Ipv4Addr`'s `Display` made up half
/// of a line's cost (callgrind).
fn decimal(value: u64, width: usize, out: &mut String) {
    let mut digits = [0u8; 20];
    let mut n = value;
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    const ZEROS: &str = "00000000000000000000";
    let padding = width.saturating_sub(digits.len() - i).min(ZEROS.len());
    out.push_str(&ZEROS[..padding]);
    out.push_str(std::str::from_utf8(&digits[i..]).unwrap_or_default());
}

/// `value`'s low `width` hex digits, lower case, zero-padded.
fn hex(value: u64, width: usize, out: &mut String) {
    for shift in (0..width).rev() {
        let nibble = (value >> (4 * shift)) & 0xf;
        out.push(char::from_digit(nibble as u32, 16).unwrap_or('0'));
    }
}

/// `ip:port`; `[ip]:port` for IPv6.
fn address(address: SocketAddr, out: &mut String) {
    match address {
        SocketAddr::V4(v4) => {
            for (i, octet) in v4.ip().octets().into_iter().enumerate() {
                if i > 0 {
                    out.push('.');
                }
                decimal(u64::from(octet), 0, out);
            }
            out.push(':');
            decimal(u64::from(v4.port()), 0, out);
        }
        SocketAddr::V6(v6) => {
            let _ = write!(out, "{v6}");
        }
    }
}

/// A new `X-Amzn-Trace-Id` value, as ALB makes them.
fn new_trace_id(now: SystemTime) -> String {
    let seconds = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (high, low) = crate::selection::with_rng(|rng| (rng.next_u64(), rng.next_u64()));
    let mut id = String::with_capacity(40);
    id.push_str("Root=1-");
    hex(seconds, 8, &mut id);
    id.push('-');
    hex(high, 8, &mut id);
    hex(low, 16, &mut id);
    id
}

/// ALB's `request` field: method, the URL the client asked for (scheme, host, listener port,
/// path and query), protocol version.
fn request_line<B>(request: &Request<B>, scheme: &str, port: u16) -> String {
    let host = request
        .uri()
        .host()
        .or_else(|| {
            request
                .headers()
                .get(HOST)
                .and_then(|h| h.to_str().ok())
                .map(crate::rules::strip_port)
        })
        .unwrap_or("-");
    let path = request.uri().path_and_query().map_or("/", |p| p.as_str());
    let version = match request.version() {
        Version::HTTP_09 => "HTTP/0.9",
        Version::HTTP_10 => "HTTP/1.0",
        Version::HTTP_2 => "HTTP/2.0",
        Version::HTTP_3 => "HTTP/3.0",
        _ => "HTTP/1.1",
    };
    let method = request.method().as_str();
    let mut line = String::with_capacity(method.len() + host.len() + path.len() + 32);
    for part in [method, " ", scheme, "://", host, ":"] {
        line.push_str(part);
    }
    decimal(u64::from(port), 0, &mut line);
    for part in [path, " ", version] {
        line.push_str(part);
    }
    line
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
            // Runs of plain characters (printable ASCII, so whole UTF-8) are copied whole.
            let bytes = text.as_bytes();
            fn ascii(run: &[u8]) -> &str {
                std::str::from_utf8(run).unwrap_or_default()
            }
            let mut plain = 0;
            for (at, &byte) in bytes.iter().enumerate() {
                if matches!(byte, b'"' | b'\\' | ..=0x1f | 0x7f..) {
                    out.push_str(ascii(&bytes[plain..at]));
                    out.push_str("\\x");
                    hex(u64::from(byte), 2, out);
                    plain = at + 1;
                }
            }
            out.push_str(ascii(&bytes[plain..]));
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
    decimal(u64::try_from(year).unwrap_or(0), 4, out);
    let parts = [
        ('-', u64::from(month)),
        ('-', u64::from(day)),
        ('T', rest / 3600),
        (':', rest % 3600 / 60),
        (':', rest % 60),
    ];
    for (separator, value) in parts {
        out.push(separator);
        decimal(value, 2, out);
    }
    out.push('.');
    decimal(u64::from(since.subsec_micros()), 6, out);
    out.push('Z');
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
    fn numbers_and_addresses_are_written_as_display_would() {
        let mut out = String::new();
        decimal(0, 0, &mut out);
        decimal(7, 3, &mut out);
        decimal(u64::MAX, 0, &mut out);
        assert_eq!(out, format!("0007{}", u64::MAX));
        out.clear();
        hex(0xab, 4, &mut out);
        assert_eq!(out, "00ab");
        for text in ["10.0.255.1:80", "[::1]:8080"] {
            out.clear();
            address(text.parse().unwrap(), &mut out);
            assert_eq!(out, text);
        }
        out.clear();
        let now = Instant::now();
        seconds(
            Some(now),
            Some(now + Duration::from_micros(1_234_567)),
            &mut out,
        );
        seconds(None, Some(now), &mut out);
        assert_eq!(out, "1.234 -1 ");
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
