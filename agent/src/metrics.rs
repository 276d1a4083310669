//! `/metrics`: Prometheus text exposition format 0.0.4, rendered once per sample.
//!
//! Host metrics that node_exporter also exports carry its names (`node_load1`,
//! `node_cpu_seconds_total`, ...), the process ones the client libraries' (`process_*`), and
//! the agent's own are prefixed `elb_agent_`.

use std::fmt::Write;

use crate::identity::Identity;
use crate::stats::sampler::Sample;
use crate::stats::USER_HZ;

/// Content type of the exposition.
pub(crate) const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Renders one sample as Prometheus text.
pub(crate) fn render(identity: &Identity, sample: &Sample) -> String {
    let s = &sample.snapshot;
    let r = &sample.readings;
    let mut out = Exposition(String::with_capacity(4096));

    out.family("node_load1", "gauge", "1m load average.");
    out.sample("node_load1", &[], s.load.one);
    out.family("node_load5", "gauge", "5m load average.");
    out.sample("node_load5", &[], s.load.five);
    out.family("node_load15", "gauge", "15m load average.");
    out.sample("node_load15", &[], s.load.fifteen);

    out.family(
        "node_cpu_seconds_total",
        "counter",
        "Seconds the CPUs spent in each mode.",
    );
    for (core, times) in r.cpu_times.iter().enumerate() {
        let core = core.to_string();
        for (mode, ticks) in times.modes() {
            let labels = [("cpu", core.as_str()), ("mode", mode)];
            out.sample("node_cpu_seconds_total", &labels, ticks as f64 / USER_HZ);
        }
    }

    let m = &s.memory;
    let memory = [
        ("node_memory_MemTotal_bytes", "MemTotal", m.total_bytes),
        (
            "node_memory_MemAvailable_bytes",
            "MemAvailable",
            m.available_bytes,
        ),
        (
            "node_memory_SwapTotal_bytes",
            "SwapTotal",
            m.swap_total_bytes,
        ),
        (
            "node_memory_SwapFree_bytes",
            "SwapFree",
            m.swap_total_bytes.saturating_sub(m.swap_used_bytes),
        ),
    ];
    for (name, field, bytes) in memory {
        out.family(
            name,
            "gauge",
            &format!("Memory information field {field}_bytes."),
        );
        out.sample(name, &[], bytes as f64);
    }

    for (name, direction) in [
        ("node_network_receive_bytes_total", "receive"),
        ("node_network_transmit_bytes_total", "transmit"),
    ] {
        out.family(
            name,
            "counter",
            &format!("Network device statistic {direction}_bytes."),
        );
        for i in &r.interfaces {
            let bytes = if direction == "receive" {
                i.rx_bytes
            } else {
                i.tx_bytes
            };
            out.sample(name, &[("device", &i.name)], bytes as f64);
        }
    }

    out.family(
        "process_resident_memory_bytes",
        "gauge",
        "Resident memory size in bytes.",
    );
    out.sample(
        "process_resident_memory_bytes",
        &[],
        s.process.rss_bytes as f64,
    );
    out.family(
        "process_cpu_seconds_total",
        "counter",
        "Total user and system CPU time spent in seconds.",
    );
    out.sample("process_cpu_seconds_total", &[], s.process.cpu_secs_total);
    out.family(
        "process_start_time_seconds",
        "gauge",
        "Start time of the process since unix epoch in seconds.",
    );
    out.sample(
        "process_start_time_seconds",
        &[],
        s.started_at_unix_ms as f64 / 1000.0,
    );

    out.family(
        "elb_agent_info",
        "gauge",
        "The agent's version and this instance's identity; always 1.",
    );
    let or_empty = |v: &Option<String>| v.clone().unwrap_or_default();
    let info = [
        ("version", s.agent_version.clone()),
        ("hostname", identity.hostname.clone()),
        ("cluster", or_empty(&identity.cluster)),
        ("instance_id", or_empty(&identity.instance_id)),
        ("instance_type", or_empty(&identity.instance_type)),
        ("availability_zone", or_empty(&identity.availability_zone)),
    ];
    let info: Vec<(&str, &str)> = info.iter().map(|(k, v)| (*k, v.as_str())).collect();
    out.sample("elb_agent_info", &info, 1.0);

    out.family(
        "elb_agent_uptime_seconds",
        "gauge",
        "Seconds since the agent started.",
    );
    out.sample("elb_agent_uptime_seconds", &[], s.uptime_secs);

    out.family(
        "elb_agent_cpu_busy_percent",
        "gauge",
        "Host CPU busy share over the last sample interval, 0-100; cpu=\"all\" for all cores.",
    );
    out.sample(
        "elb_agent_cpu_busy_percent",
        &[("cpu", "all")],
        s.cpu.busy_percent,
    );
    for (core, busy) in s.cpu.per_core_busy_percent.iter().enumerate() {
        out.sample(
            "elb_agent_cpu_busy_percent",
            &[("cpu", &core.to_string())],
            *busy,
        );
    }

    out.family(
        "elb_agent_memory_used_bytes",
        "gauge",
        "Host memory in use (MemTotal - MemAvailable).",
    );
    out.sample("elb_agent_memory_used_bytes", &[], m.used_bytes as f64);

    out.family(
        "elb_agent_network_bytes_per_second",
        "gauge",
        "Host network rate over the last sample interval, loopback excluded.",
    );
    out.sample(
        "elb_agent_network_bytes_per_second",
        &[("direction", "receive")],
        s.network.rx_bytes_per_sec,
    );
    out.sample(
        "elb_agent_network_bytes_per_second",
        &[("direction", "transmit")],
        s.network.tx_bytes_per_sec,
    );

    out.family(
        "elb_agent_process_cpu_percent",
        "gauge",
        "The agent's CPU use over the last sample interval, 100 = one core.",
    );
    out.sample("elb_agent_process_cpu_percent", &[], s.process.cpu_percent);

    if let Some(instance) = &s.instance {
        instance_metrics(&mut out, instance);
    }

    out.family(
        "elb_agent_requests_total",
        "counter",
        "Requests answered, per endpoint or error.",
    );
    for (endpoint, n) in &s.requests.per_endpoint {
        out.sample(
            "elb_agent_requests_total",
            &[("endpoint", endpoint)],
            *n as f64,
        );
    }
    out.family(
        "elb_agent_requests_in_flight",
        "gauge",
        "Requests being answered at sample time.",
    );
    out.sample(
        "elb_agent_requests_in_flight",
        &[],
        s.requests.in_flight as f64,
    );

    let latency = &s.requests.latency;
    let (count, sum) = sample.latency_lifetime;
    out.family("elb_agent_request_duration_seconds", "summary", "Time spent answering requests; quantiles over the recent window, sum and count since start.");
    for (q, ms) in [("0.5", latency.p50_ms), ("0.99", latency.p99_ms)] {
        out.sample(
            "elb_agent_request_duration_seconds",
            &[("quantile", q)],
            ms / 1000.0,
        );
    }
    out.sample("elb_agent_request_duration_seconds_sum", &[], sum);
    out.sample(
        "elb_agent_request_duration_seconds_count",
        &[],
        count as f64,
    );
    out.0
}

/// The instance's own figures (its cgroup, else the host): cumulative counters for exact
/// rates over any window, and the last interval's shares.
fn instance_metrics(out: &mut Exposition, instance: &proto::InstanceStats) {
    let (cpu, memory) = (&instance.cpu, &instance.memory);
    out.family(
        "elb_agent_instance_info",
        "gauge",
        "Where the instance figures come from (its cgroup, else the host); always 1.",
    );
    out.sample(
        "elb_agent_instance_info",
        &[
            ("cpu_source", cpu.source.name()),
            ("memory_source", memory.source.name()),
            ("cgroup", cpu.cgroup.as_deref().unwrap_or("")),
        ],
        1.0,
    );
    let counters = [
        (
            "elb_agent_instance_cpu_usage_seconds_total",
            "CPU time the instance used, all cores summed.",
            cpu.usage_secs_total,
        ),
        (
            "elb_agent_instance_cpu_throttled_seconds_total",
            "Time the instance was held back, all cores summed: cgroup throttled time, or host steal time.",
            cpu.throttled_secs_total,
        ),
        (
            "elb_agent_instance_cpu_periods_total",
            "CFS quota periods in which the instance's cgroup ran; 0 without a cgroup.",
            cpu.periods_total as f64,
        ),
        (
            "elb_agent_instance_cpu_throttled_periods_total",
            "CFS quota periods in which the instance's cgroup used up its quota; 0 without a cgroup.",
            cpu.throttled_periods_total as f64,
        ),
    ];
    for (name, help, value) in counters {
        out.family(name, "counter", help);
        out.sample(name, &[], value);
    }
    let gauges = [
        (
            "elb_agent_instance_cpu_capacity_cores",
            "CPU the instance may use, in cores: its cgroup's quota, else the host's cores.",
            cpu.capacity_cores,
        ),
        (
            "elb_agent_instance_cpu_utilization_percent",
            "CPU used over the last sample interval as a share of the capacity, 0-100 (like CloudWatch CPUUtilization).",
            cpu.usage_percent,
        ),
        (
            "elb_agent_instance_cpu_throttled_percent",
            "Time held back over the last sample interval as a share of the host's CPU time, 0-100.",
            cpu.throttled_percent,
        ),
        (
            "elb_agent_instance_memory_used_bytes",
            "Memory the instance uses: its cgroup's (page cache included), else the host's.",
            memory.used_bytes as f64,
        ),
        (
            "elb_agent_instance_memory_limit_bytes",
            "Memory the instance may use: its cgroup's limit, else the host's total.",
            memory.limit_bytes as f64,
        ),
    ];
    for (name, help, value) in gauges {
        out.family(name, "gauge", help);
        out.sample(name, &[], value);
    }
}

/// A Prometheus text document being written.
struct Exposition(String);

impl Exposition {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        // Writing to a String cannot fail.
        let _ = write!(self.0, "# HELP {name} {help}\n# TYPE {name} {kind}\n");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.0.push_str(name);
        if !labels.is_empty() {
            self.0.push('{');
            for (i, (key, value)) in labels.iter().enumerate() {
                if i > 0 {
                    self.0.push(',');
                }
                let _ = write!(self.0, "{key}=\"{}\"", escape_label(value));
            }
            self.0.push('}');
        }
        let _ = writeln!(self.0, " {value}");
    }
}

/// Escapes a label value as the text format requires.
fn escape_label(value: &str) -> String {
    value
        .replace('\\', r"\\")
        .replace('"', r#"\""#)
        .replace('\n', r"\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape_label("a\"b\\c\nd"), r#"a\"b\\c\nd"#);
    }

    #[test]
    fn samples_with_and_without_labels() {
        let mut out = Exposition(String::new());
        out.family("x_total", "counter", "Things.");
        out.sample("x_total", &[], 3.0);
        out.sample("x_total", &[("a", "1"), ("b", "q\"")], 0.5);
        assert_eq!(
            out.0,
            "# HELP x_total Things.\n# TYPE x_total counter\nx_total 3\nx_total{a=\"1\",b=\"q\\\"\"} 0.5\n"
        );
    }
}
