//! What the fleet's workflows report, and the one interface they report it through.

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
}

/// Receives a workflow's events as they happen: the CLI renders them for a terminal or a
/// script, other drivers log or collect them.
pub(crate) trait Events: Sync {
    fn event(&self, event: Event);
}
