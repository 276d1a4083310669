//! The local provider's memory: `<state dir>/local/instances.json`, one record per instance (id,
//! tags, type, address, pid, cgroup, log file), so `ls` and `kill` work from a later `elb`.
//!
//! Writers take an exclusive `flock` on `instances.lock` for read-modify-write, so two `elb`
//! runs in the same project never lose each other's instances; the file itself is replaced
//! atomically, so readers need no lock. The lock file stays (removing it would let a waiting
//! writer lock an unlinked file).

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::LocalError;
use crate::state::{write_atomic, StateDir};

/// Version of the file's layout.
const SCHEMA: u32 = 1;
const FILE: &str = "instances.json";
const LOCK_FILE: &str = "instances.lock";

/// One local instance as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Record {
    /// `local-<8 hex>`.
    pub id: String,
    /// `Project`, `Cluster`, `Name`, `ManagedBy`, as on EC2.
    pub tags: BTreeMap<String, String>,
    /// e.g. `t3.micro`.
    pub instance_type: String,
    /// The loopback address the agent listens on (port 8000).
    pub address: Ipv4Addr,
    /// The agent's process id.
    pub pid: u32,
    /// Its CPU control group, if CPU could be limited.
    pub cgroup: Option<PathBuf>,
    /// Where its stdout and stderr go.
    pub log: PathBuf,
}

impl Record {
    /// The value of tag `key`, or `""`.
    pub fn tag(&self, key: &str) -> &str {
        self.tags.get(key).map_or("", String::as_str)
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct InstancesFile {
    schema: u32,
    instances: Vec<Record>,
}

/// The project's `local/` directory.
#[derive(Debug, Clone)]
pub(crate) struct Store {
    dir: PathBuf,
}

/// The records, held under the exclusive lock until dropped.
#[derive(Debug)]
pub(crate) struct Locked<'a> {
    store: &'a Store,
    /// Released when the file is closed, on drop.
    _lock: File,
    /// The records as read; [`Locked::save`] writes them back.
    pub records: Vec<Record>,
}

impl Store {
    /// The store of the project whose state lives in `state`.
    pub fn new(state: &StateDir) -> Self {
        Self {
            dir: state.path().join("local"),
        }
    }

    /// The directory: records, lock and agent logs.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The records as last saved (no lock: the file is replaced atomically).
    pub fn read(&self) -> Result<Vec<Record>, LocalError> {
        let path = self.dir.join(FILE);
        let text = match fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(LocalError::io("reading", &path, e)),
        };
        let file: InstancesFile =
            serde_json::from_str(&text).map_err(|e| LocalError::BadState {
                path: path.clone(),
                detail: e.to_string(),
            })?;
        if file.schema > SCHEMA {
            return Err(LocalError::BadState {
                path,
                detail: format!(
                    "schema {} is newer than this elb understands ({SCHEMA}): upgrade elb",
                    file.schema
                ),
            });
        }
        Ok(file.instances)
    }

    /// Takes the exclusive lock (waiting for another `elb` that holds it) and reads the records.
    pub fn lock(&self) -> Result<Locked<'_>, LocalError> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)
            .map_err(|e| LocalError::io("creating", &self.dir, e))?;
        let path = self.dir.join(LOCK_FILE);
        let lock = File::create(&path).map_err(|e| LocalError::io("creating", &path, e))?;
        // SAFETY: flock(2) on a descriptor we own; no memory is shared with the kernel.
        if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) } != 0 {
            return Err(LocalError::io(
                "locking",
                &path,
                std::io::Error::last_os_error(),
            ));
        }
        Ok(Locked {
            store: self,
            _lock: lock,
            records: self.read()?,
        })
    }
}

impl Locked<'_> {
    /// Writes the records back atomically; no records means no file.
    pub fn save(&self) -> Result<(), LocalError> {
        let path = self.store.dir.join(FILE);
        if self.records.is_empty() {
            return match fs::remove_file(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    Err(LocalError::io("removing", &path, e))
                }
                _ => Ok(()),
            };
        }
        let file = InstancesFile {
            schema: SCHEMA,
            instances: self.records.clone(),
        };
        let mut text = serde_json::to_string_pretty(&file).map_err(|e| LocalError::BadState {
            path: path.clone(),
            detail: e.to_string(),
        })?;
        text.push('\n');
        Ok(write_atomic(&path, text.as_bytes(), 0o600)?)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A record for tests.
    pub(crate) fn record(id: &str, pid: u32) -> Record {
        Record {
            id: id.into(),
            tags: BTreeMap::from([("Cluster".to_owned(), "c1".to_owned())]),
            instance_type: "t3.micro".into(),
            address: Ipv4Addr::new(127, 77, 0, 1),
            pid,
            cgroup: None,
            log: PathBuf::from("/dev/null"),
        }
    }

    fn temp_store() -> (Store, PathBuf) {
        let root = std::env::temp_dir().join(format!("elb-local-test-{}", rand::random::<u64>()));
        let state = StateDir::for_path(root.join("proj"));
        (Store::new(&state), root)
    }

    #[test]
    fn records_round_trip_and_a_second_writer_appends() {
        let (store, root) = temp_store();
        assert!(store.read().unwrap().is_empty());
        {
            let mut first = store.lock().unwrap();
            first.records.push(record("local-1", 10));
            first.save().unwrap();
        }
        {
            let mut second = store.lock().unwrap();
            assert_eq!(second.records, vec![record("local-1", 10)]);
            second.records.push(record("local-2", 11));
            second.save().unwrap();
        }
        let ids: Vec<String> = store.read().unwrap().into_iter().map(|r| r.id).collect();
        assert_eq!(ids, ["local-1", "local-2"]);
        let text = fs::read_to_string(store.dir().join(FILE)).unwrap();
        assert!(text.contains("\"schema\": 1"), "{text}");
        fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn the_lock_makes_concurrent_writers_wait_for_each_other() {
        let (store, root) = temp_store();
        let threads: Vec<_> = (0..8)
            .map(|n| {
                let store = store.clone();
                std::thread::spawn(move || {
                    let mut locked = store.lock().unwrap();
                    std::thread::sleep(std::time::Duration::from_millis(5));
                    locked.records.push(record(&format!("local-{n}"), n));
                    locked.save().unwrap();
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(store.read().unwrap().len(), 8);
        fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn saving_no_records_removes_the_file_and_a_newer_schema_is_refused() {
        let (store, root) = temp_store();
        let mut locked = store.lock().unwrap();
        locked.records.push(record("local-1", 10));
        locked.save().unwrap();
        locked.records.clear();
        locked.save().unwrap();
        assert!(!store.dir().join(FILE).exists());
        fs::write(store.dir().join(FILE), r#"{"schema": 99, "instances": []}"#).unwrap();
        let err = store.read().unwrap_err().to_string();
        assert!(err.contains("upgrade elb"), "{err}");
        drop(locked);
        fs::remove_dir_all(root).unwrap();
    }
}
