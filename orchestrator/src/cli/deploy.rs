//! `elb deploy`: (re)deploy or upgrade the agent over SSH, on the project's running instances or
//! on any hosts given with `--hosts`; with `--local`, restart the local instances' agents from
//! the new binary.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::Args;

use super::settings;
use crate::agent_binary::{self, AgentPaths};
use crate::cli::GlobalArgs;
use crate::cloud::local::LocalCloud;
use crate::cloud::{self, Instance};
use crate::config::{self, Provider, Settings};
use crate::deploy::{self, unit, DeployOptions, DeployReport, SshOptions};
use crate::Error;

/// How long a local agent may take to drain before a redeploy kills it.
const LOCAL_GRACE: Duration = Duration::from_secs(5);

/// The SSH flags of every command that deploys over SSH (`deploy`, `launch --deploy ssh`).
#[derive(Debug, Clone, Args)]
pub struct SshArgs {
    /// Login user on the hosts; privileged steps use `sudo -n` unless it is root.
    #[arg(long, default_value = "ec2-user")]
    pub ssh_user: String,
    /// Private key to log in with (default: the project's generated key).
    #[arg(long)]
    pub ssh_key: Option<PathBuf>,
    /// sshd port on the hosts.
    #[arg(long, default_value_t = 22)]
    pub ssh_port: u16,
    /// Seconds one SSH connection attempt (TCP connect and handshake) may take.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    pub connect_timeout: u64,
    /// Seconds to keep retrying, with backoff, until a host's sshd answers.
    #[arg(long, default_value_t = 30)]
    pub ssh_wait: u64,
    /// Hosts deployed to at once.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub parallel: u64,
}

impl SshArgs {
    /// The SSH options these flags give.
    pub(crate) fn options(&self) -> SshOptions {
        SshOptions {
            user: self.ssh_user.clone(),
            key: self.ssh_key.clone(),
            port: self.ssh_port,
            connect_timeout: Duration::from_secs(self.connect_timeout),
            wait: Duration::from_secs(self.ssh_wait),
        }
    }
}

/// The agent flags of every command that installs it (`deploy`, `launch`), one group.
#[derive(Debug, Clone, Args)]
pub struct AgentArgs {
    /// The x86_64 agent: the static build deployed to hosts, or the one --local instances run
    /// (default: the build found beside `elb`, or `$ELB_AGENT`).
    #[arg(long)]
    pub agent: Option<PathBuf>,
    /// A static aarch64 agent, for arm64 hosts and (Graviton) instance types.
    #[arg(long)]
    pub agent_arm64: Option<PathBuf>,
    /// Directory of the agent on the hosts (binary; without systemd also its pid and log).
    #[arg(long, default_value = unit::DEFAULT_INSTALL_DIR)]
    pub install_dir: String,
    /// Seconds each agent may take to answer /healthz once started.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..))]
    pub health_timeout: u64,
}

impl AgentArgs {
    /// The binaries these flags name.
    pub(crate) fn paths(&self) -> AgentPaths {
        AgentPaths {
            x86_64: self.agent.clone(),
            arm64: self.agent_arm64.clone(),
        }
    }

    /// The deploy options these flags and `ssh` give, the install directory checked.
    pub(crate) fn deploy_options(&self, ssh: &SshArgs) -> Result<DeployOptions, Error> {
        unit::check_install_dir(&self.install_dir).map_err(Error::Usage)?;
        Ok(DeployOptions {
            agents: self.paths(),
            install_dir: self.install_dir.clone(),
            ssh: ssh.options(),
            parallel: ssh.parallel as usize,
            health_timeout: Duration::from_secs(self.health_timeout),
        })
    }
}

/// Flags of `elb deploy`.
#[derive(Debug, Args)]
pub struct DeployArgs {
    /// Only this cluster's instances; with --hosts, the cluster the agents report.
    #[arg(long)]
    pub cluster: Option<String>,
    /// Deploy to these hosts (addresses or names, comma-separated) instead of the project's
    /// instances; needs no AWS credentials.
    #[arg(long, value_delimiter = ',', requires = "cluster")]
    pub hosts: Vec<String>,
    /// The agent and where it goes.
    #[command(flatten)]
    pub agent: AgentArgs,
    /// How to reach the hosts.
    #[command(flatten)]
    pub ssh: SshArgs,
}

/// Runs `elb deploy`: prints the result table (or JSON, CSV) and fails when any host failed.
pub async fn run(global: &GlobalArgs, args: &DeployArgs) -> Result<(), Error> {
    if let Some(cluster) = &args.cluster {
        crate::config::validate_name("--cluster", cluster)?;
    }
    let opts = args.agent.deploy_options(&args.ssh)?;
    let report = match args.cluster.as_deref() {
        Some(cluster) if !args.hosts.is_empty() => {
            let state = config::local_state(&global.options())?;
            deploy::deploy_hosts(&state, &args.hosts, cluster, &opts).await?
        }
        cluster => {
            let settings = settings::load(&global.options()).await?;
            let instances: Vec<_> = cloud::fleet(&settings, cluster)
                .await?
                .into_iter()
                .filter(|i| i.state == "running")
                .collect();
            if instances.is_empty() {
                return Err(Error::Usage(
                    "no running instances of this project to deploy to (`elb ls` lists them; \
                     `elb launch` makes some, or pass --hosts)"
                        .into(),
                ));
            }
            match &settings.provider {
                Provider::Local => return restart_local(&settings, &instances, args).await,
                Provider::Ec2 { .. } => {
                    deploy::deploy_instances(&settings, &instances, &opts).await?
                }
            }
        }
    };
    finish(global, &report)
}

/// `elb --local deploy`: each local instance's agent restarts from the given (or found) binary
/// with the identity, address and CPU quota it had, and answers `/healthz` again.
async fn restart_local(
    settings: &Settings,
    instances: &[Instance],
    args: &DeployArgs,
) -> Result<(), Error> {
    let agent = agent_binary::locate(args.agent.agent.as_deref())?;
    eprintln!(
        "restarting {} local agent(s) from {}",
        instances.len(),
        agent.display()
    );
    let started = Instant::now();
    LocalCloud::new(settings)
        .restart_agents(
            instances,
            &agent,
            LOCAL_GRACE,
            Duration::from_secs(args.agent.health_timeout),
        )
        .await?;
    eprintln!(
        "restarted {} local agent(s) in {:.1}s",
        instances.len(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn finish(global: &GlobalArgs, report: &DeployReport) -> Result<(), Error> {
    println!("{}", report.render(global.output));
    let ok = report.hosts.len() - report.failed();
    eprintln!(
        "deployed to {ok} of {} hosts in {:.1}s",
        report.hosts.len(),
        report.elapsed.as_secs_f64()
    );
    Ok(report.check()?)
}
