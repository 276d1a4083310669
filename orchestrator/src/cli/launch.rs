//! `elb launch`: checks the flags, has the provider launch the cluster and wait for it, then puts
//! the agent on the new instances (`--deploy ssh|user-data|none`, EC2; local instances run the
//! agent from the start).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, ValueEnum};

pub(crate) mod agent;

use super::deploy::{AgentArgs, SshArgs};
use super::instances;
use crate::cloud::ec2::cloudwatch::IdleTerminate;
use crate::cloud::firewall::Cidr;
use crate::cloud::spec::{AccessRules, LaunchSpec};
use crate::cloud::wait::Poll;
use crate::cloud::{Cloud, Created};
use crate::config::{ProviderKind, Settings};
use crate::deploy::delivery::{AgentDelivery, Delivery, LaunchUserData};
use crate::deploy::user_data;
use crate::fleet::{self, Event, Events, Growth};
use crate::output::OutputFormat;
use crate::Error;

/// How `launch` puts the agent on the new instances.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DeployMode {
    /// Over SSH once the instances run (as `elb deploy` does): needs `--ssh-cidr`.
    Ssh,
    /// Through user data: cloud-init downloads the agent from `--agent-url` at first boot.
    UserData,
    /// Bare instances, no agent.
    None,
}

/// Flags of `elb launch`.
#[derive(Debug, Args)]
pub struct LaunchArgs {
    /// Cluster name: the `Cluster` tag of the new instances.
    #[arg(long)]
    pub cluster: String,
    /// Instance type, e.g. t3.micro (on EC2, arm64 types need --agent-arm64 unless --deploy
    /// none; with --local it sets the agent's CPU quota, see docs/cli.md for the table).
    #[arg(long = "type")]
    pub instance_type: String,
    /// Number of instances.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub count: u32,
    /// How the instances are made and the agent reaches them.
    #[command(flatten)]
    pub how: LaunchHow,
}

/// How new instances are made and how the agent gets onto them: `elb launch`'s flags beside
/// the cluster, type and count, which `elb autoscale` shares for the instances it launches.
/// Fresh instances start sshd tens of seconds after they run, so `--deploy ssh` waits longer
/// for it than `elb deploy` does by default, and user data installs the agent only after boot,
/// so the health timeout counts from when the instances run.
#[derive(Debug, Clone, Args)]
#[command(mut_arg("ssh_wait", |arg| arg.default_value("180")))]
#[command(mut_arg("health_timeout", |arg| arg.default_value("300").help(
    "Seconds each agent may take to answer /healthz (with --deploy user-data: counted from when \
     the instances run, so boot and download included)"
)))]
pub struct LaunchHow {
    /// AMI id (default: the newest Amazon Linux 2023 for the type's architecture).
    #[arg(long)]
    pub ami: Option<String>,
    /// Subnet to launch into (default: a default subnet of the default VPC).
    #[arg(long)]
    pub subnet: Option<String>,
    /// Who may reach the agents on port 8000.
    #[arg(long, default_value = "0.0.0.0/0", value_parser = clap::value_parser!(Cidr))]
    pub app_cidr: Cidr,
    /// Who may reach port 22 (repeatable), e.g. your address as 203.0.113.7/32.
    #[arg(long, value_parser = clap::value_parser!(Cidr))]
    pub ssh_cidr: Vec<Cidr>,
    /// Open no SSH port (with --deploy user-data or --deploy none).
    #[arg(long, conflicts_with = "ssh_cidr")]
    pub no_ssh: bool,
    /// File passed to the instances as user data (not with --deploy user-data).
    #[arg(long)]
    pub user_data: Option<PathBuf>,
    /// How the agent gets onto the instances.
    #[arg(long, value_enum, default_value_t = DeployMode::Ssh)]
    pub deploy: DeployMode,
    /// The agent and where it goes.
    #[command(flatten)]
    pub agent: AgentArgs,
    /// With --deploy user-data: the https:// URL instances download the agent from.
    #[arg(long)]
    pub agent_url: Option<String>,
    /// With --deploy user-data: the agent's SHA-256 (default: that of the local agent binary).
    #[arg(long)]
    pub agent_sha256: Option<String>,
    /// With --deploy user-data: return once the instances run, without waiting for /healthz
    /// (for when this machine cannot reach port 8000 of the instances).
    #[arg(long)]
    pub no_wait_healthy: bool,
    /// How to reach the instances with --deploy ssh (`--parallel` also bounds the /healthz
    /// probes of --deploy user-data).
    #[command(flatten)]
    pub ssh: SshArgs,
    /// How long to wait for the instances to run.
    #[command(flatten)]
    pub wait: RunningWait,
    /// A CloudWatch alarm per instance terminates it once its CPU stayed below --idle-cpu for
    /// this long (a multiple of 5 minutes up to 24h, e.g. 60m; EC2). Default: none.
    #[arg(long, value_name = "DURATION", value_parser = super::values::parse_duration)]
    pub idle_terminate: Option<Duration>,
    /// With --idle-terminate: the CPU percentage under which an instance counts as idle (its
    /// highest of every 5 minutes).
    #[arg(
        long,
        value_name = "PCT",
        default_value_t = 5.0,
        requires = "idle_terminate"
    )]
    pub idle_cpu: f64,
}

/// How long to wait for new instances to run, and how often to look (`launch`, `balance up`).
#[derive(Debug, Clone, Args)]
pub struct RunningWait {
    /// Seconds to wait for every instance to be running.
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..))]
    pub timeout: u64,
    /// Milliseconds between two polls of the instances' state.
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u64).range(1..))]
    pub poll_interval_ms: u64,
}

impl RunningWait {
    /// The poll these flags give.
    pub(crate) fn poll(&self) -> Poll {
        Poll {
            timeout: Duration::from_secs(self.timeout),
            interval: Duration::from_millis(self.poll_interval_ms),
        }
    }
}

impl LaunchArgs {
    /// Checks everything that can be checked without the provider, and gives the launch spec.
    pub(crate) fn validate(self, provider: ProviderKind) -> Result<Growth, Error> {
        crate::config::validate_name("--cluster", &self.cluster)?;
        crate::balance::refuse_balancer_cluster("launch", &self.cluster)?;
        self.how
            .growth(self.cluster, self.instance_type, self.count, provider)
    }
}

impl LaunchHow {
    /// Checks these flags for `provider` and gives what a launch of `count` x `instance_type`
    /// into `cluster` makes.
    pub(crate) fn growth(
        self,
        cluster: String,
        instance_type: String,
        count: u32,
        provider: ProviderKind,
    ) -> Result<Growth, Error> {
        let mode = match provider {
            ProviderKind::Ec2 => {
                self.check_ssh()?;
                self.delivery()?
            }
            ProviderKind::Local => {
                self.validate_local()?;
                Delivery::None
            }
        };
        let user_data = match &self.user_data {
            None => None,
            Some(path) => {
                let bytes = std::fs::read(path).map_err(|e| {
                    Error::Usage(format!("cannot read --user-data {}: {e}", path.display()))
                })?;
                user_data::check_size(&format!("--user-data {}", path.display()), bytes.len())
                    .map_err(usage)?;
                Some(bytes)
            }
        };
        let options = self.agent.deploy_options(&self.ssh)?;
        let agent = AgentDelivery { mode, options };
        let spec = LaunchSpec {
            user_data: Arc::new(LaunchUserData {
                agent: agent.clone(),
                cluster: cluster.clone(),
                instance_type: instance_type.clone(),
                given: user_data,
            }),
            agent_binary: agent.options.agents.x86_64.clone(),
            cluster,
            instance_type,
            count,
            image: self.ami,
            subnet: self.subnet,
            rules: AccessRules {
                app: self.app_cidr,
                ssh: self.ssh_cidr,
            },
            wait: self.wait.poll(),
            tags: Vec::new(),
        };
        let idle = self
            .idle_terminate
            .map(|after| IdleTerminate::new(after, self.idle_cpu))
            .transpose()
            .map_err(|why| Error::Usage(format!("--idle-terminate/--idle-cpu {why}")))?;
        Ok(Growth {
            spec,
            agent: Some(agent),
            idle,
        })
    }

    /// The local provider has no AMI, subnet, SSH, user data or remote install: refuse those
    /// flags rather than ignore one the user counts on. (`--no-ssh`, `--app-cidr` and the
    /// default `--deploy ssh` are harmless and ignored: local instances run the agent from the
    /// start.)
    fn validate_local(&self) -> Result<(), Error> {
        let ec2_only = [
            ("--ami", self.ami.is_some()),
            ("--subnet", self.subnet.is_some()),
            ("--ssh-cidr", !self.ssh_cidr.is_empty()),
            ("--user-data", self.user_data.is_some()),
            ("--deploy user-data", self.deploy == DeployMode::UserData),
            ("--agent-arm64", self.agent.agent_arm64.is_some()),
            ("--agent-url", self.agent_url.is_some()),
            ("--agent-sha256", self.agent_sha256.is_some()),
            ("--no-wait-healthy", self.no_wait_healthy),
            ("--idle-terminate", self.idle_terminate.is_some()),
        ];
        match ec2_only.iter().find(|(_, given)| *given) {
            Some((flag, _)) => Err(Error::Usage(format!(
                "{flag} is for EC2 only; a --local launch runs elb-agent processes on this \
                 machine: drop {flag}, or drop --local (and ELB_PROVIDER=local) to launch on EC2"
            ))),
            None => Ok(()),
        }
    }

    /// SSH must be asked for or refused explicitly, and `--deploy ssh` needs it.
    fn check_ssh(&self) -> Result<(), Error> {
        if self.deploy == DeployMode::Ssh && self.no_ssh {
            return Err(Error::Usage(
                "--deploy ssh (the default) installs the agent over SSH, and --no-ssh opens no \
                 SSH port: use --deploy user-data --agent-url <https URL> to install it at first \
                 boot instead, or --deploy none to launch bare instances"
                    .into(),
            ));
        }
        if self.ssh_cidr.is_empty() && !self.no_ssh {
            let why = match self.deploy {
                DeployMode::Ssh => "--deploy ssh (the default) needs SSH, but no --ssh-cidr says",
                _ => "no --ssh-cidr says",
            };
            return Err(Error::Usage(format!(
                "{why} who may connect to port 22. Pass your own public address as a /32: find \
                 it with `curl -s https://checkip.amazonaws.com`, then add `--ssh-cidr <ip>/32` \
                 (e.g. --ssh-cidr 203.0.113.7/32; repeat the flag for more sources). \
                 `--ssh-cidr 0.0.0.0/0` opens SSH to the whole internet; `--no-ssh` opens no SSH \
                 port at all"
            )));
        }
        Ok(())
    }
}

/// A user-data problem found before any API call.
fn usage(err: user_data::UserDataError) -> Error {
    Error::Usage(err.to_string())
}

/// Runs `elb launch`; Ctrl-C stops it and says what to clean up.
pub(crate) async fn run<C: Cloud>(
    cloud: &C,
    settings: &Settings,
    growth: Growth,
) -> Result<(), Error> {
    let mut created = Created::default();
    let printer = Printer(settings.output);
    let grow = fleet::grow(cloud, settings, &growth, &mut created, &printer);
    // Biased, Ctrl-C first: its handler is installed when first polled, which must come before
    // the launch starts anything (the local provider starts agents before its first await).
    let outcome = tokio::select! {
        biased;
        _ = tokio::signal::ctrl_c() => None,
        result = grow => Some(result),
    };
    match outcome {
        Some(result) => result.map(drop),
        None => Err(Error::Interrupted(created.summary::<C>(&settings.project))),
    }
}

/// The line for people about `instances` new instances that got their idle alarm.
pub(crate) fn idle_line(instances: usize, idle: &IdleTerminate) -> String {
    format!(
        "CloudWatch: {instances} instance(s) terminated once their CPU stays below {}% for {}",
        idle.cpu_percent,
        idle.describe()
    )
}

/// Renders a launch's events: the new instances on stdout in the chosen format, the rest as
/// lines on stderr.
struct Printer(OutputFormat);

impl Events for Printer {
    fn event(&self, event: Event) {
        match event {
            Event::Launched { instances, .. } => match self.0 {
                OutputFormat::Table => println!("{}", instances::instance_table(&instances)),
                OutputFormat::Json => println!("{}", instances::instance_json(&instances)),
                OutputFormat::Csv => println!("{}", instances::instance_csv(&instances)),
            },
            Event::JoinedAlb {
                target_group,
                instances,
            } => eprintln!("ALB: {instances} instance(s) registered in {target_group}"),
            Event::IdleAlarms { instances, idle } => eprintln!("{}", idle_line(instances, &idle)),
            // A launch removes nothing and runs no autoscaling loop.
            Event::Removed { .. } | Event::Scaling(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    pub(crate) fn parse(extra: &[&str]) -> Result<Growth, Error> {
        let mut argv = vec![
            "elb",
            "launch",
            "--cluster",
            "c1",
            "--type",
            "t3.micro",
            "--count",
            "2",
        ];
        argv.extend_from_slice(extra);
        match crate::cli::Cli::try_parse_from(argv)
            .expect("parses")
            .command
        {
            crate::cli::Command::Launch(args) => args.validate(ProviderKind::Ec2),
            other => panic!("parsed {other:?}"),
        }
    }

    #[test]
    fn ssh_must_be_asked_for_explicitly() {
        let err = parse(&[]).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        let msg = err.to_string();
        assert!(msg.contains("--ssh-cidr") && msg.contains("/32") && msg.contains("0.0.0.0/0"));
        assert!(parse(&["--no-ssh", "--deploy", "none"]).is_ok());
        assert!(parse(&["--ssh-cidr", "203.0.113.7/32"]).is_ok());
    }

    /// The usage error of `extra`, which must be caught before any API call.
    pub(crate) fn refused(extra: &[&str]) -> String {
        let err = parse(extra).unwrap_err();
        assert_eq!(err.exit_code(), 2, "{err}");
        err.to_string()
    }

    #[test]
    fn deploy_over_ssh_without_ssh_points_to_the_other_modes() {
        let msg = refused(&["--no-ssh"]);
        assert!(
            msg.contains("--no-ssh")
                && msg.contains("--deploy user-data")
                && msg.contains("--deploy none"),
            "{msg}"
        );
    }

    #[test]
    fn fresh_instances_get_three_minutes_to_start_sshd() {
        let spec = parse(&["--ssh-cidr", "203.0.113.7/32"]).unwrap();
        assert_eq!(
            spec.agent.as_ref().unwrap().options.ssh.wait,
            Duration::from_secs(180)
        );
        let spec = parse(&["--ssh-cidr", "203.0.113.7/32", "--ssh-wait", "5"]).unwrap();
        assert_eq!(
            spec.agent.as_ref().unwrap().options.ssh.wait,
            Duration::from_secs(5)
        );
    }

    #[test]
    fn a_bad_cidr_is_a_usage_error() {
        let argv = [
            "elb",
            "launch",
            "--cluster",
            "c",
            "--type",
            "t",
            "--count",
            "1",
            "--ssh-cidr",
            "1.2.3.4",
        ];
        let err = crate::cli::Cli::try_parse_from(argv).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(err.to_string().contains("invalid CIDR"), "{err}");
    }

    #[test]
    fn local_needs_no_ssh_flag_and_refuses_ec2_only_ones() {
        let local = |extra: &[&str]| {
            let mut argv = vec!["elb", "launch", "--cluster", "c1", "--type", "t3.micro"];
            argv.extend_from_slice(&["--count", "2"]);
            argv.extend_from_slice(extra);
            match crate::cli::Cli::try_parse_from(argv)
                .expect("parses")
                .command
            {
                crate::cli::Command::Launch(args) => args.validate(ProviderKind::Local),
                other => panic!("parsed {other:?}"),
            }
        };
        assert!(local(&[]).is_ok());
        assert!(local(&["--no-ssh", "--agent", "/x"]).is_ok());
        for (extra, flag) in [
            (&["--ami", "ami-1"][..], "--ami"),
            (&["--deploy", "user-data"], "--deploy user-data"),
            (&["--agent-url", "https://example.com/a"], "--agent-url"),
        ] {
            let err = local(extra).unwrap_err();
            assert_eq!(err.exit_code(), 2);
            assert!(
                err.to_string()
                    .starts_with(&format!("{flag} is for EC2 only")),
                "{err}"
            );
        }
    }
}
