//! What can go wrong with local instances, each message with what to do about it.

use std::path::{Path, PathBuf};

use crate::agent_binary::BUILD_COMMAND;

/// Failures of the local provider, each with what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    /// The type is not in the CPU table.
    #[error(
        "instance type {instance_type} has no local CPU quota; known types: {known} (the table \
         is in docs/cli.md). Pick one of them with --type"
    )]
    UnknownType {
        /// The refused type.
        instance_type: String,
        /// The known types, comma-separated.
        known: String,
    },
    /// A file system operation on the local state failed.
    #[error("{action} {}: {source}", path.display())]
    Io {
        /// What was being done, e.g. "reading".
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The instances file could not be written.
    #[error(transparent)]
    State(#[from] crate::state::StateError),
    /// The instances file cannot be used.
    #[error(
        "{} is not a usable local instances file: {detail}. Stop the agents it lists by hand \
         (`pgrep -a elb-agent`), then move it away",
        path.display()
    )]
    BadState {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// The agent executable could not be started.
    #[error(
        "cannot start the agent {}: {source}. Pass --agent <path to elb-agent>, or build it with \
         `{BUILD_COMMAND}`",
        agent.display()
    )]
    Spawn {
        /// The executable.
        agent: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The CPU group could not be set up.
    #[error(
        "cannot set up the CPU quota group {}: {source}. Check that elb may write there (root, \
         or a delegated cgroup)",
        path.display()
    )]
    Cgroup {
        /// The group.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Port 8000 is busy on every loopback address tried.
    #[error(
        "no free loopback address for an agent: port 8000 was busy on {attempts} addresses of \
         127.77.0.0/16 (last error: {last}). Is something listening on 0.0.0.0:8000? Stop it \
         and launch again"
    )]
    NoAddress {
        /// Addresses tried.
        attempts: usize,
        /// The last bind error.
        last: String,
    },
    /// An agent exited before it answered `/healthz`.
    #[error(
        "agent {id} exited before answering /healthz; its log {} ends with:\n{tail}\nRun `elb \
         --local kill` to remove the rest of the launch",
        log.display()
    )]
    AgentDied {
        /// The instance.
        id: String,
        /// Its log file.
        log: PathBuf,
        /// The log's last lines.
        tail: String,
    },
    /// The recorded balancer process is not running.
    #[error(
        "the local balancer {id} is not running (its log: {}): `elb --local balance down` \
         removes its record, `elb --local balance up` starts a new one",
        log.display()
    )]
    BalancerDown {
        /// Its instance id.
        id: String,
        /// Its log file.
        log: PathBuf,
    },
    /// Agents did not answer `/healthz` in time.
    #[error(
        "{} did not answer /healthz within {secs} s: see their logs in {}; `elb --local kill` \
         removes them (or pass a longer --timeout)",
        waiting.join(", "), dir.display()
    )]
    NotReady {
        /// The instances still silent.
        waiting: Vec<String>,
        /// The timeout.
        secs: u64,
        /// Where the logs are.
        dir: PathBuf,
    },
}

impl LocalError {
    pub(crate) fn io(action: &'static str, path: &Path, source: std::io::Error) -> Self {
        Self::Io {
            action,
            path: path.to_owned(),
            source,
        }
    }
}
