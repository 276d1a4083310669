//! Request latency: a lock-free log-bucketed histogram that requests write into, and the
//! sampler's sliding window of per-interval histograms.
//!
//! A request costs two relaxed atomic adds. Each sample interval the sampler takes (swaps to
//! zero) the live histogram and pushes it into a window of the last few intervals.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use proto::LatencySummary;

/// Sub-buckets per power of two: percentiles are within 1/16 (6.25%) of the true value.
const SUB_BITS: u32 = 4;
const SUB: usize = 1 << SUB_BITS;
/// Powers of two covered above the exact range: up to 2^41 ns (about 36 minutes).
const OCTAVES: usize = 41 - SUB_BITS as usize;
const BUCKETS: usize = SUB + OCTAVES * SUB;

/// Bucket of a latency in nanoseconds: exact below 16 ns, then 16 per power of two.
fn bucket_of(nanos: u64) -> usize {
    if nanos < SUB as u64 {
        return nanos as usize;
    }
    let exp = 63 - nanos.leading_zeros(); // >= SUB_BITS
    let sub = ((nanos >> (exp - SUB_BITS)) as usize) & (SUB - 1);
    (SUB + (exp - SUB_BITS) as usize * SUB + sub).min(BUCKETS - 1)
}

/// Largest latency in nanoseconds that falls into `bucket`.
fn upper_bound(bucket: usize) -> u64 {
    if bucket < SUB {
        return bucket as u64;
    }
    let shift = ((bucket - SUB) / SUB) as u32;
    let sub = ((bucket - SUB) % SUB) as u64;
    ((SUB as u64 + sub + 1) << shift) - 1
}

/// The live histogram that request handlers record into.
pub(crate) struct LatencyRecorder {
    buckets: Box<[AtomicU64]>,
    sum_nanos: AtomicU64,
}

impl Default for LatencyRecorder {
    fn default() -> Self {
        Self {
            buckets: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            sum_nanos: AtomicU64::new(0),
        }
    }
}

impl LatencyRecorder {
    /// Records one request's latency.
    pub(crate) fn record(&self, latency: Duration) {
        let nanos = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX);
        self.buckets[bucket_of(nanos)].fetch_add(1, Relaxed);
        self.sum_nanos.fetch_add(nanos, Relaxed);
    }

    /// Takes everything recorded since the last call, leaving the recorder empty.
    pub(crate) fn take(&self) -> Histogram {
        Histogram {
            counts: self.buckets.iter().map(|b| b.swap(0, Relaxed)).collect(),
            sum_nanos: self.sum_nanos.swap(0, Relaxed),
        }
    }
}

/// A plain (not shared) latency histogram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Histogram {
    counts: Vec<u64>,
    sum_nanos: u64,
}

impl Histogram {
    fn empty() -> Self {
        Self {
            counts: vec![0; BUCKETS],
            sum_nanos: 0,
        }
    }

    pub(crate) fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    fn add(&mut self, other: &Histogram) {
        self.counts
            .iter_mut()
            .zip(&other.counts)
            .for_each(|(a, b)| *a += b);
        self.sum_nanos += other.sum_nanos;
    }

    fn subtract(&mut self, other: &Histogram) {
        self.counts
            .iter_mut()
            .zip(&other.counts)
            .for_each(|(a, b)| *a = a.saturating_sub(*b));
        self.sum_nanos = self.sum_nanos.saturating_sub(other.sum_nanos);
    }

    /// The bucket upper bound below which a share `q` (0-1) of the requests fall, in ns.
    fn quantile_nanos(&self, q: f64) -> u64 {
        let count = self.count();
        if count == 0 {
            return 0;
        }
        let rank = ((q * count as f64).ceil() as u64).clamp(1, count);
        let mut seen = 0;
        for (bucket, n) in self.counts.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return upper_bound(bucket);
            }
        }
        upper_bound(BUCKETS - 1)
    }
}

/// The last few intervals' histograms, merged, plus lifetime totals.
pub(crate) struct LatencyWindow {
    slots: VecDeque<Histogram>,
    capacity: usize,
    merged: Histogram,
    window: Duration,
    lifetime_count: u64,
    lifetime_sum_nanos: u64,
}

impl LatencyWindow {
    /// A window of `window`, fed one histogram every `interval`.
    pub(crate) fn new(window: Duration, interval: Duration) -> Self {
        let capacity = (window.as_secs_f64() / interval.as_secs_f64().max(1e-3)).ceil() as usize;
        let capacity = capacity.max(1);
        Self {
            slots: VecDeque::with_capacity(capacity),
            capacity,
            merged: Histogram::empty(),
            window: interval * capacity as u32,
            lifetime_count: 0,
            lifetime_sum_nanos: 0,
        }
    }

    /// Adds one interval's histogram, dropping the oldest once the window is full.
    pub(crate) fn push(&mut self, interval: Histogram) {
        self.lifetime_count += interval.count();
        self.lifetime_sum_nanos += interval.sum_nanos;
        self.merged.add(&interval);
        self.slots.push_back(interval);
        if self.slots.len() > self.capacity {
            if let Some(oldest) = self.slots.pop_front() {
                self.merged.subtract(&oldest);
            }
        }
    }

    /// Summary over the window.
    pub(crate) fn summary(&self) -> LatencySummary {
        let count = self.merged.count();
        let ms = |nanos: u64| nanos as f64 / 1e6;
        LatencySummary {
            window_secs: self.window.as_secs_f64(),
            count,
            mean_ms: if count == 0 {
                0.0
            } else {
                ms(self.merged.sum_nanos) / count as f64
            },
            p50_ms: ms(self.merged.quantile_nanos(0.5)),
            p99_ms: ms(self.merged.quantile_nanos(0.99)),
        }
    }

    /// Requests recorded since start, and their total time in seconds.
    pub(crate) fn lifetime(&self) -> (u64, f64) {
        (self.lifetime_count, self.lifetime_sum_nanos as f64 / 1e9)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_exact_below_16ns_and_within_a_sixteenth_above() {
        for n in 0..16 {
            assert_eq!(upper_bound(bucket_of(n)), n);
        }
        for n in [
            16u64,
            17,
            100,
            999,
            1_000,
            123_456,
            1_000_000_007,
            30_000_000_000,
        ] {
            let up = upper_bound(bucket_of(n));
            assert!(up >= n && (up - n) as f64 <= n as f64 / 16.0, "{n} -> {up}");
        }
        assert_eq!(bucket_of(u64::MAX), BUCKETS - 1);
    }

    #[test]
    fn bucket_bounds_increase() {
        for b in 1..BUCKETS {
            assert!(upper_bound(b) > upper_bound(b - 1));
            assert_eq!(bucket_of(upper_bound(b)), b);
        }
    }

    #[test]
    fn take_empties_the_recorder() {
        let r = LatencyRecorder::default();
        r.record(Duration::from_micros(5));
        r.record(Duration::from_micros(7));
        let h = r.take();
        assert_eq!(h.count(), 2);
        assert_eq!(h.sum_nanos, 12_000);
        assert_eq!(r.take().count(), 0);
    }

    #[test]
    fn summary_gives_mean_and_percentiles() {
        let r = LatencyRecorder::default();
        for _ in 0..99 {
            r.record(Duration::from_millis(1));
        }
        r.record(Duration::from_millis(100));
        let mut w = LatencyWindow::new(Duration::from_secs(10), Duration::from_secs(1));
        w.push(r.take());
        let s = w.summary();
        assert_eq!(s.count, 100);
        assert!((s.mean_ms - 1.99).abs() < 1e-9);
        assert!((1.0..=1.07).contains(&s.p50_ms), "{}", s.p50_ms);
        assert!((1.0..=1.07).contains(&s.p99_ms), "{}", s.p99_ms);
        assert_eq!(s.window_secs, 10.0);
    }

    #[test]
    fn old_intervals_leave_the_window_but_stay_in_the_lifetime_totals() {
        let r = LatencyRecorder::default();
        let mut w = LatencyWindow::new(Duration::from_secs(2), Duration::from_secs(1));
        r.record(Duration::from_secs(1));
        w.push(r.take());
        w.push(r.take());
        assert_eq!(w.summary().count, 1);
        w.push(r.take());
        assert_eq!(w.summary().count, 0);
        assert_eq!(w.summary().p99_ms, 0.0);
        assert_eq!(w.lifetime(), (1, 1.0));
    }
}
