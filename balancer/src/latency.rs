//! A target's latency estimate: peak EWMA, as in tower's `load/peak_ewma.rs` and linkerd.
//!
//! A sample above the estimate replaces it at once (a target that slows down is avoided at
//! once); a sample below pulls it down with weight `1 - exp(-elapsed / DECAY)`, so that a fast
//! answer is believed slowly. Parameters (tower's and linkerd's defaults):
//! - [`DECAY`] 10 s: the time constant of the pull-down.
//! - [`DEFAULT_RTT`] 30 ms: the estimate of a target nothing has measured yet; a passing health
//!   check's time stands in for it, and the first answered request replaces it.
//!
//! A failure (connect error, reset, timeout, 5xx) must not make a target look cheap (tower
//! #871: a target that fails fast attracts traffic): it counts as a peak of at least twice the
//! current estimate and at least [`DEFAULT_RTT`], so repeated failures make the target steeply
//! more expensive, and the cost fades with the same decay once it answers well again.

use std::time::{Duration, Instant};

/// Time constant of the pull-down towards faster samples.
pub(crate) const DECAY: Duration = Duration::from_secs(10);
/// Estimate of a target that nothing has measured yet.
pub(crate) const DEFAULT_RTT: Duration = Duration::from_millis(30);
/// Ceiling of an estimate raised by failures, so that a long outage does not take minutes to
/// forget.
const MAX_RTT: Duration = Duration::from_secs(60);

/// The estimator. Not synchronised: the target keeps it behind a mutex.
#[derive(Debug, Clone)]
pub(crate) struct PeakEwma {
    /// Nanoseconds.
    estimate: f64,
    updated: Instant,
    /// Whether a real request has been measured (health-check probes only seed the estimate).
    measured: bool,
}

impl PeakEwma {
    pub(crate) fn new(now: Instant) -> Self {
        Self {
            estimate: nanos(DEFAULT_RTT),
            updated: now,
            measured: false,
        }
    }

    /// The current estimate.
    pub(crate) fn estimate(&self) -> Duration {
        Duration::from_nanos(self.estimate as u64)
    }

    /// A request answered (response head received) after `rtt`. The first one replaces the
    /// default (or a probe's seed) outright: it is the first real measurement.
    pub(crate) fn observe(&mut self, rtt: Duration, now: Instant) {
        if self.measured {
            self.update(nanos(rtt), now);
        } else {
            self.estimate = nanos(rtt);
            self.updated = now;
            self.measured = true;
        }
    }

    /// A request failed after `elapsed`.
    pub(crate) fn observe_failure(&mut self, elapsed: Duration, now: Instant) {
        self.measured = true;
        let penalty = (self.estimate * 2.0)
            .max(nanos(DEFAULT_RTT))
            .max(nanos(elapsed))
            .min(nanos(MAX_RTT));
        self.update(penalty, now);
    }

    /// A passing health check took `rtt`: it stands in for the estimate until real requests
    /// are measured, so that a new target is not priced at [`DEFAULT_RTT`] forever (it would
    /// never be picked by a cost-based algorithm while the others are cheaper).
    pub(crate) fn observe_probe(&mut self, rtt: Duration, now: Instant) {
        if !self.measured {
            self.estimate = nanos(rtt);
            self.updated = now;
        }
    }

    fn update(&mut self, sample: f64, now: Instant) {
        if sample > self.estimate {
            self.estimate = sample;
        } else {
            let elapsed = now.saturating_duration_since(self.updated).as_secs_f64();
            let weight = (-elapsed / DECAY.as_secs_f64()).exp();
            self.estimate = self.estimate * weight + sample * (1.0 - weight);
        }
        self.updated = now;
    }
}

fn nanos(d: Duration) -> f64 {
    d.as_nanos() as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn an_unmeasured_target_costs_the_default_until_its_first_answer() {
        let t0 = Instant::now();
        let mut e = PeakEwma::new(t0);
        assert_eq!(e.estimate(), DEFAULT_RTT);
        e.observe(ms(2), t0);
        assert_eq!(e.estimate(), ms(2));
    }

    #[test]
    fn a_slow_sample_is_taken_at_once_and_a_fast_one_slowly() {
        let t0 = Instant::now();
        let mut e = PeakEwma::new(t0);
        e.observe(ms(100), t0);
        assert_eq!(e.estimate(), ms(100));
        e.observe(ms(1), t0 + ms(100));
        let after = e.estimate();
        assert!(after > ms(95) && after < ms(100), "{after:?}");
        e.observe(ms(1), t0 + Duration::from_secs(60));
        assert!(e.estimate() < ms(2), "{:?}", e.estimate());
    }

    #[test]
    fn failures_never_make_a_target_cheaper() {
        let t0 = Instant::now();
        let mut e = PeakEwma::new(t0);
        e.observe(ms(1), t0);
        e.observe(ms(1), t0 + Duration::from_secs(100));
        let before = e.estimate();
        e.observe_failure(Duration::from_micros(50), t0 + Duration::from_secs(101));
        assert!(e.estimate() >= DEFAULT_RTT && e.estimate() > before);
        let once = e.estimate();
        e.observe_failure(Duration::from_micros(50), t0 + Duration::from_secs(102));
        assert!(e.estimate() >= once * 2 - ms(1));
    }

    #[test]
    fn failures_are_capped() {
        let t0 = Instant::now();
        let mut e = PeakEwma::new(t0);
        for _ in 0..64 {
            e.observe_failure(ms(1), t0);
        }
        assert_eq!(e.estimate(), MAX_RTT);
    }

    #[test]
    fn a_probe_seeds_an_unmeasured_target_only() {
        let t0 = Instant::now();
        let mut e = PeakEwma::new(t0);
        e.observe_probe(ms(2), t0);
        assert_eq!(e.estimate(), ms(2));
        e.observe(ms(5), t0);
        e.observe_probe(ms(1), t0);
        assert_eq!(e.estimate(), ms(5));
    }
}
