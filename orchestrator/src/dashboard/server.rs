//! The dashboard's HTTP/1.1 server: the page and its assets (embedded), the JSON API and the
//! event stream.
//!
//! | path | answer |
//! | --- | --- |
//! | `/` | the page |
//! | `/assets/<file>` | the page's script, style, icon and the vendored uPlot |
//! | `/api/snapshot` | the latest [`Frame`](super::frame::Frame) (503 before the first tick) |
//! | `/api/history` | the charts' series over the kept window |
//! | `/api/events` | Server-Sent Events: one `history` event, then a `frame` event per tick |
//!
//! Only GET and HEAD. Bound to loopback, it answers only requests whose `Host` is a loopback
//! name or address (a page on another site cannot read it through DNS rebinding). Every answer
//! carries a Content-Security-Policy that lets the page load and connect to its own origin only.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Frame as BodyFrame, Incoming};
use hyper::header::{HeaderValue, ALLOW, CACHE_CONTROL, CONTENT_TYPE, HOST};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use super::assets;
use super::poller::Shared;

/// The page may load and connect to its own origin only.
const CSP: &str = "default-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";
/// Frames buffered per event stream before a slow page is dropped.
const STREAM_BUFFER: usize = 8;

type Answer = Response<BoxBody<Bytes, Infallible>>;

/// Accepts connections on `listener` until the task is aborted.
pub(crate) async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    let loopback = listener.local_addr().is_ok_and(|a| a.ip().is_loopback());
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of descriptors and the like: wait a moment rather than spin.
                tracing::warn!(error = %e, "dashboard accept");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let answer = answer(&request, &shared, loopback);
                async move { Ok::<_, Infallible>(answer) }
            });
            let connection = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service);
            if let Err(e) = connection.await {
                tracing::debug!(%peer, error = %e, "dashboard connection");
            }
        });
    }
}

/// The answer to one request.
fn answer(request: &Request<Incoming>, shared: &Shared, loopback: bool) -> Answer {
    if loopback && !host_is_loopback(request.headers().get(HOST)) {
        return error(
            StatusCode::MISDIRECTED_REQUEST,
            "this dashboard is bound to loopback and answers only to a loopback Host \
             (localhost, 127.0.0.1, [::1]); open it at the URL elb printed",
        );
    }
    if request.method() != Method::GET && request.method() != Method::HEAD {
        let mut answer = error(StatusCode::METHOD_NOT_ALLOWED, "only GET and HEAD");
        answer
            .headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
        return answer;
    }
    let path = request.uri().path();
    match path {
        "/" => asset("index.html"),
        "/api/snapshot" => json_or_not_yet(shared.snapshot()),
        "/api/history" => json_or_not_yet(shared.history()),
        "/api/events" => events(shared),
        _ => match path.strip_prefix("/assets/") {
            Some(name) => asset(name),
            None => error(StatusCode::NOT_FOUND, "no such page"),
        },
    }
}

/// A JSON document, or 503 before the first poll has finished.
fn json_or_not_yet(json: Option<Bytes>) -> Answer {
    match json {
        Some(json) => full(StatusCode::OK, "application/json", json),
        None => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "no poll has finished yet; try again in a second",
        ),
    }
}

/// Whether `host` names this machine's loopback: `localhost`, `127.x.y.z` or `[::1]`, with or
/// without a port.
fn host_is_loopback(host: Option<&HeaderValue>) -> bool {
    let Some(host) = host.and_then(|h| h.to_str().ok()) else {
        return false;
    };
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or_default(),
        None => host.rsplit_once(':').map_or(host, |(name, _)| name),
    };
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn asset(name: &str) -> Answer {
    match assets::get(name) {
        Some((content_type, bytes)) => {
            full(StatusCode::OK, content_type, Bytes::from_static(bytes))
        }
        None => error(StatusCode::NOT_FOUND, "no such asset"),
    }
}

/// The event stream: the history (`null` before the first tick), then each frame as it is
/// published. A page that cannot keep up (its buffer full) is disconnected; one that misses a
/// tick sees it in the frames' `tick` and reconnects. Either way its `EventSource` gets the
/// history anew.
fn events(shared: &Shared) -> Answer {
    let (history, mut frames) = shared.subscribe();
    let history = history.unwrap_or_else(|| Bytes::from_static(b"null"));
    let (tx, rx) = mpsc::channel::<Bytes>(STREAM_BUFFER);
    tokio::spawn(async move {
        if tx.try_send(event("history", &history)).is_err() {
            return;
        }
        while frames.changed().await.is_ok() {
            let Some(frame) = frames.borrow_and_update().clone() else {
                continue;
            };
            if tx.try_send(event("frame", &frame)).is_err() {
                return;
            }
        }
    });
    let mut answer = Response::new(EventStream(rx).boxed());
    let headers = answer.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    secure(answer)
}

/// One Server-Sent Event; `data` is one line of JSON.
fn event(name: &str, data: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(data.len() + name.len() + 16);
    out.extend_from_slice(b"event: ");
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"\ndata: ");
    out.extend_from_slice(data);
    out.extend_from_slice(b"\n\n");
    Bytes::from(out)
}

/// A body that yields the events sent into it, and ends when the sender does.
struct EventStream(mpsc::Receiver<Bytes>);

impl Body for EventStream {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<BodyFrame<Bytes>, Infallible>>> {
        self.0
            .poll_recv(cx)
            .map(|event| event.map(|e| Ok(BodyFrame::data(e))))
    }
}

fn full(status: StatusCode, content_type: &'static str, body: Bytes) -> Answer {
    let mut answer = Response::new(Full::new(body).boxed());
    *answer.status_mut() = status;
    let headers = answer.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    secure(answer)
}

/// A JSON error body: `{"status": 404, "error": "..."}`.
fn error(status: StatusCode, why: &str) -> Answer {
    let body = serde_json::json!({ "status": status.as_u16(), "error": why });
    full(status, "application/json", Bytes::from(body.to_string()))
}

fn secure(mut answer: Answer) -> Answer {
    let headers = answer.headers_mut();
    headers.insert("content-security-policy", HeaderValue::from_static(CSP));
    headers.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    headers.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    answer
}

/// Where the dashboard at `addr` is opened.
pub(crate) fn url(addr: SocketAddr) -> String {
    format!("http://{addr}/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_hosts_pass_on_a_loopback_bind() {
        let ok = |h: &str| host_is_loopback(Some(&HeaderValue::from_str(h).unwrap()));
        for host in [
            "localhost:8080",
            "LOCALHOST",
            "127.0.0.1:8080",
            "127.9.9.9",
            "[::1]:80",
            "[::1]",
        ] {
            assert!(ok(host), "{host}");
        }
        for host in [
            "evil.example:8080",
            "10.0.0.1:8080",
            "localhost.evil.example",
            "[::2]:80",
        ] {
            assert!(!ok(host), "{host}");
        }
        assert!(!host_is_loopback(None));
    }

    #[test]
    fn an_event_is_named_and_ends_with_a_blank_line() {
        assert_eq!(
            &event("frame", b"{\"a\":1}")[..],
            b"event: frame\ndata: {\"a\":1}\n\n"
        );
    }
}
