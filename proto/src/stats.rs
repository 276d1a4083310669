//! The agent's stats snapshot (`GET /stats`, and `stats` inside the instance answers).
//!
//! Units are in the field names: `_bytes`, `_percent` (0-100, per core, so a process may exceed
//! 100 on several cores), `_per_sec`, `_ms`, `_secs`, `_unix_ms` (milliseconds since the epoch).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One sample of the host and of the agent itself, taken by the agent's background sampler.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatsSnapshot {
    /// Version of this document ([`crate::SCHEMA`]).
    pub schema: u32,
    /// The host's name (`/proc/sys/kernel/hostname`).
    pub hostname: String,
    /// Version of the `elb-agent` that took the sample.
    pub agent_version: String,
    /// When the agent started.
    pub started_at_unix_ms: u64,
    /// Seconds since the agent started, at sample time.
    pub uptime_secs: f64,
    /// When this sample was taken.
    pub sampled_at_unix_ms: u64,
    /// The sampler's interval; counters in this snapshot lag the live ones by at most this.
    pub sample_interval_ms: u64,
    /// Host CPU use over the last interval.
    pub cpu: CpuStats,
    /// Host load average.
    pub load: LoadAverage,
    /// Host memory and swap.
    pub memory: MemoryStats,
    /// Host network traffic, summed over every interface except loopback.
    pub network: NetworkStats,
    /// The agent process itself.
    pub process: ProcessStats,
    /// Requests served by the agent.
    pub requests: RequestStats,
    /// The instance's own CPU and memory: its cgroup where it has a CPU limit (a local
    /// instance), else the host's (an EC2 instance). Absent from agents older than this field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<InstanceStats>,
}

/// Where an instance's figures come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FigureSource {
    /// A cgroup v1 group (`cpu`, `cpuacct`, `memory` controllers).
    CgroupV1,
    /// A cgroup v2 group.
    CgroupV2,
    /// The whole host (`/proc/stat`, `/proc/meminfo`).
    Host,
}

impl FigureSource {
    /// The name as serialized (`cgroup_v1`, `cgroup_v2`, `host`).
    pub fn name(self) -> &'static str {
        match self {
            FigureSource::CgroupV1 => "cgroup_v1",
            FigureSource::CgroupV2 => "cgroup_v2",
            FigureSource::Host => "host",
        }
    }
}

/// The instance as CloudWatch would see it: CPU as a share of what it may use, the time it was
/// held back, and its memory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InstanceStats {
    /// CPU use and throttling.
    pub cpu: InstanceCpu,
    /// Memory use and limit.
    pub memory: InstanceMemory,
}

/// The instance's CPU. Cumulative counters (`_total`) let a reader compute exact figures over
/// any window between two snapshots of the same agent run ([`InstanceCpu::over`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InstanceCpu {
    /// `cgroup_v1` or `cgroup_v2` when the agent's group has a CPU quota, else `host`.
    pub source: FigureSource,
    /// The group (its path in the hierarchy, e.g. `/elb/demo/local-1a2b3c4d`); absent for `host`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cgroup: Option<String>,
    /// CPU the instance may use, in cores: quota / period for a group, else the host's cores.
    pub capacity_cores: f64,
    /// The host's online cores.
    pub host_cores: u32,
    /// CPU used over the last sample interval as a share of `capacity_cores`, 0-100 (what
    /// CloudWatch's `CPUUtilization` shows of an instance's vCPUs).
    pub usage_percent: f64,
    /// Time held back over the last sample interval, as a share of the host's CPU time
    /// (interval x `host_cores`), 0-100: throttled time for a group, steal time for the host.
    pub throttled_percent: f64,
    /// CPU time used since the group (or host) started, all cores summed.
    pub usage_secs_total: f64,
    /// Time held back, all cores summed: the group's throttled time (`throttled_time`,
    /// `throttled_usec`), or the host's steal time (a T instance out of credits shows steal).
    pub throttled_secs_total: f64,
    /// Quota periods in which the group ran (`nr_periods`); 0 for `host`.
    pub periods_total: u64,
    /// Periods in which the group used up its quota (`nr_throttled`); 0 for `host`.
    pub throttled_periods_total: u64,
}

/// Figures of one window between two readings of the same counters.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CpuWindow {
    /// CPU time used in the window, all cores summed.
    pub usage_secs: f64,
    /// `usage_secs` as a share of the window x `capacity_cores`, 0-100.
    pub usage_percent: f64,
    /// Time held back in the window as a share of the window x `host_cores`, 0-100.
    pub throttled_percent: f64,
}

impl InstanceCpu {
    /// The figures between `earlier` and `self`, `wall_secs` apart (the capacity and cores are
    /// `self`'s). A window of no length, or counters that went back (another agent run, another
    /// source), gives zeros.
    pub fn over(&self, earlier: &InstanceCpu, wall_secs: f64) -> CpuWindow {
        let usage = self.usage_secs_total - earlier.usage_secs_total;
        let throttled = self.throttled_secs_total - earlier.throttled_secs_total;
        if wall_secs <= 0.0 || usage < 0.0 || throttled < 0.0 || self.source != earlier.source {
            return CpuWindow::default();
        }
        let share = |secs: f64, cores: f64| {
            if cores > 0.0 {
                100.0 * secs / (wall_secs * cores)
            } else {
                0.0
            }
        };
        CpuWindow {
            usage_secs: usage,
            usage_percent: share(usage, self.capacity_cores),
            throttled_percent: share(throttled, f64::from(self.host_cores)),
        }
    }
}

/// The instance's memory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceMemory {
    /// `cgroup_v1` or `cgroup_v2` when the CPU's group is also the memory controller's group,
    /// else `host`.
    pub source: FigureSource,
    /// In use: the group's `memory.current` (v2) or `memory.usage_in_bytes` (v1), page cache
    /// included; the host's `MemTotal - MemAvailable`.
    pub used_bytes: u64,
    /// The group's limit (`memory.max`, `memory.limit_in_bytes`), else the host's `MemTotal`.
    pub limit_bytes: u64,
}

/// Host CPU use over the last sample interval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CpuStats {
    /// Busy share of all cores (everything but idle and iowait), 0-100.
    pub busy_percent: f64,
    /// Busy share of each core, in `/proc/stat` order, 0-100 each.
    pub per_core_busy_percent: Vec<f64>,
}

/// Host load average, as in `/proc/loadavg`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LoadAverage {
    /// Over 1 minute.
    pub one: f64,
    /// Over 5 minutes.
    pub five: f64,
    /// Over 15 minutes.
    pub fifteen: f64,
}

/// Host memory, from `/proc/meminfo`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemoryStats {
    /// `MemTotal`.
    pub total_bytes: u64,
    /// `MemTotal - MemAvailable` (what `free` calls used).
    pub used_bytes: u64,
    /// `MemAvailable`.
    pub available_bytes: u64,
    /// `SwapTotal`.
    pub swap_total_bytes: u64,
    /// `SwapTotal - SwapFree`.
    pub swap_used_bytes: u64,
}

/// Host network traffic, from `/proc/net/dev`, loopback excluded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NetworkStats {
    /// Bytes received since boot.
    pub rx_bytes: u64,
    /// Bytes sent since boot.
    pub tx_bytes: u64,
    /// Receive rate over the last interval.
    pub rx_bytes_per_sec: f64,
    /// Send rate over the last interval.
    pub tx_bytes_per_sec: f64,
}

/// The agent process's own footprint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProcessStats {
    /// Resident set size (`VmRSS`).
    pub rss_bytes: u64,
    /// CPU used over the last interval, 100 = one full core.
    pub cpu_percent: f64,
    /// CPU time (user + system) since start.
    pub cpu_secs_total: f64,
}

/// Requests served by the agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequestStats {
    /// Requests answered since start, every endpoint and error included but the monitoring
    /// ones (`/stats`, `/metrics`, `/healthz`), which `monitoring` counts: a watched, idle
    /// instance reads 0 new requests.
    pub total: u64,
    /// Monitoring requests answered since start (0 from an agent that counts them in `total`).
    #[serde(default)]
    pub monitoring: u64,
    /// Requests being answered at sample time.
    pub in_flight: u64,
    /// Requests answered per endpoint (`/`, `/stats`, ...) and per error (`not_found`, ...).
    pub per_endpoint: BTreeMap<String, u64>,
    /// Time spent answering the requests `total` counts, over a recent window.
    pub latency: LatencySummary,
}

/// Summary of the time the agent spent answering requests over a recent window.
///
/// Percentiles come from a log-bucketed histogram: they are upper bounds of their bucket,
/// within about 10% of the true value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LatencySummary {
    /// Length of the window the summary covers.
    pub window_secs: f64,
    /// Requests answered in the window.
    pub count: u64,
    /// Mean time per request, 0 when `count` is 0.
    pub mean_ms: f64,
    /// Median.
    pub p50_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::SCHEMA;

    pub(crate) fn snapshot() -> StatsSnapshot {
        StatsSnapshot {
            schema: SCHEMA,
            hostname: "ip-10-0-0-1".into(),
            agent_version: "0.1.0".into(),
            started_at_unix_ms: 1_700_000_000_000,
            uptime_secs: 12.5,
            sampled_at_unix_ms: 1_700_000_012_500,
            sample_interval_ms: 1000,
            cpu: CpuStats {
                busy_percent: 12.5,
                per_core_busy_percent: vec![10.0, 15.0],
            },
            load: LoadAverage {
                one: 0.5,
                five: 0.25,
                fifteen: 0.125,
            },
            memory: MemoryStats {
                total_bytes: 2 << 30,
                used_bytes: 1 << 30,
                available_bytes: 1 << 30,
                swap_total_bytes: 0,
                swap_used_bytes: 0,
            },
            network: NetworkStats {
                rx_bytes: 1000,
                tx_bytes: 2000,
                rx_bytes_per_sec: 10.0,
                tx_bytes_per_sec: 20.0,
            },
            process: ProcessStats {
                rss_bytes: 2 << 20,
                cpu_percent: 1.5,
                cpu_secs_total: 0.25,
            },
            requests: RequestStats {
                total: 2,
                monitoring: 1,
                in_flight: 1,
                per_endpoint: [("/".to_string(), 2), ("/stats".to_string(), 1)].into(),
                latency: LatencySummary {
                    window_secs: 10.0,
                    count: 3,
                    mean_ms: 0.05,
                    p50_ms: 0.04,
                    p99_ms: 0.125,
                },
            },
            instance: Some(InstanceStats {
                cpu: InstanceCpu {
                    source: FigureSource::CgroupV1,
                    cgroup: Some("/elb/p/local-1".into()),
                    capacity_cores: 0.2,
                    host_cores: 2,
                    usage_percent: 50.0,
                    throttled_percent: 10.0,
                    usage_secs_total: 1.5,
                    throttled_secs_total: 0.5,
                    periods_total: 100,
                    throttled_periods_total: 7,
                },
                memory: InstanceMemory {
                    source: FigureSource::Host,
                    used_bytes: 1 << 30,
                    limit_bytes: 2 << 30,
                },
            }),
        }
    }

    #[test]
    fn snapshot_round_trips() {
        let s = snapshot();
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(serde_json::from_str::<StatsSnapshot>(&json).unwrap(), s);
    }

    #[test]
    fn snapshot_field_names_are_the_documented_ones() {
        let v = serde_json::to_value(snapshot()).unwrap();
        let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "agent_version",
                "cpu",
                "hostname",
                "instance",
                "load",
                "memory",
                "network",
                "process",
                "requests",
                "sample_interval_ms",
                "sampled_at_unix_ms",
                "schema",
                "started_at_unix_ms",
                "uptime_secs",
            ]
        );
        assert_eq!(v["cpu"]["per_core_busy_percent"][1], 15.0);
        assert_eq!(v["load"]["fifteen"], 0.125);
        assert_eq!(v["memory"]["swap_used_bytes"], 0);
        assert_eq!(v["network"]["tx_bytes_per_sec"], 20.0);
        assert_eq!(v["process"]["rss_bytes"], 2 << 20);
        assert_eq!(v["requests"]["per_endpoint"]["/stats"], 1);
        assert_eq!(v["requests"]["latency"]["p99_ms"], 0.125);
        assert_eq!(v["instance"]["cpu"]["source"], "cgroup_v1");
        assert_eq!(v["instance"]["cpu"]["throttled_periods_total"], 7);
        assert_eq!(v["instance"]["memory"]["source"], "host");
        for source in [
            FigureSource::CgroupV1,
            FigureSource::CgroupV2,
            FigureSource::Host,
        ] {
            assert_eq!(serde_json::to_value(source).unwrap(), source.name());
        }
    }

    #[test]
    fn snapshots_of_older_agents_have_no_instance_figures() {
        let mut v = serde_json::to_value(snapshot()).unwrap();
        v.as_object_mut().unwrap().remove("instance");
        let s: StatsSnapshot = serde_json::from_value(v).unwrap();
        assert_eq!(s.instance, None);
    }

    fn cpu(usage: f64, throttled: f64) -> InstanceCpu {
        InstanceCpu {
            usage_secs_total: usage,
            throttled_secs_total: throttled,
            ..snapshot().instance.unwrap().cpu
        }
    }

    #[test]
    fn cpu_percent_is_usage_over_the_window_times_the_capacity() {
        // 0.2 cores of quota, 0.1 s used in 1 s: half of it; 0.4 s throttled of 2 host cores.
        let w = cpu(1.6, 0.9).over(&cpu(1.5, 0.5), 1.0);
        assert!((w.usage_secs - 0.1).abs() < 1e-9);
        assert!((w.usage_percent - 50.0).abs() < 1e-9, "{w:?}");
        assert!((w.throttled_percent - 20.0).abs() < 1e-9, "{w:?}");
        let over_two = cpu(1.9, 0.5).over(&cpu(1.5, 0.5), 2.0);
        assert!(
            (over_two.usage_percent - 100.0).abs() < 1e-9,
            "{over_two:?}"
        );
    }

    #[test]
    fn an_empty_window_or_counters_that_went_back_give_zeros() {
        assert_eq!(
            cpu(2.0, 1.0).over(&cpu(1.0, 0.5), 0.0),
            CpuWindow::default()
        );
        assert_eq!(
            cpu(1.0, 1.0).over(&cpu(2.0, 0.5), 1.0),
            CpuWindow::default()
        );
        let host = InstanceCpu {
            source: FigureSource::Host,
            ..cpu(1.0, 0.5)
        };
        assert_eq!(cpu(2.0, 1.0).over(&host, 1.0), CpuWindow::default());
    }
}
