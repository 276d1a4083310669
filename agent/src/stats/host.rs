//! What sysinfo tells about the host and the agent's own process: CPU use, load, memory,
//! network bytes, and the process's RSS and CPU.
//!
//! Only the background sampler refreshes it, and only what the snapshot shows: CPU usage (no
//! frequency), RAM and swap, the interfaces, and our own process by pid (memory and CPU; never
//! a scan of every process, never users, disks or components).

use std::time::Instant;

use proto::{LoadAverage, MemoryStats};
use sysinfo::{
    MemoryRefreshKind, Networks, Pid, ProcessRefreshKind, ProcessesToUpdate, System,
    MINIMUM_CPU_UPDATE_INTERVAL,
};

/// The host's name (`gethostname`, no lookup), if it can be read.
pub(crate) fn name() -> Option<String> {
    System::host_name()
}

/// Byte counters of one network interface since it came up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct InterfaceBytes {
    pub name: String,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
}

impl InterfaceBytes {
    /// Whether this is the loopback interface, left out of the snapshot's totals.
    pub(crate) fn is_loopback(&self) -> bool {
        self.name == "lo"
    }
}

/// CPU use over the last measuring window, in percent.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct CpuUse {
    /// Host, all cores: 0-100, busy = all but idle and iowait.
    pub busy_percent: f64,
    /// Host, each core: 0-100.
    pub per_core_busy_percent: Vec<f64>,
    /// The agent process: 100 = one core.
    pub process_percent: f64,
}

/// One reading of the host.
#[derive(Debug, Clone)]
pub(crate) struct HostReading {
    pub cpu: CpuUse,
    pub load: LoadAverage,
    pub memory: MemoryStats,
    /// Every interface, loopback included, sorted by name.
    pub interfaces: Vec<InterfaceBytes>,
    /// Bytes received and sent over every interface but loopback since the previous reading.
    pub rx_since_last: u64,
    pub tx_since_last: u64,
    /// The agent's resident memory.
    pub rss_bytes: u64,
    /// User + system CPU time of the agent since it started, in seconds.
    pub process_cpu_secs: f64,
}

/// The sysinfo state carried from one reading to the next (usage and rates are differences).
pub(crate) struct Host {
    system: System,
    networks: Networks,
    /// Our own pid; `None` if sysinfo cannot tell it (the process figures are then zero).
    pid: Option<Pid>,
    /// When CPU use was last measured, and what was found.
    cpu: Option<(Instant, CpuUse)>,
}

impl Host {
    /// Nothing is read until the first [`Host::read`].
    pub(crate) fn new() -> Self {
        let pid = sysinfo::get_current_pid()
            .inspect_err(|e| tracing::warn!("own pid unknown ({e}); reporting zero RSS and CPU"))
            .ok();
        Self {
            system: System::new(),
            networks: Networks::new(),
            pid,
            cpu: None,
        }
    }

    /// Refreshes what the snapshot needs and reads it.
    ///
    /// CPU use is a difference between two refreshes, and sysinfo ignores a CPU refresh less
    /// than [`MINIMUM_CPU_UPDATE_INTERVAL`] (200 ms) after the previous one: readings closer
    /// together than that repeat the previous CPU figures. The first reading only sets the
    /// baseline and reports 0.
    pub(crate) fn read(&mut self) -> HostReading {
        let cpu_due = self
            .cpu
            .as_ref()
            .is_none_or(|(at, _)| at.elapsed() >= MINIMUM_CPU_UPDATE_INTERVAL);
        // The host CPUs before the process: the process's share is of the same window.
        if cpu_due {
            self.system.refresh_cpu_usage();
        }
        self.system
            .refresh_memory_specifics(MemoryRefreshKind::nothing().with_ram().with_swap());
        if let Some(pid) = self.pid {
            let kind = ProcessRefreshKind::nothing().with_memory();
            let kind = if cpu_due { kind.with_cpu() } else { kind };
            self.system
                .refresh_processes_specifics(ProcessesToUpdate::Some(&[pid]), false, kind);
        }
        let process = self.pid.and_then(|pid| self.system.process(pid));
        let rss_bytes = process.map_or(0, |p| p.memory());
        let process_cpu_secs = process.map_or(0.0, |p| p.accumulated_cpu_time() as f64 / 1e3);
        if cpu_due {
            let found = match self.cpu {
                // sysinfo's first host figure is the average since boot, not a recent one.
                None => CpuUse {
                    per_core_busy_percent: vec![0.0; self.system.cpus().len()],
                    ..CpuUse::default()
                },
                Some(_) => CpuUse {
                    busy_percent: f64::from(self.system.global_cpu_usage()),
                    per_core_busy_percent: self
                        .system
                        .cpus()
                        .iter()
                        .map(|c| f64::from(c.cpu_usage()))
                        .collect(),
                    process_percent: process.map_or(0.0, |p| f64::from(p.cpu_usage())),
                },
            };
            // Taken after sysinfo's own stamp: when the next CPU refresh is due here, sysinfo
            // performs it too.
            self.cpu = Some((Instant::now(), found));
        }

        self.networks.refresh(true);
        let mut interfaces: Vec<InterfaceBytes> = self
            .networks
            .iter()
            .map(|(name, data)| InterfaceBytes {
                name: name.clone(),
                rx_bytes: data.total_received(),
                tx_bytes: data.total_transmitted(),
            })
            .collect();
        interfaces.sort_by(|a, b| a.name.cmp(&b.name));
        let (rx_since_last, tx_since_last) = self
            .networks
            .iter()
            .filter(|(name, _)| name.as_str() != "lo")
            .fold((0, 0), |(rx, tx), (_, data)| {
                (rx + data.received(), tx + data.transmitted())
            });

        let load = System::load_average();
        let (total, available) = (self.system.total_memory(), self.system.available_memory());
        let (swap_total, swap_free) = (self.system.total_swap(), self.system.free_swap());
        HostReading {
            cpu: self
                .cpu
                .as_ref()
                .map(|(_, c)| c.clone())
                .unwrap_or_default(),
            load: LoadAverage {
                one: load.one,
                five: load.five,
                fifteen: load.fifteen,
            },
            memory: MemoryStats {
                total_bytes: total,
                used_bytes: total.saturating_sub(available),
                available_bytes: available,
                swap_total_bytes: swap_total,
                swap_used_bytes: swap_total.saturating_sub(swap_free),
            },
            interfaces,
            rx_since_last,
            tx_since_last,
            rss_bytes,
            process_cpu_secs,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Keeps this thread's core busy for `time`.
    fn spin(time: std::time::Duration) {
        let until = Instant::now() + time;
        while Instant::now() < until {
            std::hint::black_box(0u64);
        }
    }

    #[test]
    fn the_first_reading_reports_no_cpu_use_and_the_next_due_one_a_share() {
        // sysinfo starts a process's share only once it has used CPU time (a 10 ms tick).
        spin(std::time::Duration::from_millis(50));
        let mut host = Host::new();
        let first = host.read();
        assert_eq!(first.cpu.busy_percent, 0.0);
        assert!(!first.cpu.per_core_busy_percent.is_empty());
        assert!(first.cpu.per_core_busy_percent.iter().all(|&c| c == 0.0));

        spin(MINIMUM_CPU_UPDATE_INTERVAL);
        let second = host.read();
        assert!((0.0..=100.0).contains(&second.cpu.busy_percent));
        assert_eq!(
            second.cpu.per_core_busy_percent.len(),
            first.cpu.per_core_busy_percent.len()
        );
        // This test spun a core for the whole window.
        assert!(second.cpu.process_percent > 0.0, "{:?}", second.cpu);
        assert!(second.process_cpu_secs > 0.0);
    }

    #[test]
    fn readings_closer_than_sysinfos_minimum_repeat_the_cpu_figures() {
        let mut host = Host::new();
        host.read();
        std::thread::sleep(MINIMUM_CPU_UPDATE_INTERVAL);
        let measured = host.read();
        let after_measuring = Instant::now();
        let repeated = host.read();
        // Unless this thread stalled for the whole window between the two readings.
        if after_measuring.elapsed() < MINIMUM_CPU_UPDATE_INTERVAL {
            assert_eq!(measured.cpu, repeated.cpu);
        }
    }

    #[test]
    fn memory_process_and_interfaces_of_this_host_are_plausible() {
        let reading = Host::new().read();
        let m = &reading.memory;
        assert!(m.total_bytes > 0);
        assert!(m.available_bytes <= m.total_bytes);
        assert_eq!(m.used_bytes, m.total_bytes - m.available_bytes);
        assert!(m.swap_used_bytes <= m.swap_total_bytes);
        assert!(reading.rss_bytes > 0);
        assert!(reading.load.one >= 0.0);
        assert!(reading.interfaces.iter().any(InterfaceBytes::is_loopback));
        assert!(reading.interfaces.windows(2).all(|w| w[0].name < w[1].name));
        // Nothing was measured before the first reading.
        assert_eq!((reading.rx_since_last, reading.tx_since_last), (0, 0));
    }

    #[test]
    fn the_hostname_is_readable() {
        assert!(name().is_some_and(|n| !n.is_empty()));
    }
}
