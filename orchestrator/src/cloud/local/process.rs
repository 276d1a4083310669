//! The agents as processes: started detached from `elb` (own session, stdin null, output to a
//! log file, already inside their CPU group), recognised by `/proc` so that a reused pid is never
//! mistaken for an agent, and stopped with SIGTERM then SIGKILL.

use std::ffi::CString;
use std::fs::{File, OpenOptions};
use std::io;
use std::net::Ipv4Addr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use tokio::time::Instant;

use super::cgroup;
use super::state::Record;
use super::LocalError;
use crate::http;
use proto::AGENT_PORT;

/// How often stop and start poll.
const POLL: Duration = Duration::from_millis(100);

/// Starts the agent that `record` describes (its pid is ignored) from `agent`, with its debug
/// endpoints (`/sleep`, `/work`), and returns the new pid. The child joins `record.cgroup` before it executes the agent, so it never runs
/// outside its quota, and starts a session of its own, so it outlives `elb` and a Ctrl-C in
/// `elb`'s terminal does not reach it.
pub(crate) fn spawn(agent: &Path, record: &Record) -> Result<u32, LocalError> {
    let mut command = Command::new(agent);
    command
        .arg("--listen")
        .arg(format!("{}:{AGENT_PORT}", record.address))
        .args(["--cluster", record.tag("Cluster")])
        .args(["--instance-id", &record.id])
        .args(["--instance-type", &record.instance_type])
        .args(["--az", "local"])
        // `/work` (a costly backend) is the workload of the demo's algorithm comparison, and
        // local agents listen on loopback only.
        .arg("--enable-debug-endpoints");
    spawn_detached(command, record)
}

/// Starts `elb-balancer` from `balancer` on the config file `config`, detached like an agent
/// (own session, output to the record's log). The config file is named after the record's id,
/// which is how [`is_agent`] recognises the process later.
pub(crate) fn spawn_balancer(
    balancer: &Path,
    config: &Path,
    record: &Record,
) -> Result<u32, LocalError> {
    let mut command = Command::new(balancer);
    command.arg(config);
    spawn_detached(command, record)
}

/// Runs `command` for `record`: stdin null, stdout and stderr appended to the record's log, in
/// a session of its own and inside the record's cgroup (if any) before it executes.
fn spawn_detached(mut command: Command, record: &Record) -> Result<u32, LocalError> {
    let program = PathBuf::from(command.get_program());
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&record.log)
        .map_err(|e| LocalError::io("opening", &record.log, e))?;
    let log_err = log
        .try_clone()
        .map_err(|e| LocalError::io("opening", &record.log, e))?;
    // The cpu group, and on cgroup v1 its twin in the memory hierarchy.
    let groups: Vec<PathBuf> = record
        .cgroup
        .iter()
        .flat_map(|group| [Some(group.clone()), cgroup::v1_memory_group(group)])
        .flatten()
        .collect();
    let procs = groups
        .iter()
        .map(|group| CString::new(group.join("cgroup.procs").as_os_str().as_bytes()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| LocalError::io("joining the cgroup of", &record.log, e.into()))?;
    command.stdin(Stdio::null()).stdout(log).stderr(log_err);
    // SAFETY: between fork and exec the closure only makes async-signal-safe system calls
    // (setsid, open, write, close) on memory prepared before the fork.
    unsafe {
        command.pre_exec(move || {
            if libc::setsid() < 0 {
                return Err(io::Error::last_os_error());
            }
            for procs in &procs {
                join_own_cgroup(procs)?;
            }
            Ok(())
        });
    }
    let child = command.spawn().map_err(|source| LocalError::Spawn {
        agent: program,
        source,
    })?;
    // Not waited for: the agent outlives this process, and init reaps it.
    Ok(child.id())
}

/// Moves the calling process into the group whose `cgroup.procs` is `procs` (`0` means "me").
fn join_own_cgroup(procs: &CString) -> io::Result<()> {
    // SAFETY: open/write/close on a valid NUL-terminated path and a static buffer.
    unsafe {
        let fd = libc::open(procs.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let written = libc::write(fd, b"0".as_ptr().cast(), 1);
        let error = io::Error::last_os_error();
        libc::close(fd);
        if written != 1 {
            return Err(error);
        }
    }
    Ok(())
}

/// Whether `pid` is alive (not a zombie) and is the process of instance `id`: pids get reused,
/// so the command line must carry `--instance-id <id>` (an agent) or a config file named
/// `<id>.toml` (the balancer).
pub(crate) fn is_agent(pid: u32, id: &str) -> bool {
    is_agent_in(Path::new("/proc"), pid, id)
}

fn is_agent_in(proc_root: &Path, pid: u32, id: &str) -> bool {
    let dir = proc_root.join(pid.to_string());
    let Ok(stat) = std::fs::read_to_string(dir.join("stat")) else {
        return false;
    };
    // `pid (comm) S ...`: the state follows the last `)`, as comm may hold anything.
    let state = stat
        .rfind(')')
        .and_then(|at| stat[at + 1..].split_whitespace().next());
    if matches!(state, None | Some("Z" | "X" | "x")) {
        return false;
    }
    let Ok(cmdline) = std::fs::read(dir.join("cmdline")) else {
        return false;
    };
    let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
    let config = format!("{id}.toml");
    args.windows(2)
        .any(|w| w[0] == b"--instance-id" && w[1] == id.as_bytes())
        || args.iter().any(|a| {
            Path::new(std::ffi::OsStr::from_bytes(a)).file_name()
                == Some(std::ffi::OsStr::new(&config))
        })
}

/// Sends `signal` to the agent of `record` if it is still that agent.
fn signal(record: &Record, signal: libc::c_int) {
    if !is_agent(record.pid, &record.id) {
        return;
    }
    let Ok(pid) = libc::pid_t::try_from(record.pid) else {
        return;
    };
    // SAFETY: kill(2) has no memory-safety preconditions; the pid was just checked to be ours.
    unsafe { libc::kill(pid, signal) };
}

/// Sends SIGHUP to the process of `record` (the balancer reloads its config on it).
pub(crate) fn hang_up(record: &Record) {
    signal(record, libc::SIGHUP);
}

/// SIGKILLs the agent of `record` at once, e.g. one that could not be recorded.
pub(crate) fn kill_now(record: &Record) {
    signal(record, libc::SIGKILL);
}

/// How an agent ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ended {
    /// It was not running any more.
    AlreadyStopped,
    /// It exited after SIGTERM.
    Terminated,
    /// It ignored SIGTERM for the whole grace period.
    Killed,
}

/// Stops every agent of `records`: SIGTERM, up to `grace` to exit, then SIGKILL. Returns how
/// each one ended, in order, once none of them runs any more.
pub(crate) async fn stop(records: &[Record], grace: Duration) -> Vec<Ended> {
    let alive = |r: &Record| is_agent(r.pid, &r.id);
    let mut ended: Vec<Ended> = records
        .iter()
        .map(|r| {
            if alive(r) {
                Ended::Terminated
            } else {
                Ended::AlreadyStopped
            }
        })
        .collect();
    for r in records {
        signal(r, libc::SIGTERM);
    }
    let deadline = Instant::now() + grace;
    while records.iter().any(alive) && Instant::now() < deadline {
        tokio::time::sleep(POLL).await;
    }
    for (r, how) in records.iter().zip(&mut ended) {
        if alive(r) {
            tracing::warn!(id = %r.id, pid = r.pid, "no exit after SIGTERM: SIGKILL");
            signal(r, libc::SIGKILL);
            *how = Ended::Killed;
        }
    }
    // SIGKILL cannot be ignored; the wait is only for the kernel to finish the exit.
    while records.iter().any(alive) {
        tokio::time::sleep(POLL).await;
    }
    ended
}

/// A loopback address in 127.77.0.0/16 (every 127/8 address is local on Linux, no setup
/// needed) that is not in `taken` and where every one of `ports` (8000 for an agent) is free
/// right now, machine-wide, whatever the project: proven by binding them. Random, so concurrent
/// launches of different projects rarely try the same one; if they do, the loser's process
/// fails to bind and `launch` says so.
pub(crate) fn free_address(taken: &[Ipv4Addr], ports: &[u16]) -> Result<Ipv4Addr, LocalError> {
    const ATTEMPTS: usize = 64;
    let mut last_error = None;
    for _ in 0..ATTEMPTS {
        let [x, y]: [u8; 2] = rand::random();
        let address = Ipv4Addr::new(127, 77, x, y.clamp(1, 254));
        if taken.contains(&address) {
            continue;
        }
        let bound: Result<Vec<_>, _> = ports
            .iter()
            .map(|port| std::net::TcpListener::bind((address, *port)))
            .collect();
        match bound {
            Ok(_) => return Ok(address),
            Err(e) => last_error = Some(e),
        }
    }
    Err(LocalError::NoAddress {
        attempts: ATTEMPTS,
        last: last_error.map_or_else(|| "all taken".to_owned(), |e| e.to_string()),
    })
}

/// Whether `address` answers `GET /healthz` with 200 within a second.
pub(crate) async fn healthy(address: Ipv4Addr) -> bool {
    let host = address.to_string();
    let probe = http::healthz_status(&host);
    matches!(
        tokio::time::timeout(Duration::from_secs(1), probe).await,
        Ok(Ok(200))
    )
}

/// The last lines of an agent's log, for the error when it dies at start.
pub(crate) fn log_tail(log: &Path) -> String {
    let Ok(mut file) = File::open(log) else {
        return String::new();
    };
    let mut text = String::new();
    let _ = io::Read::read_to_string(&mut file, &mut text);
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(5)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake_proc(pid: u32, state: &str, cmdline: &[&str]) -> std::path::PathBuf {
        let root = std::env::temp_dir().join(format!("elb-proc-test-{}", rand::random::<u64>()));
        let dir = root.join(pid.to_string());
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("stat"), format!("{pid} (elb-agent) {state} 1 2 3")).unwrap();
        std::fs::write(dir.join("cmdline"), cmdline.join("\0") + "\0").unwrap();
        root
    }

    #[test]
    fn an_agent_is_recognised_by_its_instance_id() {
        let argv = [
            "elb-agent",
            "--listen",
            "127.77.0.1:8000",
            "--instance-id",
            "local-1",
        ];
        let root = fake_proc(42, "S", &argv);
        assert!(is_agent_in(&root, 42, "local-1"));
        assert!(
            !is_agent_in(&root, 42, "local-2"),
            "a reused pid is not our agent"
        );
        assert!(
            !is_agent_in(&root, 43, "local-1"),
            "a gone pid is not running"
        );
        std::fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn a_zombie_is_not_running() {
        let root = fake_proc(7, "Z", &["elb-agent", "--instance-id", "local-1"]);
        assert!(!is_agent_in(&root, 7, "local-1"));
        std::fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn this_process_is_not_an_agent() {
        assert!(!is_agent(std::process::id(), "local-1"));
    }
}
