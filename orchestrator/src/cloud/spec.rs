//! What commands ask of a cloud, as plain data: a [`LaunchSpec`] and [`KillOptions`]. `cli/`
//! builds them from flags; other callers (the demo, the balancer's control plane) build them in
//! code, without clap.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::agent_binary::Arch;
use crate::cloud::firewall::Cidr;
use crate::cloud::wait::Poll;
use crate::Error;

/// What a launch's instances get as user data, for the architecture the provider finds their
/// type to have: made by the caller (the agent's install script, the user's own script), so
/// that a cloud needs to know nothing of how the agent is delivered.
pub(crate) trait UserData: std::fmt::Debug + Send + Sync {
    /// The user data of instances that run `arch`; an error (before anything is created) when
    /// it cannot be made, e.g. no agent for `arch` where the install script needs one.
    fn for_arch(&self, arch: Arch) -> Result<Option<Vec<u8>>, Error>;
}

/// No user data: the local provider's launches, whose instances run the agent from the start.
#[derive(Debug)]
pub(crate) struct NoUserData;

impl UserData for NoUserData {
    fn for_arch(&self, _arch: Arch) -> Result<Option<Vec<u8>>, Error> {
        Ok(None)
    }
}

/// A cluster to launch: `count` instances of one type, tagged with the cluster's name, and
/// their user data.
#[derive(Debug, Clone)]
pub(crate) struct LaunchSpec {
    /// The `Cluster` tag of the new instances (checked by [`crate::config::validate_name`]).
    pub cluster: String,
    /// e.g. `t3.micro`; locally it sets the agent's CPU quota.
    pub instance_type: String,
    /// How many instances, at least 1.
    pub count: u32,
    /// AMI id; `None` picks the newest Amazon Linux 2023 of the type's architecture (EC2).
    pub image: Option<String>,
    /// Subnet id; `None` lets the default VPC choose (EC2).
    pub subnet: Option<String>,
    /// Who may reach the agents and SSH (EC2's security group).
    pub rules: AccessRules,
    /// The instances' user data, by architecture (EC2).
    pub user_data: Arc<dyn UserData>,
    /// The agent that local instances run: `None` for the build found beside `elb`, or
    /// `$ELB_AGENT` (the local provider).
    pub agent_binary: Option<PathBuf>,
    /// How long to wait for the instances to run, and how often to look.
    pub wait: Poll,
    /// Tags beside the project's own (`Project`, `Cluster`, `Name`, `ManagedBy`), e.g. the
    /// autoscaler's `LaunchedAt`.
    pub tags: Vec<(String, String)>,
}

impl LaunchSpec {
    /// A launch on the local provider of `count` x `instance_type` as `cluster`, running `agent`
    /// (default: the build found beside `elb`, or `$ELB_AGENT`). Local instances run the agent
    /// from the start and have no image, subnet, security group or user data, so those parts are
    /// inert.
    pub(crate) fn local(
        cluster: &str,
        instance_type: &str,
        count: u32,
        agent: Option<PathBuf>,
    ) -> Self {
        Self {
            cluster: cluster.to_owned(),
            instance_type: instance_type.to_owned(),
            count,
            image: None,
            subnet: None,
            rules: AccessRules {
                app: Cidr::WORLD,
                ssh: Vec::new(),
            },
            user_data: Arc::new(NoUserData),
            agent_binary: agent,
            wait: Poll {
                interval: Duration::from_millis(200),
                timeout: Duration::from_secs(60),
            },
            tags: Vec::new(),
        }
    }
}

/// Inbound access to the agents' security group.
#[derive(Debug, Clone)]
pub(crate) struct AccessRules {
    /// Who may reach the agents' port.
    pub app: Cidr,
    /// Who may reach port 22; empty opens no SSH port.
    pub ssh: Vec<Cidr>,
}

/// How the kill switch runs.
#[derive(Debug, Clone)]
pub(crate) struct KillOptions {
    /// Only this cluster's instances; the project's network and load balancers stay.
    pub cluster: Option<String>,
    /// Plan only: the plan says so, and nothing is deleted.
    pub dry_run: bool,
    /// Keep the security groups and key pairs; terminate instances only (EC2).
    pub keep_network: bool,
    /// How long a local agent gets to exit after SIGTERM before SIGKILL.
    pub grace: Duration,
    /// The wait for termination and for security groups to be free (EC2).
    pub wait: Poll,
}
