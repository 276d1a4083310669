//! Pure parsers for the `/proc` files the sampler reads, and the reads themselves.
//!
//! Only `/proc` is read: no libc calls, no user or DNS lookups (a static binary cannot do those
//! safely).

use std::path::Path;

use proto::{LoadAverage, MemoryStats};

/// Clock ticks per second of `/proc/stat` and `/proc/self/stat` (`USER_HZ`, fixed at 100 in the
/// x86_64 Linux ABI whatever the kernel's `HZ`).
pub(crate) const USER_HZ: f64 = 100.0;

/// A `/proc` file could not be read or did not look as expected.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ProcfsError {
    #[error("reading {path}: {source}")]
    Read {
        path: &'static str,
        source: std::io::Error,
    },
    #[error("{0}: unexpected format")]
    Format(&'static str),
}

/// Reads one `/proc` file to a string.
pub(crate) fn read(path: &'static str) -> Result<String, ProcfsError> {
    std::fs::read_to_string(Path::new(path)).map_err(|source| ProcfsError::Read { path, source })
}

/// The host's name, from `/proc/sys/kernel/hostname`.
pub(crate) fn read_hostname() -> Result<String, ProcfsError> {
    Ok(read("/proc/sys/kernel/hostname")?.trim().to_string())
}

/// Cumulative CPU time of one line of `/proc/stat`, in clock ticks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct CpuTimes {
    pub user: u64,
    pub nice: u64,
    pub system: u64,
    pub idle: u64,
    pub iowait: u64,
    pub irq: u64,
    pub softirq: u64,
    pub steal: u64,
}

impl CpuTimes {
    /// The modes with node_exporter's names, for `node_cpu_seconds_total`.
    pub(crate) fn modes(&self) -> [(&'static str, u64); 8] {
        [
            ("user", self.user),
            ("nice", self.nice),
            ("system", self.system),
            ("idle", self.idle),
            ("iowait", self.iowait),
            ("irq", self.irq),
            ("softirq", self.softirq),
            ("steal", self.steal),
        ]
    }

    fn total(&self) -> u64 {
        self.modes().iter().map(|(_, ticks)| ticks).sum()
    }

    fn idle_total(&self) -> u64 {
        self.idle + self.iowait
    }

    /// Busy share (0-100) between an earlier sample and this one; 0 when no time passed.
    pub(crate) fn busy_percent_since(&self, earlier: &CpuTimes) -> f64 {
        let total = self.total().saturating_sub(earlier.total());
        let idle = self.idle_total().saturating_sub(earlier.idle_total());
        if total == 0 {
            return 0.0;
        }
        100.0 * total.saturating_sub(idle) as f64 / total as f64
    }
}

/// `/proc/stat` CPU lines: the all-cores line first, then one per core.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct CpuSample {
    pub all: CpuTimes,
    pub cores: Vec<CpuTimes>,
}

/// Parses the `cpu` and `cpuN` lines of `/proc/stat`.
pub(crate) fn parse_stat(text: &str) -> Result<CpuSample, ProcfsError> {
    const WHAT: &str = "/proc/stat";
    let mut all = None;
    let mut cores = Vec::new();
    for line in text.lines().filter(|l| l.starts_with("cpu")) {
        let mut fields = line.split_whitespace();
        let name = fields.next().ok_or(ProcfsError::Format(WHAT))?;
        let mut n = [0u64; 8];
        for slot in n.iter_mut() {
            // Old kernels have fewer columns; missing ones are zero.
            *slot = match fields.next() {
                Some(f) => f.parse().map_err(|_| ProcfsError::Format(WHAT))?,
                None => 0,
            };
        }
        let times = CpuTimes {
            user: n[0],
            nice: n[1],
            system: n[2],
            idle: n[3],
            iowait: n[4],
            irq: n[5],
            softirq: n[6],
            steal: n[7],
        };
        if name == "cpu" {
            all = Some(times);
        } else {
            cores.push(times);
        }
    }
    Ok(CpuSample {
        all: all.ok_or(ProcfsError::Format(WHAT))?,
        cores,
    })
}

/// Parses `/proc/loadavg`.
pub(crate) fn parse_loadavg(text: &str) -> Result<LoadAverage, ProcfsError> {
    const WHAT: &str = "/proc/loadavg";
    let mut fields = text.split_whitespace().map(str::parse::<f64>);
    let mut next = || -> Result<f64, ProcfsError> {
        fields
            .next()
            .and_then(Result::ok)
            .ok_or(ProcfsError::Format(WHAT))
    };
    Ok(LoadAverage {
        one: next()?,
        five: next()?,
        fifteen: next()?,
    })
}

/// Parses `/proc/meminfo` (values in kB).
pub(crate) fn parse_meminfo(text: &str) -> Result<MemoryStats, ProcfsError> {
    const WHAT: &str = "/proc/meminfo";
    let field = |key: &str| -> Result<u64, ProcfsError> {
        text.lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
            .and_then(|rest| rest.split_whitespace().next()?.parse::<u64>().ok())
            .map(|kb| kb * 1024)
            .ok_or(ProcfsError::Format(WHAT))
    };
    let total = field("MemTotal")?;
    let available = field("MemAvailable")?;
    let swap_total = field("SwapTotal")?;
    let swap_free = field("SwapFree")?;
    Ok(MemoryStats {
        total_bytes: total,
        used_bytes: total.saturating_sub(available),
        available_bytes: available,
        swap_total_bytes: swap_total,
        swap_used_bytes: swap_total.saturating_sub(swap_free),
    })
}

/// Byte counters of one network interface.
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

/// Parses `/proc/net/dev`.
pub(crate) fn parse_net_dev(text: &str) -> Result<Vec<InterfaceBytes>, ProcfsError> {
    const WHAT: &str = "/proc/net/dev";
    // Two header lines, then `name: rx_bytes rx_packets ... (8 rx) tx_bytes ...`.
    text.lines()
        .skip(2)
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let (name, counters) = line.split_once(':').ok_or(ProcfsError::Format(WHAT))?;
            let n: Vec<u64> = counters
                .split_whitespace()
                .map(str::parse)
                .collect::<Result<_, _>>()
                .map_err(|_| ProcfsError::Format(WHAT))?;
            match (n.first(), n.get(8)) {
                (Some(&rx_bytes), Some(&tx_bytes)) => Ok(InterfaceBytes {
                    name: name.trim().to_string(),
                    rx_bytes,
                    tx_bytes,
                }),
                _ => Err(ProcfsError::Format(WHAT)),
            }
        })
        .collect()
}

/// Parses `/proc/self/stat`: user + system CPU time of the process, in clock ticks.
pub(crate) fn parse_self_stat_cpu_ticks(text: &str) -> Result<u64, ProcfsError> {
    const WHAT: &str = "/proc/self/stat";
    // The command name (field 2) may hold spaces and parentheses: fields after the last `)`
    // start at field 3 (state); utime and stime are fields 14 and 15.
    let (_, after_comm) = text.rsplit_once(')').ok_or(ProcfsError::Format(WHAT))?;
    let mut fields = after_comm.split_whitespace().skip(11);
    let mut next = || -> Result<u64, ProcfsError> {
        fields
            .next()
            .and_then(|f| f.parse().ok())
            .ok_or(ProcfsError::Format(WHAT))
    };
    Ok(next()? + next()?)
}

/// Parses `VmRSS` out of `/proc/self/status`, in bytes.
pub(crate) fn parse_status_rss(text: &str) -> Result<u64, ProcfsError> {
    text.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next()?.parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .ok_or(ProcfsError::Format("/proc/self/status"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAT: &str = "cpu  100 5 50 800 20 3 2 0 0 0\n\
                        cpu0 60 5 30 400 10 2 1 0 0 0\n\
                        cpu1 40 0 20 400 10 1 1 0 0 0\n\
                        intr 12345 0 0\nctxt 999\nbtime 1700000000\n";

    #[test]
    fn stat_has_the_all_cores_line_and_one_per_core() {
        let s = parse_stat(STAT).unwrap();
        assert_eq!(s.all.user, 100);
        assert_eq!(s.all.iowait, 20);
        assert_eq!(s.cores.len(), 2);
        assert_eq!(s.cores[1].system, 20);
    }

    #[test]
    fn busy_percent_counts_everything_but_idle_and_iowait() {
        let before = parse_stat(STAT).unwrap().all;
        let after = CpuTimes {
            user: before.user + 30,
            system: before.system + 10,
            idle: before.idle + 50,
            iowait: before.iowait + 10,
            ..before
        };
        assert_eq!(after.busy_percent_since(&before), 40.0);
        assert_eq!(before.busy_percent_since(&before), 0.0);
    }

    #[test]
    fn stat_without_a_cpu_line_is_an_error() {
        assert!(parse_stat("intr 1\n").is_err());
        assert!(parse_stat("cpu x y\n").is_err());
    }

    #[test]
    fn loadavg() {
        let l = parse_loadavg("0.52 0.58 0.59 2/437 12345\n").unwrap();
        assert_eq!((l.one, l.five, l.fifteen), (0.52, 0.58, 0.59));
        assert!(parse_loadavg("0.5\n").is_err());
    }

    #[test]
    fn meminfo_used_is_total_minus_available() {
        let text = "MemTotal:        2000 kB\nMemFree:          500 kB\n\
                    MemAvailable:    1500 kB\nSwapTotal:        100 kB\nSwapFree:          40 kB\n";
        let m = parse_meminfo(text).unwrap();
        assert_eq!(m.total_bytes, 2000 * 1024);
        assert_eq!(m.available_bytes, 1500 * 1024);
        assert_eq!(m.used_bytes, 500 * 1024);
        assert_eq!(m.swap_total_bytes, 100 * 1024);
        assert_eq!(m.swap_used_bytes, 60 * 1024);
        assert!(parse_meminfo("MemTotal: 1 kB\n").is_err());
    }

    #[test]
    fn net_dev_reads_rx_and_tx_bytes_of_every_interface() {
        let text = "Inter-|   Receive                                                |  Transmit\n \
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n    \
 lo: 1000      10    0    0    0     0          0         0     1000      10    0    0    0     0       0          0\n  \
 eth0: 5000      50    0    0    0     0          0         0     7000      70    0    0    0     0       0          0\n";
        let ifs = parse_net_dev(text).unwrap();
        assert_eq!(ifs.len(), 2);
        assert!(ifs[0].is_loopback());
        assert_eq!(ifs[1].name, "eth0");
        assert_eq!((ifs[1].rx_bytes, ifs[1].tx_bytes), (5000, 7000));
        assert!(parse_net_dev("h\nh\neth0: 1 2\n").is_err());
    }

    #[test]
    fn self_stat_survives_a_command_name_with_spaces_and_parens() {
        let text = "4242 (elb agent) (x)) S 1 4242 4242 0 -1 4194560 100 0 0 0 \
                    7 3 0 0 20 0 3 0 123 10000000 500 18446744073709551615\n";
        assert_eq!(parse_self_stat_cpu_ticks(text).unwrap(), 10);
        assert!(parse_self_stat_cpu_ticks("4242 (x) S 1").is_err());
    }

    #[test]
    fn status_rss() {
        let text = "Name:\telb-agent\nVmPeak:\t  9000 kB\nVmRSS:\t    2048 kB\n";
        assert_eq!(parse_status_rss(text).unwrap(), 2048 * 1024);
        assert!(parse_status_rss("Name: x\n").is_err());
    }
}
