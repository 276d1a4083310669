//! Least outstanding requests (ALB's name): the candidate with the fewest requests in flight
//! from this balancer, ties shared round robin.
//!
//! Parameters: none. In flight counts from the moment a request is sent until its response
//! body has been passed on (or dropped), so a slow download counts as outstanding.

use std::sync::atomic::AtomicUsize;

use super::{least, Rng, Select};
use crate::target::Member;

#[derive(Debug, Default)]
pub(crate) struct LeastOutstandingRequests {
    turn: AtomicUsize,
}

impl Select for LeastOutstandingRequests {
    fn pick(&self, members: &[Member], candidates: &[usize], _: &mut Rng) -> usize {
        least(&self.turn, candidates, |c| members[c].target.in_flight())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::selection::tests::{members, shares};

    #[test]
    fn the_idle_target_is_picked() {
        let members = members(3, &[]);
        let _busy = [members[0].target.start(), members[2].target.start()];
        let counts = shares(&LeastOutstandingRequests::default(), &members, 10);
        assert_eq!(counts, [0, 10, 0]);
    }

    #[test]
    fn ties_are_shared_round_robin() {
        let members = members(4, &[]);
        let counts = shares(&LeastOutstandingRequests::default(), &members, 40);
        assert_eq!(counts, [10, 10, 10, 10]);
    }
}
