//! What an instance type means on this machine: a CPU quota. Each type gets its vCPU count times
//! its baseline share of a CPU, enforced per scheduling period by the kernel (cgroup CFS quota).
//! T2/T3 burst credits are not modelled: a local t3 instance runs at its baseline all the time.

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

/// The known types: AWS's published vCPU counts and baseline performance per vCPU.
const TABLE: &[(&str, Cpu)] = &[
    ("t2.nano", cpu(1, 5)),
    ("t2.micro", cpu(1, 10)),
    ("t2.small", cpu(1, 20)),
    ("t2.medium", cpu(2, 20)),
    ("t2.large", cpu(2, 30)),
    ("t3.nano", cpu(2, 5)),
    ("t3.micro", cpu(2, 10)),
    ("t3.small", cpu(2, 20)),
    ("t3.medium", cpu(2, 20)),
    ("t3.large", cpu(2, 30)),
    ("t3.xlarge", cpu(4, 40)),
    ("t3.2xlarge", cpu(8, 40)),
    ("m4.large", cpu(2, 100)),
    ("m4.xlarge", cpu(4, 100)),
    ("m5.large", cpu(2, 100)),
    ("m5.xlarge", cpu(4, 100)),
    ("c5.large", cpu(2, 100)),
    ("c5.xlarge", cpu(4, 100)),
];

const fn cpu(vcpus: u64, baseline_percent: u64) -> Cpu {
    Cpu {
        vcpus,
        baseline_percent,
    }
}

/// The CPU of `instance_type`, or an error that lists the known types.
pub(crate) fn cpu_of(instance_type: &str) -> Result<Cpu, LocalError> {
    TABLE
        .iter()
        .find(|(name, _)| *name == instance_type)
        .map(|(_, cpu)| *cpu)
        .ok_or_else(|| LocalError::UnknownType {
            instance_type: instance_type.to_owned(),
            known: TABLE
                .iter()
                .map(|(name, _)| *name)
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
