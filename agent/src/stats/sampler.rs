//! The background sampler: reads `/proc` and the live request counters once per interval and
//! turns them into a [`Sample`].

use std::collections::BTreeSet;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use proto::{CpuStats, NetworkStats, ProcessStats, RequestStats, StatsSnapshot, SCHEMA};

use super::latency::LatencyWindow;
use super::procfs::{self, CpuSample, InterfaceBytes, ProcfsError};
use super::Live;

/// Raw cumulative readings, kept to compute the next interval's rates and for `/metrics`.
#[derive(Debug, Clone, Default)]
pub(crate) struct Readings {
    pub cpu: CpuSample,
    pub interfaces: Vec<InterfaceBytes>,
    pub process_cpu_ticks: u64,
}

impl Readings {
    /// Received and sent bytes over every interface but loopback.
    fn network_totals(&self) -> (u64, u64) {
        self.interfaces
            .iter()
            .filter(|i| !i.is_loopback())
            .fold((0, 0), |(rx, tx), i| (rx + i.rx_bytes, tx + i.tx_bytes))
    }
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
    previous: Option<(Instant, Readings)>,
    latency: LatencyWindow,
    warned: BTreeSet<&'static str>,
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
            previous: None,
            latency: LatencyWindow::new(latency_window, interval),
            warned: BTreeSet::new(),
        }
    }

    /// The sampler's interval.
    pub(crate) fn interval(&self) -> Duration {
        self.interval
    }

    /// Reads a `/proc` file; on failure warns once per file and carries on with a default.
    fn read<T: Default>(
        &mut self,
        path: &'static str,
        parse: fn(&str) -> Result<T, ProcfsError>,
    ) -> T {
        match procfs::read(path).and_then(|text| parse(&text)) {
            Ok(value) => value,
            Err(e) => {
                if self.warned.insert(path) {
                    tracing::warn!("{e}; reporting zeros for it");
                }
                T::default()
            }
        }
    }

    /// Takes one sample of the host, the process and the request counters.
    pub(crate) fn sample(&mut self, live: &Live) -> Sample {
        let now = Instant::now();
        let readings = Readings {
            cpu: self.read("/proc/stat", procfs::parse_stat),
            interfaces: self.read("/proc/net/dev", procfs::parse_net_dev),
            process_cpu_ticks: self.read("/proc/self/stat", procfs::parse_self_stat_cpu_ticks),
        };
        let load = self.read("/proc/loadavg", procfs::parse_loadavg);
        let memory = self.read("/proc/meminfo", procfs::parse_meminfo);
        let rss_bytes = self.read("/proc/self/status", procfs::parse_status_rss);
        self.latency.push(live.latency.take());

        let (rx_bytes, tx_bytes) = readings.network_totals();
        let (cpu, network_rates, process_cpu_percent) = match &self.previous {
            Some((then, before)) => {
                let secs = now.duration_since(*then).as_secs_f64().max(1e-3);
                let (rx_before, tx_before) = before.network_totals();
                let cpu = CpuStats {
                    busy_percent: readings.cpu.all.busy_percent_since(&before.cpu.all),
                    per_core_busy_percent: readings
                        .cpu
                        .cores
                        .iter()
                        .zip(&before.cpu.cores)
                        .map(|(now, then)| now.busy_percent_since(then))
                        .collect(),
                };
                let rates = (
                    rx_bytes.saturating_sub(rx_before) as f64 / secs,
                    tx_bytes.saturating_sub(tx_before) as f64 / secs,
                );
                let ticks = readings
                    .process_cpu_ticks
                    .saturating_sub(before.process_cpu_ticks);
                (cpu, rates, 100.0 * ticks as f64 / procfs::USER_HZ / secs)
            }
            None => (
                CpuStats {
                    busy_percent: 0.0,
                    per_core_busy_percent: vec![0.0; readings.cpu.cores.len()],
                },
                (0.0, 0.0),
                0.0,
            ),
        };

        let snapshot = StatsSnapshot {
            schema: SCHEMA,
            hostname: self.hostname.clone(),
            agent_version: env!("CARGO_PKG_VERSION").to_string(),
            started_at_unix_ms: self.started_unix_ms,
            uptime_secs: now.duration_since(self.started).as_secs_f64(),
            sampled_at_unix_ms: unix_ms(SystemTime::now()),
            sample_interval_ms: u64::try_from(self.interval.as_millis()).unwrap_or(u64::MAX),
            cpu,
            load,
            memory,
            network: NetworkStats {
                rx_bytes,
                tx_bytes,
                rx_bytes_per_sec: network_rates.0,
                tx_bytes_per_sec: network_rates.1,
            },
            process: ProcessStats {
                rss_bytes,
                cpu_percent: process_cpu_percent,
                cpu_secs_total: readings.process_cpu_ticks as f64 / procfs::USER_HZ,
            },
            requests: {
                let per_endpoint = live.counters.per_route();
                RequestStats {
                    total: per_endpoint.values().sum(),
                    in_flight: live.counters.in_flight(),
                    per_endpoint,
                    latency: self.latency.summary(),
                }
            },
        };
        self.previous = Some((now, readings.clone()));
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
        assert!(!first.readings.cpu.cores.is_empty());

        live.counters.start().finish(Route::Root);
        live.latency.record(Duration::from_micros(50));
        std::thread::sleep(Duration::from_millis(20));
        let second = sampler.sample(&live).snapshot;
        assert!((0.0..=100.0).contains(&second.cpu.busy_percent));
        assert_eq!(
            second.cpu.per_core_busy_percent.len(),
            first.readings.cpu.cores.len()
        );
        assert!(second.memory.total_bytes > 0);
        assert!(second.process.rss_bytes > 0);
        assert_eq!(second.requests.total, 1);
        assert_eq!(second.requests.per_endpoint["/"], 1);
        assert_eq!(second.requests.latency.count, 1);
        assert!(second.uptime_secs > 0.0);
        assert_eq!(second.hostname, "h");
    }
}
