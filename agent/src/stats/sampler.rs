//! The background sampler: reads the host (sysinfo, and the per-mode CPU times it lacks), the
//! instance (its cgroup, which sysinfo knows nothing of) and the live request counters once per
//! interval and turns them into a [`Sample`].

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use proto::{CpuStats, NetworkStats, ProcessStats, RequestStats, StatsSnapshot, SCHEMA};

use super::cpu_times::{self, CpuTimes};
use super::host::{Host, InterfaceBytes};
use super::instance::InstanceReader;
use super::latency::LatencyWindow;
use super::Live;

/// Raw cumulative readings that `/metrics` exports beside the snapshot.
#[derive(Debug, Clone, Default)]
pub(crate) struct Readings {
    /// Per core, in core order; empty if `/proc/stat` could not be read.
    pub cpu_times: Vec<CpuTimes>,
    /// Every interface, loopback included.
    pub interfaces: Vec<InterfaceBytes>,
}

/// One interval's result.
pub(crate) struct Sample {
    pub snapshot: StatsSnapshot,
    pub readings: Readings,
    /// Requests answered since start and their total time in seconds.
    pub latency_lifetime: (u64, f64),
}

/// Sampler state carried from one interval to the next.
pub(crate) struct Sampler {
    hostname: String,
    interval: Duration,
    started: Instant,
    started_unix_ms: u64,
    host: Host,
    instance: InstanceReader,
    /// When the previous sample was taken.
    previous: Option<Instant>,
    latency: LatencyWindow,
    /// Whether the failure to read the per-mode CPU times was logged already.
    warned_cpu_times: bool,
}

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl Sampler {
    pub(crate) fn new(hostname: String, interval: Duration, latency_window: Duration) -> Self {
        Self {
            hostname,
            interval,
            started: Instant::now(),
            started_unix_ms: unix_ms(SystemTime::now()),
            host: Host::new(),
            instance: InstanceReader::new(),
            previous: None,
            latency: LatencyWindow::new(latency_window, interval),
            warned_cpu_times: false,
        }
    }

    /// The sampler's interval.
    pub(crate) fn interval(&self) -> Duration {
        self.interval
    }

    /// The per-mode CPU times; on failure warns once and carries on without them.
    fn cpu_times(&mut self) -> Vec<CpuTimes> {
        cpu_times::read().unwrap_or_else(|e| {
            if !std::mem::replace(&mut self.warned_cpu_times, true) {
                tracing::warn!("{e}; /metrics leaves out node_cpu_seconds_total");
            }
            Vec::new()
        })
    }

    /// Takes one sample of the host, the process and the request counters.
    pub(crate) fn sample(&mut self, live: &Live) -> Sample {
        let now = Instant::now();
        let host = self.host.read();
        let readings = Readings {
            cpu_times: self.cpu_times(),
            interfaces: host.interfaces,
        };
        self.latency.push(live.latency.take());
        let host_cores = u32::try_from(host.cpu.per_core_busy_percent.len()).unwrap_or(u32::MAX);
        let instance = self
            .instance
            .read(now, &readings.cpu_times, host_cores, &host.memory);

        let (rx_bytes, tx_bytes) = readings
            .interfaces
            .iter()
            .filter(|i| !i.is_loopback())
            .fold((0, 0), |(rx, tx), i| (rx + i.rx_bytes, tx + i.tx_bytes));
        let (rx_bytes_per_sec, tx_bytes_per_sec) = match self.previous {
            Some(then) => {
                let secs = now.duration_since(then).as_secs_f64().max(1e-3);
                (
                    host.rx_since_last as f64 / secs,
                    host.tx_since_last as f64 / secs,
                )
            }
            None => (0.0, 0.0),
        };

        let snapshot = StatsSnapshot {
            schema: SCHEMA,
            hostname: self.hostname.clone(),
            agent_version: env!("CARGO_PKG_VERSION").to_string(),
            started_at_unix_ms: self.started_unix_ms,
            uptime_secs: now.duration_since(self.started).as_secs_f64(),
            sampled_at_unix_ms: unix_ms(SystemTime::now()),
            sample_interval_ms: u64::try_from(self.interval.as_millis()).unwrap_or(u64::MAX),
            cpu: CpuStats {
                busy_percent: host.cpu.busy_percent,
                per_core_busy_percent: host.cpu.per_core_busy_percent,
            },
            load: host.load,
            memory: host.memory,
            network: NetworkStats {
                rx_bytes,
                tx_bytes,
                rx_bytes_per_sec,
                tx_bytes_per_sec,
            },
            process: ProcessStats {
                rss_bytes: host.rss_bytes,
                cpu_percent: host.cpu.process_percent,
                cpu_secs_total: host.process_cpu_secs,
            },
            requests: {
                let per_endpoint = live.counters.per_route();
                let (total, monitoring) = live.counters.totals();
                RequestStats {
                    total,
                    monitoring,
                    in_flight: live.counters.in_flight(),
                    per_endpoint,
                    latency: self.latency.summary(),
                }
            },
            instance: Some(instance),
        };
        self.previous = Some(now);
        Sample {
            snapshot,
            readings,
            latency_lifetime: self.latency.lifetime(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::counters::Route;

    #[test]
    fn samples_of_this_host_are_plausible() {
        let live = Live::default();
        let mut sampler = Sampler::new(
            "h".into(),
            Duration::from_millis(10),
            Duration::from_secs(1),
        );
        let first = sampler.sample(&live);
        assert_eq!(first.snapshot.cpu.busy_percent, 0.0);
        let cores = first.readings.cpu_times.len();
        assert!(cores > 0);
        assert_eq!(first.snapshot.cpu.per_core_busy_percent.len(), cores);
        assert!(first.readings.interfaces.iter().any(|i| i.is_loopback()));

        drop(live.counters.start());
        live.counters.count(Route::Root);
        live.counters.count(Route::Stats);
        live.latency.record(Duration::from_micros(50));
        std::thread::sleep(Duration::from_millis(20));
        let second = sampler.sample(&live).snapshot;
        assert!((0.0..=100.0).contains(&second.cpu.busy_percent));
        assert_eq!(second.cpu.per_core_busy_percent.len(), cores);
        assert!(second.network.rx_bytes_per_sec >= 0.0);
        assert_eq!(second.requests.in_flight, 0);
        assert!(second.memory.total_bytes > 0);
        assert!(second.process.rss_bytes > 0);
        assert_eq!(second.requests.total, 1, "the /stats request is monitoring");
        assert_eq!(second.requests.monitoring, 1);
        assert_eq!(second.requests.per_endpoint["/"], 1);
        assert_eq!(second.requests.latency.count, 1);
        assert!(second.uptime_secs > 0.0);
        let instance = second.instance.expect("instance figures");
        assert!(instance.cpu.capacity_cores > 0.0);
        assert_eq!(instance.cpu.host_cores as usize, cores);
        assert!(instance.memory.limit_bytes > 0);
        assert_eq!(second.hostname, "h");
    }
}
