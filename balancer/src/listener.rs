//! A client connection, from its accepted socket to HTTP: TLS on HTTPS listeners, then HTTP/1.1
//! or HTTP/2 (chosen by ALPN over TLS, by the client's connection preface on a cleartext
//! listener that allows HTTP/2), each with its bounds and a graceful drain on shutdown.
//!
//! This is the transport seam, as pingora's `listeners/` and `protocols/`: what lies above it
//! (the request path, `crate::proxy`) sees an HTTP request whatever carried it, and a new
//! protocol changes only this module.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use hyper::server::conn::{http1, http2};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use serving::Shutdown;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::access_log::Tls;
use crate::admin;
use crate::config::{Http2, Limits, Transport};
use crate::proxy::{self, FramingWatch, Origin, ResponseBody, Slot};
use crate::shared::Shared;

/// hyper's smallest read buffer.
const MIN_BUF_BYTES: usize = 8192;
/// What an HTTP/2 client sends first (RFC 9113 3.4).
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// Pause between two looks at a preface that arrived in part.
const PREFACE_POLL: Duration = Duration::from_millis(5);

/// What a listener serves.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Role {
    /// Client traffic, under the connection limit; the index of its listener in the config.
    Proxy(usize),
    /// `/metrics` and `/status`.
    Admin,
}

/// One accepted connection and what it needs to be served.
pub(crate) struct Accepted<'a> {
    pub stream: TcpStream,
    pub client: SocketAddr,
    /// The listener's port, for `X-Forwarded-Port`.
    pub port: u16,
    pub role: Role,
    pub shared: &'static Shared,
    pub limits: &'a Limits,
    /// Its place under the connection limit, held as long as the client's socket is open.
    pub slot: Slot,
}

/// Serves one connection until the client closes it, its read timeout passes, or the shutdown
/// ends it after the requests in progress.
pub(crate) async fn serve(accepted: Accepted<'_>, mut shutdown: Shutdown) {
    let Accepted {
        stream,
        client,
        port,
        role,
        shared,
        limits,
        slot,
    } = accepted;
    if let Err(e) = stream.set_nodelay(true) {
        tracing::debug!("TCP_NODELAY: {e}");
    }
    let snapshot = shared.snapshot();
    let transport = match role {
        Role::Proxy(listener) => snapshot.transports[listener].clone(),
        Role::Admin => Transport {
            tls: None,
            http2: false,
            redirect: None,
        },
    };
    let http2_limits = snapshot.http2.clone();
    drop(snapshot);
    let origin = Origin::new(client, port, transport.scheme())
        .redirecting(transport.redirect.clone())
        .holding(slot);
    let connection = |origin| Connection {
        role,
        shared,
        origin: Arc::new(origin),
        limits,
        http2: &http2_limits,
    };
    let read_timeout = Duration::from_millis(limits.read_timeout_ms);
    let Some(tls) = transport.tls else {
        let h2 = transport.http2
            && tokio::select! {
                preface = starts_with_h2_preface(&stream, read_timeout) => preface,
                () = shutdown.raised() => return,
            };
        return connection(origin).serve(stream, h2, shutdown).await;
    };
    let handshake = tokio_rustls::TlsAcceptor::from(tls).accept(stream);
    let stream = tokio::select! {
        done = tokio::time::timeout(read_timeout, handshake) => match done {
            Ok(Ok(stream)) => stream,
            failed => {
                shared.counters.tls_handshake_failures.fetch_add(1, Relaxed);
                let why = match failed {
                    Ok(Err(e)) => e.to_string(),
                    _ => "timed out".into(),
                };
                tracing::debug!("TLS handshake with {client} failed: {why}");
                return;
            }
        },
        () = shutdown.raised() => return,
    };
    let session = stream.get_ref().1;
    let h2 = crate::tls::negotiated_h2(session);
    let origin = origin.secured(Tls::of(session));
    connection(origin).serve(stream, h2, shutdown).await;
}

/// Whether the client opened with HTTP/2's preface: looks at the first bytes without taking
/// them (the chosen protocol reads them again). A client that sends nothing within `timeout`
/// is served as HTTP/1.1, whose own read timeout then closes it.
async fn starts_with_h2_preface(stream: &TcpStream, timeout: Duration) -> bool {
    let look = async {
        let mut buf = [0u8; H2_PREFACE.len()];
        loop {
            match stream.peek(&mut buf).await {
                Ok(0) | Err(_) => return false,
                Ok(n) if !H2_PREFACE.starts_with(&buf[..n]) => return false,
                Ok(n) if n == H2_PREFACE.len() => return true,
                // Part of a preface so far: peek returns at once with the same bytes until
                // more come, so pause between looks.
                Ok(_) => tokio::time::sleep(PREFACE_POLL).await,
            }
        }
    };
    tokio::time::timeout(timeout, look).await.unwrap_or(false)
}

/// What serving a connection's requests needs, whatever the protocol.
struct Connection<'a> {
    role: Role,
    shared: &'static Shared,
    origin: Arc<Origin>,
    limits: &'a Limits,
    http2: &'a Http2,
}

impl Connection<'_> {
    /// Serves HTTP/2 when `h2`, else HTTP/1.1, on `io`.
    async fn serve<IO>(self, io: IO, h2: bool, mut shutdown: Shutdown)
    where
        IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        // Raised by the watch when an HTTP/1.1 head carried both Content-Length and
        // Transfer-Encoding (HTTP/2 has no such framing: its flag stays down).
        let conflict = Arc::new(AtomicBool::new(false));
        let client = self.origin.client;
        let (role, shared, origin) = (self.role, self.shared, self.origin);
        let watched = Arc::clone(&conflict);
        // Only HTTP/2 needs to know which streams are open (HTTP/1.1's idle timeout is hyper's).
        let streams = Arc::new(Streams::new());
        let counted = h2.then(|| Arc::clone(&streams));
        let service = service_fn(move |request| {
            let origin = Arc::clone(&origin);
            let conflict = Arc::clone(&conflict);
            let stream = counted.as_ref().map(Streams::open);
            async move {
                let response = match role {
                    // Boxed: hyper keeps a box the size of this future for the connection's
                    // whole life, and the request path's future is kilobytes (a measured 2.7
                    // KiB), which 10,000 idle keep-alive connections would hold for nothing.
                    // Allocated per request instead, it is held only while a request is in
                    // progress.
                    Role::Proxy(_) => {
                        Box::pin(proxy::handle(shared, request, &origin, &conflict)).await
                    }
                    Role::Admin => admin::handle(shared, &request),
                };
                // The stream stays open until its answer's body has been sent.
                Ok::<_, Infallible>(response.map(|body| Counted {
                    body,
                    _stream: stream,
                }))
            }
        });
        let result = if h2 {
            let connection =
                http2_builder(self.http2, self.limits).serve_connection(TokioIo::new(io), service);
            tokio::pin!(connection);
            let read_timeout = Duration::from_millis(self.limits.read_timeout_ms);
            tokio::select! {
                result = connection.as_mut() => result,
                // GOAWAY: open streams finish, no new ones start.
                () = shutdown.raised() => {
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
                () = streams.none_open_for(read_timeout) => {
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            }
        } else {
            let io = FramingWatch::new(io, watched);
            let connection = http1_builder(self.limits)
                .serve_connection(TokioIo::new(io), service)
                .with_upgrades();
            tokio::pin!(connection);
            tokio::select! {
                result = connection.as_mut() => result,
                () = shutdown.raised() => {
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            }
        };
        if let Err(e) = result {
            tracing::debug!("connection from {client} ended: {e}");
        }
    }
}

/// An HTTP/2 connection's open streams and when the last one closed, for its idle timeout:
/// hyper closes an idle HTTP/1.1 connection itself (its head timer), but keeps an HTTP/2 one
/// with no stream open for as long as the client likes, holding a connection permit.
struct Streams {
    opened: Instant,
    open: AtomicUsize,
    /// Milliseconds after `opened` at which the last stream closed.
    closed_ms: AtomicU64,
}

/// One open stream, counted until its answer has been sent (or abandoned).
struct StreamOpen(Arc<Streams>);

impl Streams {
    fn new() -> Self {
        Self {
            opened: Instant::now(),
            open: AtomicUsize::new(0),
            closed_ms: AtomicU64::new(0),
        }
    }

    fn open(streams: &Arc<Self>) -> StreamOpen {
        streams.open.fetch_add(1, Relaxed);
        StreamOpen(Arc::clone(streams))
    }

    /// Resolves once no stream has been open for `timeout`.
    async fn none_open_for(&self, timeout: Duration) {
        loop {
            let idle_since = self.opened + Duration::from_millis(self.closed_ms.load(Relaxed));
            if self.open.load(Relaxed) > 0 {
                // Looked at again a timeout later: a stream may run for any time.
                tokio::time::sleep(timeout).await;
            } else if idle_since.elapsed() >= timeout {
                return;
            } else {
                tokio::time::sleep_until(idle_since + timeout).await;
            }
        }
    }
}

impl Drop for StreamOpen {
    fn drop(&mut self) {
        let streams = &self.0;
        let ms = u64::try_from(streams.opened.elapsed().as_millis()).unwrap_or(u64::MAX);
        streams.closed_ms.store(ms, Relaxed);
        streams.open.fetch_sub(1, Relaxed);
    }
}

/// An answer's body that keeps its HTTP/2 stream counted open until it has been sent.
struct Counted {
    body: ResponseBody,
    _stream: Option<StreamOpen>,
}

impl Body for Counted {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// HTTP/1.1: keep-alive, a bounded head (431 past it), a read timeout on heads (idle keep-alive
/// time included).
fn http1_builder(limits: &Limits) -> http1::Builder {
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        // hyper's timer runs while it waits for a head, idle keep-alive time included.
        .header_read_timeout(Duration::from_millis(limits.read_timeout_ms))
        .max_buf_size((2 * limits.max_header_bytes).max(MIN_BUF_BYTES))
        .max_header_size(limits.max_header_bytes);
    builder
}

/// HTTP/2 with the config's bounds (see [`Http2`]); a header block is bounded as an HTTP/1.1
/// head is.
fn http2_builder(http2: &Http2, limits: &Limits) -> http2::Builder<TokioExecutor> {
    let mut builder = http2::Builder::new(TokioExecutor::new());
    builder
        .timer(TokioTimer::new())
        .max_concurrent_streams(http2.max_concurrent_streams)
        .initial_stream_window_size(http2.stream_window_bytes)
        .initial_connection_window_size(http2.connection_window_bytes)
        .max_send_buf_size(http2.max_send_buffer_bytes)
        .max_pending_accept_reset_streams(http2.max_pending_reset_streams)
        .max_local_error_reset_streams(http2.max_error_resets)
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX));
    builder
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn an_http2_connection_is_idle_a_read_timeout_after_its_last_stream_closed() {
        let streams = Arc::new(Streams::new());
        let opened = Instant::now();
        let stream = Streams::open(&streams);
        // A stream open for 25 s (a long download) keeps the connection, however long.
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(25)).await;
            drop(stream);
        });
        streams.none_open_for(Duration::from_secs(10)).await;
        assert_eq!(opened.elapsed(), Duration::from_secs(35));
    }
}
