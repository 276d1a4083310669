//! Host and request statistics: live counters written by requests, and the background sampler
//! that turns them and `/proc` into snapshots.

pub(crate) mod counters;
pub(crate) mod latency;
mod procfs;
pub(crate) mod sampler;

pub(crate) use procfs::{read_hostname, USER_HZ};

/// What request handlers write to: lock-free, read by the sampler once per interval.
#[derive(Default)]
pub(crate) struct Live {
    pub counters: counters::RequestCounters,
    pub latency: latency::LatencyRecorder,
}
