//! What the fleet's workflows report, and the one interface they report it through.

use serde::Serialize;

use crate::cloud::Instance;

/// Something a fleet workflow did.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Event {
    /// `instances` were launched into `cluster` and run.
    Launched {
        cluster: String,
        instances: Vec<Instance>,
    },
    /// `instances` new instances were registered in the ALB's `target_group`.
    JoinedAlb {
        target_group: String,
        instances: usize,
    },
    /// `instances` left the balancers in front of `cluster` (drained) and were terminated.
    Removed {
        cluster: String,
        instances: Vec<String>,
    },
    /// One tick of an autoscaling loop.
    Scaling(Box<ScalingTick>),
    /// `instances` new instances got their idle alarm.
    IdleAlarms {
        instances: usize,
        idle: crate::cloud::ec2::cloudwatch::IdleTerminate,
    },
}

/// One autoscaling tick: what the loop saw, decided and did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct ScalingTick {
    /// When the tick began, ms since the epoch.
    pub at_unix_ms: u64,
    pub cluster: String,
    /// Instances in the cluster at the start of the tick.
    pub current: u32,
    /// Of which still warming up (left out of the metric).
    pub warming: u32,
    /// Instances wanted after this tick.
    pub desired: u32,
    /// `cpu`, `requests_per_target` or `p99_ms`.
    pub metric: &'static str,
    /// The metric's value this tick (mean over the ready instances, or the cluster's figure).
    pub value: Option<f64>,
    /// Its target.
    pub target: f64,
    /// Where the value came from, e.g. `agents (2 ready)` or `balancer group c1`.
    pub source: String,
    /// `hold`, `scale_out`, `scale_in`, `replace` (several: `replace+scale_out`).
    pub action: String,
    /// Instances launched this tick.
    pub launched: Vec<String>,
    /// Instances removed this tick.
    pub removed: Vec<String>,
    /// Why, in words.
    pub reason: String,
    /// What failed this tick (a launch, a removal, the cloud's listing), if anything.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
    /// Nothing was launched or removed: `--dry-run`.
    pub dry_run: bool,
}

/// Receives a workflow's events as they happen: the CLI renders them for a terminal or a
/// script, other drivers log or collect them.
pub(crate) trait Events: Sync {
    fn event(&self, event: Event);
}

/// Drops every event: for drivers that report the outcome in their own words.
pub(crate) struct Quiet;

impl Events for Quiet {
    fn event(&self, _event: Event) {}
}
