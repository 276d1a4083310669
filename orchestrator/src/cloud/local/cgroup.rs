//! CPU quotas and memory limits through the kernel's control groups: one group per instance at
//! `<controller root>/elb/<project>/<id>`, with cgroup v1's `cpu` controller
//! (`cpu.cfs_period_us`, `cpu.cfs_quota_us`) or cgroup v2's `cpu.max`; the memory limit in the
//! same v2 group (`memory.max`), or in v1 in the group of the same path under the `memory`
//! hierarchy (`memory.limit_in_bytes`), where the system has one. The agent joins its groups
//! before it runs (see `process.rs`), and they are removed once the agent is gone.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::types::{Cpu, PERIOD_US};

/// Where the cgroup file systems are mounted.
pub(crate) const SYS_ROOT: &str = "/sys/fs/cgroup";

/// How long [`remove`] waits for the last threads of a group to leave it.
const EMPTY_WAIT: Duration = Duration::from_secs(5);

/// Name of the directory under the controller root that holds every elb group.
const ELB_DIR: &str = "elb";

/// A writable cpu controller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Backend {
    /// cgroup v1, rooted at the `cpu` hierarchy (e.g. `/sys/fs/cgroup/cpu`).
    V1(PathBuf),
    /// cgroup v2, rooted at a unified hierarchy whose controllers include `cpu`.
    V2(PathBuf),
}

impl Backend {
    /// The first writable cpu controller under `sys_root`: v1's `cpu` (or `cpu,cpuacct`)
    /// hierarchy, else a v2 hierarchy (`sys_root` itself, or `unified/` on hybrid systems) that
    /// offers `cpu`. Proves it writable by creating `elb/`. Otherwise says why not, naming what
    /// was tried.
    pub fn detect(sys_root: &Path) -> Result<Self, String> {
        let mut tried = Vec::new();
        for name in ["cpu", "cpu,cpuacct"] {
            let root = sys_root.join(name);
            if root.join("cpu.cfs_quota_us").is_file() {
                match fs::create_dir_all(root.join(ELB_DIR)) {
                    Ok(()) => return Ok(Self::V1(root)),
                    Err(e) => tried.push(format!("{} is not writable ({e})", root.display())),
                }
            }
        }
        for root in [sys_root.to_owned(), sys_root.join("unified")] {
            let Ok(controllers) = fs::read_to_string(root.join("cgroup.controllers")) else {
                continue;
            };
            if !controllers.split_whitespace().any(|c| c == "cpu") {
                tried.push(format!("{} has no cpu controller", root.display()));
                continue;
            }
            match fs::create_dir_all(root.join(ELB_DIR)) {
                Ok(()) => return Ok(Self::V2(root)),
                Err(e) => tried.push(format!("{} is not writable ({e})", root.display())),
            }
        }
        if tried.is_empty() {
            tried.push(format!(
                "no cgroup v1 cpu or v2 hierarchy under {}",
                sys_root.display()
            ));
        }
        Err(tried.join("; "))
    }

    /// The group of instance `id` of `project`.
    pub fn group(&self, project: &str, id: &str) -> PathBuf {
        let (Self::V1(root) | Self::V2(root)) = self;
        root.join(ELB_DIR).join(project).join(id)
    }

    /// Creates the group of `id` with `cpu`'s quota and a limit of `memory` bytes (where the
    /// memory controller is there to take it) and returns its path. Processes join it (and its
    /// v1 memory twin, see [`v1_memory_group`]) by writing to their `cgroup.procs`.
    pub fn create(&self, project: &str, id: &str, cpu: Cpu, memory: u64) -> io::Result<PathBuf> {
        let group = self.group(project, id);
        fs::create_dir_all(&group)?;
        let quota = cpu.quota_us();
        match self {
            Self::V1(_) => {
                fs::write(group.join("cpu.cfs_period_us"), PERIOD_US.to_string())?;
                fs::write(group.join("cpu.cfs_quota_us"), quota.to_string())?;
                if let Some(twin) = v1_memory_group(&group) {
                    fs::create_dir_all(&twin)?;
                    fs::write(twin.join("memory.limit_in_bytes"), memory.to_string())?;
                }
            }
            Self::V2(root) => {
                let memory_too = fs::read_to_string(root.join("cgroup.controllers"))
                    .unwrap_or_default()
                    .split_whitespace()
                    .any(|c| c == "memory");
                // Every ancestor below the root must hand the controllers down.
                let mut dir = root.clone();
                for part in [ELB_DIR, project] {
                    enable(&dir, "cpu")?;
                    if memory_too {
                        enable(&dir, "memory")?;
                    }
                    dir.push(part);
                }
                enable(&dir, "cpu")?;
                fs::write(group.join("cpu.max"), format!("{quota} {PERIOD_US}"))?;
                if memory_too {
                    enable(&dir, "memory")?;
                    fs::write(group.join("memory.max"), memory.to_string())?;
                }
            }
        }
        tracing::info!(group = %group.display(), quota, period = PERIOD_US, memory, "cgroup limits");
        Ok(group)
    }
}

/// The group under cgroup v1's `memory` hierarchy that goes with the v1 cpu group `group`
/// (`<sys>/cpu/elb/p/id` -> `<sys>/memory/elb/p/id`), when the system has that hierarchy;
/// `None` for a v2 group or without it.
pub(crate) fn v1_memory_group(group: &Path) -> Option<PathBuf> {
    // <root>/elb/<project>/<id>: the root is three levels up.
    let root = group.ancestors().nth(3)?;
    let name = root.file_name()?.to_str()?;
    if name != "cpu" && name != "cpu,cpuacct" {
        return None;
    }
    let memory = root.parent()?.join("memory");
    if !memory.join("memory.limit_in_bytes").is_file() {
        return None;
    }
    Some(memory.join(group.strip_prefix(root).ok()?))
}

/// Writes `+<controller>` to `dir`'s `cgroup.subtree_control` unless it is there already.
fn enable(dir: &Path, controller: &str) -> io::Result<()> {
    let control = dir.join("cgroup.subtree_control");
    let enabled = fs::read_to_string(&control).unwrap_or_default();
    if enabled
        .split_whitespace()
        .any(|c| c.trim_start_matches('+') == controller)
    {
        return Ok(());
    }
    fs::write(control, format!("+{controller}"))
}

/// Removes an instance's group, then its project's group if that is now empty. A group already
/// gone is fine. Call it once the group's processes are gone: the kernel refuses (`EBUSY`) while
/// any thread is still inside, and a process whose main thread is already a zombie can still
/// have threads finishing their exit, so `EBUSY` is retried for up to [`EMPTY_WAIT`] (blocking:
/// the kernel needs only moments).
pub(crate) fn remove(group: &Path) -> io::Result<()> {
    if let Some(twin) = v1_memory_group(group) {
        remove_one(&twin)?;
    }
    remove_one(group)
}

/// Removes one group (see [`remove`]), then its project's group if that is now empty.
fn remove_one(group: &Path) -> io::Result<()> {
    let deadline = Instant::now() + EMPTY_WAIT;
    loop {
        match fs::remove_dir(group) {
            Ok(()) => break,
            Err(e) if e.kind() == io::ErrorKind::NotFound => break,
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => return Err(e),
        }
    }
    // Another instance of the project may still use the parent: then it stays.
    if let Some(project_dir) = group.parent() {
        if fs::remove_dir(project_dir).is_ok() {
            tracing::debug!(dir = %project_dir.display(), "removed the project's cgroup");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cloud::local::types::cpu_of;

    /// A stand-in for `/sys/fs/cgroup`, removed on drop.
    struct FakeSys(PathBuf);

    impl FakeSys {
        fn new() -> Self {
            let dir =
                std::env::temp_dir().join(format!("elb-cgroup-test-{}", rand::random::<u64>()));
            fs::create_dir_all(&dir).unwrap();
            Self(dir)
        }
    }

    impl Drop for FakeSys {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    /// What the kernel would do on rmdir: the interface files vanish with the directory.
    fn clear_files(dir: &Path) {
        for entry in fs::read_dir(dir).unwrap().flatten() {
            if entry.path().is_file() {
                fs::remove_file(entry.path()).unwrap();
            }
        }
    }

    #[test]
    fn v1_writes_period_and_quota() {
        let sys = FakeSys::new();
        fs::create_dir_all(sys.0.join("cpu")).unwrap();
        fs::write(sys.0.join("cpu/cpu.cfs_quota_us"), "-1").unwrap();
        let backend = Backend::detect(&sys.0).unwrap();
        assert_eq!(backend, Backend::V1(sys.0.join("cpu")));
        let group = backend
            .create("p", "local-1", cpu_of("t3.micro").unwrap(), 1 << 30)
            .unwrap();
        assert_eq!(group, sys.0.join("cpu/elb/p/local-1"));
        let read = |f: &str| fs::read_to_string(group.join(f)).unwrap();
        assert_eq!(read("cpu.cfs_period_us"), "100000");
        assert_eq!(read("cpu.cfs_quota_us"), "20000");
        assert_eq!(v1_memory_group(&group), None, "no memory hierarchy here");
    }

    #[test]
    fn v2_writes_cpu_max_and_hands_the_controller_down() {
        let sys = FakeSys::new();
        fs::write(sys.0.join("cgroup.controllers"), "cpuset cpu io memory").unwrap();
        let backend = Backend::detect(&sys.0).unwrap();
        assert_eq!(backend, Backend::V2(sys.0.clone()));
        let group = backend
            .create("p", "local-2", cpu_of("m4.large").unwrap(), 8 << 30)
            .unwrap();
        assert_eq!(
            fs::read_to_string(group.join("cpu.max")).unwrap(),
            "200000 100000"
        );
        assert_eq!(
            fs::read_to_string(group.join("memory.max")).unwrap(),
            (8u64 << 30).to_string()
        );
        for dir in [sys.0.clone(), sys.0.join("elb"), sys.0.join("elb/p")] {
            let control = fs::read_to_string(dir.join("cgroup.subtree_control")).unwrap();
            // The fake file keeps the last write: memory, handed down after cpu.
            assert_eq!(control, "+memory", "{}", dir.display());
        }
    }

    #[test]
    fn v1_puts_the_memory_limit_in_the_memory_hierarchys_twin_group() {
        let sys = FakeSys::new();
        fs::create_dir_all(sys.0.join("cpu")).unwrap();
        fs::write(sys.0.join("cpu/cpu.cfs_quota_us"), "-1").unwrap();
        fs::create_dir_all(sys.0.join("memory")).unwrap();
        fs::write(
            sys.0.join("memory/memory.limit_in_bytes"),
            "9223372036854771712",
        )
        .unwrap();
        let backend = Backend::detect(&sys.0).unwrap();
        let group = backend
            .create("p", "local-3", cpu_of("t3.micro").unwrap(), 1 << 30)
            .unwrap();
        let twin = v1_memory_group(&group).expect("a memory twin");
        assert_eq!(twin, sys.0.join("memory/elb/p/local-3"));
        assert_eq!(
            fs::read_to_string(twin.join("memory.limit_in_bytes")).unwrap(),
            (1u64 << 30).to_string()
        );
        clear_files(&group);
        clear_files(&twin);
        remove(&group).unwrap();
        assert!(!group.exists() && !twin.exists());
    }

    #[test]
    fn a_v2_hierarchy_without_cpu_is_refused_with_the_reason() {
        let sys = FakeSys::new();
        fs::create_dir_all(sys.0.join("unified")).unwrap();
        fs::write(sys.0.join("unified/cgroup.controllers"), "hugetlb").unwrap();
        let why = Backend::detect(&sys.0).unwrap_err();
        assert!(why.contains("unified has no cpu controller"), "{why}");
        let empty = FakeSys::new();
        assert!(Backend::detect(&empty.0)
            .unwrap_err()
            .contains("no cgroup v1"));
    }

    #[test]
    fn removal_takes_the_project_group_only_when_empty() {
        let sys = FakeSys::new();
        fs::create_dir_all(sys.0.join("cpu")).unwrap();
        fs::write(sys.0.join("cpu/cpu.cfs_quota_us"), "-1").unwrap();
        let backend = Backend::detect(&sys.0).unwrap();
        let micro = cpu_of("t3.micro").unwrap();
        let one = backend.create("p", "local-1", micro, 1 << 30).unwrap();
        let two = backend.create("p", "local-2", micro, 1 << 30).unwrap();
        clear_files(&one);
        clear_files(&two);
        remove(&one).unwrap();
        assert!(!one.exists() && two.exists());
        remove(&two).unwrap();
        assert!(!sys.0.join("cpu/elb/p").exists());
        assert!(
            sys.0.join("cpu/elb").exists(),
            "elb/ is shared by every project"
        );
        remove(&two).unwrap();
    }
}
