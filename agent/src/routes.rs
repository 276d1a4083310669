//! Request routing: the axum [`Router`] that gives each request its answer, and the timing
//! and in-flight gauge around it.
//!
//! Every request is counted once, on the [`Route`] of whatever answered it: an endpoint's
//! handler, the body-size check of every endpoint (413) or one of the router's fallbacks (404
//! for an unknown path, 405 for a known path with another method than `GET` or `HEAD`).

use std::convert::Infallible;
use std::future::{ready, Future, Ready};
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, get_service, MethodRouter};
use axum::Router;
use hyper::header::{HeaderValue, ALLOW, CONNECTION, CONTENT_LENGTH};
use proto::{ErrorBody, SCHEMA};
use tower::{service_fn, Service};

use crate::state::{AppState, Bodies, Rendered};
use crate::stats::counters::Route;

/// Largest request body announced by `Content-Length` that is not refused with 413. No endpoint
/// reads a body: one already in the read buffer is dropped, a larger one closes the connection.
pub(crate) const MAX_BODY_BYTES: u64 = 16 * 1024;
/// Longest `/sleep`.
const MAX_SLEEP: Duration = Duration::from_secs(30);
/// Most CPU one `/work` request may burn.
const MAX_WORK: Duration = Duration::from_millis(100);

/// The agent's endpoints (`GET`, and `HEAD` through axum), `/sleep` and `/work` only with debug
/// endpoints.
///
/// Endpoints that answer at once are tower services returning a ready future ([`answer_now`]),
/// not axum handlers, whose future axum boxes once more per request; they capture the
/// process-long `&'static` state rather than extract it and take the request as it is, so no
/// extractor runs either.
pub(crate) fn router(state: &'static AppState) -> Router {
    let router = Router::new()
        .route("/", rendered(state, Route::Root, |b| &b.root))
        .route(
            "/cluster1",
            rendered(state, Route::Cluster1, |b| &b.cluster1),
        )
        .route(
            "/cluster2",
            rendered(state, Route::Cluster2, |b| &b.cluster2),
        )
        .route("/stats", rendered(state, Route::Stats, |b| &b.stats))
        .route("/metrics", rendered(state, Route::Metrics, |b| &b.metrics))
        .route(
            "/healthz",
            answer_now(move |request| {
                refused_body(state, &request)
                    .unwrap_or_else(|| counted(state, Route::Healthz, ok(&state.health)))
            }),
        );
    let router = if state.debug_endpoints {
        router
            .route("/sleep", get(move |request: Request| sleep(state, request)))
            .route("/work", answer_now(move |request| work(state, &request)))
    } else {
        router
    };
    router
        .fallback(move || not_found(state))
        // Last: it applies to the routes registered before it.
        .method_not_allowed_fallback(move || method_not_allowed(state))
        // Turns every handler into its route once; a router left without it converts the
        // handler again on every request (one more allocation each).
        .with_state(())
}

/// `GET` (and `HEAD`) of an endpoint that answers without waiting, as a tower service.
fn answer_now<F>(answer: F) -> MethodRouter
where
    F: Fn(Request) -> Response + Clone + Send + Sync + 'static,
{
    get_service(service_fn(move |request| {
        ready(Ok::<_, Infallible>(answer(request)))
    }))
}

/// Answers one request through `router`, keeping it in the in-flight gauge meanwhile and
/// recording its latency (not a monitoring request's), from request parsed to answer ready
/// (routing included). The answer comes with the instant it was ready, where the latency ends
/// (and the connection's read timeout restarts).
///
/// The router is polled once here, before the returned future is: every endpoint but `/sleep`
/// answers on that first poll, so the request (whose head shares hyper's read buffer) is gone
/// before hyper reads ahead on the connection, and hyper reuses its buffer instead of
/// allocating another for every request.
pub(crate) fn handle<B>(
    state: &AppState,
    mut router: Router,
    request: Request<B>,
) -> impl Future<Output = (Response, Instant)> + use<'_, B> {
    let started = Instant::now();
    let in_flight = state.live.counters.start();
    let monitoring = Route::monitoring_of(request.uri().path()).is_some();
    // No endpoint reads a body: the router gets an empty one, which needs no allocation where
    // the connection's would be boxed. hyper then drains or closes for a body that was sent,
    // as for any body left unread.
    let mut answer = router.call(request.map(|_| Body::empty()));
    // A no-op waker is enough: a pending answer is polled again, with the task's waker, below.
    // Only a pending one is kept (boxed: `/sleep` only), so the future hyper moves is small.
    let answer = match Pin::new(&mut answer).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(Ok(response)) => Ok(response),
        Poll::Pending => Err(Box::new(answer)),
    };
    async move {
        let _in_flight = in_flight;
        let response = match answer {
            Ok(response) => response,
            Err(pending) => {
                let Ok(response) = pending.await;
                response
            }
        };
        let ready = Instant::now();
        // Monitoring answers stay out of the load's latency, as out of its count.
        if !monitoring {
            state
                .live
                .latency
                .record(ready.saturating_duration_since(started));
        }
        (response, ready)
    }
}

/// `GET` of one of the bodies the sampler renders.
fn rendered(
    state: &'static AppState,
    route: Route,
    body: fn(&Bodies) -> &Rendered,
) -> MethodRouter {
    answer_now(move |request| {
        refused_body(state, &request)
            .unwrap_or_else(|| counted(state, route, ok(body(&state.bodies()))))
    })
}

/// The 413 answer (counted as `payload_too_large`, connection closed) to a request that
/// announces a body larger than [`MAX_BODY_BYTES`]; `None` to any other.
fn refused_body(state: &AppState, request: &Request) -> Option<Response> {
    if announced_body_len(request.headers()) <= MAX_BODY_BYTES {
        return None;
    }
    let mut response = error(StatusCode::PAYLOAD_TOO_LARGE, "request body too large");
    response
        .headers_mut()
        .insert(CONNECTION, HeaderValue::from_static("close"));
    Some(counted(state, Route::PayloadTooLarge, response))
}

/// `/sleep?ms=N`: answers like `/healthz` after N ms; counted once the answer is ready.
async fn sleep(state: &'static AppState, request: Request) -> Response {
    if let Some(refused) = refused_body(state, &request) {
        return refused;
    }
    let response = match sleep_duration(request.uri().query()) {
        Ok(duration) => {
            tokio::time::sleep(duration).await;
            ok(&state.health)
        }
        Err(reason) => error(StatusCode::BAD_REQUEST, reason),
    };
    counted(state, Route::Sleep, response)
}

/// `/work?us=N`: burns N microseconds of this thread's CPU time (at most [`MAX_WORK`]), then
/// answers like `/` (so a client through a balancer sees which instance served it). A backend whose every request costs CPU, so that an instance's CPU
/// quota bounds how many it can answer: the workload of the balancer's algorithm comparison
/// (`elb demo`), where the plain endpoints cost a micro instance too little to ever reach its
/// quota through the balancer.
fn work(state: &AppState, request: &Request) -> Response {
    if let Some(refused) = refused_body(state, request) {
        return refused;
    }
    let response = match query_number(request.uri().query(), "us=") {
        Some(us) if us <= MAX_WORK.as_micros() as u64 => {
            burn_cpu(Duration::from_micros(us));
            ok(&state.bodies().root)
        }
        Some(_) => error(StatusCode::BAD_REQUEST, "us is above the 100000 limit"),
        None => error(StatusCode::BAD_REQUEST, "expected /work?us=<microseconds>"),
    };
    counted(state, Route::Work, response)
}

/// Spins until this thread has run for `cpu` (its CPU clock, so time spent throttled or
/// descheduled does not count).
fn burn_cpu(cpu: Duration) {
    let until = thread_cpu_time() + cpu;
    let mut x = 0u64;
    while thread_cpu_time() < until {
        for _ in 0..64 {
            x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
        }
    }
}

/// CPU time this thread has used (`CLOCK_THREAD_CPUTIME_ID`).
fn thread_cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec into memory we own; this clock always exists
    // on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

fn not_found(state: &AppState) -> Ready<Response> {
    let response = error(StatusCode::NOT_FOUND, "not found");
    ready(counted(state, Route::NotFound, response))
}

fn method_not_allowed(state: &AppState) -> Ready<Response> {
    let mut response = error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
    // Set here, axum keeps it (its own would read `GET,HEAD`).
    response
        .headers_mut()
        .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
    ready(counted(state, Route::MethodNotAllowed, response))
}

/// Counts `response` as the answer on `route`.
fn counted(state: &AppState, route: Route, response: Response) -> Response {
    state.live.counters.count(route);
    response
}

/// The `Content-Length` a request announces; unparsable counts as too large.
fn announced_body_len(headers: &HeaderMap) -> u64 {
    headers.get(CONTENT_LENGTH).map_or(0, |v| {
        v.to_str()
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(u64::MAX)
    })
}

/// The number after `key` (`ms=`, `us=`) in a query string.
fn query_number(query: Option<&str>, key: &str) -> Option<u64> {
    query
        .unwrap_or_default()
        .split('&')
        .find_map(|pair| pair.strip_prefix(key))
        .and_then(|v| v.parse::<u64>().ok())
}

/// `ms=N` from `/sleep`'s query, at most [`MAX_SLEEP`].
fn sleep_duration(query: Option<&str>) -> Result<Duration, &'static str> {
    let ms = query_number(query, "ms=").ok_or("expected /sleep?ms=<milliseconds>")?;
    let duration = Duration::from_millis(ms);
    if duration > MAX_SLEEP {
        return Err("ms is above the 30000 limit");
    }
    Ok(duration)
}

fn ok(rendered: &Rendered) -> Response {
    let mut response = Response::new(Body::from(rendered.body.clone()));
    // With `Content-Length` set, axum does not format it again (which costs an allocation).
    *response.headers_mut() = rendered.headers.clone();
    response
}

fn error(status: StatusCode, reason: &str) -> Response {
    let body = ErrorBody {
        schema: SCHEMA,
        status: status.as_u16(),
        error: reason.to_string(),
    };
    // Serialising a struct of plain fields cannot fail.
    let body = Rendered::json(serde_json::to_vec(&body).unwrap_or_default());
    let mut response = ok(&body);
    *response.status_mut() = status;
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::Identity;
    use crate::metrics;
    use crate::state::JSON;
    use crate::stats::sampler::Sampler;
    use axum::http::Method;
    use bytes::Bytes;
    use http_body_util::BodyExt;
    use hyper::header::CONTENT_TYPE;

    /// A state with one published sample, leaked as the agent's is.
    fn state(debug_endpoints: bool) -> &'static AppState {
        let identity = Identity {
            hostname: "host-a".into(),
            cluster: Some("cluster1".into()),
            ..Identity::default()
        };
        let state = AppState::new(identity, debug_endpoints);
        let mut sampler = Sampler::new(
            "host-a".into(),
            Duration::from_secs(1),
            Duration::from_secs(10),
        );
        state.publish(&sampler.sample(&state.live)).unwrap();
        Box::leak(Box::new(state))
    }

    struct Answer {
        status: StatusCode,
        headers: HeaderMap,
        body: Bytes,
    }

    impl Answer {
        fn json(&self) -> serde_json::Value {
            serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
        }
    }

    async fn send(state: &'static AppState, request: Request<Body>) -> Answer {
        let (response, _) = handle(state, router(state), request).await;
        let (parts, body) = response.into_parts();
        Answer {
            status: parts.status,
            headers: parts.headers,
            body: body.collect().await.unwrap().to_bytes(),
        }
    }

    async fn call(state: &'static AppState, method: Method, uri: &str) -> Answer {
        let request = Request::builder().method(method).uri(uri);
        send(state, request.body(Body::empty()).unwrap()).await
    }

    async fn get_with_length(state: &'static AppState, uri: &str, length: &str) -> Answer {
        let request = Request::builder().uri(uri).header(CONTENT_LENGTH, length);
        send(state, request.body(Body::empty()).unwrap()).await
    }

    #[tokio::test]
    async fn seed_answers_keep_their_messages_and_the_hostname_as_instance_id() {
        let s = state(false);
        for (path, message) in [
            ("/", "Instance is responding"),
            ("/cluster1", "Cluster 1 (Large) responding"),
            ("/cluster2", "Cluster 2 (Micro) responding"),
        ] {
            let answer = call(s, Method::GET, path).await;
            assert_eq!(answer.status, StatusCode::OK);
            assert_eq!(answer.headers[CONTENT_TYPE], JSON);
            // The pre-rendered length is the body's; a HEAD answer announces the same.
            let length = answer.body.len().to_string();
            assert_eq!(answer.headers[CONTENT_LENGTH], length.as_str());
            let head = call(s, Method::HEAD, path).await;
            assert_eq!(head.headers[CONTENT_LENGTH], length.as_str());
            assert!(head.body.is_empty());
            let body = answer.json();
            assert_eq!(body["message"], message);
            assert_eq!(body["instance_id"], "host-a");
            assert_eq!(body["cluster"], "cluster1");
        }
    }

    #[tokio::test]
    async fn stats_metrics_and_healthz_have_their_bodies_and_types() {
        let s = state(false);
        let stats = call(s, Method::GET, "/stats").await;
        assert_eq!(stats.json()["hostname"], "host-a");
        let metrics = call(s, Method::GET, "/metrics").await;
        assert_eq!(metrics.headers[CONTENT_TYPE], metrics::CONTENT_TYPE);
        assert!(metrics.body.starts_with(b"# HELP "));
        let health = call(s, Method::GET, "/healthz").await;
        assert_eq!(health.json(), serde_json::json!({"status": "ok"}));
    }

    #[tokio::test]
    async fn head_answers_carry_the_get_length_and_no_body() {
        let s = state(false);
        let get = call(s, Method::GET, "/").await;
        let head = call(s, Method::HEAD, "/").await;
        assert_eq!(head.status, StatusCode::OK);
        assert!(head.body.is_empty());
        assert_eq!(
            head.headers[CONTENT_LENGTH],
            get.body.len().to_string().as_str()
        );
        assert_eq!(s.live.counters.per_route()["/"], 2);
    }

    #[tokio::test]
    async fn errors_have_json_bodies_and_are_counted() {
        let s = state(false);
        for path in ["/nope", "/cluster1/", "/sleep?ms=1", "/work?us=1"] {
            let answer = call(s, Method::GET, path).await;
            assert_eq!(answer.status, StatusCode::NOT_FOUND, "{path}");
            assert_eq!(
                answer.json(),
                serde_json::json!({"schema": 1, "status": 404, "error": "not found"})
            );
        }
        for method in [Method::POST, Method::PUT, Method::DELETE, Method::OPTIONS] {
            let answer = call(s, method.clone(), "/stats").await;
            assert_eq!(answer.status, StatusCode::METHOD_NOT_ALLOWED, "{method}");
            assert_eq!(answer.headers.get_all(ALLOW).iter().count(), 1);
            assert_eq!(answer.headers[ALLOW], "GET, HEAD");
            assert_eq!(answer.json()["error"], "method not allowed");
        }
        let counts = s.live.counters.per_route();
        assert_eq!(counts["not_found"], 4, "debug endpoints are off by default");
        assert_eq!(counts["method_not_allowed"], 4);
        assert_eq!(counts["/stats"], 0);
    }

    #[tokio::test]
    async fn announced_large_bodies_are_refused_and_the_connection_closed() {
        let s = state(false);
        for length in ["1000000", "16385", "not a number"] {
            let answer = get_with_length(s, "/", length).await;
            assert_eq!(answer.status, StatusCode::PAYLOAD_TOO_LARGE, "{length}");
            assert_eq!(answer.headers[CONNECTION], "close");
            assert_eq!(answer.json()["error"], "request body too large");
        }
        let at_limit = get_with_length(s, "/", &MAX_BODY_BYTES.to_string()).await;
        assert_eq!(at_limit.status, StatusCode::OK);
        // The path and the method are judged first.
        let unknown = get_with_length(s, "/nope", "1000000").await;
        assert_eq!(unknown.status, StatusCode::NOT_FOUND);
        let request = Request::post("/stats").header(CONTENT_LENGTH, "1000000");
        let posted = send(s, request.body(Body::empty()).unwrap()).await;
        assert_eq!(posted.status, StatusCode::METHOD_NOT_ALLOWED);
        let counts = s.live.counters.per_route();
        assert_eq!(counts["payload_too_large"], 3);
        assert_eq!(counts["/"], 1);
    }

    #[tokio::test]
    async fn sleep_is_bounded_and_validated() {
        let s = state(true);
        assert_eq!(
            call(s, Method::GET, "/sleep?ms=5").await.status,
            StatusCode::OK
        );
        assert_eq!(
            call(s, Method::GET, "/sleep").await.status,
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            call(s, Method::GET, "/sleep?ms=30001").await.status,
            StatusCode::BAD_REQUEST
        );
        assert_eq!(s.live.counters.per_route()["/sleep"], 3);
    }

    #[tokio::test]
    async fn work_burns_the_cpu_it_is_asked_for_and_is_bounded() {
        let s = state(true);
        let before = thread_cpu_time();
        assert_eq!(
            call(s, Method::GET, "/work?us=20000").await.status,
            StatusCode::OK
        );
        let used = thread_cpu_time() - before;
        assert!(used >= Duration::from_millis(20), "burned {used:?}");
        for bad in ["/work", "/work?us=x", "/work?us=100001"] {
            assert_eq!(
                call(s, Method::GET, bad).await.status,
                StatusCode::BAD_REQUEST,
                "{bad}"
            );
        }
        assert_eq!(s.live.counters.per_route()["/work"], 4);
        assert_eq!(
            call(state(false), Method::GET, "/work?us=1").await.status,
            StatusCode::NOT_FOUND,
            "only with debug endpoints"
        );
    }

    #[tokio::test]
    async fn every_request_is_counted_once_timed_and_leaves_the_gauge() {
        let s = state(false);
        let requests = [
            (Method::GET, "/"),
            (Method::HEAD, "/cluster2"),
            (Method::GET, "/nope"),
            (Method::PATCH, "/"),
        ];
        for (method, uri) in &requests {
            call(s, method.clone(), uri).await;
        }
        let counts = s.live.counters.per_route();
        assert_eq!(counts.values().sum::<u64>(), requests.len() as u64);
        assert_eq!(s.live.latency.take().count(), requests.len() as u64);
        assert_eq!(s.live.counters.in_flight(), 0);
    }
}
