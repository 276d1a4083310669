//! The local provider as the tests see it: an `elb --local` project of its own, what it left on
//! the machine (the instances file, agent processes, cgroups), and a guard that removes all of
//! it when the test ends, passed or failed.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Deserialize;

use super::{Elb, ElbOutput};

/// Where cgroup v1's cpu controller is mounted on these machines.
const CGROUP_V1_CPU: &str = "/sys/fs/cgroup/cpu";
/// Where cgroup v1's memory controller is mounted on these machines.
const CGROUP_V1_MEMORY: &str = "/sys/fs/cgroup/memory";
/// The cgroup v2 root.
const CGROUP_V2: &str = "/sys/fs/cgroup";

/// One instance in the project's `instances.json`, as far as the tests care.
#[derive(Debug, Clone, Deserialize)]
pub struct Record {
    pub id: String,
    pub instance_type: String,
    pub address: Ipv4Addr,
    pub pid: u32,
    pub cgroup: Option<PathBuf>,
    pub log: PathBuf,
    #[serde(default)]
    pub tags: std::collections::BTreeMap<String, String>,
}

impl Record {
    /// Whether this is the project's balancer rather than an agent instance.
    pub fn is_balancer(&self) -> bool {
        self.tags.get("Role").is_some_and(|r| r == "balancer")
    }

    /// The agent's `ip:8000`.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from((self.address, 8000))
    }
}

#[derive(Deserialize)]
struct InstancesFile {
    instances: Vec<Record>,
}

/// An `elb --local` project; on drop, SIGKILLs every process it started and removes its
/// cgroups, whatever the test got to.
pub struct LocalProject {
    pub elb: Elb,
}

impl LocalProject {
    /// A fresh project with its own state directory.
    pub fn new() -> Self {
        Self { elb: Elb::local() }
    }

    /// `elb --local --project <p> --output json <args>`.
    pub fn run(&self, args: &[&str]) -> ElbOutput {
        self.elb.run(args)
    }

    /// Launches `count` × `instance_type` as `cluster` and returns the printed instances.
    pub fn launch(&self, cluster: &str, instance_type: &str, count: u32) -> Vec<serde_json::Value> {
        let count = count.to_string();
        let args = [
            "launch",
            "--cluster",
            cluster,
            "--type",
            instance_type,
            "--count",
            &count,
        ];
        let json = self.run(&args).json();
        json.as_array()
            .unwrap_or_else(|| panic!("launch prints an array: {json}"))
            .clone()
    }

    /// `ls` as JSON objects.
    pub fn ls(&self) -> Vec<serde_json::Value> {
        let json = self.run(&["ls"]).json();
        json.as_array().expect("ls prints an array").clone()
    }

    /// The project's `local/` directory.
    pub fn local_dir(&self) -> PathBuf {
        self.elb.state_dir().join(self.elb.project()).join("local")
    }

    /// The instances file.
    pub fn state_file(&self) -> PathBuf {
        self.local_dir().join("instances.json")
    }

    /// The recorded instances (none when there is no file).
    pub fn records(&self) -> Vec<Record> {
        match std::fs::read_to_string(self.state_file()) {
            Ok(text) => {
                let file: InstancesFile = serde_json::from_str(&text)
                    .unwrap_or_else(|e| panic!("instances.json ({e}):\n{text}"));
                file.instances
            }
            Err(_) => Vec::new(),
        }
    }

    /// The recorded agent instances (the balancer left out).
    pub fn agents(&self) -> Vec<Record> {
        let mut records = self.records();
        records.retain(|r| !r.is_balancer());
        records
    }

    /// Every live process that this project started, recorded or not: those whose stdout is a
    /// file in the project's state directory.
    pub fn processes(&self) -> Vec<u32> {
        let dir = self.local_dir();
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return Vec::new();
        };
        entries
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
            .filter(|pid| {
                std::fs::read_link(format!("/proc/{pid}/fd/1"))
                    .is_ok_and(|out| out.starts_with(&dir))
            })
            .filter(|pid| is_alive(*pid))
            .collect()
    }

    /// The project's cgroup directory, `<controller root>/elb/<project>`.
    pub fn cgroup_dir(&self) -> PathBuf {
        cgroup_root().join("elb").join(self.elb.project())
    }
}

impl Drop for LocalProject {
    fn drop(&mut self) {
        let leftovers = self.processes();
        for pid in &leftovers {
            // SAFETY: kill(2) has no memory-safety preconditions; the pid writes to our logs.
            unsafe { libc::kill(*pid as libc::pid_t, libc::SIGKILL) };
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while leftovers.iter().any(|p| is_alive(*p)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        // A zombie main thread can outlive its last threads' exit by a moment: until then the
        // kernel refuses to remove their group, so retry until the deadline. On cgroup v1 the
        // memory limits live in a twin tree under the memory hierarchy.
        let memory_twin = Path::new(CGROUP_V1_MEMORY)
            .join("elb")
            .join(self.elb.project());
        for project_dir in [self.cgroup_dir(), memory_twin] {
            remove_groups(&project_dir, deadline);
        }
    }
}

/// Removes the instance groups under `project_dir`, then it, retrying until `deadline`.
fn remove_groups(project_dir: &Path, deadline: Instant) {
    while project_dir.exists() {
        if let Ok(groups) = std::fs::read_dir(project_dir) {
            for group in groups.flatten().filter(|g| g.path().is_dir()) {
                let _ = std::fs::remove_dir(group.path());
            }
        }
        if std::fs::remove_dir(project_dir).is_ok() || Instant::now() >= deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether `pid` exists and is not a zombie (this machine's init does not reap orphans).
pub fn is_alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        let state = stat
            .rfind(')')
            .and_then(|at| stat[at + 1..].split_whitespace().next());
        !matches!(state, None | Some("Z" | "X"))
    })
}

/// The root of the hierarchy that holds the cpu controller: v1's `cpu`, else v2's root.
pub fn cgroup_root() -> PathBuf {
    let v1 = Path::new(CGROUP_V1_CPU);
    if v1.join("cpu.cfs_quota_us").is_file() {
        v1.to_owned()
    } else {
        PathBuf::from(CGROUP_V2)
    }
}

/// `(quota, period)` in microseconds as the kernel reports them for `group` (v1 or v2).
pub fn cpu_quota(group: &Path) -> (u64, u64) {
    let read = |file: &str| {
        std::fs::read_to_string(group.join(file))
            .unwrap_or_else(|e| panic!("{}/{file}: {e}", group.display()))
    };
    let number = |text: &str| text.trim().parse::<u64>().expect("a number of µs");
    if group.join("cpu.cfs_quota_us").exists() {
        (
            number(&read("cpu.cfs_quota_us")),
            number(&read("cpu.cfs_period_us")),
        )
    } else {
        let max = read("cpu.max");
        let (quota, period) = max
            .trim()
            .split_once(' ')
            .expect("cpu.max is `<quota> <period>`");
        (number(quota), number(period))
    }
}

/// A field of `group`'s `cpu.stat` (`nr_throttled`, `throttled_time`/`throttled_usec`).
pub fn cpu_stat(group: &Path, field: &str) -> u64 {
    let stat = std::fs::read_to_string(group.join("cpu.stat")).expect("cpu.stat");
    stat.lines()
        .find_map(|line| line.strip_prefix(field)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in cpu.stat:\n{stat}"))
}

/// The `id`s of instances as `launch` and `ls` print them.
pub fn ids(instances: &[serde_json::Value]) -> Vec<String> {
    instances
        .iter()
        .map(|i| i["id"].as_str().expect("an id").to_owned())
        .collect()
}
