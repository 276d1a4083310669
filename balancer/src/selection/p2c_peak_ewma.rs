//! Power of two choices over peak-EWMA cost, as tower's `balance/p2c` with `load/peak_ewma`.
//!
//! Two distinct candidates are drawn at random and the cheaper one wins; with three or fewer
//! candidates all are compared (a draw of two would often miss the best of so few). The cost
//! of a target is `latency estimate x (in flight + 1)`: its expected wait if one more request
//! joined its queue.
//!
//! Parameters (tower's and linkerd's defaults, in [`crate::latency`]): decay 10 s, latency of
//! an unmeasured target 30 ms (seeded by its first passing health check); failures count as
//! slow answers, so a target that fails fast never looks cheap (tower #871).

use super::{Rng, Select};
use crate::target::Member;

/// Candidate sets at most this large are scanned whole.
const FULL_SCAN: usize = 3;

#[derive(Debug, Default)]
pub(crate) struct P2cPeakEwma;

fn cost(member: &Member) -> f64 {
    let target = &member.target;
    target.latency().as_secs_f64() * (target.in_flight() + 1) as f64
}

impl Select for P2cPeakEwma {
    fn pick(&self, members: &[Member], candidates: &[usize], rng: &mut Rng) -> usize {
        let cheaper = |a: usize, b: usize| {
            if cost(&members[b]) < cost(&members[a]) {
                b
            } else {
                a
            }
        };
        if candidates.len() <= FULL_SCAN {
            // Start at a random candidate so that equal costs are shared.
            let start = rng.below(candidates.len());
            let rotated = candidates[start..].iter().chain(&candidates[..start]);
            return rotated.copied().reduce(cheaper).unwrap_or(candidates[0]);
        }
        let first = rng.below(candidates.len());
        let mut second = rng.below(candidates.len() - 1);
        if second >= first {
            second += 1;
        }
        cheaper(candidates[first], candidates[second])
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::selection::tests::{members, shares};
    use crate::target::Outcome;

    #[test]
    fn with_three_or_fewer_the_cheapest_always_wins() {
        let members = members(3, &[]);
        members[0]
            .target
            .record(Outcome::Answered(200), Duration::from_millis(50));
        members[1]
            .target
            .record(Outcome::Answered(200), Duration::from_millis(1));
        members[2]
            .target
            .record(Outcome::Answered(200), Duration::from_millis(20));
        assert_eq!(shares(&P2cPeakEwma, &members, 50), [0, 50, 0]);
    }

    #[test]
    fn the_two_choices_are_always_distinct_so_the_dearest_never_wins() {
        let members = members(8, &[]);
        for (i, m) in members.iter().enumerate() {
            m.target
                .record(Outcome::Answered(200), Duration::from_millis(i as u64 + 1));
        }
        let counts = shares(&P2cPeakEwma, &members, 2000);
        assert_eq!(counts[7], 0, "{counts:?}");
        assert!(counts[0] > counts[6], "{counts:?}");
    }

    #[test]
    fn in_flight_requests_raise_the_cost() {
        let members = members(2, &[]);
        for m in &members {
            m.target
                .record(Outcome::Answered(200), Duration::from_millis(10));
        }
        let _queue: Vec<_> = (0..3).map(|_| members[0].target.start()).collect();
        assert_eq!(shares(&P2cPeakEwma, &members, 20), [0, 20]);
    }

    #[test]
    fn a_target_that_fails_fast_does_not_look_cheap() {
        let members = members(2, &[]);
        for m in &members {
            m.target
                .record(Outcome::Answered(200), Duration::from_millis(5));
        }
        members[0]
            .target
            .record(Outcome::ConnectFailed, Duration::from_micros(10));
        members[0]
            .target
            .record(Outcome::Answered(500), Duration::from_micros(10));
        assert_eq!(shares(&P2cPeakEwma, &members, 20), [0, 20]);
    }
}
