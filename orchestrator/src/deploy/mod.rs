//! Putting `elb-agent` on hosts and under a service manager: over SSH (`ssh`), or through EC2 user
//! data run by cloud-init at first boot (`user_data`). `unit` renders the systemd unit both use.
//!
//! Entry points for the commands:
//! - [`deploy_instances`]: deploy over SSH to the project's (freshly launched or running)
//!   instances; waits for each sshd with backoff up to `opts.ssh.wait`, then uploads, installs,
//!   starts and waits for `/healthz`. Used by `elb deploy` and `elb launch --deploy ssh`.
//! - [`deploy_hosts`]: the same to any Linux hosts given by address (`elb deploy --hosts`).
//! - [`wait_healthy`]: only the `/healthz` wait, with the same progress and report (for
//!   `elb launch --deploy user-data`).
//!
//! Each returns a [`DeployReport`] once every host is done: print it with
//! [`DeployReport::render`] (table, JSON or CSV, to stdout), then turn failures into the exit
//! code with [`DeployReport::check`]. Progress goes to stderr while hosts run.
//!
//! [`DeployOptions`] holds how a deploy runs, as plain data (`cli/` builds it from flags);
//! [`delivery`] is how a launch puts the agent on its new instances.

pub(crate) mod delivery;
mod health;
mod report;
mod runner;
pub(crate) mod ssh;
pub(crate) mod unit;
pub(crate) mod user_data;

use std::sync::Arc;
use std::time::Duration;

pub(crate) use report::DeployReport;
pub(crate) use ssh::SshOptions;

use crate::agent_binary::{AgentPaths, Arch};
use crate::cloud::Instance;
use crate::config::Settings;
use crate::Error;
use runner::Target;

/// How a deploy runs, whatever the hosts.
#[derive(Debug, Clone)]
pub(crate) struct DeployOptions {
    /// The agent binaries (`--agent`, `--agent-arm64`).
    pub agents: AgentPaths,
    /// Where the agent goes on each host (`--install-dir`), checked by
    /// [`unit::check_install_dir`].
    pub install_dir: String,
    /// How to reach and log in to hosts.
    pub ssh: SshOptions,
    /// Hosts worked on at once (`--parallel`).
    pub parallel: usize,
    /// How long an agent may take to answer `GET /healthz` with 200 once started.
    pub health_timeout: Duration,
}

/// Why a deploy could not start at all (per-host failures are in the [`DeployReport`]).
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    /// Some hosts failed; the report printed above says which and why.
    #[error("deploy failed on {failed} of {total} hosts (see the table above)")]
    HostsFailed {
        /// Hosts that failed.
        failed: usize,
        /// Hosts in the deploy.
        total: usize,
    },
    /// One host's step failed (the balancer's install or reload).
    #[error("{host}: {message}")]
    Host {
        /// The host's address.
        host: String,
        /// What failed, and why.
        message: String,
    },
    /// An instance has no address to reach it at.
    #[error("instance {0} has no IP address (is it running?)")]
    NoAddress(String),
}

/// `value` as one POSIX shell word: as it is when it has nothing a shell would read, else
/// single-quoted.
pub(crate) fn shell_word(value: &str) -> String {
    if !value.is_empty()
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/' | ':' | ','))
    {
        value.to_owned()
    } else {
        format!("'{}'", value.replace('\'', r"'\''"))
    }
}

/// Deploys over SSH to `instances`, each with its cluster, id, type and AZ in its unit. The
/// architecture comes from the instance type (one DescribeInstanceTypes per distinct type).
pub(crate) async fn deploy_instances(
    settings: &Settings,
    instances: &[Instance],
    opts: &DeployOptions,
) -> Result<DeployReport, Error> {
    let Some(ec2) = crate::cloud::ec2_of(settings) else {
        return Err(Error::Usage(
            "deploy over SSH is for EC2 instances and --hosts; local instances are restarted \
             with the new agent by `elb --local deploy`"
                .into(),
        ));
    };
    let mut arch_of_type: Vec<(String, Option<Arch>)> = Vec::new();
    for instance in instances {
        if !arch_of_type
            .iter()
            .any(|(t, _)| *t == instance.instance_type)
        {
            let names = ec2.architectures(&instance.instance_type).await?;
            let arch = Arch::of_instance_type(&names);
            arch_of_type.push((instance.instance_type.clone(), arch));
        }
    }
    let targets = instance_targets(instances, |instance| {
        arch_of_type
            .iter()
            .find(|(t, _)| *t == instance.instance_type)
            .and_then(|(_, arch)| *arch)
    })?;
    let key = ssh::load_key(&opts.ssh, &settings.state)?;
    let job = Arc::new(ssh::SshJob::new(opts, key, &settings.state));
    Ok(runner::run(targets, opts.parallel, job).await)
}

/// Deploys over SSH to hosts given by address, all in `cluster`; each host's architecture is
/// learnt with `uname -m`. Needs no cloud credentials, only the project's state directory (its
/// key, unless `opts.ssh.key` is set, and its known_hosts).
pub(crate) async fn deploy_hosts(
    state: &crate::state::StateDir,
    hosts: &[String],
    cluster: &str,
    opts: &DeployOptions,
) -> Result<DeployReport, Error> {
    let targets = hosts
        .iter()
        .map(|host| Target {
            label: host.clone(),
            address: host.clone(),
            cluster: cluster.to_owned(),
            instance_id: String::new(),
            instance_type: String::new(),
            az: String::new(),
            arch: None,
        })
        .map(Arc::new)
        .collect();
    let key = ssh::load_key(&opts.ssh, state)?;
    let job = Arc::new(ssh::SshJob::new(opts, key, state));
    Ok(runner::run(targets, opts.parallel, job).await)
}

/// Waits until the agent of every instance answers `GET /healthz` with 200, for at most
/// `timeout` each, with the same progress and report as a deploy.
pub(crate) async fn wait_healthy(
    instances: &[Instance],
    timeout: Duration,
    parallel: usize,
) -> Result<DeployReport, Error> {
    let targets = instance_targets(instances, |_| None)?;
    let job = Arc::new(health::HealthJob { timeout });
    Ok(runner::run(targets, parallel, job).await)
}

fn instance_targets(
    instances: &[Instance],
    arch: impl Fn(&Instance) -> Option<Arch>,
) -> Result<Vec<Arc<Target>>, Error> {
    instances
        .iter()
        .map(|i| {
            let address = i
                .address()
                .ok_or_else(|| DeployError::NoAddress(i.id.clone()))?;
            Ok(Arc::new(Target {
                label: format!("{} ({address})", i.id),
                address: address.to_owned(),
                cluster: i.cluster.clone(),
                instance_id: i.id.clone(),
                instance_type: i.instance_type.clone(),
                az: i.az.clone(),
                arch: arch(i),
            }))
        })
        .collect()
}
