//! `elb`, the orchestrator: launches, lists and tears down the instances of an elb project, on
//! EC2 or as local processes, installs the agent on them (`deploy/`), reads their agents' stats
//! (`stats/`) and loads them (`bench/`).
//!
//! The binary (`main.rs`) only parses flags and maps [`Error`]s to exit codes; each subcommand
//! lives in `cli/`, the clouds behind the `cloud::Cloud` trait in `cloud/ec2/` and
//! `cloud/local/`.

pub(crate) mod agent_binary;
pub(crate) mod alb;
pub(crate) mod asg;
pub(crate) mod autoscale;
pub(crate) mod aws;
pub(crate) mod balance;
pub(crate) mod bench;
pub mod cli;
pub(crate) mod cloud;
pub(crate) mod cloudwatch;
pub(crate) mod config;
pub(crate) mod dashboard;
pub(crate) mod deploy;
pub(crate) mod fleet;
pub(crate) mod http;
pub(crate) mod notes;
pub(crate) mod output;
pub(crate) mod progress;
pub(crate) mod regions;
pub(crate) mod routing;
pub(crate) mod state;
pub(crate) mod stats;
#[cfg(test)]
pub(crate) mod testing;

use cloud::errors::CloudError;

/// Everything a command can fail with, each carrying the fix in its message.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad input, caught before any API call.
    #[error("{0}")]
    Usage(String),
    /// An unknown `--region` (or configured region).
    #[error(transparent)]
    Region(#[from] regions::UnknownRegion),
    /// A bench plot could not be drawn or written.
    #[error(transparent)]
    Plot(#[from] bench::plot::PlotError),
    /// A cloud operation failed.
    #[error(transparent)]
    Cloud(#[from] CloudError),
    /// The local provider failed.
    #[error(transparent)]
    Local(#[from] cloud::local::LocalError),
    /// Local state could not be read or written.
    #[error(transparent)]
    State(#[from] state::StateError),
    /// The instance type runs neither x86_64 nor arm64.
    #[error(
        "{instance_type} runs {architectures}; elb launches x86_64 and arm64 instance types \
         only: pick another --type (e.g. t3.micro)"
    )]
    UnsupportedArch {
        /// The refused type.
        instance_type: String,
        /// The architectures it supports.
        architectures: String,
    },
    /// `--ami` is not an image for the instance type's architecture.
    #[error(
        "--ami {ami} is an {image_arch} image, and {instance_type} runs {arch}: pass an {arch} \
         AMI, or leave --ami out to get Amazon Linux 2023 for {arch}"
    )]
    ImageArch {
        /// The image id.
        ami: String,
        /// Its architecture.
        image_arch: String,
        /// The instance type.
        instance_type: String,
        /// The architecture the instance type runs, as EC2 names it.
        arch: &'static str,
    },
    /// The user-data script cannot be made.
    #[error(transparent)]
    UserData(#[from] deploy::user_data::UserDataError),
    /// No usable elb-agent binary for a host.
    #[error(transparent)]
    AgentBinary(#[from] agent_binary::AgentBinaryError),
    /// A deploy failed on some hosts, or could not start.
    #[error(transparent)]
    Deploy(#[from] deploy::DeployError),
    /// The operator answered no.
    #[error("aborted: nothing was deleted")]
    Declined,
    /// `elb stats`: some agents did not answer (their rows say why).
    #[error(
        "{down} of {total} agents did not answer (see their reasons above); check that the \
         instances are running (`elb ls`) and that elb-agent is deployed on them"
    )]
    AgentsDown {
        /// Agents without an answer.
        down: usize,
        /// Agents asked.
        total: usize,
    },
    /// Something came up but is not healthy; the message says which and why.
    #[error("{0}")]
    Unhealthy(String),
    /// Ctrl-C; the message says what exists and how to remove it.
    #[error("{0}")]
    Interrupted(String),
    /// Instances launched with `--idle-terminate` that did not get their alarm.
    #[error(
        "{} ran without their idle alarm ({source}): they will not end on their own; remove them \
         with `elb kill --yes --cluster <cluster>`, or fix the cause (the IAM policy's \
         cloudwatch:PutMetricAlarm) and launch again",
        instances.join(", ")
    )]
    IdleAlarms {
        /// The instances without an alarm.
        instances: Vec<String>,
        source: CloudError,
    },
}

impl Error {
    /// The process exit code: 2 for input errors caught before any API call (or, locally,
    /// before any agent starts), 130 for Ctrl-C, 1 otherwise.
    pub fn exit_code(&self) -> i32 {
        match self {
            Self::Usage(_)
            | Self::Region(_)
            | Self::Local(cloud::local::LocalError::UnknownType { .. }) => 2,
            Self::Interrupted(_) => 130,
            _ => 1,
        }
    }
}
