//! A real `elb-agent` process on a loopback port, killed when dropped.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use super::bin_path;
use super::raw_http::{self, HttpResponse};

/// How long the agent may take to print its address.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// Milliseconds since the epoch: the clock of the agents' `sampled_at_unix_ms`.
pub fn now_unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as u64
}

/// A running `elb-agent --listen 127.0.0.1:0 ...`.
pub struct Agent {
    child: Child,
    /// The address it printed.
    pub addr: SocketAddr,
    /// Time from spawn to the printed address.
    pub startup: Duration,
    stderr: Arc<Mutex<String>>,
}

impl Agent {
    /// Starts the agent with `args` after `--listen 127.0.0.1:0` and waits for its address.
    pub fn start(args: &[&str]) -> Agent {
        Self::start_wrapped(&[], "127.0.0.1:0", args)
    }

    /// Starts the agent on `listen` (e.g. the address a killed agent had) with `args`.
    pub fn start_at(listen: &str, args: &[&str]) -> Agent {
        Self::start_wrapped(&[], listen, args)
    }

    /// Starts the agent through `wrapper`, a command line that ends by exec'ing the program and
    /// arguments appended to it (`ip netns exec NS`, `unshare --mount sh -c '...; exec "$@"' sh`),
    /// so that the child's pid is the agent's.
    pub fn start_wrapped(wrapper: &[&str], listen: &str, args: &[&str]) -> Agent {
        let agent = bin_path("elb-agent");
        let mut command = match wrapper.split_first() {
            Some((program, rest)) => {
                let mut command = Command::new(program);
                command.args(rest).arg(agent);
                command
            }
            None => Command::new(agent),
        };
        command
            .args(["--listen", listen])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // Flags only: nothing inherited from the environment changes the agent under test.
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("ELB_AGENT_") {
                command.env_remove(key);
            }
        }
        let spawned = Instant::now();
        let mut child = command.spawn().expect("spawn elb-agent");

        let stderr = Arc::new(Mutex::new(String::new()));
        let mut pipe = child.stderr.take().expect("stderr is piped");
        let sink = stderr.clone();
        std::thread::spawn(move || {
            let mut chunk = [0u8; 4096];
            while let Ok(n @ 1..) = pipe.read(&mut chunk) {
                sink.lock()
                    .expect("stderr buffer")
                    .push_str(&String::from_utf8_lossy(&chunk[..n]));
            }
        });

        let stdout = child.stdout.take().expect("stdout is piped");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx.recv_timeout(START_TIMEOUT).unwrap_or_default();
        let startup = spawned.elapsed();
        let addr = line
            .trim()
            .strip_prefix("listening on ")
            .and_then(|a| a.parse().ok());
        let mut agent = Agent {
            child,
            addr: "127.0.0.1:0".parse().expect("placeholder address"),
            startup,
            stderr,
        };
        match addr {
            Some(addr) => agent.addr = addr,
            None => panic!(
                "elb-agent printed {line:?} instead of `listening on <addr>`; stderr:\n{}",
                agent.stderr()
            ),
        }
        agent
    }

    /// Everything the agent wrote to stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().expect("stderr buffer").clone()
    }

    /// `GET path` on the agent.
    pub fn get(&self, path: &str) -> HttpResponse {
        raw_http::get(self.addr, path)
    }

    /// The current `/stats` snapshot.
    pub fn stats(&self) -> proto::StatsSnapshot {
        let response = self.get("/stats");
        assert_eq!(response.status, 200, "{}", response.text());
        serde_json::from_slice(&response.body).expect("/stats is a StatsSnapshot")
    }

    /// Polls `/stats` every 50 ms until `done` holds, for at most `timeout`.
    pub fn stats_until(
        &self,
        timeout: Duration,
        mut done: impl FnMut(&proto::StatsSnapshot) -> bool,
    ) -> proto::StatsSnapshot {
        let deadline = Instant::now() + timeout;
        loop {
            let stats = self.stats();
            if done(&stats) {
                return stats;
            }
            assert!(
                Instant::now() < deadline,
                "condition not met within {timeout:?}; last snapshot: {stats:#?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The agent's pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends a signal (`libc::SIGTERM`, `libc::SIGINT`, ...) to the agent.
    pub fn signal(&self, signal: libc::c_int) {
        super::signal::send(self.child.id(), signal);
    }

    /// Waits up to `timeout` for the agent to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
