//! Listening sockets and the accept loops: the connection limit, and a graceful drain on
//! shutdown. Each accepted connection is served by `crate::listener`.

use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use serving::{Drain, Ending, Open, Shutdown};
use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::config::{self, Limits};
use crate::listener::{self, Accepted, Role};
use crate::proxy::Slot;
use crate::shared::Shared;

/// Pending connections the kernel queues per listener.
const BACKLOG: i32 = 4096;
/// How often a draining server looks whether the WebSockets have closed.
const WEBSOCKET_POLL: Duration = Duration::from_millis(50);
/// Pause after a failed accept (e.g. out of file descriptors) before trying again.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
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
    let drain = Drain::new();
    let mut accepting = Vec::with_capacity(listeners.len());
    for (listener, role) in listeners {
        accepting.push(tokio::spawn(accept(
            TcpListener::from_std(listener)?,
            role,
            shared,
            limits.clone(),
            Arc::clone(&permits),
            shutdown.clone(),
            drain.open(),
        )));
    }
    let sweeper = tokio::spawn(sweep_idle(shared));
    shutdown.raised().await;
    sweeper.abort();
    for task in accepting {
        let _ = task.await;
    }
    // An open WebSocket is in no connection task (hyper handed its socket over to the
    // splice): wait for those too.
    let websockets = async {
        while shared.counters.websockets_open.load(Relaxed) > 0 {
            tokio::time::sleep(WEBSOCKET_POLL).await;
        }
    };
    Ok(drain
        .wait(Duration::from_millis(limits.grace_ms), websockets)
        .await)
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
    open: Open,
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
            Role::Proxy(_) => tokio::select! {
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
            let proxy = matches!(role, Role::Proxy(_));
            if proxy {
                counters.new_connections.fetch_add(1, Relaxed);
            }
            // The permit and the active count go with the client's socket: when the
            // connection ends, or when a WebSocket it became does.
            let slot = Slot::new(permit, proxy.then_some(&counters.active_connections));
            let accepted = Accepted {
                stream,
                client,
                port,
                role,
                shared,
                limits: &limits,
                slot,
            };
            listener::serve(accepted, shutdown).await;
            drop(open);
        });
    }
}
