//! The configuration file of `elb-balancer`: one TOML document, written by `elb balance` (the
//! orchestrator, its control plane) and read by the balancer at start and on every SIGHUP. The
//! types live here so that writer and reader share one set of field names; validation (what a
//! field may hold, and the error that names file, field and fix) lives in the balancer.
//!
//! The doc comment of each field is its reference (docs/balancer.md repeats them): name, unit,
//! default, meaning. Durations are integers in milliseconds (`_ms`), so tests can make every
//! timer fast. Unknown fields are refused, so a misspelt field is an error, not a silent default.

use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The whole file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Free-form version label reported in `/status` (`config_version`); default: a hash of
    /// the file's bytes.
    #[serde(default)]
    pub version: Option<String>,
    /// Client-facing listeners. At least one.
    pub listeners: Vec<Listener>,
    /// The admin listener (`/metrics`, `/status`).
    #[serde(default)]
    pub admin: Admin,
    /// Limits on client connections.
    #[serde(default)]
    pub limits: Limits,
    /// Bounds on HTTP/2 client connections (listeners with `http2`).
    #[serde(default, skip_serializing_if = "is_default")]
    pub http2: Http2,
    /// Rules, evaluated in ascending `priority`; the first match wins.
    #[serde(default)]
    pub rules: Vec<Rule>,
    /// What a request that matches no rule gets: forward to a group, or a fixed JSON 404.
    #[serde(default)]
    pub default_action: DefaultAction,
    /// Target groups, referred to by name from rules and the default action.
    pub target_groups: Vec<TargetGroup>,
    /// The access log: one line per request in ALB's format; absent: off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_log: Option<AccessLog>,
}

/// ALB's access log, written to a file of this host rather than to S3.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessLog {
    /// The file lines are appended to (created if missing; relative to the config file's
    /// directory), e.g. `/var/log/elb-balancer/access.log` or `/dev/stdout`. Reopened on
    /// SIGUSR1 (after a rotation) and when a reload changes it.
    pub path: String,
}

/// One client-facing listener.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Listener {
    /// Address and port to listen on, e.g. `0.0.0.0:80`; port 0 takes a free port (printed on
    /// stdout). Cannot change on reload.
    pub address: SocketAddr,
    /// `http` (default) or `https`: TLS terminated here, as on ALB's HTTPS listener. Cannot
    /// change on reload.
    #[serde(default, skip_serializing_if = "is_default")]
    pub protocol: Protocol,
    /// HTTPS: the certificates, PEM files. The first is the default certificate, served to a
    /// client that names no server (SNI) or one no certificate covers; the others are chosen
    /// by the name the client sends, as ALB's listener certificates: an exact name in a
    /// certificate's subject alternative names before a wildcard one, then the first listed.
    /// Re-read on every reload (SIGHUP); open connections keep theirs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub certificates: Vec<Certificate>,
    /// HTTPS: the TLS versions and cipher suites offered, by ALB's policy name (see
    /// [`TlsPolicy`]). Default `ELBSecurityPolicy-TLS13-1-2-2021-06`.
    #[serde(default, skip_serializing_if = "is_default")]
    pub tls_policy: TlsPolicy,
    /// Whether clients may speak HTTP/2 (forwarded to the targets as HTTP/1.1). On HTTPS it is
    /// negotiated by ALPN and on by default, as on ALB; on HTTP only by prior knowledge (the
    /// client starts with HTTP/2's preface, e.g. `curl --http2-prior-knowledge`), off by
    /// default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http2: Option<bool>,
    /// Redirect every request of this listener, whatever the rules say (ALB: a listener whose
    /// default action is a redirect and which has no rules), e.g. HTTP to HTTPS:
    /// `redirect = { status = 301, protocol = "HTTPS", port = "443" }`. Re-read on reload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redirect: Option<Redirect>,
}

impl Listener {
    /// A plain HTTP listener on `address`.
    pub fn http(address: SocketAddr) -> Self {
        Self {
            address,
            protocol: Protocol::Http,
            certificates: Vec::new(),
            tls_policy: TlsPolicy::default(),
            http2: None,
            redirect: None,
        }
    }

    /// Whether clients may speak HTTP/2 on this listener ([`Listener::http2`] with its default).
    pub fn http2_enabled(&self) -> bool {
        self.http2.unwrap_or(self.protocol == Protocol::Https)
    }
}

fn is_default<T: Default + PartialEq>(value: &T) -> bool {
    *value == T::default()
}

/// What a listener speaks to its clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    #[default]
    Http,
    Https,
}

/// One certificate of an HTTPS listener.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Certificate {
    /// PEM file of the certificate chain: the server's certificate first, then its
    /// intermediates.
    pub cert: String,
    /// PEM file of the private key (PKCS#8, PKCS#1 or SEC1), readable by no one but its owner
    /// and group: a key readable by others is refused.
    pub key: String,
}

/// A TLS security policy, named as ALB names it. rustls offers no CBC or RSA-key-exchange
/// suites, so the TLS 1.2 suites are ALB's ECDHE AES-GCM ones plus ChaCha20-Poly1305.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum TlsPolicy {
    /// TLS 1.3 and 1.2 (ALB's default policy for HTTPS listeners).
    #[default]
    #[serde(rename = "ELBSecurityPolicy-TLS13-1-2-2021-06")]
    Tls13And12,
    /// TLS 1.3 only.
    #[serde(rename = "ELBSecurityPolicy-TLS13-1-3-2021-06")]
    Tls13Only,
}

impl TlsPolicy {
    /// Every policy, in the order the docs list them.
    pub const ALL: [TlsPolicy; 2] = [TlsPolicy::Tls13And12, TlsPolicy::Tls13Only];

    /// ALB's name of the policy.
    pub fn name(self) -> &'static str {
        match self {
            TlsPolicy::Tls13And12 => "ELBSecurityPolicy-TLS13-1-2-2021-06",
            TlsPolicy::Tls13Only => "ELBSecurityPolicy-TLS13-1-3-2021-06",
        }
    }
}

/// The admin listener.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Admin {
    /// Address of `/metrics` and `/status`; default `127.0.0.1:9901`. Cannot change on reload.
    #[serde(default = "Admin::default_address")]
    pub address: SocketAddr,
}

impl Admin {
    fn default_address() -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 9901))
    }
}

impl Default for Admin {
    fn default() -> Self {
        Self {
            address: Self::default_address(),
        }
    }
}

/// Limits on client connections (every listener).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Most client connections served at once; past it each worker holds the one connection
    /// it accepted unserved and accepts no more (the kernel queues the rest). Default 10000.
    pub max_connections: usize,
    /// Milliseconds a client has to send a whole request head; a trickled head is cut.
    /// Default 10000.
    pub read_timeout_ms: u64,
    /// Largest request head (request line and headers), in bytes; larger ones get 431.
    /// Default 16384.
    pub max_header_bytes: usize,
    /// Milliseconds in-flight requests get to finish after SIGTERM/SIGINT. Default 10000.
    pub grace_ms: u64,
    /// Largest request body, in bytes; a larger one gets 413 (at once when its
    /// `Content-Length` says so, else when the limit is crossed) and never counts against the
    /// target. 0: no limit, as ALB and HAProxy. Default 0.
    pub max_body_bytes: u64,
    /// Milliseconds a WebSocket may pass no byte either way before the balancer closes both
    /// its connections (ALB's idle timeout). Default 60000.
    pub websocket_idle_timeout_ms: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_connections: 10_000,
            read_timeout_ms: 10_000,
            max_header_bytes: 16 * 1024,
            grace_ms: 10_000,
            max_body_bytes: 0,
            websocket_idle_timeout_ms: 60_000,
        }
    }
}

/// Bounds on HTTP/2 client connections. Each bounds what one client can make the balancer
/// hold or do: the streams it may have open, the memory a client that never reads can pin, and
/// the two stream-reset floods (CVE-2023-44487's rapid reset, and streams the balancer must
/// reset for a client's errors). The header block of a request (CONTINUATION frames included)
/// is bounded by `limits.max_header_bytes`, as HTTP/1.1 heads are.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Http2 {
    /// Streams (requests) one connection may have open at once (`SETTINGS_MAX_CONCURRENT_STREAMS`).
    /// Default 128, as ALB.
    pub max_concurrent_streams: u32,
    /// Flow-control window of each stream, in bytes: what a client may send before the
    /// balancer has passed it on. Default 1048576.
    pub stream_window_bytes: u32,
    /// Flow-control window of the whole connection, in bytes. Default 2097152.
    pub connection_window_bytes: u32,
    /// Bytes of answer buffered per stream for a client that does not read them; past it the
    /// balancer stops reading the target. Default 409600.
    pub max_send_buffer_bytes: usize,
    /// Streams a client may open and reset before the balancer has answered them (rapid
    /// reset); past it the connection is closed with `ENHANCE_YOUR_CALM`. Default 20.
    pub max_pending_reset_streams: usize,
    /// Streams the balancer may reset for a client's protocol errors before it closes the
    /// connection. Default 1024.
    pub max_error_resets: usize,
}

impl Default for Http2 {
    fn default() -> Self {
        Self {
            max_concurrent_streams: 128,
            stream_window_bytes: 1024 * 1024,
            connection_window_bytes: 2 * 1024 * 1024,
            max_send_buffer_bytes: 400 * 1024,
            max_pending_reset_streams: 20,
            max_error_resets: 1024,
        }
    }
}

/// A routing rule, with ALB's semantics.
///
/// A request matches when every condition the rule has matches (AND across conditions) and,
/// within one condition, any of its values does (OR), as ALB combines them.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// Evaluation order, lowest first; unique, 1-50000 as on ALB.
    pub priority: u32,
    /// ALB `path-pattern`: case-sensitive, `*` any run of characters, `?` exactly one, at most
    /// 128 characters; matched against the path without the query string.
    pub path_pattern: String,
    /// ALB `host-header`: case-insensitive, `*` and `?`; the port is ignored. Optional: absent
    /// matches every host.
    #[serde(default)]
    pub host: Option<String>,
    /// ALB `http-request-method`: the request's method is one of these (exact and
    /// case-sensitive, `A-Z`, `-`, `_`). Empty: any method.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub methods: Vec<String>,
    /// ALB `http-header` conditions, all of which must match.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<HeaderCondition>,
    /// ALB `query-string` conditions, all of which must match.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub query: Vec<QueryCondition>,
    /// ALB `source-ip`: the client's address (the connection's, not `X-Forwarded-For`) is in
    /// one of these CIDRs (IPv4 or IPv6). Empty: any client.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub source_ips: Vec<String>,
    /// ALB's `forward` action: `forward = "cluster1"`, or weighted target groups
    /// (`forward = [{ group = "blue", weight = 95 }, { group = "green", weight = 5 }]`). A rule
    /// has exactly one action: this, `redirect` or `fixed_response`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forward: Option<Forward>,
    /// Milliseconds a client stays with the group a weighted `forward` drew for it (ALB's
    /// target group stickiness of a forward, cookie `ELBTG`; 1 s to 7 days); 0: each request
    /// draws again. Only with weighted groups.
    #[serde(default, skip_serializing_if = "is_default")]
    pub group_stickiness_ms: u64,
    /// ALB's `redirect` action.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redirect: Option<Redirect>,
    /// ALB's `fixed-response` action.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fixed_response: Option<FixedResponse>,
}

/// Where a `forward` action sends requests.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Forward {
    /// One target group, by name.
    Group(String),
    /// Several, each request to one drawn in proportion to the weights (ALB's weighted target
    /// groups, for canary and blue/green releases).
    Weighted(Vec<WeightedGroup>),
}

impl Forward {
    /// The groups it names.
    pub fn groups(&self) -> Vec<&str> {
        match self {
            Self::Group(name) => vec![name.as_str()],
            Self::Weighted(groups) => groups.iter().map(|g| g.group.as_str()).collect(),
        }
    }
}

/// One group of a weighted forward.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WeightedGroup {
    /// The target group's name.
    pub group: String,
    /// Its weight, 0-999 as on ALB (0: no requests).
    pub weight: u32,
}

/// ALB's `redirect` action: the URL is rebuilt from its parts, each the request's own unless
/// given; `#{protocol}`, `#{host}`, `#{port}`, `#{path}` and `#{query}` stand for the request's.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Redirect {
    /// 301 (permanent) or 302 (found).
    pub status: u16,
    /// `HTTP`, `HTTPS` or `#{protocol}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    /// The host, with placeholders.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// The port (1-65535) or `#{port}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<String>,
    /// The path, starting with `/`, with placeholders.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// The query string without `?`, with placeholders.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
}

impl Redirect {
    /// The redirect with every part given: each part it leaves out is the request's own
    /// (`#{protocol}`, `#{host}`, `#{port}`, `/#{path}`, `#{query}`), ALB's defaults, as ELBv2
    /// stores them.
    pub fn filled(&self) -> Self {
        let or = |part: &Option<String>, default: &str| {
            Some(part.clone().unwrap_or_else(|| default.to_owned()))
        };
        Self {
            status: self.status,
            protocol: or(&self.protocol, "#{protocol}"),
            host: or(&self.host, "#{host}"),
            port: or(&self.port, "#{port}"),
            path: or(&self.path, "/#{path}"),
            query: or(&self.query, "#{query}"),
        }
    }

    /// Whether it leads back to the URL it came from: every part the request's own.
    pub fn is_loop(&self) -> bool {
        let same = Self {
            status: self.status,
            ..Self::default()
        };
        self.filled() == same.filled()
    }
}

/// ALB's `fixed-response` action: the balancer answers itself.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FixedResponse {
    /// A 2XX, 4XX or 5XX status.
    pub status: u16,
    /// `text/plain` (the default), `text/css`, `text/html`, `application/javascript` or
    /// `application/json`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    /// At most 1024 bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
}

/// ALB's `http-header` condition: the header `name` (case-insensitive; not `Host`, which
/// `host` matches) has a value matching one of `values` (`*` and `?`, case-insensitive).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeaderCondition {
    /// The header's name, at most 40 characters.
    pub name: String,
    /// Patterns of its value, at most 128 characters each.
    pub values: Vec<String>,
}

/// ALB's `query-string` condition: one of `pairs` matches a parameter of the query string
/// (after percent-decoding; case-insensitive, `*` and `?`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueryCondition {
    /// The alternatives.
    pub pairs: Vec<QueryPair>,
}

/// One `key=value` of a [`QueryCondition`]; no key matches the value of any parameter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueryPair {
    /// The parameter's name pattern, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// The value's pattern.
    pub value: String,
}

/// ALB's stickiness of a target group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Stickiness {
    /// `lb_cookie`: every answer carries the balancer's cookie naming its target.
    /// `app_cookie`: the balancer's cookie is set when the target's answer sets the
    /// application's cookie `cookie_name` (ALB's application-based stickiness).
    #[serde(rename = "type")]
    pub kind: StickinessKind,
    /// How long the balancer's cookie lasts (its `Max-Age`): 1 s to 7 days, as on ALB.
    pub duration_ms: u64,
    /// The application's cookie (`app_cookie` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cookie_name: Option<String>,
}

/// ALB's stickiness types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StickinessKind {
    /// Duration-based, on the balancer's own cookie.
    LbCookie,
    /// Application-based, following the application's cookie.
    AppCookie,
}

/// The action for requests no rule matched.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DefaultAction {
    /// Name of the target group that gets unmatched requests; absent (and no
    /// `fixed_response`): a fixed JSON 404.
    #[serde(default)]
    pub forward: Option<String>,
    /// ALB's `fixed-response` as the default action (e.g. a maintenance page), instead of
    /// `forward`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fixed_response: Option<FixedResponse>,
}

/// A target group: targets, how one is chosen, how health is judged, how failures are retried.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetGroup {
    /// Unique name, used by rules, metrics labels and `/status`.
    pub name: String,
    /// How a target is chosen for each request. Default `round_robin`.
    #[serde(default)]
    pub algorithm: Algorithm,
    /// What to do when no target is healthy. Default `fail_open`.
    #[serde(default)]
    pub when_none_healthy: WhenNoneHealthy,
    /// Milliseconds to open a TCP connection to a target before trying another. Default 1000.
    #[serde(default = "TargetGroup::default_connect_timeout_ms")]
    pub connect_timeout_ms: u64,
    /// Milliseconds from sending a request to receiving the response head; past it the client
    /// gets 504. Default 30000.
    #[serde(default = "TargetGroup::default_response_timeout_ms")]
    pub response_timeout_ms: u64,
    /// Milliseconds over which a target that became healthy ramps up from no share of new
    /// requests to its full share, as ALB's slow start; 0 turns it off. Default 0.
    #[serde(default)]
    pub slow_start_ms: u64,
    /// ALB's target group stickiness: requests carrying the balancer's cookie for this group go
    /// to the target it names while that target is healthy. Absent: off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stickiness: Option<Stickiness>,
    /// Milliseconds an idle pooled connection to a target is kept. Keep it below the targets'
    /// own idle timeout (the agent's is 10 s), so that the balancer closes idle connections,
    /// never the target while a request is on its way (which a non-idempotent request could
    /// not survive). Default 4000.
    #[serde(default = "TargetGroup::default_idle_timeout_ms")]
    pub idle_timeout_ms: u64,
    /// Milliseconds a removed target stays `draining` (in-flight requests finish, no new ones)
    /// before it is dropped; it goes earlier once idle. Default 10000 (ALB: 300000).
    #[serde(default = "TargetGroup::default_deregistration_delay_ms")]
    pub deregistration_delay_ms: u64,
    /// Most requests in flight to one target at once, across the balancer's workers (HAProxy's
    /// per-server `maxconn`, Envoy's `max_requests` circuit breaker). An HTTP/1.1 request holds
    /// one connection, so this also bounds the busy connections to the target, and how many the
    /// balancer opens at once: a burst of clients cannot overflow the target's accept queue.
    /// Requests past it wait in the target's queue. Default 256.
    #[serde(default = "TargetGroup::default_max_requests_per_target")]
    pub max_requests_per_target: u32,
    /// Most requests waiting for one target at once; past it a request gets 503 `queue_full`.
    /// Default 10000 (as `limits.max_connections`: each client connection has at most one
    /// request waiting).
    #[serde(default = "TargetGroup::default_max_queued_per_target")]
    pub max_queued_per_target: u32,
    /// Milliseconds a request may wait in a target's queue; past it the client gets 503
    /// `queue_timeout` (HAProxy's `timeout queue`). Neither counts against the target.
    /// Default 10000.
    #[serde(default = "TargetGroup::default_queue_timeout_ms")]
    pub queue_timeout_ms: u64,
    /// Active health checks.
    #[serde(default)]
    pub health_check: HealthCheck,
    /// Passive outlier ejection from live traffic.
    #[serde(default)]
    pub outlier_detection: OutlierDetection,
    /// Retries of failed requests on another target.
    #[serde(default)]
    pub retry: Retry,
    /// The targets. May be empty (every request then gets 503).
    #[serde(default)]
    pub targets: Vec<Target>,
}

impl TargetGroup {
    /// A group called `name` with every default and no targets.
    pub fn named(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            algorithm: Algorithm::default(),
            when_none_healthy: WhenNoneHealthy::default(),
            connect_timeout_ms: Self::default_connect_timeout_ms(),
            response_timeout_ms: Self::default_response_timeout_ms(),
            slow_start_ms: 0,
            stickiness: None,
            idle_timeout_ms: Self::default_idle_timeout_ms(),
            deregistration_delay_ms: Self::default_deregistration_delay_ms(),
            max_requests_per_target: Self::default_max_requests_per_target(),
            max_queued_per_target: Self::default_max_queued_per_target(),
            queue_timeout_ms: Self::default_queue_timeout_ms(),
            health_check: HealthCheck::default(),
            outlier_detection: OutlierDetection::default(),
            retry: Retry::default(),
            targets: Vec::new(),
        }
    }

    fn default_connect_timeout_ms() -> u64 {
        1000
    }
    fn default_response_timeout_ms() -> u64 {
        30_000
    }
    fn default_deregistration_delay_ms() -> u64 {
        10_000
    }
    fn default_idle_timeout_ms() -> u64 {
        4000
    }
    fn default_max_requests_per_target() -> u32 {
        256
    }
    fn default_max_queued_per_target() -> u32 {
        10_000
    }
    fn default_queue_timeout_ms() -> u64 {
        10_000
    }

    pub fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.connect_timeout_ms)
    }

    pub fn response_timeout(&self) -> Duration {
        Duration::from_millis(self.response_timeout_ms)
    }

    pub fn idle_timeout(&self) -> Duration {
        Duration::from_millis(self.idle_timeout_ms)
    }

    pub fn queue_timeout(&self) -> Duration {
        Duration::from_millis(self.queue_timeout_ms)
    }

    pub fn deregistration_delay(&self) -> Duration {
        Duration::from_millis(self.deregistration_delay_ms)
    }
}

/// Selection algorithms; each is described in its file under `selection/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Algorithm {
    #[default]
    RoundRobin,
    LeastOutstandingRequests,
    P2cPeakEwma,
    WeightedRandom,
    LowestLatency,
    AgentLoad,
}

impl Algorithm {
    /// Every algorithm, in the order the docs list them.
    pub const ALL: [Algorithm; 6] = [
        Self::RoundRobin,
        Self::LeastOutstandingRequests,
        Self::P2cPeakEwma,
        Self::WeightedRandom,
        Self::LowestLatency,
        Self::AgentLoad,
    ];

    /// The algorithm called `name` in the config.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.name() == name)
    }

    /// The name used in the config file, metrics and `/status`.
    pub fn name(self) -> &'static str {
        match self {
            Self::RoundRobin => "round_robin",
            Self::LeastOutstandingRequests => "least_outstanding_requests",
            Self::P2cPeakEwma => "p2c_peak_ewma",
            Self::WeightedRandom => "weighted_random",
            Self::LowestLatency => "lowest_latency",
            Self::AgentLoad => "agent_load",
        }
    }
}

/// What a group does when none of its targets is healthy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WhenNoneHealthy {
    /// Route to every registered target, as ALB does.
    #[default]
    FailOpen,
    /// Answer 503 `no healthy target`.
    Reject,
}

/// Active health checks: one `GET` per target per interval.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HealthCheck {
    /// Path (and query) requested. Default `/healthz`. With `algorithm = "agent_load"` the
    /// agent's `/stats` is requested instead (see `stats_path`).
    pub path: String,
    /// Path of the agent's stats document, read on each check by `agent_load`. Default `/stats`.
    pub stats_path: String,
    /// Milliseconds between the starts of two checks of one target. Default 2000 (ALB: 30000).
    pub interval_ms: u64,
    /// Milliseconds a check may take before it counts as failed. Default 1000 (ALB: 5000).
    pub timeout_ms: u64,
    /// Consecutive passing checks that make a target healthy. Default 2 (ALB: 5).
    pub healthy_threshold: u32,
    /// Consecutive failing checks that make a target unhealthy. Default 2 (ALB: 2).
    pub unhealthy_threshold: u32,
    /// Status codes that pass, ALB style: `200`, `200,202`, `200-299`. Default `200`.
    pub matcher: String,
}

impl Default for HealthCheck {
    fn default() -> Self {
        Self {
            path: "/healthz".into(),
            stats_path: "/stats".into(),
            interval_ms: 2000,
            timeout_ms: 1000,
            healthy_threshold: 2,
            unhealthy_threshold: 2,
            matcher: "200".into(),
        }
    }
}

/// Passive outlier ejection, after Envoy's `consecutive_5xx`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutlierDetection {
    /// Consecutive failures (connect errors, resets, timeouts, 5xx answers) that eject a
    /// target; 0 disables ejection. Default 5 (Envoy: 5).
    pub consecutive_failures: u32,
    /// Milliseconds of the first ejection; the n-th in a row lasts n times this, and each
    /// `base_ejection_ms` a target then spends back in rotation takes one off that multiplier
    /// (Envoy). Default 30000 (Envoy).
    pub base_ejection_ms: u64,
    /// Longest ejection, in milliseconds, however often the target was ejected. Default
    /// 300000 (Envoy's `max_ejection_time`).
    pub max_ejection_ms: u64,
    /// Most targets of the group ejected at once, in percent; one may be ejected whatever the
    /// percent, but never the last target taking requests. Default 10 (Envoy: 10).
    pub max_ejected_percent: u32,
}

impl Default for OutlierDetection {
    fn default() -> Self {
        Self {
            consecutive_failures: 5,
            base_ejection_ms: 30_000,
            max_ejection_ms: 300_000,
            max_ejected_percent: 10,
        }
    }
}

/// Retries on another target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Retry {
    /// Most tries of one request, the first included, each on a different target; 1 disables
    /// retries. Default 3.
    pub attempts: u32,
    /// Retries allowed as a percent of requests, so that retries cannot multiply an outage.
    /// Default 20.
    pub budget_percent: u32,
    /// Retries per second allowed whatever the traffic, so a quiet group can still retry.
    /// Default 10.
    pub min_per_sec: u32,
}

impl Default for Retry {
    fn default() -> Self {
        Self {
            attempts: 3,
            budget_percent: 20,
            min_per_sec: 10,
        }
    }
}

/// One target: an instance's address in a group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Target {
    /// Identifier shown in metrics and `/status`, e.g. an instance id. Default: the address.
    #[serde(default)]
    pub id: Option<String>,
    /// `IP:port` (no host names: the balancer does no DNS). Unique across all groups: a
    /// target's state is kept by address.
    pub address: String,
    /// Relative share for `weighted_random` (and `agent_load`); 1-1000. Default 1.
    #[serde(default = "Target::default_weight")]
    pub weight: u32,
    /// Instance type, for labels only (`t3.micro`).
    #[serde(default)]
    pub instance_type: Option<String>,
    /// Cluster name, for labels only.
    #[serde(default)]
    pub cluster: Option<String>,
}

impl Target {
    fn default_weight() -> u32 {
        1
    }
}
