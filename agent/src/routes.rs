//! Request routing: which answer each request gets, and the counting around it.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderValue, ALLOW, CONNECTION, CONTENT_LENGTH, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use proto::{ErrorBody, SCHEMA};

use crate::metrics;
use crate::state::AppState;
use crate::stats::counters::Route;

/// Largest request body announced by `Content-Length` that is not refused with 413. No endpoint
/// reads a body: one already in the read buffer is dropped, a larger one closes the connection.
pub(crate) const MAX_BODY_BYTES: u64 = 16 * 1024;
/// Longest `/sleep`.
const MAX_SLEEP: Duration = Duration::from_secs(30);

const JSON: &str = "application/json";

/// Answers one request, counting it and recording its latency. Also returns when the answer was
/// ready, the instant the latency ends at (the connection's read timeout restarts there).
pub(crate) async fn handle<B>(
    state: &AppState,
    request: Request<B>,
) -> (Response<Full<Bytes>>, Instant) {
    let started = Instant::now();
    let in_flight = state.live.counters.start();
    let (route, response) = answer(state, &request).await;
    let ready = Instant::now();
    state
        .live
        .latency
        .record(ready.saturating_duration_since(started));
    in_flight.finish(route);
    (response, ready)
}

fn route_of(path: &str, debug_endpoints: bool) -> Option<Route> {
    Some(match path {
        "/" => Route::Root,
        "/cluster1" => Route::Cluster1,
        "/cluster2" => Route::Cluster2,
        "/stats" => Route::Stats,
        "/metrics" => Route::Metrics,
        "/healthz" => Route::Healthz,
        "/sleep" if debug_endpoints => Route::Sleep,
        _ => return None,
    })
}

async fn answer<B>(state: &AppState, request: &Request<B>) -> (Route, Response<Full<Bytes>>) {
    let Some(route) = route_of(request.uri().path(), state.debug_endpoints) else {
        return (Route::NotFound, error(StatusCode::NOT_FOUND, "not found"));
    };
    if !matches!(*request.method(), Method::GET | Method::HEAD) {
        let mut response = error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
        response
            .headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
        return (Route::MethodNotAllowed, response);
    }
    if announced_body_len(request) > MAX_BODY_BYTES {
        let mut response = error(StatusCode::PAYLOAD_TOO_LARGE, "request body too large");
        response
            .headers_mut()
            .insert(CONNECTION, HeaderValue::from_static("close"));
        return (Route::PayloadTooLarge, response);
    }
    let response = match route {
        Route::Healthz => ok(state.health.clone(), JSON),
        Route::Sleep => match sleep_duration(request.uri().query()) {
            Ok(duration) => {
                tokio::time::sleep(duration).await;
                ok(state.health.clone(), JSON)
            }
            Err(reason) => error(StatusCode::BAD_REQUEST, reason),
        },
        _ => {
            let bodies = state.bodies();
            match route {
                Route::Cluster1 => ok(bodies.cluster1.clone(), JSON),
                Route::Cluster2 => ok(bodies.cluster2.clone(), JSON),
                Route::Stats => ok(bodies.stats.clone(), JSON),
                Route::Metrics => ok(bodies.metrics.clone(), metrics::CONTENT_TYPE),
                _ => ok(bodies.root.clone(), JSON),
            }
        }
    };
    (route, response)
}

/// The `Content-Length` a request announces; unparsable counts as too large.
fn announced_body_len<B>(request: &Request<B>) -> u64 {
    request.headers().get(CONTENT_LENGTH).map_or(0, |v| {
        v.to_str()
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(u64::MAX)
    })
}

/// `ms=N` from `/sleep`'s query, at most [`MAX_SLEEP`].
fn sleep_duration(query: Option<&str>) -> Result<Duration, &'static str> {
    let ms = query
        .unwrap_or_default()
        .split('&')
        .find_map(|pair| pair.strip_prefix("ms="))
        .and_then(|v| v.parse::<u64>().ok())
        .ok_or("expected /sleep?ms=<milliseconds>")?;
    let duration = Duration::from_millis(ms);
    if duration > MAX_SLEEP {
        return Err("ms is above the 30000 limit");
    }
    Ok(duration)
}

fn ok(body: Bytes, content_type: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body));
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

fn error(status: StatusCode, reason: &str) -> Response<Full<Bytes>> {
    let body = ErrorBody {
        schema: SCHEMA,
        status: status.as_u16(),
        error: reason.to_string(),
    };
    // Serialising a struct of plain fields cannot fail.
    let mut response = ok(serde_json::to_vec(&body).unwrap_or_default().into(), JSON);
    *response.status_mut() = status;
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::Identity;
    use crate::stats::sampler::Sampler;
    use http_body_util::BodyExt;

    fn state(debug_endpoints: bool) -> AppState {
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
        state
    }

    async fn call(state: &AppState, method: Method, uri: &str) -> (StatusCode, serde_json::Value) {
        let request = Request::builder().method(method).uri(uri).body(()).unwrap();
        let (response, _) = handle(state, request).await;
        let status = response.status();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (
            status,
            serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null),
        )
    }

    #[tokio::test]
    async fn seed_answers_keep_their_messages_and_the_hostname_as_instance_id() {
        let s = state(false);
        for (path, message) in [
            ("/", "Instance is responding"),
            ("/cluster1", "Cluster 1 (Large) responding"),
            ("/cluster2", "Cluster 2 (Micro) responding"),
        ] {
            let (status, body) = call(&s, Method::GET, path).await;
            assert_eq!(status, StatusCode::OK);
            assert_eq!(body["message"], message);
            assert_eq!(body["instance_id"], "host-a");
            assert_eq!(body["cluster"], "cluster1");
        }
    }

    #[tokio::test]
    async fn errors_have_json_bodies_and_are_counted() {
        let s = state(false);
        let (status, body) = call(&s, Method::GET, "/nope").await;
        assert_eq!(
            (status, body["status"].as_u64()),
            (StatusCode::NOT_FOUND, Some(404))
        );
        let (status, body) = call(&s, Method::POST, "/stats").await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(body["error"], "method not allowed");
        let (status, _) = call(&s, Method::GET, "/sleep?ms=1").await;
        assert_eq!(
            status,
            StatusCode::NOT_FOUND,
            "debug endpoints are off by default"
        );
        let counts = s.live.counters.per_route();
        assert_eq!(counts["not_found"], 2);
        assert_eq!(counts["method_not_allowed"], 1);
    }

    #[tokio::test]
    async fn announced_large_bodies_are_refused() {
        let s = state(false);
        let request = Request::builder()
            .uri("/")
            .header(CONTENT_LENGTH, "1000000")
            .body(())
            .unwrap();
        let (response, _) = handle(&s, request).await;
        assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(response.headers()[CONNECTION], "close");
    }

    #[tokio::test]
    async fn sleep_is_bounded_and_validated() {
        let s = state(true);
        assert_eq!(call(&s, Method::GET, "/sleep?ms=5").await.0, StatusCode::OK);
        assert_eq!(
            call(&s, Method::GET, "/sleep").await.0,
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            call(&s, Method::GET, "/sleep?ms=30001").await.0,
            StatusCode::BAD_REQUEST
        );
    }
}
