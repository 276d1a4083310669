//! Lowest latency: the candidate with the smallest latency estimate, ties round robin.
//!
//! The seed's rule ("send everything to the instance that answered fastest") done right: from
//! live peak-EWMA measurements rather than one probe at start, and only among routable
//! targets. It ignores queueing, so it herds: every request goes to the one target that
//! looked fastest until its estimate rises. It exists so the experiment can show what the
//! seed's choice costs against `p2c_peak_ewma`. Parameters: those of [`crate::latency`].

use std::sync::atomic::AtomicUsize;

use super::{least, Rng, Select};
use crate::target::Member;

#[derive(Debug, Default)]
pub(crate) struct LowestLatency {
    turn: AtomicUsize,
}

impl Select for LowestLatency {
    fn pick(&self, members: &[Member], candidates: &[usize], _: &mut Rng) -> usize {
        least(&self.turn, candidates, |c| members[c].target.latency())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::selection::tests::{members, shares};
    use crate::target::Outcome;

    #[test]
    fn the_fastest_target_gets_everything_even_when_busy() {
        let members = members(3, &[]);
        for (m, ms) in members.iter().zip([9, 2, 5]) {
            m.target
                .record(Outcome::Answered(200), Duration::from_millis(ms));
        }
        let _queue: Vec<_> = (0..10).map(|_| members[1].target.start()).collect();
        assert_eq!(shares(&LowestLatency::default(), &members, 30), [0, 30, 0]);
    }

    #[test]
    fn unmeasured_targets_share_round_robin() {
        let members = members(3, &[]);
        assert_eq!(
            shares(&LowestLatency::default(), &members, 30),
            [10, 10, 10]
        );
    }
}
