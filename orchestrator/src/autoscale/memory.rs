//! What an autoscaling loop remembers across its own restarts, in the project's state
//! directory: `autoscale/<cluster>.json`, rewritten atomically every tick. It holds when each
//! instance the loop launched was launched (so a restarted loop still leaves a warming instance
//! out of the metric), a launch it had begun (so instances that appear without a record are
//! known as its own), the recent recommendations (the stabilization window survives), and the
//! last decision with its reason (which `elb ls` shows). `autoscale/<cluster>.lock` is held
//! (`flock`) while a loop runs, so two loops never scale one cluster.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::os::fd::AsRawFd;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::state::{write_atomic, StateDir, StateError};

/// Schema of the file; a newer one is refused rather than misread.
const SCHEMA: u32 = 1;

/// A launch begun and not yet recorded instance by instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct PendingLaunch {
    /// When it began.
    pub at_unix_ms: u64,
    /// How many instances it asked for.
    pub count: u32,
    /// The cluster's instances before it: any other that appears is this launch's.
    pub existing: Vec<String>,
}

/// The last decision, for `elb ls`, `elb stats` and the dashboard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct LastDecision {
    /// When it was taken.
    pub at_unix_ms: u64,
    /// `hold`, `scale_out`, `scale_in`, `replace`.
    pub action: String,
    /// Instances then.
    pub current: u32,
    /// Instances wanted.
    pub desired: u32,
    /// Why, in words.
    pub reason: String,
}

/// One cluster's autoscaling state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Memory {
    pub schema: u32,
    pub cluster: String,
    /// The process of the loop that wrote it last (the kill switch stops it).
    pub pid: u32,
    pub min: u32,
    pub max: u32,
    /// Instance id to when the loop launched it.
    pub launched: BTreeMap<String, u64>,
    #[serde(default)]
    pub pending_launch: Option<PendingLaunch>,
    /// The stabilization window's recommendations: (unix ms, count), oldest first.
    #[serde(default)]
    pub recommendations: Vec<(u64, u32)>,
    #[serde(default)]
    pub last: Option<LastDecision>,
    /// The recent ticks, oldest first (at most [`TICKS_KEPT`]): what a bench run during the
    /// loop puts beside its own timeline.
    #[serde(default)]
    pub ticks: Vec<LastDecision>,
}

/// Ticks a memory keeps: 6 hours of 10 s ticks.
pub(crate) const TICKS_KEPT: usize = 2160;

impl Memory {
    /// Records one tick's decision as the last, and in the history.
    pub(crate) fn record(&mut self, decision: LastDecision) {
        self.ticks.push(decision.clone());
        let excess = self.ticks.len().saturating_sub(TICKS_KEPT);
        self.ticks.drain(..excess);
        self.last = Some(decision);
    }
}

impl Memory {
    /// A fresh memory for `cluster`.
    pub(crate) fn new(cluster: &str, min: u32, max: u32) -> Self {
        Self {
            schema: SCHEMA,
            cluster: cluster.to_owned(),
            pid: std::process::id(),
            min,
            max,
            launched: BTreeMap::new(),
            pending_launch: None,
            recommendations: Vec::new(),
            last: None,
            ticks: Vec::new(),
        }
    }
}

/// The `tokio` instant of the wall-clock time `unix_ms`, given that `now` is `now_unix_ms`
/// (times in the future or before the instant clock's start map to `now`).
pub(crate) fn instant_of(unix_ms: u64, now: Instant, now_unix_ms: u64) -> Instant {
    now.checked_sub(Duration::from_millis(now_unix_ms.saturating_sub(unix_ms)))
        .unwrap_or(now)
}

/// The wall-clock time of `at`, given that `now` is `now_unix_ms`.
pub(crate) fn unix_ms_of(at: Instant, now: Instant, now_unix_ms: u64) -> u64 {
    now_unix_ms.saturating_sub(now.saturating_duration_since(at).as_millis() as u64)
}

/// Failures reading or locking the memory.
#[derive(Debug, thiserror::Error)]
pub(crate) enum MemoryError {
    #[error(transparent)]
    State(#[from] StateError),
    #[error(
        "{} is not an autoscaling state elb can read ({why}); move it away to start afresh \
         (the loop then treats every instance of the cluster as warmed up)",
        path.display()
    )]
    Unreadable { path: PathBuf, why: String },
    #[error(
        "another `elb autoscale --cluster {cluster}` is running{}: stop it (Ctrl-C) before \
         starting a new one",
        pid.map(|p| format!(" (pid {p})")).unwrap_or_default()
    )]
    Busy { cluster: String, pid: Option<u32> },
}

/// The project's autoscaling states.
#[derive(Debug, Clone)]
pub(crate) struct Memories {
    dir: PathBuf,
}

impl Memories {
    /// The states of the project whose state directory is `state`.
    pub(crate) fn new(state: &StateDir) -> Self {
        Self {
            dir: state.path().join("autoscale"),
        }
    }

    fn file(&self, cluster: &str) -> PathBuf {
        self.dir.join(format!("{cluster}.json"))
    }

    /// `cluster`'s memory, if a loop ever ran for it.
    pub(crate) fn load(&self, cluster: &str) -> Result<Option<Memory>, MemoryError> {
        read(&self.file(cluster))
    }

    /// Every cluster's memory, by cluster name.
    pub(crate) fn all(&self) -> Result<Vec<Memory>, MemoryError> {
        let Ok(entries) = fs::read_dir(&self.dir) else {
            return Ok(Vec::new());
        };
        let mut paths: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        paths.sort();
        let mut all = Vec::new();
        for path in paths {
            all.extend(read(&path)?);
        }
        Ok(all)
    }

    /// Writes `memory` (atomically: a reader sees the old state or the new one).
    pub(crate) fn save(&self, memory: &Memory) -> Result<(), MemoryError> {
        self.create_dir()?;
        let text = serde_json::to_string_pretty(memory).expect("plain data serializes");
        write_atomic(&self.file(&memory.cluster), text.as_bytes(), 0o600)?;
        Ok(())
    }

    /// Forgets `cluster` (the kill switch).
    pub(crate) fn remove(&self, cluster: &str) {
        let _ = fs::remove_file(self.file(cluster));
        let _ = fs::remove_file(self.dir.join(format!("{cluster}.lock")));
    }

    fn create_dir(&self) -> Result<(), StateError> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)
            .map_err(|source| StateError::Io {
                action: "creating",
                path: self.dir.clone(),
                source,
            })
    }

    /// Takes `cluster`'s lock, held until the returned value is dropped; refused while another
    /// loop holds it.
    pub(crate) fn lock(&self, cluster: &str) -> Result<Lock, MemoryError> {
        self.create_dir()?;
        let path = self.dir.join(format!("{cluster}.lock"));
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|source| StateError::Io {
                action: "opening",
                path: path.clone(),
                source,
            })?;
        // SAFETY: flock on a descriptor this function owns; no memory is involved.
        let locked = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0;
        if !locked {
            let pid = self.load(cluster).ok().flatten().map(|m| m.pid);
            return Err(MemoryError::Busy {
                cluster: cluster.to_owned(),
                pid,
            });
        }
        Ok(Lock { _file: file })
    }
}

/// A held cluster lock; released when dropped (or when the process ends).
#[derive(Debug)]
pub(crate) struct Lock {
    _file: File,
}

fn read(path: &Path) -> Result<Option<Memory>, MemoryError> {
    let text = match fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(StateError::Io {
                action: "reading",
                path: path.to_owned(),
                source,
            }
            .into())
        }
    };
    let unreadable = |why: String| MemoryError::Unreadable {
        path: path.to_owned(),
        why,
    };
    let memory: Memory = serde_json::from_str(&text).map_err(|e| unreadable(e.to_string()))?;
    if memory.schema > SCHEMA {
        return Err(unreadable(format!(
            "schema {} is newer than this elb's {SCHEMA}",
            memory.schema
        )));
    }
    Ok(Some(memory))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp() -> (Memories, PathBuf) {
        let root = std::env::temp_dir().join(format!("elb-memory-{}", rand::random::<u64>()));
        (Memories::new(&StateDir::for_path(root.join("p"))), root)
    }

    #[test]
    fn a_memory_round_trips_and_one_loop_holds_the_lock() {
        let (memories, root) = temp();
        assert_eq!(memories.load("c1").unwrap(), None);
        let mut memory = Memory::new("c1", 1, 4);
        memory.launched.insert("local-1".into(), 1_000);
        memory.recommendations.push((900, 3));
        memories.save(&memory).unwrap();
        assert_eq!(memories.load("c1").unwrap(), Some(memory.clone()));
        assert_eq!(memories.all().unwrap(), vec![memory]);

        let held = memories.lock("c1").unwrap();
        let busy = memories.lock("c1").unwrap_err().to_string();
        assert!(
            busy.contains("another `elb autoscale --cluster c1`"),
            "{busy}"
        );
        assert!(
            busy.contains(&format!("pid {}", std::process::id())),
            "{busy}"
        );
        assert!(
            memories.lock("c2").is_ok(),
            "another cluster has its own lock"
        );
        drop(held);
        assert!(memories.lock("c1").is_ok());
        memories.remove("c1");
        assert_eq!(memories.load("c1").unwrap(), None);
        fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn a_newer_schema_is_refused() {
        let (memories, root) = temp();
        let mut memory = Memory::new("c1", 1, 2);
        memory.schema = SCHEMA + 1;
        memories.save(&memory).unwrap();
        let err = memories.load("c1").unwrap_err().to_string();
        assert!(
            err.contains("newer") && err.contains("move it away"),
            "{err}"
        );
        fs::remove_dir_all(root).unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn wall_clock_times_map_to_instants_and_back() {
        tokio::time::advance(Duration::from_secs(1000)).await;
        let now = Instant::now();
        let at = instant_of(40_000, now, 100_000);
        assert_eq!(now - at, Duration::from_secs(60));
        assert_eq!(unix_ms_of(at, now, 100_000), 40_000);
        assert_eq!(instant_of(200_000, now, 100_000), now, "the future is now");
    }
}
