//! The agent's own control group: which group it is in (`/proc/self/cgroup`), where that
//! group's files are (`/proc/self/mountinfo`, under `/sys/fs/cgroup`), and its CPU and memory
//! counters.
//!
//! Read by hand because sysinfo lacks them: it has no cgroup CPU accounting at all (no usage,
//! quota or throttling), and its `cgroup_limits` reads the memory files at the mount's root,
//! which is the process's own group only inside a cgroup namespace (a container), not for a
//! local instance whose group is `/elb/<project>/<id>`.

use std::fs;
use std::path::{Path, PathBuf};

use proto::FigureSource;

/// A cgroup file could not be read or did not look as expected.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CgroupError {
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: unexpected format")]
    Format { path: PathBuf },
}

/// One line of `/proc/self/cgroup`: `<hierarchy id>:<controllers>:<path>`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Membership {
    /// The v1 controllers of the hierarchy (`cpu`, `cpuacct`, ...); empty for v2's `0::` line.
    controllers: Vec<String>,
    /// The group's path in its hierarchy, e.g. `/elb/demo/local-1a2b3c4d`.
    path: String,
}

fn memberships(text: &str) -> Vec<Membership> {
    text.lines()
        .filter_map(|line| {
            let mut parts = line.splitn(3, ':');
            let (_id, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
            Some(Membership {
                controllers: controllers
                    .split(',')
                    .filter(|c| !c.is_empty())
                    .map(str::to_owned)
                    .collect(),
                path: path.to_owned(),
            })
        })
        .collect()
}

/// A cgroup file system mount, from `/proc/self/mountinfo`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Mount {
    /// The group the mount shows at its mount point (`/` unless a subtree is bind-mounted).
    root: String,
    point: PathBuf,
    v2: bool,
    /// The v1 controllers of the mount (from its super options); empty for v2.
    controllers: Vec<String>,
}

fn mounts(text: &str) -> Vec<Mount> {
    text.lines()
        .filter_map(|line| {
            // `<id> <parent> <dev> <root> <point> <options> [optional...] - <type> <source> <super>`
            let (before, after) = line.split_once(" - ")?;
            let fields: Vec<&str> = before.split_whitespace().collect();
            let mut after = after.split_whitespace();
            let (kind, _source, options) = (after.next()?, after.next()?, after.next()?);
            let (root, point) = (*fields.get(3)?, *fields.get(4)?);
            let v2 = match kind {
                "cgroup2" => true,
                "cgroup" => false,
                _ => return None,
            };
            Some(Mount {
                root: root.to_owned(),
                point: PathBuf::from(point),
                v2,
                controllers: if v2 {
                    Vec::new()
                } else {
                    options.split(',').map(str::to_owned).collect()
                },
            })
        })
        .collect()
}

/// Where a group's files are: the mount point plus the group's path below the mount's root.
fn directory(mount: &Mount, group: &str) -> Option<PathBuf> {
    let below = group.strip_prefix(mount.root.trim_end_matches('/'))?;
    Some(mount.point.join(below.trim_start_matches('/')))
}

/// The agent's CPU group when it has a quota, with what else the kernel counts for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Group {
    pub version: FigureSource,
    /// The group's path in its hierarchy.
    pub path: String,
    /// Holds `cpu.max` (v2) or `cpu.cfs_quota_us` and `cpu.stat` (v1).
    cpu_dir: PathBuf,
    /// v1 only: the `cpuacct` directory of the same group, when the agent's `cpuacct` group is
    /// its `cpu` group (they are often mounted together as `cpu,cpuacct`). Without it the
    /// usage is the sum of the group's processes' CPU time.
    cpuacct_dir: Option<PathBuf>,
    /// The memory controller's directory of the same group, if the agent's memory group is
    /// its CPU group (always so in v2, where the group holds every controller's files).
    memory_dir: Option<PathBuf>,
}

/// The group's counters at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct CpuCounters {
    /// The quota in cores (quota / period), `None` when there is none.
    pub quota_cores: Option<f64>,
    pub usage_secs: f64,
    pub throttled_secs: f64,
    pub periods: u64,
    pub throttled_periods: u64,
}

/// The group's memory at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct MemoryCounters {
    pub used_bytes: u64,
    /// `None` when the group has no limit.
    pub limit_bytes: Option<u64>,
}

fn read(path: &Path) -> Result<String, CgroupError> {
    fs::read_to_string(path).map_err(|source| CgroupError::Read {
        path: path.to_owned(),
        source,
    })
}

fn bad(path: &Path) -> CgroupError {
    CgroupError::Format {
        path: path.to_owned(),
    }
}

/// The number in a one-number file (`cpuacct.usage`, `memory.current`, ...).
fn read_number(path: &Path) -> Result<u64, CgroupError> {
    read(path)?.trim().parse().map_err(|_| bad(path))
}

/// The `key value` lines of a `cpu.stat` file.
fn keyed(text: &str) -> impl Iterator<Item = (&str, u64)> {
    text.lines().filter_map(|l| {
        let (key, value) = l.split_once(' ')?;
        Some((key, value.trim().parse().ok()?))
    })
}

/// v2's `cpu.max`: `<quota> <period>` in µs, or `max <period>` for no quota.
fn parse_cpu_max(text: &str) -> Option<Option<f64>> {
    let mut fields = text.split_whitespace();
    let (quota, period) = (fields.next()?, fields.next()?.parse::<f64>().ok()?);
    match quota {
        "max" => Some(None),
        q => Some(Some(q.parse::<f64>().ok()? / period)),
    }
}

/// v1's `cpu.cfs_quota_us` (-1 for no quota) over `cpu.cfs_period_us`.
fn parse_cfs_quota(quota: &str, period: &str) -> Option<Option<f64>> {
    let quota: i64 = quota.trim().parse().ok()?;
    let period: f64 = period.trim().parse().ok()?;
    Some((quota > 0 && period > 0.0).then(|| quota as f64 / period))
}

/// v2's `cpu.stat`: usage, throttled time, periods.
fn parse_v2_cpu_stat(text: &str) -> CpuCounters {
    let mut c = CpuCounters::default();
    for (key, value) in keyed(text) {
        match key {
            "usage_usec" => c.usage_secs = value as f64 / 1e6,
            "throttled_usec" => c.throttled_secs = value as f64 / 1e6,
            "nr_periods" => c.periods = value,
            "nr_throttled" => c.throttled_periods = value,
            _ => {}
        }
    }
    c
}

/// v1's `cpu.stat`: throttled time (ns) and periods; the usage is in `cpuacct`.
fn parse_v1_cpu_stat(text: &str) -> CpuCounters {
    let mut c = CpuCounters::default();
    for (key, value) in keyed(text) {
        match key {
            "throttled_time" => c.throttled_secs = value as f64 / 1e9,
            "nr_periods" => c.periods = value,
            "nr_throttled" => c.throttled_periods = value,
            _ => {}
        }
    }
    c
}

/// User + system time of one process from its `/proc/<pid>/stat` line, in clock ticks (the
/// 14th and 15th fields, counted after the parenthesised command name, which may hold spaces).
fn process_ticks(stat: &str) -> Option<u64> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_name.split_whitespace().skip(11);
    let user: u64 = fields.next()?.parse().ok()?;
    let system: u64 = fields.next()?.parse().ok()?;
    Some(user + system)
}

/// A v1 memory limit: no limit reads as a huge number (a page-rounded `i64::MAX`).
fn v1_memory_limit(value: u64) -> Option<u64> {
    (value < 1 << 62).then_some(value)
}

impl Group {
    /// The agent's group if its CPU is limited by a quota, from the process's own files;
    /// `None` on a host where it is not (then the instance is the host).
    pub(crate) fn discover() -> Option<Self> {
        let cgroup = fs::read_to_string("/proc/self/cgroup").ok()?;
        let mountinfo = fs::read_to_string("/proc/self/mountinfo").ok()?;
        Self::find(&memberships(&cgroup), &mounts(&mountinfo))
    }

    fn find(memberships: &[Membership], mounts: &[Mount]) -> Option<Self> {
        let v1_dir = |controller: &str| {
            let member = memberships
                .iter()
                .find(|m| m.controllers.iter().any(|c| c == controller))?;
            let mount = mounts
                .iter()
                .find(|m| !m.v2 && m.controllers.iter().any(|c| c == controller))?;
            Some((member.path.clone(), directory(mount, &member.path)?))
        };
        // A controller sits in one hierarchy only: if v1 has `cpu`, v2 does not.
        if let Some((path, cpu_dir)) = v1_dir("cpu") {
            let quota = parse_cfs_quota(
                &fs::read_to_string(cpu_dir.join("cpu.cfs_quota_us")).ok()?,
                &fs::read_to_string(cpu_dir.join("cpu.cfs_period_us")).ok()?,
            )?;
            quota?;
            let same = |found: Option<(String, PathBuf)>| {
                found.and_then(|(p, dir)| (p == path).then_some(dir))
            };
            let (cpuacct_dir, memory_dir) = (same(v1_dir("cpuacct")), same(v1_dir("memory")));
            return Some(Self {
                version: FigureSource::CgroupV1,
                path,
                cpu_dir,
                cpuacct_dir,
                memory_dir,
            });
        }
        let member = memberships.iter().find(|m| m.controllers.is_empty())?;
        let mount = mounts.iter().find(|m| m.v2)?;
        let dir = directory(mount, &member.path)?;
        let quota = parse_cpu_max(&fs::read_to_string(dir.join("cpu.max")).ok()?)?;
        quota.is_some().then(|| Self {
            version: FigureSource::CgroupV2,
            path: member.path.clone(),
            cpu_dir: dir.clone(),
            cpuacct_dir: None,
            memory_dir: dir.join("memory.current").is_file().then_some(dir),
        })
    }

    /// The group's CPU counters now (the quota re-read: `elb deploy` keeps the group, an
    /// operator may change it).
    pub(crate) fn cpu(&self) -> Result<CpuCounters, CgroupError> {
        let dir = &self.cpu_dir;
        if self.version == FigureSource::CgroupV2 {
            let max = dir.join("cpu.max");
            let quota_cores = parse_cpu_max(&read(&max)?).ok_or_else(|| bad(&max))?;
            return Ok(CpuCounters {
                quota_cores,
                ..parse_v2_cpu_stat(&read(&dir.join("cpu.stat"))?)
            });
        }
        let quota_path = dir.join("cpu.cfs_quota_us");
        let quota_cores =
            parse_cfs_quota(&read(&quota_path)?, &read(&dir.join("cpu.cfs_period_us"))?)
                .ok_or_else(|| bad(&quota_path))?;
        let usage_secs = match &self.cpuacct_dir {
            Some(acct) => read_number(&acct.join("cpuacct.usage"))? as f64 / 1e9,
            None => self.processes_cpu_secs()?,
        };
        Ok(CpuCounters {
            quota_cores,
            usage_secs,
            ..parse_v1_cpu_stat(&read(&dir.join("cpu.stat"))?)
        })
    }

    /// CPU time of the processes now in the group (a process that left or ended takes its time
    /// with it; a local instance's group holds the agent alone).
    fn processes_cpu_secs(&self) -> Result<f64, CgroupError> {
        let procs = read(&self.cpu_dir.join("cgroup.procs"))?;
        let ticks: u64 = procs
            .lines()
            .filter_map(|pid| fs::read_to_string(format!("/proc/{}/stat", pid.trim())).ok())
            .filter_map(|stat| process_ticks(&stat))
            .sum();
        Ok(ticks as f64 / super::USER_HZ)
    }

    /// The group's memory, if the memory controller's group is this one.
    pub(crate) fn memory(&self) -> Option<Result<MemoryCounters, CgroupError>> {
        let dir = self.memory_dir.as_ref()?;
        Some(if self.version == FigureSource::CgroupV2 {
            v2_memory(dir)
        } else {
            v1_memory(dir)
        })
    }
}

/// `memory.current` and `memory.max` (`max` for no limit).
fn v2_memory(dir: &Path) -> Result<MemoryCounters, CgroupError> {
    let max = dir.join("memory.max");
    let limit = read(&max)?;
    Ok(MemoryCounters {
        used_bytes: read_number(&dir.join("memory.current"))?,
        limit_bytes: match limit.trim() {
            "max" => None,
            n => Some(n.parse().map_err(|_| bad(&max))?),
        },
    })
}

/// `memory.usage_in_bytes` and `memory.limit_in_bytes`.
fn v1_memory(dir: &Path) -> Result<MemoryCounters, CgroupError> {
    Ok(MemoryCounters {
        used_bytes: read_number(&dir.join("memory.usage_in_bytes"))?,
        limit_bytes: v1_memory_limit(read_number(&dir.join("memory.limit_in_bytes"))?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// This build machine's layout: v1 `cpu` and `cpuacct` mounted apart, memory elsewhere, a
    /// v2 hierarchy without controllers.
    const HYBRID_CGROUP: &str = "9:name=systemd:/\n5:memory:/sandbox/1\n2:cpuacct:/\n\
                                 1:cpu:/elb/demo/local-1\n0::/\n";
    const HYBRID_MOUNTS: &str = "\
25 24 0:22 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
26 25 0:23 / /sys/fs/cgroup/cpu rw,relatime shared:5 - cgroup cgroup rw,cpu
27 25 0:24 / /sys/fs/cgroup/cpuacct rw,relatime shared:6 - cgroup cgroup rw,cpuacct
28 25 0:25 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
29 25 0:26 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
30 24 8:1 / /proc rw - proc proc rw
";

    #[test]
    fn memberships_and_mounts_are_read_from_the_kernels_text() {
        let m = memberships(HYBRID_CGROUP);
        assert_eq!(m.len(), 5);
        assert_eq!(m[3].controllers, ["cpu"]);
        assert_eq!(m[3].path, "/elb/demo/local-1");
        assert!(m[4].controllers.is_empty());
        let mounts = mounts(HYBRID_MOUNTS);
        assert_eq!(mounts.len(), 4, "tmpfs and proc are not cgroups");
        assert_eq!(mounts[0].point, PathBuf::from("/sys/fs/cgroup/cpu"));
        assert!(mounts[0].controllers.contains(&"cpu".to_owned()));
        assert!(mounts[3].v2);
    }

    #[test]
    fn a_group_is_found_below_its_mount_and_a_bind_mounted_subtree_is_cut_off() {
        let mount = |root: &str| Mount {
            root: root.into(),
            point: "/sys/fs/cgroup/cpu".into(),
            v2: false,
            controllers: vec!["cpu".into()],
        };
        assert_eq!(
            directory(&mount("/"), "/elb/p/i"),
            Some(PathBuf::from("/sys/fs/cgroup/cpu/elb/p/i"))
        );
        assert_eq!(
            directory(&mount("/docker/abc"), "/docker/abc"),
            Some(PathBuf::from("/sys/fs/cgroup/cpu"))
        );
        assert_eq!(directory(&mount("/docker/abc"), "/other"), None);
    }

    #[test]
    fn quotas_of_both_versions() {
        assert_eq!(parse_cpu_max("20000 100000\n"), Some(Some(0.2)));
        assert_eq!(parse_cpu_max("max 100000\n"), Some(None));
        assert_eq!(parse_cpu_max("garbage"), None);
        assert_eq!(parse_cfs_quota("200000\n", "100000\n"), Some(Some(2.0)));
        assert_eq!(parse_cfs_quota("-1\n", "100000\n"), Some(None));
        assert_eq!(parse_cfs_quota("x", "100000"), None);
    }

    #[test]
    fn v2_cpu_stat_gives_usage_throttling_and_periods() {
        let text = "usage_usec 2500000\nuser_usec 2000000\nsystem_usec 500000\n\
                    nr_periods 120\nnr_throttled 80\nthrottled_usec 6400000\n\
                    nr_bursts 0\nburst_usec 0\n";
        let c = parse_v2_cpu_stat(text);
        assert_eq!(c.usage_secs, 2.5);
        assert_eq!(c.throttled_secs, 6.4);
        assert_eq!((c.periods, c.throttled_periods), (120, 80));
    }

    #[test]
    fn v1_cpu_stat_gives_throttling_in_nanoseconds_and_periods() {
        let text = "nr_periods 50\nnr_throttled 10\nthrottled_time 1500000000\n\
                    nr_bursts 0\nburst_time 0\n";
        let c = parse_v1_cpu_stat(text);
        assert_eq!(c.throttled_secs, 1.5);
        assert_eq!((c.periods, c.throttled_periods), (50, 10));
        assert_eq!(c.usage_secs, 0.0, "v1 counts usage in cpuacct");
    }

    #[test]
    fn a_processs_cpu_ticks_are_read_past_a_name_with_spaces() {
        let stat = "4242 (elb agent) S 1 4242 4242 0 -1 4194560 500 0 0 0 \
                    170 30 0 0 20 0 3 0 100 1000000 500 18446744073709551615";
        assert_eq!(process_ticks(stat), Some(200));
        assert_eq!(process_ticks("4242 (x) S 1"), None);
    }

    #[test]
    fn a_huge_v1_memory_limit_means_none() {
        assert_eq!(v1_memory_limit(9_223_372_036_854_771_712), None);
        assert_eq!(v1_memory_limit(512 << 20), Some(512 << 20));
    }

    /// A fake `/sys/fs/cgroup` with the given files, and its mountinfo text.
    fn fake_v1(files: &[(&str, &str)]) -> (PathBuf, String) {
        let root = std::env::temp_dir().join(format!("elb-cgroup-{}", rand_suffix()));
        for (path, text) in files {
            let path = root.join(path);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, text).unwrap();
        }
        let mounts = format!(
            "26 25 0:23 / {0}/cpu rw - cgroup cgroup rw,cpu\n\
             27 25 0:24 / {0}/cpuacct rw - cgroup cgroup rw,cpuacct\n\
             28 25 0:25 / {0}/memory rw - cgroup cgroup rw,memory\n",
            root.display()
        );
        (root, mounts)
    }

    fn rand_suffix() -> String {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        format!("{}-{nanos}", std::process::id())
    }

    #[test]
    fn a_v1_group_with_a_quota_is_the_instance_and_its_counters_are_read() {
        let (root, mounts_text) = fake_v1(&[
            ("cpu/elb/p/i/cpu.cfs_quota_us", "20000\n"),
            ("cpu/elb/p/i/cpu.cfs_period_us", "100000\n"),
            (
                "cpu/elb/p/i/cpu.stat",
                "nr_periods 10\nnr_throttled 4\nthrottled_time 300000000\n",
            ),
            (
                "cpu/elb/p/i/cgroup.procs",
                &format!("{}\n", std::process::id()),
            ),
            ("cpuacct/elb/p/i/cpuacct.usage", "700000000\n"),
        ]);
        let together = "1:cpu:/elb/p/i\n2:cpuacct:/elb/p/i\n5:memory:/elsewhere\n0::/\n";
        let group = Group::find(&memberships(together), &mounts(&mounts_text)).unwrap();
        assert_eq!(group.version, FigureSource::CgroupV1);
        assert_eq!(group.path, "/elb/p/i");
        assert!(group.memory().is_none(), "the memory group is another one");
        let c = group.cpu().unwrap();
        assert_eq!(c.quota_cores, Some(0.2));
        assert_eq!((c.usage_secs, c.throttled_secs), (0.7, 0.3));
        assert_eq!((c.periods, c.throttled_periods), (10, 4));

        // cpuacct elsewhere: the usage is the group's processes' (here this test's process).
        let apart = "1:cpu:/elb/p/i\n2:cpuacct:/\n0::/\n";
        let group = Group::find(&memberships(apart), &mounts(&mounts_text)).unwrap();
        let c = group.cpu().unwrap();
        assert!(c.usage_secs >= 0.0 && c.usage_secs != 0.7, "{c:?}");
        fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn a_group_without_a_quota_is_not_the_instance() {
        let (root, mounts_text) = fake_v1(&[
            ("cpu/cpu.cfs_quota_us", "-1\n"),
            ("cpu/cpu.cfs_period_us", "100000\n"),
        ]);
        assert_eq!(
            Group::find(&memberships("1:cpu:/\n0::/\n"), &mounts(&mounts_text)),
            None
        );
        fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn a_v2_group_with_a_quota_has_its_cpu_and_memory_read() {
        let root = std::env::temp_dir().join(format!("elb-cgroup2-{}", rand_suffix()));
        let dir = root.join("elb/p/i");
        fs::create_dir_all(&dir).unwrap();
        for (file, text) in [
            ("cpu.max", "20000 100000\n"),
            (
                "cpu.stat",
                "usage_usec 1000000\nnr_periods 5\nnr_throttled 2\nthrottled_usec 250000\n",
            ),
            ("memory.current", "4194304\n"),
            ("memory.max", "max\n"),
        ] {
            fs::write(dir.join(file), text).unwrap();
        }
        let mounts_text = format!("29 25 0:26 / {} rw - cgroup2 cgroup2 rw\n", root.display());
        let group = Group::find(&memberships("0::/elb/p/i\n"), &mounts(&mounts_text)).unwrap();
        assert_eq!(group.version, FigureSource::CgroupV2);
        let c = group.cpu().unwrap();
        assert_eq!(
            (c.quota_cores, c.usage_secs, c.throttled_secs),
            (Some(0.2), 1.0, 0.25)
        );
        let m = group.memory().unwrap().unwrap();
        assert_eq!((m.used_bytes, m.limit_bytes), (4 << 20, None));
        fs::write(dir.join("memory.max"), "67108864\n").unwrap();
        assert_eq!(group.memory().unwrap().unwrap().limit_bytes, Some(64 << 20));
        fs::remove_dir_all(root).unwrap();
    }
}
