//! One config as the request path sees it: rules and groups, swapped whole on reload.

use crate::group::Group;
use crate::rules::Router;

/// A loaded config, immutable once built; per-target state is shared from the registry.
#[derive(Debug)]
pub(crate) struct Snapshot {
    /// The config's `version`, else a hash of its bytes.
    pub version: String,
    /// Configs loaded since start, this one included.
    pub generation: u64,
    pub loaded_at_unix_ms: u64,
    pub router: Router,
    /// In config order (rules refer to them by index).
    pub groups: Vec<Group>,
    /// The listener and admin addresses, which a reload cannot change.
    pub listeners: Vec<std::net::SocketAddr>,
    pub admin: std::net::SocketAddr,
    /// The limits on clients; those a connection takes at its start apply from the start.
    pub limits: crate::config::Limits,
    /// How each listener's new connections are served (certificates included), in listener
    /// order; open connections keep what they started with.
    pub transports: Vec<crate::config::Transport>,
    /// Bounds on HTTP/2 connections, taken by each at its start.
    pub http2: crate::config::Http2,
    /// Whether requests are logged (to `Shared::access_log`).
    pub access_log: bool,
}
