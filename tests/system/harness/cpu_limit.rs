//! A CPU quota on a process the test started: a cgroup of its own (v1's cpu controller, or the
//! v2 root's), with `quota` microseconds of CPU per `period`; the kernel throttles the process
//! once it used its quota in a period, as it does an instance type's. Removed on drop (drop
//! the process first: a group with a process in it cannot be removed).

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Once;
use std::time::{Duration, Instant};

use super::local::cgroup_root;

/// A cgroup with a CPU quota.
pub struct CpuLimit {
    /// The group's directory.
    pub dir: PathBuf,
}

impl CpuLimit {
    /// Puts process `pid` (all its threads) in a new group limited to `quota` per `period`.
    pub fn apply(pid: u32, quota: Duration, period: Duration) -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        static CLEAN: Once = Once::new();
        let root = cgroup_root();
        CLEAN.call_once(|| clean_stale(&root));
        let dir = root.join(format!(
            "elb-balancer-test-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
        let limit = Self { dir };
        let write = |file: &str, value: String| {
            let path = limit.dir.join(file);
            std::fs::write(&path, &value)
                .unwrap_or_else(|e| panic!("write {value} to {}: {e}", path.display()));
        };
        let (quota, period) = (quota.as_micros(), period.as_micros());
        if limit.dir.join("cpu.cfs_quota_us").exists() {
            write("cpu.cfs_period_us", period.to_string());
            write("cpu.cfs_quota_us", quota.to_string());
        } else {
            write("cpu.max", format!("{quota} {period}"));
        }
        write("cgroup.procs", pid.to_string());
        limit
    }
}

/// Removes the (empty) groups of test runs whose process is gone.
fn clean_stale(root: &std::path::Path) {
    for entry in std::fs::read_dir(root).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let pid = name
            .strip_prefix("elb-balancer-test-")
            .and_then(|rest| rest.split('-').next());
        if pid.is_some_and(|pid| !std::path::Path::new(&format!("/proc/{pid}")).exists()) {
            let _ = std::fs::remove_dir(entry.path());
        }
    }
}

impl Drop for CpuLimit {
    fn drop(&mut self) {
        // A killed process's group stays busy until the kernel has reaped all its threads.
        let deadline = Instant::now() + Duration::from_secs(5);
        while std::fs::remove_dir(&self.dir).is_err() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}
