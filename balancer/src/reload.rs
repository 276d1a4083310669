//! SIGHUP: read the config again, validate it, swap it in whole.
//!
//! A config that fails to read or validate, or that changes a listener, the admin address
//! (those sockets stay bound) or a limit other than `max_body_bytes` (taken at start), is
//! refused: the reason is logged and shown in `/status`, and
//! the old config keeps serving.

use std::sync::atomic::Ordering::Relaxed;

use tokio::signal::unix::{signal, SignalKind};

use crate::config;
use crate::shared::{unix_ms, Shared};

/// Why a reload was refused.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Refused {
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    #[error(
        "{file}: {field}: cannot change on reload (taken at start); restart the balancer to change it"
    )]
    Rebind { file: String, field: &'static str },
}

/// Reloads on every SIGHUP, for ever.
pub(crate) async fn on_sighup(shared: &'static Shared, mut hangups: tokio::signal::unix::Signal) {
    while hangups.recv().await.is_some() {
        reload(shared);
    }
}

/// Installs the SIGHUP handler (before the balancer announces itself, so a SIGHUP sent right
/// after never kills it).
pub(crate) fn install() -> std::io::Result<tokio::signal::unix::Signal> {
    signal(SignalKind::hangup())
}

/// Loads the config file again and swaps it in, or refuses it.
pub(crate) fn reload(shared: &Shared) {
    let started = std::time::Instant::now();
    match try_reload(shared) {
        Ok(generation) => {
            shared.counters.reloads_ok.fetch_add(1, Relaxed);
            tracing::info!(
                generation,
                "config reloaded in {:.1} ms",
                started.elapsed().as_secs_f64() * 1000.0
            );
        }
        Err(e) => {
            tracing::warn!("reload refused, the old config keeps serving: {e}");
            // The reason first: whoever sees the counter rise finds why.
            *shared
                .counters
                .last_reload_error
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(e.to_string());
            shared.counters.reloads_refused.fetch_add(1, Relaxed);
        }
    }
}

fn try_reload(shared: &Shared) -> Result<u64, Refused> {
    let loaded = config::load(&shared.config_path)?;
    let old = shared.snapshot();
    let file = shared.config_path.display().to_string();
    let listeners: Vec<_> = loaded.config.listeners.iter().map(|l| l.address).collect();
    let secure: Vec<bool> = loaded.transports.iter().map(|t| t.tls.is_some()).collect();
    if listeners != old.listeners
        || secure
            != old
                .transports
                .iter()
                .map(|t| t.tls.is_some())
                .collect::<Vec<_>>()
    {
        return Err(Refused::Rebind {
            file,
            field: "listeners (address or protocol)",
        });
    }
    if loaded.config.admin.address != old.admin {
        return Err(Refused::Rebind {
            file,
            field: "admin.address",
        });
    }
    // Every limit but the body size and the WebSocket idle timeout (read per request) is
    // taken by the listeners and connections at start.
    let started = config::Limits {
        max_body_bytes: old.limits.max_body_bytes,
        websocket_idle_timeout_ms: old.limits.websocket_idle_timeout_ms,
        ..loaded.config.limits.clone()
    };
    if started != old.limits {
        return Err(Refused::Rebind {
            file,
            field: "limits (all but max_body_bytes and websocket_idle_timeout_ms)",
        });
    }
    let generation = old.generation + 1;
    let snapshot = shared
        .registry
        .build(&loaded, Some(&old), generation, unix_ms());
    shared.access_log.set_path(loaded.access_log.clone());
    shared.replace(snapshot);
    Ok(generation)
}
