//! The balancer's documents: `GET /status` on its admin listener, and its error bodies.
//!
//! Units are in the field names (`_ms`, `_unix_ms`), as in the agent's documents.

use serde::{Deserialize, Serialize};

/// Answer of `GET /status` on the balancer's admin listener: every group and target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BalancerStatus {
    /// Version of this document ([`crate::SCHEMA`]).
    pub schema: u32,
    /// Version of the `elb-balancer` serving.
    pub balancer_version: String,
    /// The config's `version` field, or a hash of the file's bytes.
    pub config_version: String,
    /// Configs loaded since start, the first included (a refused reload does not count).
    pub config_generation: u64,
    /// Path of the config file.
    pub config_path: String,
    /// When the config in force was loaded.
    pub config_loaded_at_unix_ms: u64,
    /// When the balancer started.
    pub started_at_unix_ms: u64,
    /// Reloads refused since start (the old config kept serving).
    pub reloads_refused: u64,
    /// The reason the last refused reload was refused, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_reload_error: Option<String>,
    /// Client connections open now.
    pub active_connections: u64,
    /// Target groups, in config order.
    pub groups: Vec<GroupStatus>,
}

/// One target group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupStatus {
    pub name: String,
    /// Selection algorithm (`round_robin`, `p2c_peak_ewma`, ...).
    pub algorithm: String,
    /// Targets that take new requests (healthy and not ejected).
    pub healthy_targets: u32,
    /// Registered targets that do not (initial, unhealthy or ejected); draining ones excluded.
    pub unhealthy_targets: u32,
    /// Whether the group routes to all its targets because none is healthy (ALB's fail-open).
    pub failing_open: bool,
    /// Whether outlier detection last held back because every target taking requests was
    /// failing at once (the balancer's own overload, a network cut): an outage of the group,
    /// reported instead of emptying it. Cleared by the next success.
    #[serde(default)]
    pub all_targets_failing: bool,
    /// Requests refused with 503 `queue_full` since start.
    #[serde(default)]
    pub queue_full: u64,
    /// Requests answered 503 `queue_timeout` since start.
    #[serde(default)]
    pub queue_timeouts: u64,
    /// Requests forwarded to this group since start.
    pub requests: u64,
    /// Retries on another target since start.
    pub retries: u64,
    /// Retries refused because the retry budget was spent.
    pub retries_over_budget: u64,
    /// Registered targets in config order, then draining ones.
    pub targets: Vec<TargetStatus>,
}

/// ALB's target health states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TargetState {
    /// Registered, not yet passed its checks: no traffic (unless the group fails open).
    Initial,
    /// Passed `healthy_threshold` checks in a row.
    Healthy,
    /// Failed `unhealthy_threshold` checks in a row.
    Unhealthy,
    /// Removed from the config: in-flight requests finish, no new ones.
    Draining,
}

impl TargetState {
    /// The name in JSON and in metrics labels.
    pub fn name(self) -> &'static str {
        match self {
            Self::Initial => "initial",
            Self::Healthy => "healthy",
            Self::Unhealthy => "unhealthy",
            Self::Draining => "draining",
        }
    }
}

/// One target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TargetStatus {
    /// The config's `id`, else the address.
    pub id: String,
    /// `IP:port`.
    pub address: String,
    pub state: TargetState,
    /// Why, as an ALB reason code: `Elb.RegistrationInProgress`, `Elb.InitialHealthChecking`,
    /// `Target.HealthCheckPassed`, `Target.ResponseCodeMismatch`, `Target.Timeout`,
    /// `Target.FailedHealthChecks`, `Target.DeregistrationInProgress`, `Elb.OutlierEjected`.
    pub reason: String,
    /// Ejected by passive outlier detection (takes no new requests meanwhile).
    pub ejected: bool,
    /// Ejections in a row: each ejection adds one, each `base_ejection_ms` back in rotation
    /// takes one off (the next ejection lasts this plus one times the base).
    pub times_ejected: u32,
    /// Requests in flight to it now.
    pub in_flight: u64,
    /// Requests waiting for room under the group's `max_requests_per_target`.
    #[serde(default)]
    pub queued: u64,
    /// Its peak-EWMA latency estimate.
    pub latency_estimate_ms: f64,
    /// Requests sent to it since it was registered (retries included).
    pub requests: u64,
    /// Requests to it that failed: connect errors, resets, bad answers, timeouts, 5xx.
    pub errors: u64,
    /// The config's weight.
    pub weight: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    /// CPU busy percent the agent last reported (`agent_load` groups only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_busy_percent: Option<f64>,
}

/// Body of every answer the balancer makes itself (400, 404, 502, 503, 504).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BalancerError {
    /// Version of this document ([`crate::SCHEMA`]).
    pub schema: u32,
    /// The HTTP status code, repeated for clients that only keep the body.
    pub status: u16,
    /// A short human-readable reason, e.g. `no healthy target`.
    pub error: String,
    /// A stable reason code: `no_rule`, `no_target`, `connect_failed`, `target_reset`,
    /// `bad_answer`, `target_timeout`.
    pub reason: String,
    /// The target group the request was routed to, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_states_are_the_alb_names() {
        let names: Vec<String> = [
            TargetState::Initial,
            TargetState::Healthy,
            TargetState::Unhealthy,
            TargetState::Draining,
        ]
        .iter()
        .map(|s| serde_json::to_string(s).unwrap())
        .collect();
        for s in [TargetState::Initial, TargetState::Draining] {
            assert_eq!(
                serde_json::to_string(&s).unwrap(),
                format!("\"{}\"", s.name())
            );
        }
        assert_eq!(
            names,
            [
                "\"initial\"",
                "\"healthy\"",
                "\"unhealthy\"",
                "\"draining\""
            ]
        );
    }

    #[test]
    fn an_error_without_a_group_leaves_the_field_out() {
        let e = BalancerError {
            schema: crate::SCHEMA,
            status: 404,
            error: "no rule matched".into(),
            reason: "no_rule".into(),
            group: None,
        };
        let json = serde_json::to_string(&e).unwrap();
        assert!(!json.contains("group"), "{json}");
        assert_eq!(serde_json::from_str::<BalancerError>(&json).unwrap(), e);
    }
}
