//! A load run under an autoscaler, second by second: the rate offered (requests due that
//! second, open loop), the rate served (2xx answers), errors, the p99 of the requests due that
//! second (their latency counted from when they were due), and how many instances the cluster
//! had; with the scaling events on the same time axis. Written as `scaling.json` and drawn as
//! the `scaling` plot.

use serde::Serialize;

use super::report::{percentile, ClusterResult};

/// One second of the run.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub(crate) struct ScalingSecond {
    /// Seconds since the run began: `[second, second + 1)`.
    pub(crate) second: u64,
    /// Requests due in this second.
    pub(crate) offered: u64,
    /// Of those, the ones answered with a 2xx.
    pub(crate) served: u64,
    /// Of those, the ones without a 2xx answer.
    pub(crate) errors: u64,
    /// p99 of the answered ones, from when each was due (nearest rank).
    pub(crate) p99_ms: Option<f64>,
    /// Instances in the cluster at the start of the second, as the autoscaler last saw them.
    pub(crate) instances: Option<u32>,
}

/// One decision of the autoscaler that changed something.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct ScalingEvent {
    /// Seconds since the run began (negative: before it).
    pub(crate) second: f64,
    /// `scale_out`, `scale_in`, `replace`.
    pub(crate) action: String,
    /// Instances before and after.
    pub(crate) from: u32,
    pub(crate) to: u32,
    /// Why.
    pub(crate) reason: String,
}

impl ScalingEvent {
    /// The event of an autoscaling tick that acted (its `second` is set by [`ScalingRun::new`]).
    pub(crate) fn of(tick: &crate::autoscale::LastDecision) -> Self {
        Self {
            second: 0.0,
            action: tick.action.clone(),
            from: tick.current,
            to: tick.desired,
            reason: tick.reason.clone(),
        }
    }
}

/// The whole run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct ScalingRun {
    pub(crate) per_second: Vec<ScalingSecond>,
    pub(crate) events: Vec<ScalingEvent>,
}

/// The cluster's size at a moment: (ms since the epoch, instances).
pub(crate) type Size = (u64, u32);

impl ScalingRun {
    /// The run of `cluster` (an open-loop run: each sample starts when it was due), with the
    /// cluster's `sizes` over time (oldest first) and its scaling `events` at the times they
    /// happened (ms since the epoch).
    pub(crate) fn new(
        cluster: &ClusterResult,
        sizes: &[Size],
        events: Vec<(u64, ScalingEvent)>,
    ) -> Self {
        let start = cluster.started_at_unix_ms;
        let seconds = cluster
            .samples
            .iter()
            .map(|s| s.start_us / 1_000_000 + 1)
            .max()
            .unwrap_or(0);
        let mut bins: Vec<(u64, u64, Vec<u32>)> = vec![(0, 0, Vec::new()); seconds as usize];
        for s in &cluster.samples {
            let bin = &mut bins[(s.start_us / 1_000_000) as usize];
            bin.0 += 1;
            if s.ok() {
                bin.1 += 1;
            }
            if s.status != 0 {
                bin.2.push(s.latency_us);
            }
        }
        let size_at = |ms: u64| {
            sizes
                .iter()
                .take_while(|(at, _)| *at <= ms)
                .last()
                .map(|(_, n)| *n)
        };
        let per_second = bins
            .into_iter()
            .enumerate()
            .map(|(second, (offered, served, mut latencies))| {
                latencies.sort_unstable();
                ScalingSecond {
                    second: second as u64,
                    offered,
                    served,
                    errors: offered - served,
                    p99_ms: (!latencies.is_empty())
                        .then(|| f64::from(percentile(&latencies, 0.99)) / 1000.0),
                    instances: size_at(start + second as u64 * 1000),
                }
            })
            .collect();
        let events = events
            .into_iter()
            .map(|(at, mut event)| {
                event.second = (at as f64 - start as f64) / 1000.0;
                event
            })
            .collect();
        Self { per_second, events }
    }

    /// How long after `from` (a step up in the load) the p99 was last above `objective_ms`,
    /// looking at the `within` seconds after it: `Some(0)` when it never was, `None` when it
    /// was still above in the last of those seconds (it never came back under).
    pub(crate) fn seconds_above(&self, from: u64, within: u64, objective_ms: f64) -> Option<u64> {
        let window: Vec<&ScalingSecond> = self
            .per_second
            .iter()
            .filter(|s| s.second >= from && s.second < from + within)
            .collect();
        let above = |s: &ScalingSecond| s.p99_ms.is_some_and(|p| p > objective_ms);
        if window.last().is_some_and(|s| above(s)) {
            return None;
        }
        Some(
            window
                .iter()
                .filter(|s| above(s))
                .map(|s| s.second + 1 - from)
                .max()
                .unwrap_or(0),
        )
    }

    /// The most instances the cluster had.
    pub(crate) fn most_instances(&self) -> u32 {
        self.per_second
            .iter()
            .filter_map(|s| s.instances)
            .chain(self.events.iter().map(|e| e.to))
            .max()
            .unwrap_or(0)
    }

    /// Requests without a 2xx answer.
    pub(crate) fn errors(&self) -> u64 {
        self.per_second.iter().map(|s| s.errors).sum()
    }

    /// For scripts.
    pub(crate) fn json(&self) -> String {
        serde_json::to_string_pretty(self).expect("plain data serializes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::loadgen::{Sample, UNKNOWN};

    fn sample(start_ms: u64, latency_ms: u32, status: u16) -> Sample {
        Sample {
            start_us: start_ms * 1000,
            latency_us: latency_ms * 1000,
            status,
            served_by: UNKNOWN,
        }
    }

    #[test]
    fn seconds_carry_offered_served_p99_and_the_size() {
        let cluster = ClusterResult {
            started_at_unix_ms: 10_000,
            samples: vec![
                sample(100, 5, 200),
                sample(900, 7, 200),
                sample(1_100, 400, 200),
                sample(1_500, 0, 0),
                sample(2_200, 3, 200),
            ],
            ..ClusterResult::default()
        };
        let sizes = [(9_000, 1), (11_500, 3)];
        let event = ScalingEvent {
            second: 0.0,
            action: "scale_out".into(),
            from: 1,
            to: 3,
            reason: "cpu".into(),
        };
        let run = ScalingRun::new(&cluster, &sizes, vec![(11_500, event)]);
        let s = &run.per_second;
        assert_eq!(s.len(), 3);
        assert_eq!((s[0].offered, s[0].served, s[0].errors), (2, 2, 0));
        assert_eq!((s[1].offered, s[1].served, s[1].errors), (2, 1, 1));
        assert_eq!(s[1].p99_ms, Some(400.0));
        assert_eq!(
            s.iter().map(|s| s.instances).collect::<Vec<_>>(),
            [Some(1), Some(1), Some(3)]
        );
        assert_eq!(run.events[0].second, 1.5);
        assert_eq!(run.most_instances(), 3);
        assert_eq!(run.errors(), 1);
        assert_eq!(run.seconds_above(0, 10, 100.0), Some(2));
        assert_eq!(run.seconds_above(2, 10, 100.0), Some(0));
        assert_eq!(
            run.seconds_above(1, 1, 100.0),
            None,
            "still above at the end"
        );
    }
}
