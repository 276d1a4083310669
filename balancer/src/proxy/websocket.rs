//! WebSockets (RFC 6455) through the balancer, as ALB passes them: an HTTP/1.1 request with
//! `Connection: upgrade` and `Upgrade: websocket` goes to one target, on a connection of its
//! own (an upgraded connection never returns to a pool), with the two headers kept. Any answer
//! but 101 is passed on as an answer. On 101, hyper hands over both connections and they are
//! spliced, byte for byte, until either side closes or neither sends anything for
//! `limits.websocket_idle_timeout_ms`.
//!
//! An open WebSocket counts as an outstanding request on its target (least-outstanding-requests
//! sees it) and in `elb_websocket_connections_open`; at shutdown the server waits for open
//! WebSockets as for requests, for at most the grace period, after which they are cut.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Empty;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONNECTION, UPGRADE};
use hyper::{Request, Response, StatusCode, Version};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

use super::body::{Lease, ResponseBody};
use super::{admit, ensure_host, headers, note, origin_form, Failure, Origin};
use crate::access_log::Trail;
use crate::group::Group;
use crate::shared::Shared;
use crate::target::{InFlight, Outcome};

/// Whether `request` asks to become a WebSocket: HTTP/1.1, `Upgrade: websocket` and the
/// `upgrade` token in `Connection` (both case-insensitive).
pub(super) fn is_upgrade<B>(request: &Request<B>) -> bool {
    let has_token = |name, token: &str| {
        request.headers().get_all(name).iter().any(|v| {
            v.to_str()
                .is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
        })
    };
    request.version() == Version::HTTP_11
        && has_token(UPGRADE, "websocket")
        && has_token(CONNECTION, "upgrade")
}

/// Forwards a WebSocket handshake to a target of `group` and, on its 101, splices the two
/// connections in a task of their own. Not retried: a handshake that failed is answered as a
/// failed request.
pub(super) async fn forward(
    shared: &'static Shared,
    group: &Group,
    mut request: Request<Incoming>,
    origin: &Arc<Origin>,
    trail: &mut Trail<'_>,
) -> Result<Response<ResponseBody>, Failure> {
    let config = &group.config;
    group.stats.requests.fetch_add(1, Relaxed);
    let client_side = hyper::upgrade::on(&mut request);
    let sticky = super::sticky::member(group, request.headers());
    let (chosen, in_flight) = admit::admit(group, &[], Failure::NoTarget, sticky).await?;
    let target = &group.members[chosen].target;
    let (mut parts, _) = request.into_parts();
    let upgrade = parts.headers.get(UPGRADE).cloned();
    headers::forward_request(&mut parts.headers, origin);
    // The two hop-by-hop headers that make the handshake go through, as the client sent them.
    parts
        .headers
        .insert(CONNECTION, HeaderValue::from_static("upgrade"));
    if let Some(upgrade) = upgrade {
        parts.headers.insert(UPGRADE, upgrade);
    }
    ensure_host(&mut parts.headers, target);
    let mut outgoing = Request::new(Empty::<Bytes>::new());
    *outgoing.method_mut() = parts.method;
    *outgoing.uri_mut() = origin_form(&parts.uri);
    *outgoing.headers_mut() = parts.headers;
    trail.sent(target.address);
    let started = Instant::now();
    let sent = tokio::time::timeout(
        config.response_timeout(),
        send(target.address, outgoing, config.connect_timeout()),
    )
    .await;
    let mut response = match sent {
        Ok(Ok(response)) => response,
        Ok(Err(failure)) => {
            let outcome = match failure {
                Failure::ConnectFailed => Outcome::ConnectFailed,
                _ => Outcome::Reset,
            };
            note(group, chosen, outcome, started.elapsed());
            return Err(failure);
        }
        Err(_) => {
            note(group, chosen, Outcome::TimedOut, started.elapsed());
            return Err(Failure::TargetTimeout);
        }
    };
    let elapsed = started.elapsed();
    trail.answered(response.status().as_u16());
    note(
        group,
        chosen,
        Outcome::Answered(response.status().as_u16()),
        elapsed,
    );
    group.stats.response_time.observe(elapsed);
    if response.status() != StatusCode::SWITCHING_PROTOCOLS {
        headers::strip_hop_by_hop(response.headers_mut());
        let lease = Lease::alone(crate::worker::index(), in_flight);
        return Ok(response.map(|body| ResponseBody::upstream(body, lease)));
    }
    let target_side = hyper::upgrade::on(&mut response);
    let idle = std::time::Duration::from_millis(shared.snapshot().limits.websocket_idle_timeout_ms);
    let open = Open::new(
        &shared.counters.websockets_open,
        in_flight,
        Arc::clone(origin),
    );
    tokio::spawn(async move {
        let _open = open;
        let (client, target) = match tokio::join!(client_side, target_side) {
            (Ok(client), Ok(target)) => (client, target),
            (Err(e), _) | (_, Err(e)) => {
                tracing::debug!("WebSocket upgrade failed: {e}");
                return;
            }
        };
        splice(TokioIo::new(client), TokioIo::new(target), idle).await;
    });
    // The 101 goes back as the target made it: `Upgrade`, `Connection` and the
    // `Sec-WebSocket-*` answers included.
    Ok(response.map(|_| ResponseBody::empty()))
}

/// Sends the handshake on a new connection to `address` that allows the upgrade.
async fn send(
    address: SocketAddr,
    request: Request<Empty<Bytes>>,
    connect_timeout: Duration,
) -> Result<Response<Incoming>, Failure> {
    let stream = crate::pool::open(address, connect_timeout)
        .await
        .map_err(|_| Failure::ConnectFailed)?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|_| Failure::ConnectFailed)?;
    tokio::spawn(async move {
        if let Err(e) = connection.with_upgrades().await {
            tracing::debug!("WebSocket connection to {address} ended: {e}");
        }
    });
    sender.send_request(request).await.map_err(|e| {
        tracing::debug!("WebSocket handshake to {address}: {e}");
        Failure::TargetReset
    })
}

/// Copies bytes both ways until either side closes (its close is passed on) or neither sends
/// for `idle`.
async fn splice<A, B>(client: A, target: B, idle: Duration)
where
    A: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    let last = LastRead::new();
    let mut client = Stamped::new(client, &last);
    let mut target = Stamped::new(target, &last);
    let copy = tokio::io::copy_bidirectional(&mut client, &mut target);
    tokio::pin!(copy);
    loop {
        let deadline = last.get() + idle;
        tokio::select! {
            result = &mut copy => {
                if let Err(e) = result {
                    tracing::debug!("WebSocket ended: {e}");
                }
                return;
            }
            () = tokio::time::sleep_until(deadline) => {
                if last.get() + idle <= Instant::now() {
                    tracing::debug!("WebSocket idle for {idle:?}: closed");
                    return;
                }
            }
        }
    }
}

/// When either side of a splice last read bytes. An atomic only so that the splice's future
/// is `Send`: both sides are polled by the one task.
struct LastRead {
    origin: Instant,
    nanos: AtomicU64,
}

impl LastRead {
    fn new() -> Self {
        Self {
            origin: Instant::now(),
            nanos: AtomicU64::new(0),
        }
    }

    fn set(&self, at: Instant) {
        let nanos = at.saturating_duration_since(self.origin).as_nanos();
        self.nanos
            .store(u64::try_from(nanos).unwrap_or(u64::MAX), Relaxed);
    }

    fn get(&self) -> Instant {
        self.origin + Duration::from_nanos(self.nanos.load(Relaxed))
    }
}

/// A connection that notes when it last read bytes.
struct Stamped<'a, T> {
    inner: T,
    last: &'a LastRead,
}

impl<'a, T> Stamped<'a, T> {
    fn new(inner: T, last: &'a LastRead) -> Self {
        Self { inner, last }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Stamped<'_, T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.last.set(Instant::now());
        }
        polled
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Stamped<'_, T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// An open WebSocket: counted open, in flight on its target, and holding its client
/// connection's place under `limits.max_connections` (through its [`Origin`]), until dropped.
struct Open {
    counter: &'static AtomicU64,
    _in_flight: InFlight,
    _client: Arc<Origin>,
}

impl Open {
    fn new(counter: &'static AtomicU64, in_flight: InFlight, client: Arc<Origin>) -> Self {
        counter.fetch_add(1, Relaxed);
        Self {
            counter,
            _in_flight: in_flight,
            _client: client,
        }
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        self.counter.fetch_sub(1, Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_upgrade_needs_both_headers_on_http_1_1() {
        let request = |version, connection: &str, upgrade: &str| {
            let mut r = Request::builder().version(version);
            if !connection.is_empty() {
                r = r.header(CONNECTION, connection);
            }
            if !upgrade.is_empty() {
                r = r.header(UPGRADE, upgrade);
            }
            r.body(()).unwrap()
        };
        assert!(is_upgrade(&request(
            Version::HTTP_11,
            "Upgrade",
            "websocket"
        )));
        assert!(is_upgrade(&request(
            Version::HTTP_11,
            "keep-alive, upgrade",
            "WebSocket"
        )));
        assert!(!is_upgrade(&request(Version::HTTP_11, "", "websocket")));
        assert!(!is_upgrade(&request(Version::HTTP_11, "upgrade", "h2c")));
        assert!(!is_upgrade(&request(
            Version::HTTP_10,
            "upgrade",
            "websocket"
        )));
    }

    #[tokio::test(start_paused = true)]
    async fn a_splice_idle_for_its_timeout_ends_and_one_that_talks_does_not() {
        let (client, mut client_peer) = tokio::io::duplex(64);
        let (target, _target_peer) = tokio::io::duplex(64);
        let idle = Duration::from_secs(60);
        let started = Instant::now();
        let spliced = tokio::spawn(splice(client, target, idle));
        for _ in 0..3 {
            tokio::time::sleep(Duration::from_secs(40)).await;
            tokio::io::AsyncWriteExt::write_all(&mut client_peer, b"x")
                .await
                .unwrap();
        }
        spliced.await.unwrap();
        // Talked at 40, 80 and 120 s: idle from 120 s, closed at 180 s.
        assert_eq!(started.elapsed().as_secs(), 180);
    }
}
