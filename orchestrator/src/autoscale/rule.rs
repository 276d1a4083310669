//! The scaling rule: how many instances a cluster should have, from one tick's metric.
//!
//! Two steps, as Kubernetes' Horizontal Pod Autoscaler takes them
//! (`pkg/controller/podautoscaler/replica_calculator.go` and `horizontal.go`):
//!
//! 1. **Recommendation** ([`recommend`]): `desired = ceil(ready x metric / target)`, where the
//!    metric is the mean over the ready instances (a per-instance metric: CPU, requests per
//!    target) or one figure for the whole cluster (p99). No change while `|metric / target - 1|`
//!    is within the tolerance (HPA's `--horizontal-pod-autoscaler-tolerance`, 0.1). Instances
//!    still warming up (EC2 Auto Scaling's *instance warm-up*, HPA's CPU initialization period)
//!    and instances without a figure are left out of the mean; then, as HPA does, a scale-out is
//!    re-checked with them counted at 0 and a scale-in with the silent ones counted at the
//!    target, so that a cold instance never speeds a scale-out and a silent one never speeds a
//!    scale-in; a recheck that flips the direction or lands in the tolerance keeps the count.
//! 2. **Behaviour** ([`Stabilizer::decide`]): a scale-out happens at once, by at most
//!    `max_step` instances per tick (HPA's scale-up policies; EC2's step adjustments); a
//!    scale-in goes only down to the highest recommendation seen over the stabilization window
//!    (HPA's `scaleDown.stabilizationWindowSeconds`, default 300 s), so a dip in the load does
//!    not remove capacity the next spike needs; the result is kept within `[min, max]`.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

/// HPA's default tolerance: no change while the metric is within 10 % of the target.
pub(crate) const TOLERANCE: f64 = 0.1;

/// One instance's figure for this tick.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Figure {
    /// Ready, with its value of the metric.
    Ready(f64),
    /// Launched less than the warm-up ago: its figures do not count yet.
    Warming,
    /// Ready, but no figure this tick (its agent or the balancer did not say).
    Missing,
}

/// What the metric says about the cluster this tick.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Reading {
    /// One figure per instance, averaged over the ready ones (CPU %, requests per target).
    PerInstance(Vec<Figure>),
    /// One figure for the cluster (p99), and how many instances are ready.
    Whole { value: f64, ready: u32 },
}

/// A recommendation, or why there is none.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Recommendation {
    /// The count the metric asks for, before min, max, step and stabilization, and the
    /// metric's value it came from (the mean over the ready instances, or the whole figure).
    Count { desired: u32, value: f64 },
    /// No ready instance has a figure: nothing to go on, the count stays.
    NoData,
}

/// The count `reading` asks for against `target`, for a cluster of `current` instances.
pub(crate) fn recommend(current: u32, reading: &Reading, target: f64) -> Recommendation {
    match reading {
        Reading::Whole { value, ready } => {
            if *ready == 0 {
                return Recommendation::NoData;
            }
            let ratio = value / target;
            let desired = if (ratio - 1.0).abs() <= TOLERANCE {
                current
            } else {
                ceil(ratio * f64::from(*ready))
            };
            Recommendation::Count {
                desired,
                value: *value,
            }
        }
        Reading::PerInstance(figures) => per_instance(current, figures, target),
    }
}

/// HPA's `calcPlainMetricReplicas`, with warming instances as its unready pods and silent ones
/// as its missing pods.
fn per_instance(current: u32, figures: &[Figure], target: f64) -> Recommendation {
    let ready: Vec<f64> = figures
        .iter()
        .filter_map(|f| match f {
            Figure::Ready(v) => Some(*v),
            _ => None,
        })
        .collect();
    if ready.is_empty() {
        return Recommendation::NoData;
    }
    let mean = |values: &[f64]| values.iter().sum::<f64>() / values.len() as f64;
    let value = mean(&ready);
    let ratio = value / target;
    let warming = figures.iter().filter(|f| **f == Figure::Warming).count();
    let missing = figures.iter().filter(|f| **f == Figure::Missing).count();
    let count = |desired| Recommendation::Count { desired, value };
    let rebalance_warming = warming > 0 && ratio > 1.0;
    if !rebalance_warming && missing == 0 {
        if (ratio - 1.0).abs() <= TOLERANCE {
            return count(current);
        }
        return count(ceil(ratio * ready.len() as f64));
    }
    let mut values = ready;
    // A silent instance counts at the target on a scale-in and at 0 on a scale-out.
    let silent = if ratio < 1.0 { target } else { 0.0 };
    values.extend(std::iter::repeat_n(silent, missing));
    if rebalance_warming {
        values.extend(std::iter::repeat_n(0.0, warming));
    }
    let new_ratio = mean(&values) / target;
    let flips = (ratio < 1.0 && new_ratio > 1.0) || (ratio > 1.0 && new_ratio < 1.0);
    if (new_ratio - 1.0).abs() <= TOLERANCE || flips {
        return count(current);
    }
    count(ceil(new_ratio * values.len() as f64))
}

fn ceil(x: f64) -> u32 {
    x.ceil().clamp(0.0, f64::from(u32::MAX)) as u32
}

/// The bounds a decision stays within.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Bounds {
    /// Fewest instances (at least 1).
    pub min: u32,
    /// Most instances.
    pub max: u32,
    /// Most instances added in one tick.
    pub max_step: u32,
    /// How far back a scale-in looks for a higher recommendation.
    pub stabilization: Duration,
}

/// What limited a decision, for its reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Limit {
    /// Raised to `--min`.
    Min,
    /// Lowered to `--max`.
    Max,
    /// A scale-out held to `--max-step`.
    Step,
    /// A scale-in held up by a higher recommendation within the stabilization window.
    Stabilization,
}

/// The count to have now, and what (if anything) held it back from the recommendation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Decision {
    pub desired: u32,
    pub limit: Option<Limit>,
}

/// The behaviour step: remembers the recommendations of the stabilization window.
#[derive(Debug, Clone)]
pub(crate) struct Stabilizer {
    bounds: Bounds,
    /// Recommendations (already within min and max), oldest first.
    history: VecDeque<(Instant, u32)>,
}

impl Stabilizer {
    /// A stabilizer that remembers `history` (e.g. from before a restart), oldest first.
    pub(crate) fn new(bounds: Bounds, history: Vec<(Instant, u32)>) -> Self {
        Self {
            bounds,
            history: history.into(),
        }
    }

    /// The recommendations the window still holds, oldest first (to save them).
    pub(crate) fn history(&self) -> impl Iterator<Item = &(Instant, u32)> {
        self.history.iter()
    }

    /// The count for a cluster of `current` instances, given `recommended` at `now`, or no
    /// recommendation (no data: the count stays, but min and max still hold).
    pub(crate) fn decide(
        &mut self,
        now: Instant,
        current: u32,
        recommended: Option<u32>,
    ) -> Decision {
        let Bounds {
            min,
            max,
            max_step,
            stabilization,
        } = self.bounds;
        while self
            .history
            .front()
            .is_some_and(|(at, _)| now.saturating_duration_since(*at) > stabilization)
        {
            self.history.pop_front();
        }
        let Some(recommended) = recommended else {
            return clamp(current, min, max);
        };
        let bounded = recommended.clamp(min, max);
        self.history.push_back((now, bounded));
        if bounded > current {
            let stepped = bounded.min(current.saturating_add(max_step));
            let limit = if stepped < bounded {
                Some(Limit::Step)
            } else if recommended > max {
                Some(Limit::Max)
            } else {
                None
            };
            return Decision {
                desired: stepped,
                limit,
            };
        }
        // The highest recommendation of the window, this one included, within the bounds as
        // they are now (a restarted loop may have a lower --max than the one that recorded it).
        let highest = self
            .history
            .iter()
            .map(|(_, n)| *n)
            .max()
            .unwrap_or(bounded);
        let desired = highest.min(current).max(bounded).min(max);
        let limit = if current > max && desired == max {
            Some(Limit::Max)
        } else if desired > bounded && bounded < current {
            Some(Limit::Stabilization)
        } else if recommended < min && desired == min {
            Some(Limit::Min)
        } else if recommended > max && desired == max {
            Some(Limit::Max)
        } else {
            None
        };
        Decision { desired, limit }
    }
}

/// `current` within `[min, max]`, saying which bound moved it.
fn clamp(current: u32, min: u32, max: u32) -> Decision {
    let desired = current.clamp(min, max);
    let limit = if desired > current {
        Some(Limit::Min)
    } else if desired < current {
        Some(Limit::Max)
    } else {
        None
    };
    Decision { desired, limit }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Figure::{Missing, Ready, Warming};

    fn per(figures: &[Figure]) -> Reading {
        Reading::PerInstance(figures.to_vec())
    }

    fn desired(current: u32, reading: &Reading, target: f64) -> u32 {
        match recommend(current, reading, target) {
            Recommendation::Count { desired, .. } => desired,
            Recommendation::NoData => panic!("no data"),
        }
    }

    #[test]
    fn the_count_follows_the_metric_outside_the_tolerance() {
        // 2 instances at 90 % against 50 %: ceil(2 x 1.8) = 4.
        assert_eq!(desired(2, &per(&[Ready(90.0), Ready(90.0)]), 50.0), 4);
        // 54 % against 50 % is within 10 %: unchanged, whatever ceil would say.
        assert_eq!(desired(2, &per(&[Ready(54.0), Ready(54.0)]), 50.0), 2);
        assert_eq!(desired(3, &per(&[Ready(46.0); 3]), 50.0), 3);
        // 4 instances at 20 % against 50 %: ceil(4 x 0.4) = 2.
        assert_eq!(desired(4, &per(&[Ready(20.0); 4]), 50.0), 2);
        // A whole-cluster figure: p99 of 300 ms against 100 ms over 2 ready instances.
        let p99 = Reading::Whole {
            value: 300.0,
            ready: 2,
        };
        assert_eq!(desired(3, &p99, 100.0), 6);
        let calm = Reading::Whole {
            value: 105.0,
            ready: 2,
        };
        assert_eq!(desired(3, &calm, 100.0), 3);
    }

    #[test]
    fn warming_instances_are_left_out_and_count_as_idle_on_a_scale_out() {
        // One ready instance at 100 % and one warming: a 2x ratio on the ready one alone
        // would ask for 2, and counting the warming one at 0 gives a mean of 50 against 50:
        // within the tolerance, so the count stays at 2 (HPA's rule: no double scale-out
        // while the new instance warms up).
        assert_eq!(desired(2, &per(&[Ready(100.0), Warming]), 50.0), 2);
        // Far above the target even with the warming one at 0: 150 -> mean 75, ceil(2 x 1.5).
        assert_eq!(desired(2, &per(&[Ready(150.0), Warming]), 50.0), 3);
        // A scale-in does not look at warming instances at all.
        assert_eq!(
            desired(3, &per(&[Ready(10.0), Ready(10.0), Warming]), 50.0),
            1
        );
        // Nothing ready: no data, not a count of 0.
        assert_eq!(
            recommend(2, &per(&[Warming, Missing]), 50.0),
            Recommendation::NoData
        );
    }

    #[test]
    fn a_silent_instance_never_speeds_a_scale_in() {
        // Two at 10 % and one silent, counted at the target: mean 23.3 -> ceil(3 x 0.47) = 2,
        // where leaving it out would give ceil(2 x 0.2) = 1.
        assert_eq!(
            desired(3, &per(&[Ready(10.0), Ready(10.0), Missing]), 50.0),
            2
        );
        // And never a scale-out: counted at 0 it pulls the mean back into the tolerance.
        assert_eq!(desired(2, &per(&[Ready(100.0), Missing]), 50.0), 2);
    }

    fn bounds(min: u32, max: u32, max_step: u32) -> Bounds {
        Bounds {
            min,
            max,
            max_step,
            stabilization: Duration::from_secs(300),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_scale_out_is_immediate_but_held_to_the_step_and_the_max() {
        let mut s = Stabilizer::new(bounds(1, 5, 2), Vec::new());
        let d = s.decide(Instant::now(), 1, Some(4));
        assert_eq!((d.desired, d.limit), (3, Some(Limit::Step)));
        let d = s.decide(Instant::now(), 3, Some(9));
        assert_eq!((d.desired, d.limit), (5, Some(Limit::Max)));
        let d = s.decide(Instant::now(), 5, Some(9));
        assert_eq!((d.desired, d.limit), (5, Some(Limit::Max)));
    }

    #[tokio::test(start_paused = true)]
    async fn a_scale_in_waits_for_the_stabilization_window() {
        let mut s = Stabilizer::new(bounds(1, 10, 10), Vec::new());
        assert_eq!(s.decide(Instant::now(), 2, Some(6)).desired, 6);
        tokio::time::advance(Duration::from_secs(60)).await;
        // The load fell: the metric asks for 2, but 6 was recommended a minute ago.
        let d = s.decide(Instant::now(), 6, Some(2));
        assert_eq!((d.desired, d.limit), (6, Some(Limit::Stabilization)));
        tokio::time::advance(Duration::from_secs(200)).await;
        assert_eq!(s.decide(Instant::now(), 6, Some(3)).desired, 6);
        // 301 s after the 6, the highest of the window is the 3 of 200 s ago.
        tokio::time::advance(Duration::from_secs(41)).await;
        let d = s.decide(Instant::now(), 6, Some(2));
        assert_eq!((d.desired, d.limit), (3, Some(Limit::Stabilization)));
        tokio::time::advance(Duration::from_secs(301)).await;
        let d = s.decide(Instant::now(), 3, Some(1));
        assert_eq!((d.desired, d.limit), (1, None));
    }

    #[tokio::test(start_paused = true)]
    async fn min_and_max_hold_with_or_without_data() {
        let mut s = Stabilizer::new(bounds(2, 4, 10), Vec::new());
        let d = s.decide(Instant::now(), 3, Some(1));
        assert_eq!((d.desired, d.limit), (2, Some(Limit::Min)));
        let d = s.decide(Instant::now(), 1, None);
        assert_eq!((d.desired, d.limit), (2, Some(Limit::Min)));
        let d = s.decide(Instant::now(), 6, None);
        assert_eq!((d.desired, d.limit), (4, Some(Limit::Max)));
        // No data records nothing: the window holds only real recommendations.
        assert_eq!(s.history().count(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_lowered_max_applies_at_once_whatever_the_window_holds() {
        let earlier = Instant::now();
        let mut s = Stabilizer::new(bounds(1, 1, 10), vec![(earlier, 2)]);
        let d = s.decide(Instant::now(), 2, Some(1));
        assert_eq!((d.desired, d.limit), (1, Some(Limit::Max)));
    }

    #[tokio::test(start_paused = true)]
    async fn a_restored_history_still_holds_a_scale_in() {
        let earlier = Instant::now();
        tokio::time::advance(Duration::from_secs(100)).await;
        let mut s = Stabilizer::new(bounds(1, 10, 10), vec![(earlier, 5)]);
        assert_eq!(s.decide(Instant::now(), 5, Some(1)).desired, 5);
    }
}
