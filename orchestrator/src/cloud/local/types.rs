//! What an instance type means on this machine: a CPU quota and a memory limit. Each type gets
//! its vCPU count times its baseline share of a CPU, enforced per scheduling period by the kernel
//! (cgroup CFS quota), and its memory as the group's limit. T2/T3 burst credits are not
//! modelled: a local t3 instance runs at its baseline all the time.

use super::LocalError;

/// The CFS scheduling period, in microseconds (the kernel's default).
pub(crate) const PERIOD_US: u64 = 100_000;

/// The CPU an instance type is entitled to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Cpu {
    /// Virtual CPUs.
    pub vcpus: u64,
    /// Baseline share of each vCPU, in percent (100 for fixed-performance types).
    pub baseline_percent: u64,
}

impl Cpu {
    /// CPU time per [`PERIOD_US`] across all cores: vCPUs × baseline × period.
    pub fn quota_us(self) -> u64 {
        self.vcpus * self.baseline_percent * PERIOD_US / 100
    }
}

/// The known types: AWS's published vCPU counts, baseline performance per vCPU and memory
/// (MiB).
const TABLE: &[(&str, Cpu, u64)] = &[
    ("t2.nano", cpu(1, 5), 512),
    ("t2.micro", cpu(1, 10), 1024),
    ("t2.small", cpu(1, 20), 2048),
    ("t2.medium", cpu(2, 20), 4096),
    ("t2.large", cpu(2, 30), 8192),
    ("t3.nano", cpu(2, 5), 512),
    ("t3.micro", cpu(2, 10), 1024),
    ("t3.small", cpu(2, 20), 2048),
    ("t3.medium", cpu(2, 20), 4096),
    ("t3.large", cpu(2, 30), 8192),
    ("t3.xlarge", cpu(4, 40), 16384),
    ("t3.2xlarge", cpu(8, 40), 32768),
    ("m4.large", cpu(2, 100), 8192),
    ("m4.xlarge", cpu(4, 100), 16384),
    ("m5.large", cpu(2, 100), 8192),
    ("m5.xlarge", cpu(4, 100), 16384),
    ("c5.large", cpu(2, 100), 4096),
    ("c5.xlarge", cpu(4, 100), 8192),
];

const fn cpu(vcpus: u64, baseline_percent: u64) -> Cpu {
    Cpu {
        vcpus,
        baseline_percent,
    }
}

/// The CPU of `instance_type`, or an error that lists the known types.
pub(crate) fn cpu_of(instance_type: &str) -> Result<Cpu, LocalError> {
    row(instance_type).map(|(_, cpu, _)| *cpu)
}

/// The memory of `instance_type` in bytes, or an error that lists the known types.
pub(crate) fn memory_of(instance_type: &str) -> Result<u64, LocalError> {
    row(instance_type).map(|(_, _, mib)| mib << 20)
}

fn row(instance_type: &str) -> Result<&'static (&'static str, Cpu, u64), LocalError> {
    TABLE
        .iter()
        .find(|(name, _, _)| *name == instance_type)
        .ok_or_else(|| LocalError::UnknownType {
            instance_type: instance_type.to_owned(),
            known: TABLE
                .iter()
                .map(|(name, _, _)| *name)
                .collect::<Vec<_>>()
                .join(", "),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quota_is_vcpus_times_baseline_times_period() {
        assert_eq!(cpu_of("t3.micro").unwrap().quota_us(), 20_000);
        assert_eq!(cpu_of("t3.medium").unwrap().quota_us(), 40_000);
        assert_eq!(cpu_of("t2.micro").unwrap().quota_us(), 10_000);
        assert_eq!(cpu_of("m4.large").unwrap().quota_us(), 200_000);
        assert_eq!(cpu_of("t3.2xlarge").unwrap().quota_us(), 320_000);
    }

    #[test]
    fn memory_is_the_types_published_size() {
        assert_eq!(memory_of("t3.micro").unwrap(), 1 << 30);
        assert_eq!(memory_of("m4.large").unwrap(), 8 << 30);
        assert!(memory_of("x9.huge").is_err());
    }

    #[test]
    fn a_micro_gets_a_tenth_of_what_a_large_gets() {
        let micro = cpu_of("t3.micro").unwrap().quota_us();
        let large = cpu_of("m5.large").unwrap().quota_us();
        assert_eq!(large, 10 * micro);
    }

    #[test]
    fn an_unknown_type_is_refused_with_the_known_ones() {
        let err = cpu_of("x9.huge").unwrap_err().to_string();
        assert!(
            err.contains("x9.huge") && err.contains("t3.micro, t3.small"),
            "{err}"
        );
    }
}
