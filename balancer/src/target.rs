//! Per-target state: in-flight count, latency estimate, health, counters.
//!
//! It lives outside the config snapshot, in the [`crate::registry::Registry`] keyed by address,
//! so that a reload keeps it (pingora #144, traefik #13913: counters lost on every rebuild).
//! Everything a request touches is an atomic or a short mutex.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed, Ordering::SeqCst};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use hyper::http::uri::Authority;
use tokio::sync::{Notify, Semaphore};

use crate::health::{CheckSpec, Health};
use crate::latency::PeakEwma;
use crate::pool::Pools;

/// Most connections the balancer opens to one target at once. A burst of requests that each
/// need a new connection would otherwise send as many SYNs at once, and a target's accept queue
/// is short (128 for a tokio server here, `ss -ltn`; 511 for nginx): the SYNs past it are
/// dropped, retransmitted a second later, and the connect timeout (1 s by default) fails them
/// as the target's errors. Measured (`scripts/bench/burst.py`): 10,000 clients at once through
/// the balancer to one tokio target lost 5-125 requests to connect timeouts in 4 runs of 13
/// without this bound (up to 256 connects at once), none in 10 runs with 32. A request past it
/// waits for its turn, then takes a connection that came back to the pool meanwhile if there
/// is one.
pub(crate) const CONNECTS_AT_ONCE: usize = 32;

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
    /// Requests waiting for a place under the group's `max_requests_per_target`.
    queued: AtomicU64,
    /// Wakes one queued request each time a request in flight ends while some wait.
    freed: Notify,
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
    /// One permit per connection being opened to it: at most [`CONNECTS_AT_ONCE`].
    pub connecting: Semaphore,
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
            queued: AtomicU64::new(0),
            freed: Notify::new(),
            latency: Mutex::new(PeakEwma::new(Instant::now())),
            health: Mutex::new(Health::default()),
            consecutive_failures: AtomicU32::new(0),
            agent: Mutex::new(None),
            check: ArcSwap::from_pointee(check),
            counters: Counters::default(),
            pools: Pools::new(workers),
            connecting: Semaphore::new(CONNECTS_AT_ONCE),
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

    /// A request is being sent, whatever the limit; see [`Target::try_start`].
    #[cfg(test)]
    pub(crate) fn start(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, SeqCst);
        InFlight(Arc::clone(self))
    }

    /// A request is being sent if fewer than `limit` are in flight, and, unless `queued` (the
    /// caller is a queued request), none is waiting before it: a newcomer does not overtake
    /// the queue. The guard counts it in flight until dropped (with the response body, so
    /// that a long download counts as outstanding).
    pub(crate) fn try_start(self: &Arc<Self>, limit: u64, queued: bool) -> Option<InFlight> {
        // SeqCst here and in `InFlight::drop` and `Queued`: a request that queues and then
        // finds no room, and a request that ends and then finds nobody queued, cannot both
        // happen (the waiter would sleep with room free).
        if !queued && self.queued.load(SeqCst) > 0 {
            return None;
        }
        self.in_flight
            .fetch_update(SeqCst, SeqCst, |n| (n < limit).then_some(n + 1))
            .ok()
            .map(|_| InFlight(Arc::clone(self)))
    }

    /// Requests waiting in its queue now.
    pub(crate) fn queued(&self) -> u64 {
        self.queued.load(Relaxed)
    }

    /// Joins its queue until the guard is dropped.
    pub(crate) fn enqueue(&self) -> Queued<'_> {
        self.queued.fetch_add(1, SeqCst);
        Queued(self)
    }

    /// Resolves when a request in flight ends while some are queued (or has ended since the
    /// last wake-up that nobody took). Enable it before trying for room, so that no wake-up
    /// between the try and the wait is lost.
    pub(crate) fn freed(&self) -> tokio::sync::futures::Notified<'_> {
        self.freed.notified()
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

    /// Whether its last request failed.
    pub(crate) fn failing(&self) -> bool {
        self.consecutive_failures.load(Relaxed) > 0
    }

    /// Forgets the failures in a row (after an ejection, so the next ejection needs as many).
    pub(crate) fn reset_failures(&self) {
        self.consecutive_failures.store(0, Relaxed);
    }
}

/// A target as registered in one group.
#[derive(Debug, Clone)]
pub(crate) struct Member {
    pub target: Arc<Target>,
    /// The config's `id`, else the address.
    pub id: String,
    pub weight: u32,
    pub instance_type: Option<String>,
    pub cluster: Option<String>,
}

/// A request in flight to a target (see [`Target::try_start`]).
#[derive(Debug)]
pub(crate) struct InFlight(Arc<Target>);

impl InFlight {
    pub(crate) fn target(&self) -> &Arc<Target> {
        &self.0
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, SeqCst);
        if self.0.queued.load(SeqCst) > 0 {
            self.0.freed.notify_one();
        }
    }
}

/// A request in a target's queue (see [`Target::enqueue`]).
#[derive(Debug)]
pub(crate) struct Queued<'a>(&'a Target);

impl Drop for Queued<'_> {
    fn drop(&mut self) {
        self.0.queued.fetch_sub(1, SeqCst);
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
    fn no_more_than_the_limit_start_and_a_newcomer_does_not_overtake_the_queue() {
        let t = target(1);
        let a = t.try_start(2, false).expect("room");
        let _b = t.try_start(2, false).expect("room");
        assert!(t.try_start(2, false).is_none(), "at the limit");
        drop(a);
        let waiting = t.enqueue();
        assert!(t.try_start(2, false).is_none(), "one is queued before it");
        let c = t.try_start(2, true).expect("the queued one takes the room");
        drop(waiting);
        assert_eq!((t.in_flight(), t.queued()), (2, 0));
        drop(c);
    }

    #[tokio::test]
    async fn an_ending_request_wakes_one_that_waits() {
        let t = target(1);
        let busy = t.try_start(1, false).unwrap();
        let waiter = {
            let t = Arc::clone(&t);
            tokio::spawn(async move {
                let _queued = t.enqueue();
                loop {
                    let freed = t.freed();
                    tokio::pin!(freed);
                    freed.as_mut().enable();
                    if let Some(guard) = t.try_start(1, true) {
                        return guard;
                    }
                    freed.await;
                }
            })
        };
        while t.queued() == 0 {
            tokio::task::yield_now().await;
        }
        drop(busy);
        let guard = tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("woken")
            .unwrap();
        assert_eq!(t.in_flight(), 1);
        drop(guard);
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
