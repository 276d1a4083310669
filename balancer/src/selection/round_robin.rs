//! Round robin: each candidate in turn.
//!
//! Parameters: none. The counter is shared by every worker thread, so over any run of
//! requests with a stable candidate set each target's share is within one of the others'.

use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use super::{Rng, Select};
use crate::target::Member;

#[derive(Debug, Default)]
pub(crate) struct RoundRobin {
    next: AtomicUsize,
}

impl Select for RoundRobin {
    fn pick(&self, _: &[Member], candidates: &[usize], _: &mut Rng) -> usize {
        candidates[self.next.fetch_add(1, Relaxed) % candidates.len()]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::selection::tests::{members, shares};

    #[test]
    fn every_target_gets_its_turn_within_one() {
        let members = members(3, &[]);
        let counts = shares(&RoundRobin::default(), &members, 100);
        let (min, max) = (counts.iter().min().unwrap(), counts.iter().max().unwrap());
        assert!(max - min <= 1, "{counts:?}");
    }
}
