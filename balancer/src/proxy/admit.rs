//! Admission: which target a try goes to, under the group's per-target limit.
//!
//! Each target takes at most `max_requests_per_target` requests at once (HAProxy's per-server
//! `maxconn`, Envoy's `max_requests`): a burst of clients meets a queue in the balancer rather
//! than a flood of new connections that overflows the target's accept queue (and is then
//! counted as the target's failure). The selection algorithm's choice takes the request if it
//! has room; otherwise another candidate with room does (chosen by the same algorithm among
//! the rest); when every candidate is at its limit the request waits, first come first
//! served, in the queue of the algorithm's first choice, for at most `queue_timeout_ms`, and
//! is refused at once when `max_queued_per_target` wait there already. Time in the queue is
//! the balancer's, not the target's: it is not in the target's latency estimate, and a queue
//! timeout does not count against the target.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use super::Failure;
use crate::group::{Group, NoTarget};
use crate::target::{InFlight, Target};

/// Chooses the target of a request's next try, which already tried `tried`, and waits for
/// room on it. `last` is the answer when every target was tried. `sticky`, a member its
/// stickiness cookie names, takes a first try while it is eligible (healthy and not ejected),
/// waiting in its queue when it is at its limit rather than going elsewhere.
pub(super) async fn admit(
    group: &Group,
    tried: &[usize],
    last: Failure,
    sticky: Option<usize>,
) -> Result<(usize, InFlight), Failure> {
    let limit = u64::from(group.config.max_requests_per_target);
    if let Some(member) = sticky.filter(|m| tried.is_empty() && group.eligible().1.contains(m)) {
        let target = &group.members[member].target;
        let in_flight = match target.try_start(limit, false) {
            Some(in_flight) => in_flight,
            None => wait(target, limit, group).await?,
        };
        return Ok((member, in_flight));
    }
    let first = match group.choose(tried) {
        Ok(chosen) => chosen,
        Err(NoTarget::NoneHealthy) => return Err(Failure::NoTarget),
        Err(NoTarget::AllTried) => return Err(last),
    };
    let mut candidate = first;
    // The tried targets and those found at their limit; allocated only when one is.
    let mut skip: Vec<usize> = Vec::new();
    loop {
        if let Some(in_flight) = group.members[candidate].target.try_start(limit, false) {
            return Ok((candidate, in_flight));
        }
        if skip.is_empty() {
            skip.extend_from_slice(tried);
        }
        skip.push(candidate);
        match group.choose(&skip) {
            Ok(next) => candidate = next,
            Err(_) => break,
        }
    }
    let target = &group.members[first].target;
    let in_flight = wait(target, limit, group).await?;
    Ok((first, in_flight))
}

/// Waits in `target`'s queue for room under `limit`.
async fn wait(target: &Arc<Target>, limit: u64, group: &Group) -> Result<InFlight, Failure> {
    let config = &group.config;
    if target.queued() >= u64::from(config.max_queued_per_target) {
        group.stats.queue_full.fetch_add(1, Relaxed);
        return Err(Failure::QueueFull);
    }
    let _queued = target.enqueue();
    let deadline = tokio::time::Instant::now() + config.queue_timeout();
    loop {
        let freed = target.freed();
        tokio::pin!(freed);
        freed.as_mut().enable();
        if let Some(in_flight) = target.try_start(limit, true) {
            return Ok(in_flight);
        }
        if tokio::time::timeout_at(deadline, freed).await.is_err() {
            group.stats.queue_timeouts.fetch_add(1, Relaxed);
            return Err(Failure::QueueTimeout);
        }
    }
}
