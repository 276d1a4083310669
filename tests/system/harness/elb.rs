//! Runs the real `elb` binary the way a user would, but sealed off from this machine's AWS
//! setup: no inherited `AWS_*` or `ELB_*` variables, empty AWS config and credentials files, no
//! instance metadata, a private state directory, stdin not a terminal, and every request sent to
//! a loopback endpoint (EC2), or the local provider with a project of its own.

use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::bin_path;

/// How long any one `elb` run may take before the harness kills it and fails the test.
const RUN_DEADLINE: Duration = Duration::from_secs(90);

/// Where an [`Elb`]'s instances live.
enum Provider {
    /// EC2 at this endpoint.
    Ec2 { endpoint: String },
    /// `--local`, in this project, running this agent.
    Local { project: String },
}

/// An `elb` user: its environment, state directory and provider.
pub struct Elb {
    provider: Provider,
    home: TempDir,
    /// `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY`, if any.
    credentials: Option<(String, String)>,
}

impl Elb {
    /// An `elb` that talks to `endpoint` with the dummy credentials moto accepts.
    pub fn new(endpoint: String) -> Self {
        Self::with(Provider::Ec2 { endpoint }, TempDir::new("elb"))
    }

    /// An `elb --local` with a project of its own (unique across concurrent tests, named after
    /// its temp dir), a private state directory, the workspace's `elb-agent` build, and no AWS
    /// credentials (the local provider needs none).
    pub fn local() -> Self {
        let home = TempDir::new("elb-local");
        let project = home
            .path()
            .file_name()
            .expect("temp dir has a name")
            .to_string_lossy()
            .into_owned();
        Self::with(Provider::Local { project }, home).without_credentials()
    }

    fn with(provider: Provider, home: TempDir) -> Self {
        for file in ["aws-config", "aws-credentials"] {
            std::fs::write(home.path().join(file), "").expect("write an empty AWS file");
        }
        Self {
            provider,
            home,
            credentials: Some(("testing".into(), "testing".into())),
        }
    }

    /// The `--project` of a local `elb`.
    pub fn project(&self) -> &str {
        match &self.provider {
            Provider::Local { project } => project,
            Provider::Ec2 { .. } => panic!("EC2 tests pass their project explicitly"),
        }
    }

    /// The same user with no credentials anywhere: no variables, empty files.
    pub fn without_credentials(mut self) -> Self {
        self.credentials = None;
        self
    }

    /// The same user with these access keys instead of the dummy ones.
    pub fn with_credentials(mut self, key_id: &str, secret: &str) -> Self {
        self.credentials = Some((key_id.into(), secret.into()));
        self
    }

    /// `$ELB_STATE_DIR`.
    pub fn state_dir(&self) -> PathBuf {
        self.home.path().join("state")
    }

    /// The command line `elb --endpoint-url <shim> --output json <args>` (or `elb --local
    /// --project <project> --output json <args>`), environment sealed.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(bin_path("elb"));
        for (key, _) in std::env::vars_os() {
            let key_str = key.to_string_lossy();
            if key_str.starts_with("AWS_") || key_str.starts_with("ELB_") || key_str == "RUST_LOG" {
                command.env_remove(&key);
            }
        }
        command
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_CONFIG_FILE", self.home.path().join("aws-config"))
            .env(
                "AWS_SHARED_CREDENTIALS_FILE",
                self.home.path().join("aws-credentials"),
            )
            .env("ELB_STATE_DIR", self.state_dir());
        match &self.provider {
            Provider::Ec2 { endpoint } => command.args(["--endpoint-url", endpoint]),
            Provider::Local { project } => command
                .env("ELB_AGENT", bin_path("elb-agent"))
                .env("ELB_BALANCER", bin_path("elb-balancer"))
                .args(["--local", "--project", project]),
        };
        command
            .args(["--output", "json"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some((key_id, secret)) = &self.credentials {
            command
                .env("AWS_ACCESS_KEY_ID", key_id)
                .env("AWS_SECRET_ACCESS_KEY", secret);
        }
        command
    }

    /// Runs `elb <args>` to completion.
    pub fn run(&self, args: &[&str]) -> ElbOutput {
        self.spawn(args).wait(RUN_DEADLINE)
    }

    /// Starts `elb <args>` and returns at once.
    pub fn spawn(&self, args: &[&str]) -> Running {
        let mut child = self.command(args).spawn().expect("start elb");
        let stdout = read_all(child.stdout.take().expect("piped stdout"));
        let stderr = read_all(child.stderr.take().expect("piped stderr"));
        Running {
            pid: child.id(),
            args: args.iter().map(|a| a.to_string()).collect(),
            exited: wait_in_background(child),
            stdout: Some(stdout),
            stderr: Some(stderr),
            started: Instant::now(),
        }
    }
}

/// An `elb` process still running.
pub struct Running {
    pid: u32,
    args: Vec<String>,
    exited: mpsc::Receiver<ExitStatus>,
    stdout: Option<JoinHandle<String>>,
    stderr: Option<JoinHandle<String>>,
    started: Instant,
}

impl Running {
    /// Sends SIGINT, as Ctrl-C in a terminal does. A process that has already exited gets
    /// nothing: [`Running::wait`] then shows how it ended and what it printed.
    pub fn interrupt(&self) {
        // SAFETY: plain kill(2) on our own child, which has not been reaped yet (a zombie
        // still takes the signal; ESRCH only if it was reaped, which `wait` reports).
        unsafe { libc::kill(self.pid as libc::pid_t, libc::SIGINT) };
    }

    /// Waits for the exit; past `deadline` kills the process and fails the test.
    pub fn wait(mut self, deadline: Duration) -> ElbOutput {
        let status = match self.exited.recv_timeout(deadline) {
            Ok(status) => Some(status),
            Err(_) => {
                // SAFETY: plain kill(2) on our own child, which has not been reaped yet.
                unsafe { libc::kill(self.pid as libc::pid_t, libc::SIGKILL) };
                let _ = self.exited.recv();
                None
            }
        };
        let output = ElbOutput {
            args: std::mem::take(&mut self.args),
            code: status.and_then(|s| s.code()),
            stdout: self
                .stdout
                .take()
                .map(|h| h.join().unwrap_or_default())
                .unwrap_or_default(),
            stderr: self
                .stderr
                .take()
                .map(|h| h.join().unwrap_or_default())
                .unwrap_or_default(),
            elapsed: self.started.elapsed(),
        };
        assert!(
            status.is_some(),
            "elb did not finish within {deadline:?}, killed:\n{output}"
        );
        output
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if self.stdout.is_some() {
            // Not waited for (the test failed first): do not leave it running.
            // SAFETY: plain kill(2) on our own child.
            unsafe { libc::kill(self.pid as libc::pid_t, libc::SIGKILL) };
        }
    }
}

/// What one `elb` run did.
pub struct ElbOutput {
    pub args: Vec<String>,
    /// The exit code; `None` if killed by a signal.
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

impl ElbOutput {
    /// Asserts exit code 0 and returns stdout parsed as JSON.
    pub fn json(&self) -> serde_json::Value {
        self.expect_code(0);
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not (only) JSON ({e}):\n{self}"))
    }

    /// Asserts the exit code.
    pub fn expect_code(&self, code: i32) -> &Self {
        assert_eq!(self.code, Some(code), "unexpected exit code:\n{self}");
        self
    }

    /// Asserts a failure exit (non-zero, not killed by the harness) whose stderr mentions every
    /// one of `needles` (case-insensitive).
    pub fn expect_failure_mentioning(&self, needles: &[&str]) -> &Self {
        assert!(
            matches!(self.code, Some(c) if c != 0),
            "elb should have failed:\n{self}"
        );
        let stderr = self.stderr.to_lowercase();
        for needle in needles {
            assert!(
                stderr.contains(&needle.to_lowercase()),
                "stderr should mention {needle:?}:\n{self}"
            );
        }
        self
    }
}

impl fmt::Display for ElbOutput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "$ elb {} -> exit {:?} after {:?}",
            self.args.join(" "),
            self.code,
            self.elapsed
        )?;
        writeln!(f, "--- stdout\n{}", self.stdout)?;
        write!(f, "--- stderr\n{}", self.stderr)
    }
}

fn read_all(mut pipe: impl Read + Send + 'static) -> JoinHandle<String> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

/// Reaps `child` on a thread of its own, so a deadline is a channel timeout, not a sleep loop.
fn wait_in_background(mut child: Child) -> mpsc::Receiver<ExitStatus> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        if let Ok(status) = child.wait() {
            let _ = tx.send(status);
        }
    });
    rx
}

/// A directory under the system temp dir, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    /// A fresh, empty directory named `<prefix>-test-<pid>-<n>`.
    pub fn new(prefix: &str) -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "{prefix}-test-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create a temp dir");
        Self(path)
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
