//! Per-target state: in-flight count, latency estimate, health, counters.
//!
//! It lives outside the config snapshot, in the [`crate::registry::Registry`] keyed by address,
//! so that a reload keeps it (pingora #144, traefik #13913: counters lost on every rebuild).
//! Everything a request touches is an atomic or a short mutex.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use hyper::http::uri::Authority;

use crate::health::{CheckSpec, Health};
use crate::latency::PeakEwma;
use crate::pool::Pools;

/// What an answer (or its absence) was, for counters, health and the latency estimate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// A response head with this status arrived.
    Answered(u16),
    /// No connection could be made.
    ConnectFailed,
    /// The connection failed after the request was (perhaps) sent, before the response head.
    Reset,
    /// No response head within the response timeout.
    TimedOut,
}

impl Outcome {
    /// Whether passive outlier detection counts it against the target.
    pub(crate) fn is_failure(self) -> bool {
        !matches!(self, Self::Answered(status) if status < 500)
    }
}

/// Counters since the target was first registered.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    /// Answers by status class: 1xx, 2xx, 3xx, 4xx, 5xx.
    pub by_class: [AtomicU64; 5],
    pub connect_errors: AtomicU64,
    pub resets: AtomicU64,
    pub timeouts: AtomicU64,
    pub ejections: AtomicU64,
}

impl Counters {
    pub(crate) fn requests(&self) -> u64 {
        self.by_class.iter().map(|c| c.load(Relaxed)).sum::<u64>() + self.failures_without_answer()
    }

    pub(crate) fn errors(&self) -> u64 {
        self.by_class[4].load(Relaxed) + self.failures_without_answer()
    }

    fn failures_without_answer(&self) -> u64 {
        self.connect_errors.load(Relaxed) + self.resets.load(Relaxed) + self.timeouts.load(Relaxed)
    }
}

/// What the agent on the target last reported (`agent_load` groups).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct AgentLoad {
    /// Host CPU busy, 0-100.
    pub busy_percent: f64,
}

/// One target, shared by the snapshot, the proxy, the health checker and `/status`.
#[derive(Debug)]
pub(crate) struct Target {
    pub address: SocketAddr,
    /// `address` as a URI authority, made once rather than on every request.
    pub authority: Authority,
    in_flight: AtomicU64,
    latency: Mutex<PeakEwma>,
    health: Mutex<Health>,
    /// Failures of live requests in a row (passive outlier detection).
    consecutive_failures: AtomicU32,
    agent: Mutex<Option<AgentLoad>>,
    /// How the health checker checks it; replaced on reload.
    pub check: ArcSwap<CheckSpec>,
    pub counters: Counters,
    /// Idle keep-alive connections to it, one list per worker.
    pub pools: Pools,
    /// Bumped on any change of routability, so groups know to recompute their eligible sets.
    routing_epoch: Arc<AtomicU64>,
}

impl Target {
    /// A target checked by `check`, with idle lists for `workers` worker threads.
    pub(crate) fn new(
        address: SocketAddr,
        check: CheckSpec,
        routing_epoch: Arc<AtomicU64>,
        workers: usize,
    ) -> Self {
        Self {
            address,
            authority: Authority::try_from(address.to_string())
                .unwrap_or_else(|_| unreachable!("a socket address is an authority")),
            in_flight: AtomicU64::new(0),
            latency: Mutex::new(PeakEwma::new(Instant::now())),
            health: Mutex::new(Health::default()),
            consecutive_failures: AtomicU32::new(0),
            agent: Mutex::new(None),
            check: ArcSwap::from_pointee(check),
            counters: Counters::default(),
            pools: Pools::new(workers),
            routing_epoch,
        }
    }

    pub(crate) fn in_flight(&self) -> u64 {
        self.in_flight.load(Relaxed)
    }

    pub(crate) fn latency(&self) -> Duration {
        lock(&self.latency).estimate()
    }

    pub(crate) fn agent_load(&self) -> Option<AgentLoad> {
        *lock(&self.agent)
    }

    pub(crate) fn set_agent_load(&self, load: Option<AgentLoad>) {
        *lock(&self.agent) = load;
    }

    /// Reads the health.
    pub(crate) fn health(&self) -> Health {
        lock(&self.health).clone()
    }

    /// Changes the health; `change` returns whether routing is affected.
    pub(crate) fn update_health<R>(&self, change: impl FnOnce(&mut Health) -> (R, bool)) -> R {
        let (result, routing_changed) = change(&mut lock(&self.health));
        if routing_changed {
            self.routing_epoch.fetch_add(1, Relaxed);
        }
        result
    }

    pub(crate) fn observe_probe(&self, rtt: Duration) {
        lock(&self.latency).observe_probe(rtt, Instant::now());
    }

    /// A request is being sent; the guard counts it in flight until dropped (with the response
    /// body, so that a long download counts as outstanding).
    pub(crate) fn start(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Relaxed);
        InFlight(Arc::clone(self))
    }

    /// Records how a request ended after `elapsed`; returns the failures in a row so far
    /// (0 after a success), for outlier detection.
    pub(crate) fn record(&self, outcome: Outcome, elapsed: Duration) -> u32 {
        let counter = match outcome {
            Outcome::Answered(status) => {
                &self.counters.by_class[usize::from((status / 100).clamp(1, 5) - 1)]
            }
            Outcome::ConnectFailed => &self.counters.connect_errors,
            Outcome::Reset => &self.counters.resets,
            Outcome::TimedOut => &self.counters.timeouts,
        };
        counter.fetch_add(1, Relaxed);
        let now = Instant::now();
        if outcome.is_failure() {
            lock(&self.latency).observe_failure(elapsed, now);
            self.consecutive_failures.fetch_add(1, Relaxed) + 1
        } else {
            lock(&self.latency).observe(elapsed, now);
            self.consecutive_failures.store(0, Relaxed);
            0
        }
    }

    /// Forgets the failures in a row (after an ejection, so the next ejection needs as many).
    pub(crate) fn reset_failures(&self) {
        self.consecutive_failures.store(0, Relaxed);
    }
}

/// A request in flight to a target (see [`Target::start`]).
#[derive(Debug)]
pub(crate) struct InFlight(Arc<Target>);

impl InFlight {
    pub(crate) fn target(&self) -> &Arc<Target> {
        &self.0
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Relaxed);
    }
}

/// Locks `mutex`, ignoring poisoning: every critical section here leaves the data consistent.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The routing epoch of every test target, so test groups see their changes.
    pub(crate) static EPOCH: std::sync::LazyLock<Arc<AtomicU64>> =
        std::sync::LazyLock::new(Arc::default);

    pub(crate) fn target(port: u16) -> Arc<Target> {
        Arc::new(Target::new(
            SocketAddr::from(([127, 0, 0, 1], port)),
            CheckSpec::default(),
            Arc::clone(&EPOCH),
            1,
        ))
    }

    #[test]
    fn in_flight_counts_until_the_guard_is_dropped() {
        let t = target(1);
        let a = t.start();
        let b = t.start();
        assert_eq!(t.in_flight(), 2);
        drop(a);
        drop(b);
        assert_eq!(t.in_flight(), 0);
    }

    #[test]
    fn failures_in_a_row_count_up_and_a_success_resets_them() {
        let t = target(1);
        let ms = Duration::from_millis(1);
        assert_eq!(t.record(Outcome::ConnectFailed, ms), 1);
        assert_eq!(t.record(Outcome::Answered(503), ms), 2);
        assert_eq!(t.record(Outcome::Answered(404), ms), 0);
        assert_eq!(t.counters.requests(), 3);
        assert_eq!(t.counters.errors(), 2);
        assert_eq!(t.counters.by_class[3].load(Relaxed), 1);
    }

    #[test]
    fn a_routing_change_bumps_the_epoch() {
        let t = target(1);
        let t = Target::new(t.address, CheckSpec::default(), Arc::default(), 1);
        t.update_health(|_| ((), false));
        assert_eq!(t.routing_epoch.load(Relaxed), 0);
        t.update_health(|_| ((), true));
        assert_eq!(t.routing_epoch.load(Relaxed), 1);
    }
}
