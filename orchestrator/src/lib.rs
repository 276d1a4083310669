//! `elb`, the orchestrator: launches, lists and tears down the EC2 instances of an elb project.
//!
//! The binary (`main.rs`) only parses flags and maps [`Error`]s to exit codes; each subcommand
//! lives in `cli/`, everything EC2-specific in `cloud/ec2/`.

pub(crate) mod agent_binary;
pub mod cli;
pub(crate) mod cloud;
pub(crate) mod config;
pub(crate) mod deploy;
pub(crate) mod output;
pub(crate) mod plan;
pub(crate) mod progress;
pub(crate) mod regions;
pub(crate) mod state;

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
    /// A cloud operation failed.
    #[error(transparent)]
    Cloud(#[from] CloudError),
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
    /// Ctrl-C; the message says what exists and how to remove it.
    #[error("{0}")]
    Interrupted(String),
}

impl Error {
    /// The process exit code: 2 for input errors caught before any API call, 130 for Ctrl-C,
    /// 1 otherwise.
    pub fn exit_code(&self) -> i32 {
        match self {
            Self::Usage(_) | Self::Region(_) => 2,
            Self::Interrupted(_) => 130,
            _ => 1,
        }
    }
}
