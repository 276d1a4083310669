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
    /// Requests answered since start, all endpoints and errors included.
    pub total: u64,
    /// Requests being answered at sample time.
    pub in_flight: u64,
    /// Requests answered per endpoint (`/`, `/stats`, ...) and per error (`not_found`, ...).
    pub per_endpoint: BTreeMap<String, u64>,
    /// Time spent answering, over a recent window.
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
                total: 3,
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
    }
}
