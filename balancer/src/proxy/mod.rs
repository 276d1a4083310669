//! The request path: route, choose a target, forward, retry within the budget, answer.
//!
//! Retries follow HAProxy's `redispatch` and ALB: a request whose connection failed before
//! anything was sent goes to another target whatever its method; an idempotent request whose
//! connection failed before the response head does too; a timeout or an answer (even a 5xx)
//! is never retried. Each try goes to a target not tried before, and every retry takes a token
//! from the group's [`crate::retry_budget::RetryBudget`].

mod actions;
mod admit;
mod body;
mod errors;
mod framing;
mod headers;
mod outlier;
mod send;
mod sticky;
mod websocket;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;

use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_LENGTH, HOST, TRANSFER_ENCODING};
use hyper::http::uri::PathAndQuery;
use hyper::{Method, Request, Response, Uri, Version};
use tokio::time::Instant;

pub(crate) use crate::request_body::ClientFault;
use crate::request_body::{BodyLimits, RequestBody};
use body::Lease;
pub(crate) use body::ResponseBody;
pub(crate) use errors::Failure;
pub(crate) use framing::FramingWatch;

use crate::access_log::{Pending, Tls, Trail};
use crate::conditions::RequestView;
use crate::config::Redirect;
use crate::group::Group;
use crate::rules::Action;
use crate::shared::{Counters, Shared, CLIENT_ERROR_KINDS};
use crate::snapshot::Snapshot;
use crate::target::Outcome;
use send::TryError;

/// Where a request came in, with the `X-Forwarded-*` values it gives, made once per
/// connection rather than on every request.
#[derive(Debug)]
pub(crate) struct Origin {
    pub client: SocketAddr,
    /// The client's IP, for `X-Forwarded-For`.
    forwarded_for: HeaderValue,
    /// The listener's port, for `X-Forwarded-Port`.
    forwarded_port: HeaderValue,
    /// `http` or `https`, for `X-Forwarded-Proto`.
    forwarded_proto: HeaderValue,
    /// The listener's scheme and port, for redirects.
    scheme: &'static str,
    port: u16,
    /// The listener's redirect of every request, if it has one.
    redirect: Option<Arc<Redirect>>,
    /// The TLS session, on an HTTPS listener.
    tls: Option<Tls>,
    _slot: Slot,
}

impl Origin {
    pub(crate) fn new(client: SocketAddr, listener_port: u16, scheme: &'static str) -> Self {
        Self {
            client,
            forwarded_for: HeaderValue::from_str(&client.ip().to_string())
                .unwrap_or_else(|_| unreachable!("an IP address is a header value")),
            forwarded_port: HeaderValue::from(listener_port),
            forwarded_proto: HeaderValue::from_static(scheme),
            scheme,
            port: listener_port,
            redirect: None,
            tls: None,
            _slot: Slot::default(),
        }
    }

    /// This origin's connection secured by TLS, its session as `tls` says.
    pub(crate) fn secured(self, tls: Tls) -> Self {
        Self {
            tls: Some(tls),
            ..self
        }
    }

    /// This origin's listener redirecting every request as `redirect` says.
    pub(crate) fn redirecting(self, redirect: Option<Arc<Redirect>>) -> Self {
        Self { redirect, ..self }
    }

    /// The listener's scheme: `http` or `https`.
    fn scheme(&self) -> &'static str {
        self.scheme
    }

    /// The listener's port.
    fn port(&self) -> u16 {
        self.port
    }

    /// This origin holding `slot` until its last reference goes: the connection's end, or the
    /// end of a WebSocket it became (whose socket outlives hyper's connection task).
    pub(crate) fn holding(self, slot: Slot) -> Self {
        Self {
            _slot: slot,
            ..self
        }
    }
}

/// A client connection's place under `limits.max_connections` (its permit) and in
/// `elb_active_connection_count`, both given back when dropped.
#[derive(Debug, Default)]
pub(crate) struct Slot {
    _permit: Option<tokio::sync::OwnedSemaphorePermit>,
    active: Option<&'static std::sync::atomic::AtomicU64>,
}

impl Slot {
    /// Takes `permit` and counts one more active connection on `active`.
    pub(crate) fn new(
        permit: Option<tokio::sync::OwnedSemaphorePermit>,
        active: Option<&'static std::sync::atomic::AtomicU64>,
    ) -> Self {
        if let Some(active) = active {
            active.fetch_add(1, Relaxed);
        }
        Self {
            _permit: permit,
            active,
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some(active) = self.active {
            active.fetch_sub(1, Relaxed);
        }
    }
}

/// The client's errors the balancer answers itself, in the order of
/// [`crate::shared::Counters::client_errors`].
pub(crate) const CLIENT_ERRORS: [Failure; CLIENT_ERROR_KINDS] = [
    Failure::BadFraming,
    Failure::MissingHost,
    Failure::Client(ClientFault::BadBody),
    Failure::Client(ClientFault::Incomplete),
    Failure::Client(ClientFault::Timeout),
    Failure::Client(ClientFault::TooLarge),
];

/// Counts a client's error and makes its answer.
fn client_error(
    counters: &Counters,
    failure: Failure,
    trail: &mut Trail<'_>,
) -> Response<ResponseBody> {
    counters.elb_4xx.fetch_add(1, Relaxed);
    if let Some(i) = CLIENT_ERRORS.iter().position(|&f| f == failure) {
        counters.client_errors[i].fetch_add(1, Relaxed);
    }
    trail.failed(failure.code());
    failure.answer(None)
}

/// Answers one client request; `conflict` is the connection's [`FramingWatch`] flag. With the
/// access log on, the answer's body carries the request's record, and a request whose client
/// hangs up before its answer (this future dropped) is logged as such.
pub(crate) async fn handle(
    shared: &'static Shared,
    mut request: Request<Incoming>,
    origin: &Arc<Origin>,
    conflict: &AtomicBool,
) -> Response<ResponseBody> {
    let snapshot = shared.snapshot();
    let mut pending = snapshot.access_log.then(|| {
        let websocket = websocket::is_upgrade(&request);
        let client = (origin.client, origin.port());
        Pending::start(
            &shared.access_log,
            &mut request,
            client,
            origin.tls.as_ref(),
            websocket,
        )
    });
    let trail = pending.as_mut().map_or_else(Trail::off, Pending::trail);
    let response = answer(shared, &snapshot, request, origin, conflict, trail).await;
    match pending {
        Some(mut pending) => {
            pending.respond(&response);
            response.map(|body| body.logged(pending))
        }
        None => response,
    }
}

/// The answer to one request, under `snapshot`, noting in `trail` what happened.
async fn answer(
    shared: &'static Shared,
    snapshot: &Snapshot,
    request: Request<Incoming>,
    origin: &Arc<Origin>,
    conflict: &AtomicBool,
    mut trail: Trail<'_>,
) -> Response<ResponseBody> {
    // Only a request with Transfer-Encoding can be the one whose head had both; one pipelined
    // before it (read in the same buffer) must not clear the flag.
    if request.headers().contains_key(TRANSFER_ENCODING) && conflict.swap(false, Relaxed) {
        return client_error(&shared.counters, Failure::BadFraming, &mut trail);
    }
    if !host_is_valid(&request) {
        return client_error(&shared.counters, Failure::MissingHost, &mut trail);
    }
    // An absolute-form URI names the host for rule matching (RFC 9112 3.2.2), never an address.
    let host = request
        .uri()
        .authority()
        .map(|a| a.as_str())
        .or_else(|| request.headers().get(HOST).and_then(|h| h.to_str().ok()));
    let view = RequestView {
        host,
        path: request.uri().path(),
        query: request.uri().query(),
        method: request.method().as_str(),
        headers: request.headers(),
        client: origin.client.ip(),
    };
    if let Some(redirect) = &origin.redirect {
        shared.counters.redirects.fetch_add(1, Relaxed);
        trail.routed(0, "redirect");
        return actions::redirect(redirect, &view, origin.scheme(), origin.port());
    }
    let routed = snapshot.router.route(&view);
    // The group cookie a weighted forward's answer gets: the group's name and its duration.
    let mut group_cookie = None;
    let group = match routed.action {
        Action::Forward(g) => &snapshot.groups[g],
        Action::Weighted(weighted) => {
            let g = sticky::kept_group(view.headers, &snapshot.groups, weighted)
                .unwrap_or_else(|| weighted.draw());
            if weighted.stickiness_ms > 0 {
                group_cookie = Some((g, weighted.stickiness_ms));
            }
            &snapshot.groups[g]
        }
        Action::Redirect(redirect) => {
            shared.counters.redirects.fetch_add(1, Relaxed);
            trail.routed(routed.priority, "redirect");
            return actions::redirect(redirect, &view, origin.scheme(), origin.port());
        }
        Action::Fixed(fixed) => {
            shared.counters.fixed_responses.fetch_add(1, Relaxed);
            trail.routed(routed.priority, "fixed-response");
            return actions::fixed(fixed);
        }
        Action::NotFound => {
            shared.counters.elb_4xx.fetch_add(1, Relaxed);
            trail.routed(routed.priority, "-");
            trail.failed(Failure::NoRule.code());
            return Failure::NoRule.answer(None);
        }
    };
    trail.routed(routed.priority, "forward");
    trail.group(&group.config.name);
    let limits = BodyLimits {
        max_bytes: snapshot.limits.max_body_bytes,
        read_timeout: std::time::Duration::from_millis(snapshot.limits.read_timeout_ms),
    };
    if limits.max_bytes > 0 && declared_length(&request).is_some_and(|n| n > limits.max_bytes) {
        return client_error(
            &shared.counters,
            Failure::Client(ClientFault::TooLarge),
            &mut trail,
        );
    }
    let forwarded = if websocket::is_upgrade(&request) {
        websocket::forward(shared, group, request, origin, &mut trail).await
    } else {
        forward(group, request, origin, limits, &mut trail).await
    };
    match forwarded {
        Ok(mut response) => {
            if let Some((g, duration_ms)) = group_cookie {
                let name = &snapshot.groups[g].config.name;
                sticky::stick_group(response.headers_mut(), name, duration_ms);
            }
            response
        }
        Err(failure) if failure.is_clients() => client_error(&shared.counters, failure, &mut trail),
        Err(failure) => {
            let counter = match failure.status().as_u16() {
                503 => &group.stats.elb_503,
                504 => &group.stats.elb_504,
                _ => &group.stats.elb_502,
            };
            counter.fetch_add(1, Relaxed);
            trail.failed(failure.code());
            failure.answer(Some(&group.config.name))
        }
    }
}

/// RFC 9112 3.2: an HTTP/1.1 request carries exactly one `Host`; HTTP/1.0 may leave it out.
fn host_is_valid(request: &Request<Incoming>) -> bool {
    let mut hosts = request.headers().get_all(HOST).iter();
    match (hosts.next(), hosts.next()) {
        (Some(_), Some(_)) => false,
        (None, _) => request.version() != Version::HTTP_11,
        (Some(_), None) => true,
    }
}

/// The body length the request's `Content-Length` declares (hyper has already refused a
/// malformed or conflicting one).
fn declared_length(request: &Request<Incoming>) -> Option<u64> {
    request
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}

/// Forwards to a target of `group`, retrying on others where that is safe.
///
/// A try that failed while the client's body had failed (bad framing, cut short, stalled,
/// over the limit), or that timed out before the client had sent its whole body, failed
/// through the client: it is answered as the client's error and not recorded on the target.
async fn forward(
    group: &Group,
    request: Request<Incoming>,
    origin: &Origin,
    limits: BodyLimits,
    trail: &mut Trail<'_>,
) -> Result<Response<ResponseBody>, Failure> {
    let config = &group.config;
    group.stats.requests.fetch_add(1, Relaxed);
    group
        .stats
        .budget
        .deposit(config.retry.budget_percent, config.retry.min_per_sec);
    let (mut parts, body) = request.into_parts();
    if parts.version == Version::HTTP_2 {
        headers::from_http2(&mut parts.headers, &parts.uri);
    }
    headers::forward_request(&mut parts.headers, origin);
    let uri = origin_form(&parts.uri);
    let body = RequestBody::new(body, limits);
    trail.body(&body);
    let idempotent = is_idempotent(&parts.method);
    let stickiness = config.stickiness.as_ref();
    let sticky = sticky::member(group, &parts.headers);
    let mut tried = Vec::with_capacity(1);
    let mut last = Failure::NoTarget;
    loop {
        let (chosen, in_flight) = admit::admit(group, &tried, last, sticky).await?;
        tried.push(chosen);
        let target = &group.members[chosen].target;
        let mut outgoing = Request::new(body.clone());
        *outgoing.method_mut() = parts.method.clone();
        *outgoing.uri_mut() = uri.clone();
        *outgoing.headers_mut() = parts.headers.clone();
        ensure_host(outgoing.headers_mut(), target);
        trail.sent(target.address);
        let started = Instant::now();
        let sent = tokio::time::timeout(
            config.response_timeout(),
            send::send(target, outgoing, config),
        );
        let (outcome, failure) = match sent.await {
            Ok(Ok((mut response, sender))) => {
                let elapsed = started.elapsed();
                trail.answered(response.status().as_u16());
                let outcome = Outcome::Answered(response.status().as_u16());
                note(group, chosen, outcome, elapsed);
                group.stats.response_time.observe(elapsed);
                headers::strip_hop_by_hop(response.headers_mut());
                if let Some(stickiness) = stickiness {
                    let id = &group.members[chosen].id;
                    sticky::stick(response.headers_mut(), &config.name, stickiness, id);
                }
                let lease = Lease::new(sender, crate::worker::index(), in_flight);
                return Ok(response.map(|body| ResponseBody::upstream(body, lease)));
            }
            Ok(Err(TryError::NotSent(e))) => {
                tracing::debug!("{}: {e}", target.address);
                (Outcome::ConnectFailed, Failure::ConnectFailed)
            }
            Ok(Err(TryError::Reset(e))) => {
                tracing::debug!("{}: {e:?}", target.address);
                (Outcome::Reset, Failure::TargetReset)
            }
            Err(_) => (Outcome::TimedOut, Failure::TargetTimeout),
        };
        drop(in_flight);
        if let Some(fault) = body.client_fault() {
            return Err(Failure::Client(fault));
        }
        if outcome == Outcome::TimedOut && !body.complete() {
            // The target may well have been waiting for the rest of the body.
            return Err(Failure::Client(ClientFault::Timeout));
        }
        note(group, chosen, outcome, started.elapsed());
        last = failure;
        let may_retry = match outcome {
            Outcome::ConnectFailed => true,
            Outcome::Reset => idempotent,
            Outcome::TimedOut | Outcome::Answered(_) => false,
        };
        if !may_retry || tried.len() >= config.retry.attempts as usize || !body.resendable() {
            return Err(failure);
        }
        if !group.stats.budget.withdraw(config.retry.min_per_sec) {
            group.stats.retries_over_budget.fetch_add(1, Relaxed);
            return Err(failure);
        }
        group.stats.retries.fetch_add(1, Relaxed);
    }
}

/// Gives a request without `Host` the target's: HTTP/1.0 clients may leave it out, HTTP/1.1
/// requires it of the balancer.
fn ensure_host(headers: &mut hyper::HeaderMap, target: &crate::target::Target) {
    if !headers.contains_key(HOST) {
        if let Ok(host) = HeaderValue::from_str(target.authority.as_str()) {
            headers.insert(HOST, host);
        }
    }
}

/// The request target a target gets: origin-form (`/path?query`), also when the client sent
/// an absolute-form URI, whose authority only ever served rule matching.
fn origin_form(uri: &Uri) -> Uri {
    if uri.scheme().is_none() && uri.authority().is_none() {
        return uri.clone();
    }
    let path = uri
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| PathAndQuery::from_static("/"));
    Uri::from(path)
}

/// Records a try's outcome on the target and ejects it if that was one failure too many.
fn note(group: &Group, member: usize, outcome: Outcome, elapsed: std::time::Duration) {
    let target = &group.members[member].target;
    let failures = target.record(outcome, elapsed);
    if failures > 0 {
        outlier::consider(group, member, failures);
    } else if group.stats.all_failing.load(Relaxed) {
        group.stats.all_failing.store(false, Relaxed);
    }
}

/// RFC 9110 9.2.2: methods whose repetition has the effect of one request.
fn is_idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::PUT | Method::DELETE | Method::OPTIONS | Method::TRACE
    )
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::path::Path;
    use std::sync::atomic::AtomicUsize;

    use bytes::Bytes;
    use http_body_util::{BodyExt, Full};
    use hyper::server::conn::http1;
    use hyper::service::service_fn;
    use hyper_util::rt::{TokioExecutor, TokioIo};
    use tokio::net::TcpListener;

    use super::*;
    use crate::registry::Registry;

    #[test]
    fn only_rfc_idempotent_methods_are_retried_after_a_reset() {
        assert!(is_idempotent(&Method::GET) && is_idempotent(&Method::PUT));
        assert!(!is_idempotent(&Method::POST) && !is_idempotent(&Method::PATCH));
    }

    /// A backend answering `<method> <body length>`.
    async fn backend() -> SocketAddr {
        counted_backend().await.0
    }

    /// [`backend`], with the number of connections it accepted.
    async fn counted_backend() -> (SocketAddr, std::sync::Arc<AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let accepted = std::sync::Arc::new(AtomicUsize::new(0));
        let count = std::sync::Arc::clone(&accepted);
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                count.fetch_add(1, Relaxed);
                let service = service_fn(|request: Request<Incoming>| async move {
                    let method = request.method().clone();
                    let body = request.into_body().collect().await?.to_bytes();
                    let answer = format!("{method} {}", body.len());
                    Ok::<_, hyper::Error>(Response::new(Full::new(Bytes::from(answer))))
                });
                tokio::spawn(http1::Builder::new().serve_connection(TokioIo::new(stream), service));
            }
        });
        (address, accepted)
    }

    /// An address nothing listens on.
    fn dead() -> SocketAddr {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
    }

    /// A balancer in front of `targets` (one group, checks too rare to matter: it fails open);
    /// returns its address and state.
    async fn balancer(targets: &[SocketAddr]) -> (SocketAddr, &'static Shared) {
        balancer_with(targets, "", "").await
    }

    /// [`balancer`], with `limits` lines in `[limits]` and `group` lines in the group.
    async fn balancer_with(
        targets: &[SocketAddr],
        limits: &str,
        group: &str,
    ) -> (SocketAddr, &'static Shared) {
        let mut text = format!(
            "[[listeners]]\naddress = \"127.0.0.1:0\"\n[limits]\n{limits}\n\
             [default_action]\nforward = \"g\"\n\
             [[target_groups]]\nname = \"g\"\n{group}\n[target_groups.health_check]\n\
             interval_ms = 600000\n",
        );
        for t in targets {
            text.push_str(&format!("[[target_groups.targets]]\naddress = \"{t}\"\n"));
        }
        let loaded = crate::config::parse(Path::new("test.toml"), &text).unwrap();
        let registry = Registry::new(1);
        let snapshot = registry.build(&loaded, None, 1, 0);
        let shared: &'static Shared = Box::leak(Box::new(Shared::new(
            snapshot,
            registry,
            "test.toml".into(),
        )));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((stream, client)) = listener.accept().await {
                let origin = std::sync::Arc::new(Origin::new(client, address.port(), "http"));
                let conflict = std::sync::Arc::new(AtomicBool::new(false));
                let service = service_fn(move |request| {
                    let conflict = std::sync::Arc::clone(&conflict);
                    let origin = std::sync::Arc::clone(&origin);
                    async move { Ok::<_, Infallible>(handle(shared, request, &origin, &conflict).await) }
                });
                tokio::spawn(http1::Builder::new().serve_connection(TokioIo::new(stream), service));
            }
        });
        (address, shared)
    }

    /// Writes `request` on a new connection to `to` (then, with `hang_up`, closes its sending
    /// side) and reads until the balancer closes: the status and the whole answer.
    async fn raw(to: SocketAddr, request: &[u8], hang_up: bool) -> (u16, String) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tokio::net::TcpStream::connect(to).await.unwrap();
        stream.write_all(request).await.unwrap();
        if hang_up {
            stream.shutdown().await.unwrap();
        }
        let mut answer = Vec::new();
        let _ = tokio::time::timeout(
            std::time::Duration::from_secs(10),
            stream.read_to_end(&mut answer),
        )
        .await
        .expect("the balancer answers and closes");
        let answer = String::from_utf8_lossy(&answer).into_owned();
        let status = answer
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        (status, answer)
    }

    /// Asserts that nothing was counted against the group's target `member`: no error, no
    /// failure in a row, no ejection.
    fn blameless(shared: &Shared, member: usize) {
        let snapshot = shared.snapshot();
        let target = &snapshot.groups[0].members[member].target;
        assert_eq!(target.counters.errors(), 0, "errors counted on the target");
        assert!(!target.failing(), "a failure in a row on the target");
        assert!(!target.health().ejected());
        assert_eq!(target.in_flight(), 0);
    }

    /// The client error counter for `reason`.
    fn client_errors(shared: &Shared, reason: &str) -> u64 {
        let i = CLIENT_ERRORS
            .iter()
            .position(|f| f.code() == reason)
            .unwrap();
        shared.counters.client_errors[i].load(Relaxed)
    }

    async fn send(to: SocketAddr, method: Method, body: &'static str) -> (u16, String) {
        let client = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
            .build_http::<Full<Bytes>>();
        let request = Request::builder()
            .method(method)
            .uri(format!("http://{to}/x"))
            .body(Full::new(Bytes::from_static(body.as_bytes())))
            .unwrap();
        let response = client.request(request).await.unwrap();
        let status = response.status().as_u16();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    #[tokio::test]
    async fn a_post_whose_connection_failed_goes_whole_to_another_target() {
        let live = backend().await;
        let (front, shared) = balancer(&[dead(), live]).await;
        for _ in 0..6 {
            assert_eq!(
                send(front, Method::POST, "ten bytes!").await,
                (200, "POST 10".into())
            );
        }
        let snapshot = shared.snapshot();
        let group = &snapshot.groups[0];
        assert!(group.stats.retries.load(Relaxed) >= 1);
        assert_eq!(group.members[1].target.counters.requests(), 6);
    }

    #[tokio::test]
    async fn requests_in_a_row_reuse_one_pooled_connection() {
        let (live, accepted) = counted_backend().await;
        let (front, shared) = balancer(&[live]).await;
        for _ in 0..5 {
            assert_eq!(send(front, Method::GET, "").await, (200, "GET 0".into()));
        }
        // A connection whose task has not yet seen its response end is not ready again when
        // the next request comes at once; on a loaded machine that may cost one more.
        let opened = accepted.load(Relaxed);
        assert!(
            opened <= 2,
            "5 requests in a row opened {opened} connections"
        );
        let target = &shared.snapshot().groups[0].members[0].target;
        assert_eq!(target.in_flight(), 0, "every lease was returned");
        assert!(target.pools.idle(0) >= 1);
    }

    #[tokio::test]
    async fn without_a_reachable_target_the_client_gets_502_naming_the_group() {
        let (front, shared) = balancer(&[dead(), dead()]).await;
        let (status, body) = send(front, Method::GET, "").await;
        assert_eq!(status, 502);
        let error: proto::BalancerError = serde_json::from_str(&body).unwrap();
        assert_eq!(
            (error.reason.as_str(), error.group.as_deref()),
            ("connect_failed", Some("g"))
        );
        // Both targets were tried, each once.
        let snapshot = shared.snapshot();
        for member in &snapshot.groups[0].members {
            assert_eq!(member.target.counters.connect_errors.load(Relaxed), 1);
        }
    }

    #[tokio::test]
    async fn a_malformed_chunked_body_is_the_clients_400_and_never_the_targets_failure() {
        let (front, shared) = balancer(&[backend().await]).await;
        let bad = b"POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n\
                    5\r\nhello\r\nzz\r\nworld\r\n0\r\n\r\n";
        for _ in 0..20 {
            let (status, answer) = raw(front, bad, false).await;
            assert_eq!(status, 400, "{answer}");
            assert!(answer.contains("\"bad_body\""), "{answer}");
        }
        blameless(shared, 0);
        assert_eq!(client_errors(shared, "bad_body"), 20);
        // The target still serves.
        assert_eq!(
            send(front, Method::POST, "ok").await,
            (200, "POST 2".into())
        );
    }

    #[tokio::test]
    async fn a_body_cut_short_by_the_client_counts_against_no_target() {
        let (front, shared) = balancer(&[backend().await]).await;
        let short = b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\nten bytes!";
        for _ in 0..10 {
            raw(front, short, true).await;
        }
        // The client is gone: its answer goes nowhere, but it is counted as its error.
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        blameless(shared, 0);
        assert_eq!(client_errors(shared, "incomplete_body"), 10);
    }

    #[tokio::test]
    async fn a_stalled_body_gets_408_after_the_read_timeout_and_counts_against_no_target() {
        let (front, shared) = balancer_with(&[backend().await], "read_timeout_ms = 200", "").await;
        let stalled = b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\nten bytes!";
        for _ in 0..6 {
            let (status, answer) = raw(front, stalled, false).await;
            assert_eq!(status, 408, "{answer}");
            assert!(answer.contains("\"client_timeout\""), "{answer}");
        }
        blameless(shared, 0);
    }

    #[tokio::test]
    async fn a_body_still_coming_when_the_response_timeout_passes_is_the_clients_408() {
        // The client sends a byte every 100 ms: within the read timeout, but the whole body
        // takes longer than the group's response timeout.
        let (front, shared) = balancer_with(
            &[backend().await],
            "read_timeout_ms = 1000",
            "response_timeout_ms = 300",
        )
        .await;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tokio::net::TcpStream::connect(front).await.unwrap();
        stream
            .write_all(b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 20\r\n\r\n")
            .await
            .unwrap();
        for _ in 0..6 {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            let _ = stream.write_all(b"x").await;
        }
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer).await;
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
        blameless(shared, 0);
    }

    #[tokio::test]
    async fn a_body_over_the_limit_gets_413_declared_or_streamed() {
        let (front, shared) = balancer_with(&[backend().await], "max_body_bytes = 16", "").await;
        let declared = b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 17\r\n\r\n";
        let (status, answer) = raw(front, declared, false).await;
        assert_eq!(status, 413, "{answer}");
        let streamed = b"POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n\
                         a\r\n0123456789\r\na\r\n0123456789\r\n0\r\n\r\n";
        let (status, answer) = raw(front, streamed, false).await;
        assert_eq!(status, 413, "{answer}");
        assert!(answer.contains("\"body_too_large\""), "{answer}");
        blameless(shared, 0);
        assert_eq!(client_errors(shared, "body_too_large"), 2);
        // At the limit is fine.
        let (status, answer) = raw(
            front,
            b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 16\r\nConnection: close\r\n\r\n0123456789abcdef",
            false,
        )
        .await;
        assert_eq!(status, 200, "{answer}");
        assert!(answer.ends_with("POST 16"), "{answer}");
    }

    #[tokio::test]
    async fn an_http11_request_without_exactly_one_host_gets_400() {
        let (front, shared) = balancer(&[backend().await]).await;
        let (status, answer) = raw(front, b"GET /x HTTP/1.1\r\n\r\n", false).await;
        assert_eq!(status, 400, "{answer}");
        assert!(answer.contains("\"missing_host\""), "{answer}");
        let (status, _) = raw(
            front,
            b"GET /x HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
            false,
        )
        .await;
        assert_eq!(status, 400);
        // HTTP/1.0 may leave it out.
        let (status, answer) = raw(front, b"GET /x HTTP/1.0\r\n\r\n", false).await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(client_errors(shared, "missing_host"), 2);
        blameless(shared, 0);
    }

    /// A backend that answers after `delay`, recording the most requests (health checks
    /// aside) it had at once.
    async fn slow_backend(delay: std::time::Duration) -> (SocketAddr, std::sync::Arc<AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let now = std::sync::Arc::new(AtomicUsize::new(0));
        let peak = std::sync::Arc::new(AtomicUsize::new(0));
        let most = std::sync::Arc::clone(&peak);
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (now, peak) = (std::sync::Arc::clone(&now), std::sync::Arc::clone(&peak));
                let service = service_fn(move |request: Request<Incoming>| {
                    let (now, peak) = (std::sync::Arc::clone(&now), std::sync::Arc::clone(&peak));
                    let check = request.uri().path() == "/healthz";
                    async move {
                        if !check {
                            peak.fetch_max(now.fetch_add(1, Relaxed) + 1, Relaxed);
                        }
                        tokio::time::sleep(delay).await;
                        if !check {
                            now.fetch_sub(1, Relaxed);
                        }
                        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"ok"))))
                    }
                });
                tokio::spawn(http1::Builder::new().serve_connection(TokioIo::new(stream), service));
            }
        });
        (address, most)
    }

    #[tokio::test]
    async fn a_burst_past_the_per_target_limit_waits_its_turn_and_is_served() {
        let (live, peak) = slow_backend(std::time::Duration::from_millis(20)).await;
        let (front, shared) = balancer_with(&[live], "", "max_requests_per_target = 3").await;
        let burst: Vec<_> = (0..40)
            .map(|_| tokio::spawn(send(front, Method::GET, "")))
            .collect();
        for request in burst {
            assert_eq!(request.await.unwrap(), (200, "ok".into()));
        }
        assert_eq!(peak.load(Relaxed), 3, "never more than the limit at once");
        blameless(shared, 0);
        assert_eq!(shared.snapshot().groups[0].members[0].target.queued(), 0);
    }

    #[tokio::test]
    async fn a_full_target_sends_the_request_to_another_with_room() {
        let (slow, _) = slow_backend(std::time::Duration::from_millis(300)).await;
        let (fast, _) = slow_backend(std::time::Duration::ZERO).await;
        let (front, shared) = balancer_with(&[slow, fast], "", "max_requests_per_target = 1").await;
        // Two at once: one lands on each, and `slow` stays busy for 300 ms. Round robin then
        // picks `slow` for every other request, which finds room on `fast` instead of waiting.
        let first = [
            tokio::spawn(send(front, Method::GET, "")),
            tokio::spawn(send(front, Method::GET, "")),
        ];
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let started = std::time::Instant::now();
        for _ in 0..4 {
            assert_eq!(send(front, Method::GET, "").await.0, 200);
        }
        assert!(started.elapsed() < std::time::Duration::from_millis(250));
        for request in first {
            assert_eq!(request.await.unwrap().0, 200);
        }
        let snapshot = shared.snapshot();
        assert_eq!(snapshot.groups[0].members[0].target.counters.requests(), 1);
        assert_eq!(snapshot.groups[0].members[1].target.counters.requests(), 5);
    }

    #[tokio::test]
    async fn a_queue_timeout_is_503_and_counts_against_no_target() {
        let (live, _) = slow_backend(std::time::Duration::from_millis(600)).await;
        let (front, shared) = balancer_with(
            &[live],
            "",
            "max_requests_per_target = 1\nqueue_timeout_ms = 100",
        )
        .await;
        let first = tokio::spawn(send(front, Method::GET, ""));
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let (status, body) = send(front, Method::GET, "").await;
        assert_eq!(status, 503);
        assert!(body.contains("\"queue_timeout\""), "{body}");
        assert_eq!(first.await.unwrap().0, 200);
        blameless(shared, 0);
        assert_eq!(
            shared.snapshot().groups[0]
                .stats
                .queue_timeouts
                .load(Relaxed),
            1
        );
    }

    #[tokio::test]
    async fn a_full_queue_is_503_at_once() {
        let (live, _) = slow_backend(std::time::Duration::from_millis(400)).await;
        let (front, shared) = balancer_with(
            &[live],
            "",
            "max_requests_per_target = 1\nmax_queued_per_target = 1",
        )
        .await;
        let first = tokio::spawn(send(front, Method::GET, ""));
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let queued = tokio::spawn(send(front, Method::GET, ""));
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let (status, body) = send(front, Method::GET, "").await;
        assert_eq!(status, 503);
        assert!(body.contains("\"queue_full\""), "{body}");
        assert_eq!(first.await.unwrap().0, 200);
        assert_eq!(queued.await.unwrap().0, 200);
        blameless(shared, 0);
        assert_eq!(
            shared.snapshot().groups[0].stats.queue_full.load(Relaxed),
            1
        );
    }

    #[tokio::test]
    async fn a_client_hanging_up_before_its_answer_counts_against_no_target() {
        let (live, _) = slow_backend(std::time::Duration::from_millis(300)).await;
        let (front, shared) = balancer(&[live]).await;
        for _ in 0..6 {
            use tokio::io::AsyncWriteExt;
            let mut stream = tokio::net::TcpStream::connect(front).await.unwrap();
            stream
                .write_all(b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n")
                .await
                .unwrap();
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            drop(stream);
        }
        tokio::time::sleep(std::time::Duration::from_millis(400)).await;
        blameless(shared, 0);
        let target = &shared.snapshot().groups[0].members[0].target;
        assert_eq!(target.counters.requests(), 0, "no try was recorded");
    }

    /// A target that reads a request on each connection, writes `answer` whatever it was, and
    /// closes.
    async fn scripted_backend(answer: &'static [u8]) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            while let Ok((mut stream, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut buf = [0u8; 1024];
                    let _ = stream.read(&mut buf).await;
                    let _ = stream.write_all(answer).await;
                });
            }
        });
        address
    }

    #[tokio::test]
    async fn a_malformed_response_head_counts_against_the_target() {
        let address = scripted_backend(b"HTTP/1.1 abc\r\nno headers here\r\n\r\n").await;
        let (front, shared) = balancer(&[address]).await;
        let (status, body) = send(front, Method::POST, "x").await;
        assert_eq!(status, 502);
        assert!(body.contains("\"target_reset\""), "{body}");
        let target = &shared.snapshot().groups[0].members[0].target;
        assert_eq!(target.counters.resets.load(Relaxed), 1);
        assert!(target.failing());
    }

    #[tokio::test]
    async fn a_body_the_target_cuts_after_its_head_counts_as_the_answer_it_was() {
        // The head promises 100 bytes; ten come, then the target closes.
        let address =
            scripted_backend(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nten bytes!").await;
        let (front, shared) = balancer(&[address]).await;
        let (status, answer) = raw(
            front,
            b"GET /x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
            false,
        )
        .await;
        assert_eq!(status, 200);
        assert!(
            answer.ends_with("ten bytes!"),
            "the client gets the cut body: {answer}"
        );
        let target = &shared.snapshot().groups[0].members[0].target;
        assert_eq!(target.counters.by_class[1].load(Relaxed), 1);
        assert_eq!(target.counters.errors(), 0);
    }

    #[tokio::test]
    async fn a_group_without_targets_answers_503() {
        let (front, _) = balancer(&[]).await;
        let (status, body) = send(front, Method::GET, "").await;
        assert_eq!(status, 503);
        assert!(body.contains("\"no_target\""), "{body}");
    }
}
