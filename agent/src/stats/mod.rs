//! Host and request statistics: live counters written by requests, and the background sampler
//! that turns them, the host's figures (sysinfo, plus what it lacks) and the instance's own (its
//! cgroup, else the host) into snapshots.

mod cgroup;
pub(crate) mod counters;
mod cpu_times;
mod host;
mod instance;
pub(crate) mod latency;
pub(crate) mod sampler;

pub(crate) use cpu_times::USER_HZ;
pub(crate) use host::name as hostname;

/// What request handlers write to: lock-free, read by the sampler once per interval.
#[derive(Default)]
pub(crate) struct Live {
    pub counters: counters::RequestCounters,
    pub latency: latency::LatencyRecorder,
}
