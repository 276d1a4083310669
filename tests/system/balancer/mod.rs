//! Whole-system tests of `elb-balancer`: each test starts its own balancer (port 0, loopback
//! only) in front of real `elb-agent` processes, with fast timers (health checks every 200 ms),
//! and checks what a user relies on through its listeners, `/status` and `/metrics`.

mod access_log;
mod algorithms;
mod bad_input;
mod blame;
mod failover;
mod failures;
mod headers;
mod observability;
mod reload;
mod routing;
mod shutdown;
mod stickiness;
mod transport;
mod websockets;

use std::collections::BTreeMap;

use crate::harness::load::Outcome;
use crate::harness::Balancer;

/// Requests served per target id (the agents' `--instance-id`), from the answers' JSON.
fn served(outcomes: &[Outcome]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for outcome in outcomes {
        let id = outcome.served_by.clone().unwrap_or_else(|| "?".into());
        *counts.entry(id).or_default() += 1;
    }
    counts
}

/// `requests` of every target in `/status`, by id.
fn requests_by_target(balancer: &Balancer) -> BTreeMap<String, u64> {
    balancer
        .status()
        .groups
        .iter()
        .flat_map(|g| &g.targets)
        .map(|t| (t.id.clone(), t.requests))
        .collect()
}
