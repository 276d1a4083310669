//! `elb dashboard`: a live page of the fleet and the balancer, served by the `elb` binary.
//!
//! One poller ([`poller`]) reads every agent's `/stats` and the balancer's `/status` once per
//! tick and publishes a [`frame::Frame`]; the server ([`server`]) hands the latest frame to
//! scripts (`/api/snapshot`) and pushes every frame to open pages over Server-Sent Events, with
//! the last minutes of per-instance figures ([`frame::History`]) first, so a page opened in the
//! middle of a run draws it from the start of the window. The page and its chart library are
//! embedded ([`assets`]): nothing is fetched from anywhere else.

mod assets;
mod frame;
mod poller;
mod server;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::config::Settings;
use crate::Error;

/// Time between two polls: the page's refresh.
pub const TICK: Duration = Duration::from_secs(1);
/// How much the charts show.
pub const WINDOW: Duration = Duration::from_secs(5 * 60);
/// The fleet is listed every this many ticks on EC2 (a `DescribeInstances` each); the local
/// provider reads its state file every tick.
const EC2_FLEET_EVERY: u32 = 5;

/// How the dashboard runs.
#[derive(Debug, Clone)]
pub struct DashboardSpec {
    /// The address to listen on (port 0: any free port).
    pub listen: SocketAddr,
    /// Time between two polls.
    pub tick: Duration,
    /// Per-agent timeout of a poll, as `elb stats --timeout-ms`.
    pub agent_timeout: Duration,
    /// How much history the charts get.
    pub window: Duration,
    /// List the fleet every this many ticks.
    pub fleet_every: u32,
}

impl DashboardSpec {
    /// The defaults for `settings`' provider, on `listen`, with `agent_timeout`.
    pub fn new(settings: &Settings, listen: SocketAddr, agent_timeout: Duration) -> Self {
        Self {
            listen,
            tick: TICK,
            agent_timeout,
            window: WINDOW,
            fleet_every: if crate::cloud::listing_is_costly(settings) {
                EC2_FLEET_EVERY
            } else {
                1
            },
        }
    }
}

/// A running dashboard; dropping it stops the poller and the listener (open event streams then
/// go quiet, and end with the process).
#[derive(Debug)]
pub struct Dashboard {
    addr: SocketAddr,
    tasks: [JoinHandle<()>; 2],
}

impl Dashboard {
    /// Binds `spec.listen` and starts polling and serving.
    pub async fn start(settings: Arc<Settings>, spec: DashboardSpec) -> Result<Self, Error> {
        let listener = TcpListener::bind(spec.listen).await.map_err(|e| {
            Error::Usage(format!(
                "the dashboard cannot listen on {}: {e}; pick another address or port with \
                 --listen (port 0 takes any free one)",
                spec.listen
            ))
        })?;
        let addr = listener
            .local_addr()
            .map_err(|e| Error::Usage(format!("the dashboard's socket has no address: {e}")))?;
        let ticks = (spec.window.as_secs_f64() / spec.tick.as_secs_f64()).ceil() as usize;
        let shared = Arc::new(poller::Shared::new(ticks));
        let poll = tokio::spawn(poller::run(settings, spec, shared.clone()));
        let serve = tokio::spawn(server::serve(listener, shared));
        Ok(Self {
            addr,
            tasks: [poll, serve],
        })
    }

    /// Where the page is.
    pub fn url(&self) -> String {
        server::url(self.addr)
    }

    /// Whether it listens on loopback only.
    pub fn is_loopback(&self) -> bool {
        self.addr.ip().is_loopback()
    }
}

impl Drop for Dashboard {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}
