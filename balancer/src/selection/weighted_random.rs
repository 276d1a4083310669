//! Weighted random: each candidate with probability proportional to its config `weight`.
//!
//! Parameters: `weight` per target (1-1000, default 1) from the config. Stateless, so shares
//! follow the weights within sampling noise (a few percent over thousands of requests).

use super::{weighted, Rng, Select};
use crate::target::Member;

#[derive(Debug, Default)]
pub(crate) struct WeightedRandom;

impl Select for WeightedRandom {
    fn pick(&self, members: &[Member], candidates: &[usize], rng: &mut Rng) -> usize {
        weighted(candidates, rng, |c| f64::from(members[c].weight))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::selection::tests::{members, shares};

    #[test]
    fn shares_follow_the_weights_within_two_percent() {
        let members = members(3, &[1, 2, 5]);
        let draws = 80_000;
        let counts = shares(&WeightedRandom, &members, draws);
        for (count, weight) in counts.iter().zip([1.0, 2.0, 5.0]) {
            let share = *count as f64 / draws as f64;
            assert!((share - weight / 8.0).abs() < 0.02, "{counts:?}");
        }
    }
}
