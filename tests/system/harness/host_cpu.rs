//! A host whose CPU is as busy as the test says: an agent started in a mount namespace of its
//! own where `/proc/stat` is a file the test keeps advancing, `busy_percent` % of each tick busy.
//!
//! Every agent on this machine reads the same `/proc/stat` (host-wide CPU), so two agents here
//! cannot differ in `cpu.busy_percent` as two instances do; this gives each its own "host".

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use super::{Agent, TempDir};

/// How often the fake counters advance.
const TICK: Duration = Duration::from_millis(20);

/// The fake `/proc/stat` and the thread that advances it.
pub struct HostCpu {
    dir: TempDir,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

/// `/proc/stat`'s all-cores line and one core's, fixed width so that each rewrite is one
/// write of the same length at offset 0 (never a truncated file under a reader).
fn stat_text(busy: u64, idle: u64) -> String {
    let line = |name: &str| format!("{name:<5}{busy:020} 0 0 {idle:020} 0 0 0 0\n");
    format!("{}{}", line("cpu"), line("cpu0"))
}

impl HostCpu {
    /// A host `busy_percent` % busy (0-100).
    pub fn new(busy_percent: u64) -> Self {
        let dir = TempDir::new("elb-host-cpu");
        let path = dir.path().join("stat");
        let file = File::create(&path).expect("create the fake /proc/stat");
        file.write_all_at(stat_text(0, 0).as_bytes(), 0)
            .expect("write the fake /proc/stat");
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let (mut busy, mut idle) = (0, 0);
            while !flag.load(Ordering::Relaxed) {
                busy += busy_percent;
                idle += 100 - busy_percent;
                let _ = file.write_all_at(stat_text(busy, idle).as_bytes(), 0);
                std::thread::sleep(TICK);
            }
        });
        Self {
            dir,
            stop,
            thread: Some(thread),
        }
    }

    /// Starts an agent on 127.0.0.1:0 that sees this host's CPU.
    pub fn agent(&self, args: &[&str]) -> Agent {
        let stat = self.dir.path().join("stat");
        let script = format!("mount --bind {} /proc/stat && exec \"$@\"", stat.display());
        Agent::start_wrapped(
            &["unshare", "--mount", "sh", "-c", &script, "sh"],
            "127.0.0.1:0",
            args,
        )
    }
}

impl Drop for HostCpu {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
