//! Which target serves a request: one trait, one algorithm per file.
//!
//! An algorithm only chooses among the candidates it is given: the group has already removed
//! targets that must not get the request (unhealthy, ejected, draining, tried before), so no
//! algorithm can send to the same target twice or to a target that is not routable.

mod agent_load;
mod least_outstanding_requests;
mod lowest_latency;
mod p2c_peak_ewma;
mod random;
mod round_robin;
mod weighted_random;

use std::fmt::Debug;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

pub(crate) use random::{with_rng, Rng};

use crate::config::Algorithm;
use crate::target::Member;

/// A selection algorithm. Its state (a counter, nothing per target: that lives on the targets)
/// is kept across reloads only if the algorithm stays the same.
pub(crate) trait Select: Send + Sync + Debug {
    /// Picks one of `candidates`: indices into `members`, distinct and never empty. Returns
    /// the chosen index into `members`.
    fn pick(&self, members: &[Member], candidates: &[usize], rng: &mut Rng) -> usize;
}

/// The implementation of `algorithm`.
pub(crate) fn build(algorithm: Algorithm) -> Box<dyn Select> {
    match algorithm {
        Algorithm::RoundRobin => Box::new(round_robin::RoundRobin::default()),
        Algorithm::LeastOutstandingRequests => {
            Box::new(least_outstanding_requests::LeastOutstandingRequests::default())
        }
        Algorithm::P2cPeakEwma => Box::new(p2c_peak_ewma::P2cPeakEwma),
        Algorithm::WeightedRandom => Box::new(weighted_random::WeightedRandom),
        Algorithm::LowestLatency => Box::new(lowest_latency::LowestLatency::default()),
        Algorithm::AgentLoad => Box::new(agent_load::AgentLoad),
    }
}

/// The candidate with the smallest `key`; among equals, the first at or after a position that
/// moves by one on every call, so that ties are shared round robin.
fn least<K: PartialOrd>(
    turn: &AtomicUsize,
    candidates: &[usize],
    key: impl Fn(usize) -> K,
) -> usize {
    let start = turn.fetch_add(1, Relaxed) % candidates.len();
    let rotated = candidates[start..].iter().chain(&candidates[..start]);
    let mut best = candidates[start];
    let mut best_key = key(best);
    for &c in rotated.skip(1) {
        let k = key(c);
        if k < best_key {
            best = c;
            best_key = k;
        }
    }
    best
}

/// A candidate drawn with probability proportional to `weight` (all weights positive).
fn weighted(candidates: &[usize], rng: &mut Rng, weight: impl Fn(usize) -> f64) -> usize {
    let total: f64 = candidates.iter().map(|&c| weight(c)).sum();
    let mut point = rng.unit() * total;
    for &c in candidates {
        point -= weight(c);
        if point < 0.0 {
            return c;
        }
    }
    // Rounding can leave a sliver past the last weight.
    candidates[candidates.len() - 1]
}

#[cfg(test)]
pub(crate) mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::target::tests::target;

    /// `n` members on ports 1..=n with the given weights (1 when short).
    pub(crate) fn members(n: usize, weights: &[u32]) -> Vec<Member> {
        (0..n)
            .map(|i| Member {
                target: target(u16::try_from(i + 1).unwrap()),
                id: format!("t{i}"),
                weight: weights.get(i).copied().unwrap_or(1),
                instance_type: None,
                cluster: None,
            })
            .collect()
    }

    /// How many of `draws` picks went to each member.
    pub(crate) fn shares(select: &dyn Select, members: &[Member], draws: usize) -> Vec<usize> {
        let all: Vec<usize> = (0..members.len()).collect();
        let mut rng = Rng::seeded(7);
        let mut counts = vec![0; members.len()];
        for _ in 0..draws {
            counts[select.pick(members, &all, &mut rng)] += 1;
        }
        counts
    }

    #[test]
    fn least_shares_ties_round_robin() {
        let turn = AtomicUsize::new(0);
        let picks: Vec<usize> = (0..6).map(|_| least(&turn, &[4, 5, 6], |_| 0)).collect();
        assert_eq!(picks, [4, 5, 6, 4, 5, 6]);
    }

    #[test]
    fn least_finds_the_minimum_wherever_the_turn_starts() {
        let turn = AtomicUsize::new(0);
        for _ in 0..4 {
            assert_eq!(least(&turn, &[0, 1, 2, 3], |c| [3, 1, 0, 2][c]), 2);
        }
    }

    #[test]
    fn every_algorithm_picks_only_among_the_candidates() {
        let members = members(6, &[]);
        let mut rng = Rng::seeded(1);
        for algorithm in [
            Algorithm::RoundRobin,
            Algorithm::LeastOutstandingRequests,
            Algorithm::P2cPeakEwma,
            Algorithm::WeightedRandom,
            Algorithm::LowestLatency,
            Algorithm::AgentLoad,
        ] {
            let select = build(algorithm);
            for _ in 0..200 {
                let pick = select.pick(&members, &[1, 4, 5], &mut rng);
                assert!([1, 4, 5].contains(&pick), "{algorithm:?} picked {pick}");
            }
        }
        drop(Arc::clone(&members[0].target));
    }
}
