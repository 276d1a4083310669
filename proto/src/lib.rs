//! Wire types shared by the elb agent, orchestrator and balancer.
//!
//! Every JSON document that crosses a wire is described here, so field names live in one place.
//! Changes are additive only: a reader must accept documents with fields it does not know, and
//! every new field is optional (`#[serde(default)]`) so newer readers accept older documents.
//! Each top-level document carries a [`SCHEMA`] number that is raised only if a field ever has to
//! change meaning.

mod agent;
mod balancer;
pub mod balancer_config;
mod stats;

pub use agent::{ErrorBody, Health, InstanceAnswer};
pub use balancer::{BalancerError, BalancerStatus, GroupStatus, TargetState, TargetStatus};
pub use stats::{
    CpuStats, CpuWindow, FigureSource, InstanceCpu, InstanceMemory, InstanceStats, LatencySummary,
    LoadAverage, MemoryStats, NetworkStats, ProcessStats, RequestStats, StatsSnapshot,
};

/// The TCP port `elb-agent` serves on, on every instance: where the orchestrator (stats, bench,
/// health waits), the security group and the balancer's targets reach it.
pub const AGENT_PORT: u16 = 8000;

/// Version of the agent's JSON documents, carried in their `schema` field.
pub const SCHEMA: u32 = 1;
