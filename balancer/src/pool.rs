//! Keep-alive connections to targets: for each target, one idle list per worker thread.
//!
//! A connection is a `hyper::client::conn::http1` pair: the [`Sender`] the request path uses,
//! and the connection task, spawned on the runtime that opened it. Since each worker runs a
//! single-threaded runtime and only ever takes from its own list, a pooled connection is
//! always driven by the thread that uses it, with no cross-thread wake-ups. The lists hold
//! senders only; dropping the last sender of a connection ends its task and closes it.
//!
//! Contract:
//! - [`Pools::take`] lends the most recently returned connection (LIFO: the warmest, and the
//!   one least likely to have been closed by the target) that is ready for a request and has
//!   been idle less than the idle timeout. Closed and expired connections met on the way are
//!   dropped; busy ones (a response still streaming) stay.
//! - A lease (`crate::proxy`'s) returns its connection to the list of the worker that took it when dropped,
//!   which the request path does when the response body has been passed on (or abandoned).
//! - [`Pools::sweep`] closes the connections idle for the idle timeout or more, so that an idle
//!   connection is never kept much past it; a request never uses one idle longer.

use std::net::SocketAddr;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::request_body::RequestBody;

/// The request half of a pooled connection.
pub(crate) type Sender = SendRequest<RequestBody>;

/// An idle connection and when it became idle.
#[derive(Debug)]
struct Idle {
    sender: Sender,
    since: Instant,
}

/// One worker's idle list, on its own cache line so that workers do not share one.
#[derive(Debug, Default)]
#[repr(align(128))]
struct Slot(Mutex<Vec<Idle>>);

/// The idle connections to one target, one list per worker.
#[derive(Debug)]
pub(crate) struct Pools {
    slots: Box<[Slot]>,
}

impl Pools {
    pub(crate) fn new(workers: usize) -> Self {
        Self {
            slots: (0..workers.max(1)).map(|_| Slot::default()).collect(),
        }
    }

    /// The idle list of `worker`. Only that worker's thread takes from it and returns to it,
    /// so the lock is never contended on the request path.
    fn slot(&self, worker: usize) -> MutexGuard<'_, Vec<Idle>> {
        self.slots[worker % self.slots.len()]
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Takes the most recently returned idle connection of `worker` that is ready and idle for
    /// less than `idle_timeout`, dropping closed and expired ones on the way.
    pub(crate) fn take(
        &self,
        worker: usize,
        now: Instant,
        idle_timeout: Duration,
    ) -> Option<Sender> {
        let mut idle = self.slot(worker);
        let mut i = idle.len();
        while i > 0 {
            i -= 1;
            let entry = &idle[i];
            if entry.sender.is_closed() || now.duration_since(entry.since) >= idle_timeout {
                idle.remove(i);
            } else if entry.sender.is_ready() {
                return Some(idle.remove(i).sender);
            }
        }
        None
    }

    /// Returns a connection to `worker`'s list, unless it is closed.
    pub(crate) fn put(&self, worker: usize, sender: Sender, now: Instant) {
        if !sender.is_closed() {
            self.slot(worker).push(Idle { sender, since: now });
        }
    }

    /// Drops `worker`'s connections that are closed or idle for `idle_timeout` or more.
    pub(crate) fn sweep(&self, worker: usize, now: Instant, idle_timeout: Duration) {
        self.slot(worker)
            .retain(|e| !e.sender.is_closed() && now.duration_since(e.since) < idle_timeout);
    }

    /// Connections in `worker`'s list.
    #[cfg(test)]
    pub(crate) fn idle(&self, worker: usize) -> usize {
        self.slot(worker).len()
    }
}

/// Why no connection could be opened.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConnectError {
    #[error("connect timed out")]
    TimedOut,
    #[error("connect: {0}")]
    Io(#[from] std::io::Error),
    #[error("handshake: {0}")]
    Handshake(#[from] hyper::Error),
}

/// A TCP connection to `address` within `timeout`, with TCP_NODELAY.
pub(crate) async fn open(
    address: SocketAddr,
    timeout: Duration,
) -> Result<TcpStream, ConnectError> {
    let stream = tokio::time::timeout(timeout, TcpStream::connect(address))
        .await
        .map_err(|_| ConnectError::TimedOut)??;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// Opens a new connection to `address` within `timeout`, with TCP_NODELAY; its task runs on
/// the current runtime (the calling worker's thread).
pub(crate) async fn connect(
    address: SocketAddr,
    timeout: Duration,
) -> Result<Sender, ConnectError> {
    let stream = open(address, timeout).await?;
    let (sender, connection) = http1::Builder::new()
        .handshake(TokioIo::new(stream))
        .await?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!("connection to {address} ended: {e}");
        }
    });
    Ok(sender)
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
    use std::sync::Arc;

    use bytes::Bytes;
    use http_body_util::{BodyExt, Full};
    use hyper::body::Incoming;
    use hyper::server::conn::http1 as server;
    use hyper::service::service_fn;
    use hyper::{Request, Response};
    use tokio::net::TcpListener;

    use super::*;

    const IDLE: Duration = Duration::from_secs(4);
    const CONNECT: Duration = Duration::from_secs(1);

    /// A backend answering `ok` (or, with `big`, 4 MiB: more than a connection buffers) that
    /// counts the connections it accepted; `close` makes it answer `Connection: close`.
    async fn backend(close: bool, big: bool) -> (SocketAddr, Arc<AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = Arc::clone(&accepted);
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                count.fetch_add(1, Relaxed);
                let service = service_fn(move |_: Request<Incoming>| async move {
                    let body = if big {
                        Bytes::from(vec![b'x'; 4 << 20])
                    } else {
                        Bytes::from_static(b"ok")
                    };
                    let mut response = Response::new(Full::new(body));
                    if close {
                        response
                            .headers_mut()
                            .insert("connection", "close".parse().unwrap());
                    }
                    Ok::<_, Infallible>(response)
                });
                tokio::spawn(
                    server::Builder::new().serve_connection(TokioIo::new(stream), service),
                );
            }
        });
        (address, accepted)
    }

    /// `GET /` for the backend at `address`.
    fn request(address: SocketAddr) -> Request<RequestBody> {
        Request::builder()
            .uri("/")
            .header("host", address.to_string())
            .body(RequestBody::empty())
            .unwrap()
    }

    /// Sends one GET on `sender` and reads the whole answer.
    async fn get(sender: &mut Sender, address: SocketAddr) -> String {
        let response = sender.send_request(request(address)).await.unwrap();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        String::from_utf8_lossy(&body).into_owned()
    }

    /// Lets the connection tasks run.
    async fn settle() {
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test]
    async fn a_returned_connection_is_taken_again_instead_of_a_new_one() {
        let (address, accepted) = backend(false, false).await;
        let pools = Pools::new(2);
        for _ in 0..3 {
            let mut sender = match pools.take(0, Instant::now(), IDLE) {
                Some(sender) => sender,
                None => connect(address, CONNECT).await.unwrap(),
            };
            assert_eq!(get(&mut sender, address).await, "ok");
            settle().await;
            pools.put(0, sender, Instant::now());
        }
        assert_eq!(accepted.load(Relaxed), 1);
        assert_eq!(pools.idle(0), 1);
        assert_eq!(pools.idle(1), 0, "another worker's list is apart");
        assert!(pools.take(1, Instant::now(), IDLE).is_none());
    }

    #[tokio::test]
    async fn the_most_recently_returned_connection_is_taken_first() {
        let (address, _) = backend(false, false).await;
        let pools = Pools::new(1);
        let older = connect(address, CONNECT).await.unwrap();
        let newer = connect(address, CONNECT).await.unwrap();
        settle().await;
        let start = Instant::now();
        pools.put(0, older, start);
        pools.put(0, newer, start + Duration::from_millis(1));
        // The older one expires first: with a timeout between the two, only the newer is left.
        let taken = pools.take(0, start + IDLE, IDLE);
        assert!(taken.is_some());
        assert_eq!(pools.idle(0), 1, "the older one is still idle");
    }

    #[tokio::test]
    async fn a_connection_the_target_closed_is_dropped_not_lent() {
        let (address, accepted) = backend(true, false).await;
        let pools = Pools::new(1);
        let mut sender = connect(address, CONNECT).await.unwrap();
        assert_eq!(get(&mut sender, address).await, "ok");
        settle().await;
        pools.put(0, sender, Instant::now());
        assert!(pools.take(0, Instant::now(), IDLE).is_none());
        assert_eq!(pools.idle(0), 0);
        assert_eq!(accepted.load(Relaxed), 1);
    }

    #[tokio::test]
    async fn a_busy_connection_stays_in_the_list_but_is_not_lent() {
        let (address, _) = backend(false, true).await;
        let pools = Pools::new(1);
        let mut sender = connect(address, CONNECT).await.unwrap();
        settle().await;
        // The response head arrived, most of its body is not read: the connection is busy.
        let response = sender.send_request(request(address)).await.unwrap();
        pools.put(0, sender, Instant::now());
        assert!(pools.take(0, Instant::now(), IDLE).is_none());
        assert_eq!(pools.idle(0), 1);
        response.into_body().collect().await.unwrap();
        settle().await;
        assert!(pools.take(0, Instant::now(), IDLE).is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_connection_expires_after_the_idle_timeout() {
        let (address, _) = backend(false, false).await;
        let pools = Pools::new(1);
        let sender = connect(address, CONNECT).await.unwrap();
        settle().await;
        pools.put(0, sender, Instant::now());
        tokio::time::advance(IDLE - Duration::from_millis(1)).await;
        pools.sweep(0, Instant::now(), IDLE);
        assert_eq!(pools.idle(0), 1, "not yet");
        tokio::time::advance(Duration::from_millis(1)).await;
        assert!(
            pools.take(0, Instant::now(), IDLE).is_none(),
            "never lent once expired"
        );
        let sender = connect(address, CONNECT).await.unwrap();
        settle().await;
        pools.put(0, sender, Instant::now());
        tokio::time::advance(IDLE).await;
        pools.sweep(0, Instant::now(), IDLE);
        assert_eq!(pools.idle(0), 0, "swept");
    }

    #[tokio::test]
    async fn nothing_listening_is_a_connect_error() {
        let dead = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        assert!(matches!(
            connect(dead, CONNECT).await,
            Err(ConnectError::Io(_))
        ));
    }
}
