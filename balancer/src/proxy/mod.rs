//! The request path: route, choose a target, forward, retry within the budget, answer.
//!
//! Retries follow HAProxy's `redispatch` and ALB: a request whose connection failed before
//! anything was sent goes to another target whatever its method; an idempotent request whose
//! connection failed before the response head does too; a timeout or an answer (even a 5xx)
//! is never retried. Each try goes to a target not tried before, and every retry takes a token
//! from the group's [`RetryBudget`].

mod body;
mod errors;
mod framing;
mod headers;
mod retry;
mod send;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};

use hyper::body::Incoming;
use hyper::header::{HeaderValue, HOST, TRANSFER_ENCODING};
use hyper::http::uri::PathAndQuery;
use hyper::{Method, Request, Response, Uri};
use tokio::time::Instant;

pub(crate) use body::{RequestBody, ResponseBody};
pub(crate) use errors::Failure;
pub(crate) use framing::FramingWatch;
pub(crate) use retry::RetryBudget;

use crate::group::{Group, NoTarget};
use crate::health::outlier;
use crate::pool::Lease;
use crate::rules::Action;
use crate::shared::Shared;
use crate::target::Outcome;
use send::TryError;

/// Where a request came in, with the `X-Forwarded-*` values it gives, made once per
/// connection rather than on every request.
#[derive(Debug, Clone)]
pub(crate) struct Origin {
    pub client: SocketAddr,
    /// The client's IP, for `X-Forwarded-For`.
    forwarded_for: HeaderValue,
    /// The listener's port, for `X-Forwarded-Port`.
    forwarded_port: HeaderValue,
}

impl Origin {
    pub(crate) fn new(client: SocketAddr, listener_port: u16) -> Self {
        Self {
            client,
            forwarded_for: HeaderValue::from_str(&client.ip().to_string())
                .unwrap_or_else(|_| unreachable!("an IP address is a header value")),
            forwarded_port: HeaderValue::from(listener_port),
        }
    }
}

/// Answers one client request; `conflict` is the connection's [`FramingWatch`] flag.
pub(crate) async fn handle(
    shared: &Shared,
    request: Request<Incoming>,
    origin: &Origin,
    conflict: &AtomicBool,
) -> Response<ResponseBody> {
    // Only a request with Transfer-Encoding can be the one whose head had both; one pipelined
    // before it (read in the same buffer) must not clear the flag.
    if request.headers().contains_key(TRANSFER_ENCODING) && conflict.swap(false, Relaxed) {
        shared.counters.elb_4xx.fetch_add(1, Relaxed);
        return Failure::BadFraming.answer(None);
    }
    let snapshot = shared.snapshot();
    // An absolute-form URI names the host for rule matching (RFC 9112 3.2.2), never an address.
    let host = request
        .uri()
        .authority()
        .map(|a| a.as_str())
        .or_else(|| request.headers().get(HOST).and_then(|h| h.to_str().ok()));
    let group = match snapshot.router.route(host, request.uri().path()) {
        Action::Forward(g) => &snapshot.groups[g],
        Action::NotFound => {
            shared.counters.elb_4xx.fetch_add(1, Relaxed);
            return Failure::NoRule.answer(None);
        }
    };
    let response = forward(group, request, origin).await;
    if let Err(failure) = &response {
        let counter = match failure.status().as_u16() {
            503 => &group.stats.elb_503,
            504 => &group.stats.elb_504,
            _ => &group.stats.elb_502,
        };
        counter.fetch_add(1, Relaxed);
    }
    response.unwrap_or_else(|failure| failure.answer(Some(&group.config.name)))
}

/// Forwards to a target of `group`, retrying on others where that is safe.
async fn forward(
    group: &Group,
    request: Request<Incoming>,
    origin: &Origin,
) -> Result<Response<ResponseBody>, Failure> {
    let config = &group.config;
    group.stats.requests.fetch_add(1, Relaxed);
    group
        .stats
        .budget
        .deposit(config.retry.budget_percent, config.retry.min_per_sec);
    let (mut parts, body) = request.into_parts();
    headers::forward_request(
        &mut parts.headers,
        &origin.forwarded_for,
        &origin.forwarded_port,
    );
    let uri = origin_form(&parts.uri);
    let body = RequestBody::new(body);
    let idempotent = is_idempotent(&parts.method);
    let mut tried = Vec::with_capacity(1);
    let mut last = Failure::NoTarget;
    loop {
        let chosen = match group.choose(&tried) {
            Ok(chosen) => chosen,
            Err(NoTarget::NoneHealthy) => return Err(Failure::NoTarget),
            Err(NoTarget::AllTried) => return Err(last),
        };
        tried.push(chosen);
        let target = &group.members[chosen].target;
        let mut outgoing = Request::new(body.clone());
        *outgoing.method_mut() = parts.method.clone();
        *outgoing.uri_mut() = uri.clone();
        *outgoing.headers_mut() = parts.headers.clone();
        if !parts.headers.contains_key(HOST) {
            // HTTP/1.0 clients may leave it out; HTTP/1.1 requires it of the balancer.
            if let Ok(host) = HeaderValue::from_str(target.authority.as_str()) {
                outgoing.headers_mut().insert(HOST, host);
            }
        }
        let in_flight = target.start();
        let started = Instant::now();
        let sent = tokio::time::timeout(
            config.response_timeout(),
            send::send(target, outgoing, config),
        );
        let (outcome, failure) = match sent.await {
            Ok(Ok((mut response, sender))) => {
                let elapsed = started.elapsed();
                let outcome = Outcome::Answered(response.status().as_u16());
                note(group, chosen, outcome, elapsed);
                group.stats.response_time.observe(elapsed);
                headers::strip_hop_by_hop(response.headers_mut());
                let lease = Lease::new(sender, crate::worker::index(), in_flight);
                return Ok(response.map(|body| ResponseBody::Upstream {
                    body,
                    _lease: lease,
                }));
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
        let mut text = String::from(
            "[[listeners]]\naddress = \"127.0.0.1:0\"\n[default_action]\nforward = \"g\"\n\
             [[target_groups]]\nname = \"g\"\n[target_groups.health_check]\n\
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
                let origin = std::sync::Arc::new(Origin::new(client, address.port()));
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
        assert_eq!(accepted.load(Relaxed), 1);
        let target = &shared.snapshot().groups[0].members[0].target;
        assert_eq!(target.in_flight(), 0, "every lease was returned");
        assert_eq!(target.pools.idle(0), 1);
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
    async fn a_group_without_targets_answers_503() {
        let (front, _) = balancer(&[]).await;
        let (status, body) = send(front, Method::GET, "").await;
        assert_eq!(status, 503);
        assert!(body.contains("\"no_target\""), "{body}");
    }
}
