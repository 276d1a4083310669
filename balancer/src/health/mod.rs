//! Whether targets take traffic: ALB's states ([`state`]), which the active checks
//! (`crate::checker`) flip after their thresholds and passive outlier detection
//! (`crate::proxy::outlier`) overlays with ejections; and how a target is checked
//! ([`CheckSpec`]).

mod state;

use std::time::Duration;

pub(crate) use state::{Check, Health, Reason, State};

use crate::config::{Algorithm, HealthCheck, Matcher, TargetGroup};

/// How one target is checked, from its group's config; replaced on reload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CheckSpec {
    /// Path and query requested.
    pub path: String,
    /// Whether the answer is the agent's `/stats` document, read for `agent_load`.
    pub reads_agent_stats: bool,
    pub interval: Duration,
    pub timeout: Duration,
    pub healthy_threshold: u32,
    pub unhealthy_threshold: u32,
    pub matcher: Matcher,
}

impl CheckSpec {
    /// The spec of a validated group.
    pub(crate) fn of(group: &TargetGroup) -> Self {
        Self::new(&group.health_check, group.algorithm == Algorithm::AgentLoad)
    }

    fn new(check: &HealthCheck, reads_agent_stats: bool) -> Self {
        Self {
            path: if reads_agent_stats {
                check.stats_path.clone()
            } else {
                check.path.clone()
            },
            reads_agent_stats,
            interval: Duration::from_millis(check.interval_ms),
            timeout: Duration::from_millis(check.timeout_ms),
            healthy_threshold: check.healthy_threshold,
            unhealthy_threshold: check.unhealthy_threshold,
            // Validation parsed it already; the fallback is never taken.
            matcher: Matcher::parse(&check.matcher).unwrap_or_default(),
        }
    }
}

impl Default for CheckSpec {
    /// The default health check of a group that does not read agent stats.
    fn default() -> Self {
        Self::new(&HealthCheck::default(), false)
    }
}
