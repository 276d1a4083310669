//! Listeners and client connections: HTTP/1.1 keep-alive, TCP_NODELAY, a bounded head (431
//! past it), a read timeout (idle keep-alive time included), a connection limit, and a
//! graceful drain on shutdown.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Semaphore};

use crate::config;
use crate::proxy::{self, FramingWatch, Origin};
use crate::shared::Shared;
use crate::shutdown::Shutdown;
use crate::{admin, config::Limits};

/// Pending connections the kernel queues per listener.
const BACKLOG: i32 = 4096;
/// Pause after a failed accept (e.g. out of file descriptors) before trying again.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// hyper's smallest read buffer.
const MIN_BUF_BYTES: usize = 8192;
/// How often each worker closes its pooled connections that are past their idle timeout.
const SWEEP_INTERVAL: Duration = Duration::from_secs(1);

/// Binds `address` with SO_REUSEADDR (a restart does not wait for TIME_WAIT), SO_REUSEPORT
/// (each worker binds its own socket to the same address and the kernel spreads connections
/// over them) and a deep backlog. The socket is handed to a worker's runtime with
/// [`TcpListener::from_std`].
pub(crate) fn bind(address: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let socket = Socket::new(
        Domain::for_address(address),
        Type::STREAM,
        Some(Protocol::TCP),
    )?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&address.into())?;
    socket.listen(BACKLOG)?;
    Ok(socket.into())
}

/// How the server ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ending {
    /// Every connection finished within the grace period.
    Drained,
    /// The grace period ran out with connections still open.
    GraceExpired,
}

/// What a listener serves.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Role {
    /// Client traffic, under the connection limit.
    Proxy,
    /// `/metrics` and `/status`.
    Admin,
}

/// Serves a worker's listeners until `shutdown` is raised; then stops accepting, lets each
/// connection finish the request in progress, and waits for them for at most
/// `limits.grace_ms`. `permits` (one per allowed client connection) is shared by all workers.
pub(crate) async fn run(
    listeners: Vec<(std::net::TcpListener, Role)>,
    shared: &'static Shared,
    limits: &config::Limits,
    permits: Arc<Semaphore>,
    mut shutdown: Shutdown,
) -> std::io::Result<Ending> {
    // Every connection task holds a sender; `recv` returns `None` once all are gone.
    let (open_tx, mut open_rx) = mpsc::channel::<()>(1);
    let mut accepting = Vec::with_capacity(listeners.len());
    for (listener, role) in listeners {
        accepting.push(tokio::spawn(accept(
            TcpListener::from_std(listener)?,
            role,
            shared,
            limits.clone(),
            Arc::clone(&permits),
            shutdown.clone(),
            open_tx.clone(),
        )));
    }
    let sweeper = tokio::spawn(sweep_idle(shared));
    shutdown.raised().await;
    sweeper.abort();
    for task in accepting {
        let _ = task.await;
    }
    drop(open_tx);
    Ok(
        match tokio::time::timeout(Duration::from_millis(limits.grace_ms), open_rx.recv()).await {
            Ok(_) => Ending::Drained,
            Err(_) => Ending::GraceExpired,
        },
    )
}

/// Closes, every [`SWEEP_INTERVAL`], this worker's idle connections to the current config's
/// targets that are past their group's idle timeout (a removed target's go with it).
async fn sweep_idle(shared: &'static Shared) {
    let worker = crate::worker::index();
    let mut tick = tokio::time::interval(SWEEP_INTERVAL);
    loop {
        tick.tick().await;
        let now = tokio::time::Instant::now();
        for group in &shared.snapshot().groups {
            let idle_timeout = group.config.idle_timeout();
            for member in &group.members {
                member.target.pools.sweep(worker, now, idle_timeout);
            }
        }
    }
}

async fn accept(
    listener: TcpListener,
    role: Role,
    shared: &'static Shared,
    limits: Limits,
    permits: Arc<Semaphore>,
    mut shutdown: Shutdown,
    open: mpsc::Sender<()>,
) {
    let port = listener.local_addr().map_or(0, |a| a.port());
    loop {
        let (stream, client) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
            () = shutdown.raised() => return,
        };
        // Past the limit, this worker holds the connection it accepted unserved and accepts no
        // more until a permit frees: the kernel queues the rest in the backlog. A permit taken
        // before accepting would instead sit idle in one worker while connections wait in
        // another worker's SO_REUSEPORT queue.
        let permit = match role {
            Role::Proxy => tokio::select! {
                permit = Arc::clone(&permits).acquire_owned() => permit.ok(),
                () = shutdown.raised() => return,
            },
            Role::Admin => None,
        };
        let shutdown = shutdown.clone();
        let open = open.clone();
        let limits = limits.clone();
        tokio::spawn(async move {
            let counters = &shared.counters;
            if matches!(role, Role::Proxy) {
                counters.new_connections.fetch_add(1, Relaxed);
                counters.active_connections.fetch_add(1, Relaxed);
            }
            let origin = Origin::new(client, port);
            serve(stream, role, shared, &origin, &limits, shutdown).await;
            if matches!(role, Role::Proxy) {
                counters.active_connections.fetch_sub(1, Relaxed);
            }
            drop(permit);
            drop(open);
        });
    }
}

/// Serves one connection until the client closes it, its read timeout passes, or the
/// shutdown ends it after the request in progress.
async fn serve(
    stream: TcpStream,
    role: Role,
    shared: &'static Shared,
    origin: &Origin,
    limits: &Limits,
    mut shutdown: Shutdown,
) {
    if let Err(e) = stream.set_nodelay(true) {
        tracing::debug!("TCP_NODELAY: {e}");
    }
    // Raised by the watch when a head carried both Content-Length and Transfer-Encoding.
    let conflict = Arc::new(AtomicBool::new(false));
    let stream = FramingWatch::new(stream, Arc::clone(&conflict));
    let conflict = &*conflict;
    let service = service_fn(move |request| async move {
        Ok::<_, Infallible>(match role {
            // Boxed: hyper keeps a box the size of this future for the connection's whole
            // life, and the request path's future is kilobytes (a measured 2.7 KiB), which
            // 10,000 idle keep-alive connections would hold for nothing. Allocated per request
            // instead, it is held only while a request is in progress.
            Role::Proxy => Box::pin(proxy::handle(shared, request, origin, conflict)).await,
            Role::Admin => admin::handle(shared, &request),
        })
    });
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        // hyper's timer runs while it waits for a head, idle keep-alive time included.
        .header_read_timeout(Duration::from_millis(limits.read_timeout_ms))
        .max_buf_size((2 * limits.max_header_bytes).max(MIN_BUF_BYTES))
        .max_header_size(limits.max_header_bytes);
    let connection = builder.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(connection);
    let result = tokio::select! {
        result = connection.as_mut() => result,
        () = shutdown.raised() => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(e) = result {
        tracing::debug!("connection from {} ended: {e}", origin.client);
    }
}
