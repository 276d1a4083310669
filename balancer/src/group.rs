//! A target group as one config snapshot sees it: its members and how one is chosen; and the
//! group's counters, which outlive snapshots.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use arc_swap::{ArcSwap, Guard};

use crate::config::{TargetGroup, WhenNoneHealthy};
use crate::histogram::Histogram;
use crate::retry_budget::RetryBudget;
use crate::selection::{with_rng, Select};
use crate::target::Member;

/// A group's counters, kept by name across reloads.
#[derive(Debug, Default)]
pub(crate) struct GroupStats {
    /// Requests routed to the group (a retried request counts once).
    pub requests: AtomicU64,
    pub retries: AtomicU64,
    pub retries_over_budget: AtomicU64,
    /// Answers the balancer made itself for this group: 502, 503, 504.
    pub elb_502: AtomicU64,
    pub elb_503: AtomicU64,
    pub elb_504: AtomicU64,
    /// Requests refused because their target's queue was full (in `elb_503`).
    pub queue_full: AtomicU64,
    /// Requests that waited in a target's queue for the queue timeout (in `elb_503`).
    pub queue_timeouts: AtomicU64,
    /// Set when outlier detection held back because every target taking requests was failing
    /// at once; cleared by the next success.
    pub all_failing: AtomicBool,
    /// Time from sending a request to a target to its response head (ALB's
    /// `TargetResponseTime`).
    pub response_time: Histogram,
    pub budget: RetryBudget,
}

/// Why no target could be chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NoTarget {
    /// The group has no targets, or none healthy and it does not fail open.
    NoneHealthy,
    /// Every candidate was tried already.
    AllTried,
}

/// One group of one snapshot.
#[derive(Debug)]
pub(crate) struct Group {
    pub config: TargetGroup,
    pub members: Vec<Member>,
    pub select: Arc<dyn Select>,
    pub stats: Arc<GroupStats>,
    /// Members that take new requests, with the routing epoch they were computed at.
    eligible: ArcSwap<(u64, Vec<usize>)>,
    /// Members not ejected, for fail-open, with their epoch.
    not_ejected: ArcSwap<(u64, Vec<usize>)>,
    /// Every member, for fail-open when all are ejected.
    all: Vec<usize>,
    routing_epoch: Arc<AtomicU64>,
}

impl Group {
    pub(crate) fn new(
        config: TargetGroup,
        members: Vec<Member>,
        select: Arc<dyn Select>,
        stats: Arc<GroupStats>,
        routing_epoch: Arc<AtomicU64>,
    ) -> Self {
        let all = (0..members.len()).collect();
        Self {
            config,
            members,
            select,
            stats,
            // An epoch no target has: the first request computes the set.
            eligible: ArcSwap::from_pointee((u64::MAX, Vec::new())),
            not_ejected: ArcSwap::from_pointee((u64::MAX, Vec::new())),
            all,
            routing_epoch,
        }
    }

    /// Members that take new requests: healthy and not ejected.
    pub(crate) fn eligible(&self) -> Guard<Arc<(u64, Vec<usize>)>> {
        self.cached(&self.eligible, |health| health.routable())
    }

    /// The members of `cache` (those `keep` accepts), computed again if routing changed. A
    /// guard, not a clone: reading it touches no reference count that other workers write.
    fn cached(
        &self,
        cache: &ArcSwap<(u64, Vec<usize>)>,
        keep: impl Fn(&crate::health::Health) -> bool,
    ) -> Guard<Arc<(u64, Vec<usize>)>> {
        let epoch = self.routing_epoch.load(Relaxed);
        let cached = cache.load();
        if cached.0 == epoch {
            return cached;
        }
        let fresh: Vec<usize> = (0..self.members.len())
            .filter(|&i| keep(&self.members[i].target.health()))
            .collect();
        let fresh = Arc::new((epoch, fresh));
        cache.store(Arc::clone(&fresh));
        Guard::from_inner(fresh)
    }

    /// Whether the group routes to every member because none is healthy.
    pub(crate) fn failing_open(&self) -> bool {
        self.config.when_none_healthy == WhenNoneHealthy::FailOpen
            && !self.members.is_empty()
            && self.eligible().1.is_empty()
    }

    /// Chooses a member for a try of a request that already tried `tried`.
    pub(crate) fn choose(&self, tried: &[usize]) -> Result<usize, NoTarget> {
        let eligible = self.eligible();
        let not_ejected;
        let pool: &[usize] = match (&eligible.1[..], self.config.when_none_healthy) {
            // Fail open to every member, ejected ones last resort (Envoy's panic mode).
            ([], WhenNoneHealthy::FailOpen) if !self.members.is_empty() => {
                not_ejected = self.cached(&self.not_ejected, |health| !health.ejected());
                if not_ejected.1.is_empty() {
                    &self.all
                } else {
                    &not_ejected.1
                }
            }
            ([], _) => return Err(NoTarget::NoneHealthy),
            (healthy, _) => healthy,
        };
        if tried.is_empty() {
            return Ok(self.pick(pool));
        }
        let rest: Vec<usize> = pool
            .iter()
            .copied()
            .filter(|i| !tried.contains(i))
            .collect();
        if rest.is_empty() {
            Err(NoTarget::AllTried)
        } else {
            Ok(self.pick(&rest))
        }
    }

    /// The algorithm's choice among `candidates`, with slow start: a target still ramping up
    /// keeps the choice with probability `time healthy / slow_start`, else the algorithm
    /// chooses once more among the others. Its share so grows about linearly, whatever the
    /// algorithm.
    fn pick(&self, candidates: &[usize]) -> usize {
        with_rng(|rng| {
            let first = self.select.pick(&self.members, candidates, rng);
            let ramp = self.config.slow_start_ms;
            if ramp == 0 || candidates.len() == 1 {
                return first;
            }
            let Some(since) = self.members[first].target.health().healthy_since() else {
                return first;
            };
            let share = since.elapsed().as_secs_f64() * 1000.0 / ramp as f64;
            if share >= 1.0 || rng.unit() < share {
                return first;
            }
            let others: Vec<usize> = candidates.iter().copied().filter(|&c| c != first).collect();
            self.select.pick(&self.members, &others, rng)
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::config::tests::seed;
    use crate::health::Check;
    use crate::selection::{build, tests::members};

    pub(crate) fn group(n: usize, when_none_healthy: WhenNoneHealthy) -> Group {
        let mut config = seed().config.target_groups[0].clone();
        config.when_none_healthy = when_none_healthy;
        let members = members(n, &[]);
        let epoch = Arc::clone(&crate::target::tests::EPOCH);
        Group::new(
            config,
            members,
            Arc::from(build(crate::config::Algorithm::RoundRobin)),
            Arc::default(),
            epoch,
        )
    }

    pub(crate) fn make_healthy(group: &Group, i: usize) {
        let now = tokio::time::Instant::now();
        group.members[i]
            .target
            .update_health(|h| ((), h.observe(Check::Pass, 1, 1, now)));
    }

    #[tokio::test]
    async fn only_healthy_members_are_chosen() {
        let g = group(3, WhenNoneHealthy::FailOpen);
        make_healthy(&g, 1);
        for _ in 0..10 {
            assert_eq!(g.choose(&[]), Ok(1));
        }
    }

    #[tokio::test]
    async fn with_none_healthy_a_fail_open_group_uses_every_member() {
        let g = group(3, WhenNoneHealthy::FailOpen);
        assert!(g.failing_open());
        let mut seen = [false; 3];
        for _ in 0..3 {
            seen[g.choose(&[]).unwrap()] = true;
        }
        assert_eq!(seen, [true; 3]);
    }

    #[tokio::test]
    async fn failing_open_skips_ejected_members_unless_all_are() {
        let g = group(2, WhenNoneHealthy::FailOpen);
        let eject = |i: usize| {
            g.members[i].target.update_health(|h| {
                h.eject(
                    std::time::Duration::from_secs(30),
                    std::time::Duration::from_secs(300),
                    tokio::time::Instant::now(),
                );
                ((), true)
            })
        };
        eject(0);
        for _ in 0..10 {
            assert_eq!(g.choose(&[]), Ok(1));
        }
        eject(1);
        assert!(g.choose(&[]).is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn slow_start_ramps_a_newly_healthy_target_up_over_its_time() {
        let mut g = group(2, WhenNoneHealthy::FailOpen);
        g.config.slow_start_ms = 10_000;
        make_healthy(&g, 0);
        tokio::time::advance(std::time::Duration::from_secs(60)).await;
        make_healthy(&g, 1);
        let share = |g: &Group| (0..2000).filter(|_| g.choose(&[]) == Ok(1)).count();
        assert!(share(&g) < 50, "just healthy: almost nothing");
        tokio::time::advance(std::time::Duration::from_secs(5)).await;
        let half = share(&g);
        assert!(
            (300..700).contains(&half),
            "half way: about a quarter (1/2 x 1/2): {half}"
        );
        tokio::time::advance(std::time::Duration::from_secs(5)).await;
        let full = share(&g);
        assert!(
            (900..1100).contains(&full),
            "ramp over: round robin again: {full}"
        );
    }

    #[tokio::test]
    async fn with_none_healthy_a_rejecting_group_has_no_target() {
        let g = group(3, WhenNoneHealthy::Reject);
        assert_eq!(g.choose(&[]), Err(NoTarget::NoneHealthy));
        assert!(!g.failing_open());
    }

    #[tokio::test]
    async fn a_retry_never_goes_to_a_member_tried_before() {
        let g = group(3, WhenNoneHealthy::FailOpen);
        for i in 0..3 {
            make_healthy(&g, i);
        }
        for _ in 0..20 {
            let pick = g.choose(&[0, 2]).unwrap();
            assert_eq!(pick, 1);
        }
        assert_eq!(g.choose(&[0, 1, 2]), Err(NoTarget::AllTried));
    }
}
