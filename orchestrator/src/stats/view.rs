//! What `elb stats` shows: a row per instance, a row per cluster (sums and means over the
//! instances that answered), rendered as tables, JSON or CSV. CPU and memory are the
//! instance's own (its cgroup locally, the host on EC2; see [`CpuFigures`]).

use std::collections::BTreeMap;

use proto::StatsSnapshot;
use serde::Serialize;

use super::{CpuFigures, Reading};
use crate::output::{csv_line, table};

/// Version of the `elb stats --output json` document.
pub(crate) const SCHEMA: u32 = 1;

/// One instance in the stats view.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct InstanceRow {
    pub(crate) id: String,
    pub(crate) cluster: String,
    pub(crate) instance_type: String,
    /// `ip:port`, empty when the instance has no address.
    pub(crate) address: String,
    /// `up`, or `down` with `reason` set.
    pub(crate) status: &'static str,
    pub(crate) reason: Option<String>,
    /// The instance's CPU use as a share of its capacity (see [`CpuFigures`]).
    pub(crate) cpu_percent: Option<f64>,
    /// Share of the host's CPU time the instance was held back (throttled or stolen).
    pub(crate) throttled_percent: Option<f64>,
    /// CPU the instance may use, in cores.
    pub(crate) cpu_capacity_cores: Option<f64>,
    /// Where the CPU figures come from (`cgroup_v1`, `cgroup_v2`, `host`).
    pub(crate) cpu_source: Option<&'static str>,
    /// Where the memory figures come from.
    pub(crate) memory_source: Option<&'static str>,
    pub(crate) load1: Option<f64>,
    /// The instance's memory in use (its cgroup's, else the host's).
    pub(crate) memory_used_bytes: Option<u64>,
    /// The instance's memory limit (its cgroup's, else the host's total).
    pub(crate) memory_total_bytes: Option<u64>,
    /// Requests served since the agent started (every endpoint but `/stats`, `/metrics` and
    /// `/healthz`, which are monitoring).
    pub(crate) requests: Option<u64>,
    /// See [`request_rate`].
    pub(crate) requests_per_sec: Option<f64>,
    /// p99 over the agent's latency window.
    pub(crate) p99_ms: Option<f64>,
}

/// One cluster: sums of counts and rates, means of CPU and load, the worst p99.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct ClusterRow {
    pub(crate) cluster: String,
    pub(crate) instances: usize,
    /// `2 x t3.micro`, types in name order, comma-separated.
    pub(crate) instance_types: String,
    pub(crate) up: usize,
    pub(crate) cpu_percent_mean: Option<f64>,
    pub(crate) throttled_percent_mean: Option<f64>,
    pub(crate) load1_mean: Option<f64>,
    pub(crate) memory_used_bytes: u64,
    pub(crate) memory_total_bytes: u64,
    pub(crate) requests: u64,
    pub(crate) requests_per_sec: f64,
    /// Percentiles do not add up; this is the highest p99 of the cluster's instances.
    pub(crate) p99_ms_max: Option<f64>,
}

/// One poll as shown: instance rows in fleet order, then cluster rows by name.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct StatsView {
    pub(crate) schema: u32,
    pub(crate) polled_at_unix_ms: u64,
    pub(crate) instances: Vec<InstanceRow>,
    pub(crate) clusters: Vec<ClusterRow>,
}

impl StatsView {
    /// The view of `readings`; `previous` (the last poll, in `--watch`) gives the request rates.
    pub(crate) fn new(readings: &[Reading], previous: &[Reading], polled_at_unix_ms: u64) -> Self {
        let instances: Vec<InstanceRow> = readings
            .iter()
            .map(|r| {
                let before = previous
                    .iter()
                    .find(|p| p.agent.id == r.agent.id)
                    .and_then(Reading::snapshot);
                instance_row(r, before)
            })
            .collect();
        let clusters = cluster_rows(&instances);
        Self {
            schema: SCHEMA,
            polled_at_unix_ms,
            instances,
            clusters,
        }
    }

    /// How many agents did not answer.
    pub(crate) fn down(&self) -> usize {
        self.instances.iter().filter(|i| i.status != "up").count()
    }

    /// The two tables, instances then clusters.
    pub(crate) fn tables(&self) -> String {
        let mut instances = table([
            "id",
            "cluster",
            "type",
            "address",
            "CPU %",
            "throttled %",
            "CPU of",
            "load",
            "memory",
            "requests",
            "req/s",
            "p99 ms",
            "status",
        ]);
        for i in &self.instances {
            instances.add_row([
                i.id.clone(),
                i.cluster.clone(),
                i.instance_type.clone(),
                i.address.clone(),
                opt(i.cpu_percent, |v| format!("{v:.1}")),
                opt(i.throttled_percent, |v| format!("{v:.1}")),
                match (i.cpu_capacity_cores, i.cpu_source) {
                    (Some(cores), Some(source)) => format!("{cores:.2} cores ({source})"),
                    _ => "-".into(),
                },
                opt(i.load1, |v| format!("{v:.2}")),
                memory(i.memory_used_bytes, i.memory_total_bytes),
                opt(i.requests, |v| v.to_string()),
                opt(i.requests_per_sec, |v| format!("{v:.1}")),
                opt(i.p99_ms, |v| format!("{v:.2}")),
                match &i.reason {
                    Some(reason) => format!("down: {reason}"),
                    None => "up".into(),
                },
            ]);
        }
        let mut clusters = table([
            "cluster",
            "types",
            "up",
            "CPU % (mean)",
            "throttled % (mean)",
            "load (mean)",
            "memory",
            "requests",
            "req/s",
            "p99 ms (max)",
        ]);
        for c in &self.clusters {
            clusters.add_row([
                c.cluster.clone(),
                c.instance_types.clone(),
                format!("{}/{}", c.up, c.instances),
                opt(c.cpu_percent_mean, |v| format!("{v:.1}")),
                opt(c.throttled_percent_mean, |v| format!("{v:.1}")),
                opt(c.load1_mean, |v| format!("{v:.2}")),
                memory(Some(c.memory_used_bytes), Some(c.memory_total_bytes)),
                c.requests.to_string(),
                format!("{:.1}", c.requests_per_sec),
                opt(c.p99_ms_max, |v| format!("{v:.2}")),
            ]);
        }
        format!("{instances}\n{clusters}")
    }

    /// The view as one JSON document.
    pub(crate) fn json(&self) -> String {
        serde_json::to_string_pretty(self).expect("the stats view serializes")
    }

    /// One CSV line per instance, with a header line; unknown values are empty fields.
    pub(crate) fn csv(&self) -> String {
        let mut out = csv_line([
            "id",
            "cluster",
            "instance_type",
            "address",
            "status",
            "reason",
            "cpu_percent",
            "load1",
            "memory_used_bytes",
            "memory_total_bytes",
            "requests",
            "requests_per_sec",
            "p99_ms",
            "throttled_percent",
            "cpu_capacity_cores",
            "cpu_source",
            "memory_source",
        ]);
        let num = |v: Option<f64>| v.map(|v| format!("{v:.3}")).unwrap_or_default();
        let int = |v: Option<u64>| v.map(|v| v.to_string()).unwrap_or_default();
        for i in &self.instances {
            out.push('\n');
            out.push_str(&csv_line([
                i.id.clone(),
                i.cluster.clone(),
                i.instance_type.clone(),
                i.address.clone(),
                i.status.to_owned(),
                i.reason.clone().unwrap_or_default(),
                num(i.cpu_percent),
                num(i.load1),
                int(i.memory_used_bytes),
                int(i.memory_total_bytes),
                int(i.requests),
                num(i.requests_per_sec),
                num(i.p99_ms),
                num(i.throttled_percent),
                num(i.cpu_capacity_cores),
                i.cpu_source.unwrap_or_default().to_owned(),
                i.memory_source.unwrap_or_default().to_owned(),
            ]));
        }
        out
    }
}

fn opt<T>(value: Option<T>, show: impl Fn(T) -> String) -> String {
    value.map_or_else(|| "-".into(), show)
}

fn memory(used: Option<u64>, total: Option<u64>) -> String {
    match (used, total) {
        (Some(used), Some(total)) => {
            let mib = |b: u64| b as f64 / (1 << 20) as f64;
            format!("{:.0}/{:.0} MiB", mib(used), mib(total))
        }
        _ => "-".into(),
    }
}

/// Requests per second since the last sample: from the counters of two snapshots of the same
/// agent run (`previous`, in `--watch`), else from the agent's latency window (requests in the
/// window over its length, or over the uptime when the agent is younger than the window).
pub(crate) fn request_rate(previous: Option<&StatsSnapshot>, now: &StatsSnapshot) -> f64 {
    if let Some(before) = previous {
        let same_run = before.started_at_unix_ms == now.started_at_unix_ms;
        let ms = now
            .sampled_at_unix_ms
            .saturating_sub(before.sampled_at_unix_ms);
        if same_run && ms > 0 && now.requests.total >= before.requests.total {
            return (now.requests.total - before.requests.total) as f64 * 1000.0 / ms as f64;
        }
    }
    let window = &now.requests.latency;
    let secs = window.window_secs.min(now.uptime_secs);
    if secs > 0.0 {
        window.count as f64 / secs
    } else {
        0.0
    }
}

fn instance_row(reading: &Reading, previous: Option<&StatsSnapshot>) -> InstanceRow {
    let agent = &reading.agent;
    let s = reading.snapshot();
    let cpu = s.map(|s| CpuFigures::of(previous, s));
    let instance = s.and_then(|s| s.instance.as_ref());
    InstanceRow {
        id: agent.id.clone(),
        cluster: agent.cluster.clone(),
        instance_type: agent.instance_type.clone(),
        address: agent.addr.map(|a| a.to_string()).unwrap_or_default(),
        status: if s.is_some() { "up" } else { "down" },
        reason: reading.result.as_ref().err().cloned(),
        cpu_percent: cpu.map(|c| c.usage_percent),
        throttled_percent: cpu.and_then(|c| c.throttled_percent),
        cpu_capacity_cores: instance.map(|i| i.cpu.capacity_cores),
        cpu_source: instance.map(|i| i.cpu.source.name()),
        memory_source: instance.map(|i| i.memory.source.name()),
        load1: s.map(|s| s.load.one),
        memory_used_bytes: s.map(|s| instance.map_or(s.memory.used_bytes, |i| i.memory.used_bytes)),
        memory_total_bytes: s
            .map(|s| instance.map_or(s.memory.total_bytes, |i| i.memory.limit_bytes)),
        requests: s.map(|s| s.requests.total),
        requests_per_sec: s.map(|s| request_rate(previous, s)),
        p99_ms: s.map(|s| s.requests.latency.p99_ms),
    }
}

fn mean(values: impl Iterator<Item = f64>) -> Option<f64> {
    let (sum, n) = values.fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
    (n > 0).then(|| sum / n as f64)
}

/// `2 x m4.large, 1 x t3.micro`: how many instances of each type, types in name order.
pub(crate) fn type_counts<'a>(types: impl Iterator<Item = &'a str>) -> String {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for t in types {
        *counts.entry(t).or_default() += 1;
    }
    counts
        .into_iter()
        .map(|(t, n)| format!("{n} x {t}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn cluster_rows(instances: &[InstanceRow]) -> Vec<ClusterRow> {
    let mut by_cluster: BTreeMap<&str, Vec<&InstanceRow>> = BTreeMap::new();
    for i in instances {
        by_cluster.entry(&i.cluster).or_default().push(i);
    }
    by_cluster
        .into_iter()
        .map(|(cluster, rows)| ClusterRow {
            cluster: cluster.to_owned(),
            instances: rows.len(),
            instance_types: type_counts(rows.iter().map(|r| r.instance_type.as_str())),
            up: rows.iter().filter(|r| r.status == "up").count(),
            cpu_percent_mean: mean(rows.iter().filter_map(|r| r.cpu_percent)),
            throttled_percent_mean: mean(rows.iter().filter_map(|r| r.throttled_percent)),
            load1_mean: mean(rows.iter().filter_map(|r| r.load1)),
            memory_used_bytes: rows.iter().filter_map(|r| r.memory_used_bytes).sum(),
            memory_total_bytes: rows.iter().filter_map(|r| r.memory_total_bytes).sum(),
            requests: rows.iter().filter_map(|r| r.requests).sum(),
            requests_per_sec: rows.iter().filter_map(|r| r.requests_per_sec).sum(),
            p99_ms_max: rows.iter().filter_map(|r| r.p99_ms).reduce(f64::max),
        })
        .collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::stats::Agent;

    /// A snapshot with the given counters and CPU.
    pub(crate) fn snapshot(total: u64, sampled_at: u64, cpu: f64) -> StatsSnapshot {
        let json = serde_json::json!({
            "schema": 1, "hostname": "h", "agent_version": "0.1.0",
            "started_at_unix_ms": 1_000, "uptime_secs": 60.0,
            "sampled_at_unix_ms": sampled_at, "sample_interval_ms": 1000,
            "cpu": {"busy_percent": cpu, "per_core_busy_percent": [cpu]},
            "load": {"one": 0.5, "five": 0.0, "fifteen": 0.0},
            "memory": {"total_bytes": 2u64 << 30, "used_bytes": 1u64 << 30,
                       "available_bytes": 1u64 << 30, "swap_total_bytes": 0, "swap_used_bytes": 0},
            "network": {"rx_bytes": 0, "tx_bytes": 0, "rx_bytes_per_sec": 0.0, "tx_bytes_per_sec": 0.0},
            "process": {"rss_bytes": 0, "cpu_percent": 0.0, "cpu_secs_total": 0.0},
            "requests": {"total": total, "in_flight": 0, "per_endpoint": {"/cluster1": total},
                         "latency": {"window_secs": 10.0, "count": 50, "mean_ms": 0.1,
                                     "p50_ms": 0.1, "p99_ms": cpu / 10.0}}
        });
        serde_json::from_value(json).unwrap()
    }

    /// `s` with instance figures: a 0.2-core cgroup with the given uptime and counters, whose
    /// last interval showed 40% CPU and 4% throttled.
    pub(crate) fn with_instance(
        mut s: StatsSnapshot,
        uptime: f64,
        usage: f64,
        throttled: f64,
    ) -> StatsSnapshot {
        use proto::{FigureSource, InstanceCpu, InstanceMemory, InstanceStats};
        s.uptime_secs = uptime;
        s.instance = Some(InstanceStats {
            cpu: InstanceCpu {
                source: FigureSource::CgroupV1,
                cgroup: Some("/elb/p/i".into()),
                capacity_cores: 0.2,
                host_cores: 2,
                usage_percent: 40.0,
                throttled_percent: 4.0,
                usage_secs_total: usage,
                throttled_secs_total: throttled,
                periods_total: 10,
                throttled_periods_total: 5,
            },
            memory: InstanceMemory {
                source: FigureSource::CgroupV1,
                used_bytes: 4 << 20,
                limit_bytes: 64 << 20,
            },
        });
        s
    }

    /// The row of an agent `id` of cluster `c1` that answered with `requests_per_sec`.
    pub(crate) fn row(id: &str, requests_per_sec: Option<f64>) -> InstanceRow {
        let mut row = instance_row(&reading(id, "c1", Ok(snapshot(0, 1_000, 10.0))), None);
        row.requests_per_sec = requests_per_sec;
        row
    }

    /// A t3.micro's reading in `cluster`.
    pub(crate) fn reading(
        id: &str,
        cluster: &str,
        result: Result<StatsSnapshot, String>,
    ) -> Reading {
        Reading {
            agent: Agent {
                id: id.into(),
                cluster: cluster.into(),
                instance_type: "t3.micro".into(),
                addr: Some("127.0.0.1:8000".parse().unwrap()),
                state: "running".into(),
            },
            result,
        }
    }

    fn fleet() -> Vec<Reading> {
        vec![
            reading("i-1", "c1", Ok(snapshot(100, 10_000, 20.0))),
            reading("i-2", "c1", Ok(snapshot(300, 10_000, 40.0))),
            reading("i-3", "c1", Err("connection refused".into())),
            reading("i-4", "c2", Ok(snapshot(7, 10_000, 5.0))),
        ]
    }

    #[test]
    fn rate_comes_from_two_snapshots_else_from_the_latency_window() {
        let now = snapshot(300, 12_000, 0.0);
        assert_eq!(request_rate(Some(&snapshot(100, 10_000, 0.0)), &now), 100.0);
        assert_eq!(
            request_rate(None, &now),
            5.0,
            "50 requests in a 10 s window"
        );
        let same_sample = snapshot(300, 12_000, 0.0);
        assert_eq!(request_rate(Some(&same_sample), &now), 5.0);
        let mut restarted = snapshot(100, 10_000, 0.0);
        restarted.started_at_unix_ms = 5;
        assert_eq!(request_rate(Some(&restarted), &now), 5.0);
    }

    #[test]
    fn clusters_sum_counts_average_cpu_over_answering_agents_and_keep_the_worst_p99() {
        let view = StatsView::new(&fleet(), &[], 0);
        assert_eq!(view.down(), 1);
        let c1 = &view.clusters[0];
        assert_eq!((c1.cluster.as_str(), c1.instances, c1.up), ("c1", 3, 2));
        assert_eq!(c1.requests, 400);
        assert_eq!(c1.cpu_percent_mean, Some(30.0));
        assert_eq!(c1.p99_ms_max, Some(4.0));
        assert_eq!(c1.memory_total_bytes, 4 << 30);
        assert_eq!(c1.requests_per_sec, 10.0);
        assert_eq!(view.clusters[1].requests, 7);
        assert_eq!(c1.instance_types, "3 x t3.micro");
    }

    #[test]
    fn instance_figures_replace_the_hosts_in_every_format() {
        let mut fleet = fleet();
        fleet[0].result = Ok(with_instance(snapshot(100, 10_000, 20.0), 60.0, 1.0, 0.1));
        let view = StatsView::new(&fleet, &[], 0);
        let i1 = &view.instances[0];
        assert_eq!(
            (i1.cpu_percent, i1.throttled_percent),
            (Some(40.0), Some(4.0))
        );
        assert_eq!(
            (i1.cpu_source, i1.memory_source),
            (Some("cgroup_v1"), Some("cgroup_v1"))
        );
        assert_eq!(
            (i1.memory_used_bytes, i1.memory_total_bytes),
            (Some(4 << 20), Some(64 << 20))
        );
        assert_eq!(view.instances[1].throttled_percent, None, "an older agent");
        let tables = view.tables();
        assert!(tables.contains("0.20 cores (cgroup_v1)"), "{tables}");
        assert!(tables.contains("3 x t3.micro"), "{tables}");
        let csv = view.csv();
        assert!(
            csv.lines()
                .nth(1)
                .unwrap()
                .ends_with(",4.000,0.200,cgroup_v1,cgroup_v1"),
            "{csv}"
        );
        assert_eq!(type_counts(["b", "a", "b"].into_iter()), "1 x a, 2 x b");
    }

    #[test]
    fn a_down_agent_keeps_its_row_and_reason_in_every_format() {
        let view = StatsView::new(&fleet(), &[], 0);
        let tables = view.tables();
        assert!(tables.contains("down: connection refused"), "{tables}");
        let json: serde_json::Value = serde_json::from_str(&view.json()).unwrap();
        assert_eq!(json["schema"], 1);
        assert_eq!(json["instances"][2]["status"], "down");
        assert_eq!(json["instances"][2]["reason"], "connection refused");
        assert!(json["instances"][2]["cpu_percent"].is_null());
        let csv = view.csv();
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines.len(), 5);
        assert!(lines[0].starts_with("id,cluster,instance_type,address,status,reason,"));
        assert!(
            lines[3].starts_with("i-3,c1,t3.micro,127.0.0.1:8000,down,connection refused,,"),
            "{}",
            lines[3]
        );
    }
}
