//! The HTTP/1.1 server: accept loop, one task per connection, graceful drain.
//!
//! The routes are an axum `Router`, served as a hyper service on hyper's own connection builder
//! rather than through `axum::serve`, which cannot set the head and buffer limits, turn hyper's
//! header timer off for the watchdog, or drain connections on our shutdown flag.

use std::convert::Infallible;
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serving::{Drain, Ending, Shutdown};
use tokio::net::{TcpListener, TcpStream};

use crate::routes;
use crate::state::AppState;
use crate::watchdog::{self, Activity};

/// Largest request head (request line + headers); larger ones get 431.
const MAX_HEADER_BYTES: usize = 16 * 1024;
/// Read buffer per connection (hyper's minimum is 8 KiB; it must hold the largest head).
const MAX_BUF_BYTES: usize = 2 * MAX_HEADER_BYTES;
/// Pause after a failed accept (e.g. out of file descriptors) before trying again.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Connection limits.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// Time a client has to send a request head, idle keep-alive time included.
    pub read_timeout: Duration,
    /// Time in-flight requests get to finish once shutdown starts.
    pub grace: Duration,
}

/// Serves `listener` until `stop` resolves, then stops accepting and lets open connections
/// finish their current request, for at most `limits.grace`.
pub(crate) async fn run(
    listener: TcpListener,
    state: &'static AppState,
    limits: Limits,
    stop: impl std::future::Future<Output = ()>,
) -> Ending {
    let router = routes::router(state);
    let (trigger, shutdown) = serving::flag();
    let drain = Drain::new();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            () = &mut stop => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let connection =
                        serve(stream, state, router.clone(), limits, shutdown.clone());
                    let open = drain.open();
                    tokio::spawn(async move {
                        connection.await;
                        drop(open);
                    });
                }
                Err(e) => {
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            },
        }
    }
    drop(listener);
    trigger.raise();
    drain.wait(limits.grace, async {}).await
}

/// Serves one connection: keep-alive, bounded head, read timeout, graceful on shutdown.
async fn serve(
    stream: TcpStream,
    state: &'static AppState,
    router: Router,
    limits: Limits,
    mut shutdown: Shutdown,
) {
    if let Err(e) = stream.set_nodelay(true) {
        tracing::debug!("TCP_NODELAY: {e}");
    }
    let activity = &Activity::new();
    let service = service_fn(move |request| {
        activity.busy();
        let answer = routes::handle(state, router.clone(), request);
        async move {
            let (response, ready) = answer.await;
            activity.waiting_from(ready);
            Ok::<_, Infallible>(response)
        }
    });
    // The read timeout is the watchdog's, not hyper's per-request timer (see `watchdog`).
    let connection = http1::Builder::new()
        .header_read_timeout(None)
        .max_buf_size(MAX_BUF_BYTES)
        .max_header_size(MAX_HEADER_BYTES)
        .serve_connection(TokioIo::new(stream), service);
    tokio::pin!(connection);
    let expired = watchdog::expired(activity, limits.read_timeout);
    tokio::pin!(expired);
    // Dropping the connection (when the watchdog fires) closes the socket without an answer.
    let result = tokio::select! {
        biased; // the connection first: it is the branch woken on every request
        result = connection.as_mut() => result,
        () = expired.as_mut() => return,
        () = shutdown.raised() => {
            // Finish the request in progress (if any), then close; a client that is still
            // sending a head keeps no more than its read timeout.
            connection.as_mut().graceful_shutdown();
            tokio::select! {
                result = connection => result,
                () = expired => return,
            }
        }
    };
    if let Err(e) = result {
        tracing::debug!("connection ended: {e}");
    }
}
