//! Passive outlier detection, after Envoy's `consecutive_5xx` and `consecutive_gateway_failure`.
//!
//! A target whose live requests fail `consecutive_failures` times in a row (connect errors,
//! resets and malformed answers, timeouts, 5xx answers: only what the target did, never what
//! a client did) is ejected for `base_ejection_ms` x its ejections in a row, at most
//! `max_ejection_ms`; the multiplier falls by one per `base_ejection_ms` back in rotation.
//! Once the time is up, the next passing active check returns it. Parameters (Envoy's
//! defaults): 5 failures, 30 s, 300 s, 10 %.
//!
//! Ejection takes out an outlier, never the group: it is held back
//! - when `max_ejected_percent` of the group is ejected already (one may always be);
//! - when the target is the last one taking requests;
//! - when every other target taking requests is failing too (its last request failed): the
//!   group as a whole is failing (the balancer's own overload, a network cut), which
//!   ejecting one target after another would only turn into an empty group. The group is
//!   then reported as `all_targets_failing` until one of its requests succeeds.

use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use tokio::time::Instant;

use crate::group::Group;

/// Ejects member `index` of `group`, which has just failed `failures` times in a row, if the
/// group's outlier detection says so.
pub(crate) fn consider(group: &Group, index: usize, failures: u32) {
    let config = &group.config.outlier_detection;
    if config.consecutive_failures == 0 || failures < config.consecutive_failures {
        return;
    }
    let target = &group.members[index].target;
    if target.health().ejected() {
        return;
    }
    let ejected = group
        .members
        .iter()
        .filter(|m| m.target.health().ejected())
        .count();
    if ejected >= max_ejected(group.members.len(), config.max_ejected_percent) {
        return;
    }
    // The others taking requests: the healthy ones, or when none is (failing open) every
    // member not ejected.
    let eligible = group.eligible();
    let fail_open = eligible.1.is_empty();
    let mut others = group.members.iter().enumerate().filter(|&(i, m)| {
        let health = m.target.health();
        i != index && !health.ejected() && (fail_open || health.routable())
    });
    let mut any_other = false;
    let all_failing = others.all(|(_, m)| {
        any_other = true;
        m.target.failing()
    });
    if !any_other || all_failing {
        if !group.stats.all_failing.swap(true, Relaxed) {
            tracing::warn!(
                group = %group.config.name,
                target = %target.address,
                "not ejected after {failures} failures in a row: every target taking \
                 requests is failing, the group is"
            );
        }
        return;
    }
    let base = Duration::from_millis(config.base_ejection_ms);
    let max = Duration::from_millis(config.max_ejection_ms);
    let time = target.update_health(|health| (health.eject(base, max, Instant::now()), true));
    target.reset_failures();
    target.counters.ejections.fetch_add(1, Relaxed);
    tracing::warn!(
        group = %group.config.name,
        target = %target.address,
        "ejected for {} ms after {failures} failures in a row",
        time.as_millis()
    );
}

/// Most members of a group of `members` that may be ejected at once.
fn max_ejected(members: usize, percent: u32) -> usize {
    (members * percent as usize / 100).max(1)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::config::WhenNoneHealthy;
    use crate::group::tests::{group, make_healthy};
    use crate::target::Outcome;

    fn fail(group: &Group, index: usize, times: u32) {
        for _ in 0..times {
            let failures = group.members[index]
                .target
                .record(Outcome::ConnectFailed, Duration::from_millis(1));
            consider(group, index, failures);
        }
    }

    #[test]
    fn at_least_one_target_may_be_ejected() {
        assert_eq!(max_ejected(3, 10), 1);
        assert_eq!(max_ejected(20, 10), 2);
        assert_eq!(max_ejected(4, 50), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn consecutive_failures_eject_and_the_time_grows_with_each_ejection() {
        let g = group(10, WhenNoneHealthy::FailOpen);
        (0..10).for_each(|i| make_healthy(&g, i));
        fail(&g, 0, 4);
        assert!(!g.members[0].target.health().ejected());
        fail(&g, 0, 1);
        let health = g.members[0].target.health();
        assert!(health.ejected() && !health.routable());
        assert!(!g.eligible().1.contains(&0));
        assert_eq!(g.members[0].target.counters.ejections.load(Relaxed), 1);

        // A passing check before the 30 s are up keeps it out; one after brings it back.
        let pass = |g: &Group| {
            g.members[0].target.update_health(|h| {
                let changed = h.observe(crate::health::Check::Pass, 1, 1, Instant::now());
                ((), changed)
            })
        };
        tokio::time::advance(Duration::from_secs(29)).await;
        pass(&g);
        assert!(g.members[0].target.health().ejected());
        tokio::time::advance(Duration::from_secs(1)).await;
        pass(&g);
        assert!(g.eligible().1.contains(&0));

        // The second ejection lasts twice as long.
        fail(&g, 0, 5);
        tokio::time::advance(Duration::from_secs(59)).await;
        pass(&g);
        assert!(g.members[0].target.health().ejected());
        tokio::time::advance(Duration::from_secs(1)).await;
        pass(&g);
        assert!(!g.members[0].target.health().ejected());
    }

    #[tokio::test(start_paused = true)]
    async fn no_more_than_max_ejected_percent_are_ejected() {
        let g = group(10, WhenNoneHealthy::FailOpen);
        (0..10).for_each(|i| make_healthy(&g, i));
        fail(&g, 0, 5);
        fail(&g, 1, 5);
        assert!(g.members[0].target.health().ejected());
        assert!(!g.members[1].target.health().ejected(), "10 % of 10 is one");
    }

    #[tokio::test(start_paused = true)]
    async fn the_last_target_taking_requests_is_never_ejected() {
        let g = group(1, WhenNoneHealthy::FailOpen);
        make_healthy(&g, 0);
        fail(&g, 0, 20);
        assert!(!g.members[0].target.health().ejected());
        assert!(
            g.stats.all_failing.load(Relaxed),
            "reported as the group failing"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_group_whose_targets_all_fail_at_once_is_reported_not_emptied() {
        let g = group(4, WhenNoneHealthy::FailOpen);
        (0..4).for_each(|i| make_healthy(&g, i));
        // A network cut: every target fails, in turn.
        for _ in 0..10 {
            (0..4).for_each(|i| fail(&g, i, 1));
        }
        assert!((0..4).all(|i| !g.members[i].target.health().ejected()));
        assert!(g.stats.all_failing.load(Relaxed));
        assert_eq!(g.eligible().1.len(), 4);
    }

    #[tokio::test(start_paused = true)]
    async fn an_outlier_among_succeeding_targets_is_ejected() {
        let g = group(4, WhenNoneHealthy::FailOpen);
        (0..4).for_each(|i| make_healthy(&g, i));
        for _ in 0..5 {
            for i in 1..4 {
                g.members[i]
                    .target
                    .record(Outcome::Answered(200), Duration::from_millis(1));
            }
            fail(&g, 0, 1);
        }
        assert!(g.members[0].target.health().ejected());
        assert!(!g.stats.all_failing.load(Relaxed));
    }

    #[tokio::test(start_paused = true)]
    async fn a_success_between_failures_starts_the_count_again() {
        let g = group(3, WhenNoneHealthy::FailOpen);
        fail(&g, 0, 4);
        g.members[0]
            .target
            .record(Outcome::Answered(200), Duration::from_millis(1));
        fail(&g, 0, 4);
        assert!(!g.members[0].target.health().ejected());
    }
}
