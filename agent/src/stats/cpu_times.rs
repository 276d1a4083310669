//! Per-core, per-mode cumulative CPU times from `/proc/stat`, which `/metrics` exports as
//! `node_cpu_seconds_total`.
//!
//! Read by hand because sysinfo lacks them: its `Cpu` offers only a usage share since the
//! previous refresh, not the cumulative time spent in each mode.

/// Clock ticks per second of `/proc/stat` (`USER_HZ`, fixed at 100 in the x86_64 Linux ABI
/// whatever the kernel's `HZ`).
pub(crate) const USER_HZ: f64 = 100.0;

const PATH: &str = "/proc/stat";

/// `/proc/stat` could not be read or did not look as expected.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CpuTimesError {
    #[error("reading {PATH}: {0}")]
    Read(#[from] std::io::Error),
    #[error("{PATH}: unexpected format of the per-core lines")]
    Format,
}

/// Cumulative CPU time of one core, in clock ticks.
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
}

/// Reads the times of every core, in core order.
pub(crate) fn read() -> Result<Vec<CpuTimes>, CpuTimesError> {
    parse(&std::fs::read_to_string(PATH)?)
}

/// Parses the `cpuN` lines of `/proc/stat` (the all-cores `cpu` line is left out).
fn parse(text: &str) -> Result<Vec<CpuTimes>, CpuTimesError> {
    let cores = text
        .lines()
        .filter(|l| l.starts_with("cpu") && !l.starts_with("cpu "))
        .map(|line| {
            let mut fields = line.split_whitespace().skip(1);
            let mut n = [0u64; 8];
            for slot in n.iter_mut() {
                // Old kernels have fewer columns; missing ones are zero.
                *slot = match fields.next() {
                    Some(f) => f.parse().map_err(|_| CpuTimesError::Format)?,
                    None => 0,
                };
            }
            Ok::<_, CpuTimesError>(CpuTimes {
                user: n[0],
                nice: n[1],
                system: n[2],
                idle: n[3],
                iowait: n[4],
                irq: n[5],
                softirq: n[6],
                steal: n[7],
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    if cores.is_empty() {
        return Err(CpuTimesError::Format);
    }
    Ok(cores)
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAT: &str = "cpu  100 5 50 800 20 3 2 0 0 0\n\
                        cpu0 60 5 30 400 10 2 1 0 0 0\n\
                        cpu1 40 0 20 400 10 1 1 7 0 0\n\
                        intr 12345 0 0\nctxt 999\nbtime 1700000000\n";

    #[test]
    fn one_entry_per_core_and_none_for_the_all_cores_line() {
        let cores = parse(STAT).unwrap();
        assert_eq!(cores.len(), 2);
        assert_eq!(cores[0].user, 60);
        assert_eq!(cores[1].system, 20);
        assert_eq!(cores[1].steal, 7);
    }

    #[test]
    fn modes_carry_node_exporters_names_in_its_order() {
        let cores = parse(STAT).unwrap();
        let names: Vec<_> = cores[0].modes().iter().map(|(name, _)| *name).collect();
        assert_eq!(
            names,
            ["user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal"]
        );
        assert_eq!(cores[0].modes()[3], ("idle", 400));
    }

    #[test]
    fn missing_columns_of_old_kernels_are_zero() {
        let cores = parse("cpu  1 2 3 4\ncpu0 1 2 3 4\n").unwrap();
        assert_eq!((cores[0].idle, cores[0].iowait, cores[0].steal), (4, 0, 0));
    }

    #[test]
    fn text_without_per_core_lines_or_with_bad_numbers_is_an_error() {
        assert!(parse("cpu  1 2 3 4\nintr 1\n").is_err());
        assert!(parse("cpu0 x y\n").is_err());
    }

    #[test]
    fn this_hosts_cores_have_spent_time() {
        let cores = read().unwrap();
        assert!(!cores.is_empty());
        assert!(cores
            .iter()
            .all(|c| c.modes().iter().map(|(_, t)| t).sum::<u64>() > 0));
    }
}
