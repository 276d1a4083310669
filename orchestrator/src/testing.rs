//! Constructors the unit tests of several modules share.

use proto::{GroupStatus, TargetState, TargetStatus};

/// A healthy target `address` (also its id) of elb's balancer that got `requests`.
pub(crate) fn target(address: &str, requests: u64) -> TargetStatus {
    TargetStatus {
        id: address.to_owned(),
        address: address.to_owned(),
        state: TargetState::Healthy,
        reason: "Target.HealthCheckPassed".into(),
        ejected: false,
        times_ejected: 0,
        in_flight: 0,
        queued: 0,
        latency_estimate_ms: 1.0,
        requests,
        errors: 0,
        weight: 1,
        instance_type: None,
        cluster: None,
        agent_busy_percent: None,
    }
}

/// Group `g` of elb's balancer with `targets`, every one healthy.
pub(crate) fn group(targets: Vec<TargetStatus>) -> GroupStatus {
    GroupStatus {
        name: "g".into(),
        algorithm: "round_robin".into(),
        healthy_targets: targets.len() as u32,
        unhealthy_targets: 0,
        failing_open: false,
        all_targets_failing: false,
        queue_full: 0,
        queue_timeouts: 0,
        requests: targets.iter().map(|t| t.requests).sum(),
        retries: 0,
        retries_over_budget: 0,
        targets,
    }
}
