//! What every connection, the admin endpoints and the reloader share.

use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;

use crate::access_log::AccessLog;
use crate::registry::Registry;
use crate::snapshot::Snapshot;

/// Balancer-wide counters.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    /// Client connections open now (ALB `ActiveConnectionCount`).
    pub active_connections: AtomicU64,
    /// Client connections accepted since start (ALB `NewConnectionCount`).
    pub new_connections: AtomicU64,
    /// TLS handshakes with clients that failed or timed out (ALB
    /// `ClientTLSNegotiationErrorCount`).
    pub tls_handshake_failures: AtomicU64,
    /// WebSocket connections open now (through a 101 answer).
    pub websockets_open: AtomicU64,
    /// 4xx answers made by the balancer itself: no rule (404) and the client errors below.
    pub elb_4xx: AtomicU64,
    /// Redirects made by a rule's action (ALB `HTTP_Redirect_Count`).
    pub redirects: AtomicU64,
    /// Fixed responses made by a rule's action (ALB `HTTP_Fixed_Response_Count`).
    pub fixed_responses: AtomicU64,
    /// Requests the client got wrong, by `crate::proxy::CLIENT_ERRORS` entry; none counts
    /// against a target.
    pub client_errors: [AtomicU64; CLIENT_ERROR_KINDS],
    pub reloads_ok: AtomicU64,
    pub reloads_refused: AtomicU64,
    pub last_reload_error: Mutex<Option<String>>,
}

/// The kinds of client error counted apart (`crate::proxy::CLIENT_ERRORS` names them).
pub(crate) const CLIENT_ERROR_KINDS: usize = 6;

#[derive(Debug)]
pub(crate) struct Shared {
    snapshot: ArcSwap<Snapshot>,
    pub registry: Registry,
    pub counters: Counters,
    /// The access log's writer; its file is the config's `access_log.path`.
    pub access_log: AccessLog,
    pub config_path: PathBuf,
    pub started_at_unix_ms: u64,
}

impl Shared {
    pub(crate) fn new(snapshot: Snapshot, registry: Registry, config_path: PathBuf) -> Self {
        Self {
            snapshot: ArcSwap::from_pointee(snapshot),
            registry,
            counters: Counters::default(),
            access_log: AccessLog::default(),
            config_path,
            started_at_unix_ms: unix_ms(),
        }
    }

    /// The config in force.
    pub(crate) fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot.load_full()
    }

    /// Puts `snapshot` in force for every request that starts from now on.
    pub(crate) fn replace(&self, snapshot: Snapshot) {
        self.snapshot.store(Arc::new(snapshot));
    }
}

/// Milliseconds since the epoch.
pub(crate) fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
