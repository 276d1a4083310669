//! The instance's own figures: a local instance is its cgroup (CPU quota, usage, throttling,
//! memory), an EC2 instance the whole host (busy time, steal time, memory), so that
//! `usage_percent` reads like CloudWatch's `CPUUtilization` in both cases.

use std::time::Instant;

use proto::{FigureSource, InstanceCpu, InstanceMemory, InstanceStats, MemoryStats};

use super::cgroup::Group;
use super::cpu_times::{CpuTimes, USER_HZ};

/// What the host's per-core times say, as instance counters: busy time (all but idle, iowait
/// and steal) is the usage, steal the time held back.
fn host_cpu(cores: &[CpuTimes], host_cores: u32) -> InstanceCpu {
    let (busy, steal) = cores.iter().fold((0u64, 0u64), |(busy, steal), c| {
        (
            busy + c.user + c.nice + c.system + c.irq + c.softirq,
            steal + c.steal,
        )
    });
    InstanceCpu {
        source: FigureSource::Host,
        cgroup: None,
        capacity_cores: f64::from(host_cores),
        host_cores,
        usage_percent: 0.0,
        throttled_percent: 0.0,
        usage_secs_total: busy as f64 / USER_HZ,
        throttled_secs_total: steal as f64 / USER_HZ,
        periods_total: 0,
        throttled_periods_total: 0,
    }
}

/// Reads the instance's figures each sample and turns the counters into interval shares.
pub(crate) struct InstanceReader {
    /// The agent's group, when it has a CPU quota; found once, at start.
    group: Option<Group>,
    /// The previous reading, for the interval's shares.
    previous: Option<(Instant, InstanceCpu)>,
    /// Whether a failure to read the group was logged already.
    warned: bool,
}

impl InstanceReader {
    /// Finds the agent's group (see [`Group::discover`]).
    pub(crate) fn new() -> Self {
        let group = Group::discover();
        match &group {
            Some(g) => {
                tracing::info!(cgroup = %g.path, version = ?g.version, "instance figures from the agent's cgroup")
            }
            None => tracing::info!(
                "no CPU quota on the agent's cgroup: instance figures are the host's"
            ),
        }
        Self {
            group,
            previous: None,
            warned: false,
        }
    }

    /// The instance now. `cores` are the host's per-core times (empty if unreadable), `host`
    /// its memory. A group that cannot be read gives the host's figures for this sample, and
    /// one warning.
    pub(crate) fn read(
        &mut self,
        now: Instant,
        cores: &[CpuTimes],
        host_cores: u32,
        host: &MemoryStats,
    ) -> InstanceStats {
        let mut cpu = host_cpu(cores, host_cores);
        let mut memory = InstanceMemory {
            source: FigureSource::Host,
            used_bytes: host.used_bytes,
            limit_bytes: host.total_bytes,
        };
        if let Some(group) = &self.group {
            match group.cpu() {
                Ok(c) => {
                    cpu = InstanceCpu {
                        source: group.version,
                        cgroup: Some(group.path.clone()),
                        capacity_cores: c.quota_cores.unwrap_or(f64::from(host_cores)),
                        usage_secs_total: c.usage_secs,
                        throttled_secs_total: c.throttled_secs,
                        periods_total: c.periods,
                        throttled_periods_total: c.throttled_periods,
                        ..cpu
                    }
                }
                Err(e) => warn_once(&mut self.warned, &e),
            }
            match group.memory() {
                Some(Ok(m)) => {
                    memory = InstanceMemory {
                        source: group.version,
                        used_bytes: m.used_bytes,
                        limit_bytes: m.limit_bytes.unwrap_or(host.total_bytes),
                    }
                }
                Some(Err(e)) => warn_once(&mut self.warned, &e),
                None => {}
            }
        }
        if let Some((then, before)) = &self.previous {
            let window = cpu.over(before, now.duration_since(*then).as_secs_f64());
            cpu.usage_percent = window.usage_percent;
            cpu.throttled_percent = window.throttled_percent;
        }
        self.previous = Some((now, cpu.clone()));
        InstanceStats { cpu, memory }
    }
}

/// Logs the first failure to read the group; the later ones would repeat it every sample.
fn warn_once(warned: &mut bool, e: &super::cgroup::CgroupError) {
    if !std::mem::replace(warned, true) {
        tracing::warn!("{e}; reporting the host's figures while it cannot be read");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_host_as_an_instance_counts_busy_time_as_usage_and_steal_as_held_back() {
        let core = CpuTimes {
            user: 100,
            nice: 10,
            system: 50,
            idle: 800,
            iowait: 20,
            irq: 5,
            softirq: 5,
            steal: 30,
        };
        let cpu = host_cpu(&[core, core], 2);
        assert_eq!(cpu.source, FigureSource::Host);
        assert_eq!(cpu.capacity_cores, 2.0);
        assert!((cpu.usage_secs_total - 3.4).abs() < 1e-9, "{cpu:?}");
        assert!((cpu.throttled_secs_total - 0.6).abs() < 1e-9, "{cpu:?}");
    }

    #[test]
    fn the_first_reading_has_no_interval_and_the_next_one_shares_of_it() {
        let mut reader = InstanceReader::new();
        let memory = MemoryStats {
            total_bytes: 100,
            used_bytes: 40,
            ..MemoryStats::default()
        };
        let t0 = Instant::now();
        let first = reader.read(t0, &super::super::cpu_times::read().unwrap(), 2, &memory);
        assert_eq!(first.cpu.usage_percent, 0.0);
        let until = Instant::now() + std::time::Duration::from_millis(200);
        while Instant::now() < until {
            std::hint::black_box(0u64);
        }
        let cores = super::super::cpu_times::read().unwrap();
        let second = reader.read(Instant::now(), &cores, cores.len() as u32, &memory);
        assert!(second.cpu.usage_secs_total >= first.cpu.usage_secs_total);
        assert!(second.cpu.usage_percent >= 0.0, "{:?}", second.cpu);
        assert!(second.cpu.capacity_cores > 0.0);
        if second.memory.source == FigureSource::Host {
            assert_eq!(
                (second.memory.used_bytes, second.memory.limit_bytes),
                (40, 100)
            );
        }
    }
}
