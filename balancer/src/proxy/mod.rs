//! The request path: route, choose a target, forward, retry within the budget, answer.
//!
//! Retries follow HAProxy's `redispatch` and ALB: a request whose connection failed before
//! anything was sent goes to another target whatever its method; an idempotent request whose
//! connection failed before the response head does too; a timeout or an answer (even a 5xx)
//! is never retried. Each try goes to a target not tried before, and every retry takes a token
//! from the group's [`RetryBudget`].

mod body;
mod errors;
mod headers;
mod retry;

use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;

use hyper::body::Incoming;
use hyper::header::{CONTENT_LENGTH, HOST, TRANSFER_ENCODING};
use hyper::http::uri::{self, PathAndQuery, Scheme};
use hyper::{Method, Request, Response, Uri};
use tokio::time::Instant;

pub(crate) use body::{RequestBody, ResponseBody};
pub(crate) use errors::Failure;
pub(crate) use retry::RetryBudget;

use crate::group::{Group, NoTarget};
use crate::health::outlier;
use crate::rules::Action;
use crate::shared::Shared;
use crate::target::Outcome;

/// Where a request came in.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Origin {
    pub client: SocketAddr,
    pub listener_port: u16,
}

/// Answers one client request.
pub(crate) async fn handle(
    shared: &Shared,
    request: Request<Incoming>,
    origin: Origin,
) -> Response<ResponseBody> {
    if smuggling(&request) {
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

/// Both `Content-Length` and `Transfer-Encoding`, or several `Content-Length`s: a front and a
/// back end could frame the body differently (request smuggling), so the request is refused.
fn smuggling(request: &Request<Incoming>) -> bool {
    let headers = request.headers();
    let lengths = headers.get_all(CONTENT_LENGTH).iter().count();
    lengths > 1 || (lengths == 1 && headers.contains_key(TRANSFER_ENCODING))
}

/// Forwards to a target of `group`, retrying on others where that is safe.
async fn forward(
    group: &Group,
    request: Request<Incoming>,
    origin: Origin,
) -> Result<Response<ResponseBody>, Failure> {
    let config = &group.config;
    group.stats.requests.fetch_add(1, Relaxed);
    group
        .stats
        .budget
        .deposit(config.retry.budget_percent, config.retry.min_per_sec);
    let (mut parts, body) = request.into_parts();
    headers::forward_request(&mut parts.headers, origin.client.ip(), origin.listener_port);
    let path = parts
        .uri
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| PathAndQuery::from_static("/"));
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
        let member = &group.members[chosen];
        let target = &member.target;
        let mut uri = uri::Parts::default();
        uri.scheme = Some(Scheme::HTTP);
        uri.authority = Some(target.authority.clone());
        uri.path_and_query = Some(path.clone());
        let uri = Uri::from_parts(uri).map_err(|_| Failure::TargetReset)?;
        let mut outgoing = Request::new(body.clone());
        *outgoing.method_mut() = parts.method.clone();
        *outgoing.uri_mut() = uri;
        *outgoing.headers_mut() = parts.headers.clone();
        let in_flight = target.start();
        let started = Instant::now();
        let sent = tokio::time::timeout(config.response_timeout(), group.pool().request(outgoing));
        let (outcome, failure) = match sent.await {
            Ok(Ok(mut response)) => {
                let elapsed = started.elapsed();
                let outcome = Outcome::Answered(response.status().as_u16());
                note(group, chosen, outcome, elapsed);
                group.stats.response_time.observe(elapsed);
                headers::strip_hop_by_hop(response.headers_mut());
                return Ok(response.map(|body| ResponseBody::Upstream {
                    body,
                    _in_flight: in_flight,
                }));
            }
            Ok(Err(e)) if e.is_connect() => (Outcome::ConnectFailed, Failure::ConnectFailed),
            Ok(Err(e)) => {
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
    use super::*;

    #[test]
    fn only_rfc_idempotent_methods_are_retried_after_a_reset() {
        assert!(is_idempotent(&Method::GET) && is_idempotent(&Method::PUT));
        assert!(!is_idempotent(&Method::POST) && !is_idempotent(&Method::PATCH));
    }
}
