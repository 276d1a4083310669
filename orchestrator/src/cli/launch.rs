//! `elb launch`: key pair, security group, one RunInstances for the whole cluster, wait until
//! the instances run, then put the agent on them (`--deploy ssh|user-data|none`).

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};

mod agent;

use super::deploy::SshArgs;
use crate::agent_binary::Arch;
use crate::cloud::ec2::{Ec2, LaunchSpec, Network};
use crate::cloud::firewall::{self, Cidr};
use crate::cloud::wait::{self, Poll, Target};
use crate::cloud::{sort_instances, Instance};
use crate::config::Settings;
use crate::deploy::unit;
use crate::deploy::user_data;
use crate::output::{self, OutputFormat};
use crate::progress::Progress;
use crate::Error;
use agent::Delivery;

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

/// Flags of `elb launch`. Fresh instances start sshd tens of seconds after they run, so
/// `--deploy ssh` waits longer for it than `elb deploy` does by default.
#[derive(Debug, Args)]
#[command(mut_arg("ssh_wait", |arg| arg.default_value("180")))]
pub struct LaunchArgs {
    /// Cluster name: the `Cluster` tag of the new instances.
    #[arg(long)]
    pub cluster: String,
    /// EC2 instance type, e.g. t3.micro (arm64 types need --agent-arm64 unless --deploy none).
    #[arg(long = "type")]
    pub instance_type: String,
    /// Number of instances.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub count: u32,
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
    /// The static x86_64 agent (default: the build found beside `elb`, or `$ELB_AGENT`).
    #[arg(long)]
    pub agent: Option<PathBuf>,
    /// A static aarch64 agent: what lets arm64 (Graviton) instance types get one.
    #[arg(long)]
    pub agent_arm64: Option<PathBuf>,
    /// With --deploy user-data: the https:// URL instances download the agent from.
    #[arg(long)]
    pub agent_url: Option<String>,
    /// With --deploy user-data: the agent's SHA-256 (default: that of the local agent binary).
    #[arg(long)]
    pub agent_sha256: Option<String>,
    /// Directory of the agent on the instances.
    #[arg(long, default_value = unit::DEFAULT_INSTALL_DIR)]
    pub install_dir: String,
    /// Seconds each agent may take to answer /healthz (with --deploy user-data: counted from
    /// when the instances run, so boot and download included).
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..))]
    pub health_timeout: u64,
    /// With --deploy user-data: return once the instances run, without waiting for /healthz
    /// (for when this machine cannot reach port 8000 of the instances).
    #[arg(long)]
    pub no_wait_healthy: bool,
    /// How to reach the instances with --deploy ssh (`--parallel` also bounds the /healthz
    /// probes of --deploy user-data).
    #[command(flatten)]
    pub ssh: SshArgs,
    /// Seconds to wait for every instance to be running.
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..))]
    pub timeout: u64,
    /// Milliseconds between two polls of the instances' state.
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u64).range(1..))]
    pub poll_interval_ms: u64,
}

/// A launch whose input has been checked locally, before any API call.
#[derive(Debug)]
pub struct LaunchRequest {
    args: LaunchArgs,
    user_data: Option<Vec<u8>>,
    delivery: Delivery,
}

impl LaunchArgs {
    /// Checks everything that can be checked without AWS.
    pub fn validate(self) -> Result<LaunchRequest, Error> {
        super::validate_name("--cluster", &self.cluster)?;
        self.check_ssh()?;
        let delivery = self.delivery()?;
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
        Ok(LaunchRequest {
            args: self,
            user_data,
            delivery,
        })
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

/// What this launch has set up so far, for the message after an interruption.
#[derive(Debug, Default)]
struct Created {
    key_pair: Option<String>,
    security_group: Option<String>,
    run_instances_sent: bool,
    instances: Vec<String>,
}

impl Created {
    fn summary(&self, project: &str) -> String {
        let mut parts = Vec::new();
        parts.extend(self.key_pair.as_ref().map(|k| format!("key pair {k}")));
        parts.extend(
            self.security_group
                .as_ref()
                .map(|g| format!("security group {g}")),
        );
        if !self.instances.is_empty() {
            parts.push(format!("instances {}", self.instances.join(", ")));
        } else if self.run_instances_sent {
            parts.push("possibly instances (RunInstances was in flight)".to_owned());
        }
        let what = if parts.is_empty() {
            "nothing yet".to_owned()
        } else {
            parts.join("; ")
        };
        format!(
            "launch interrupted. Set up so far: {what}. Everything is tagged Project={project}: \
             run `elb kill --project {project}` to remove it (or `elb ls` to look first)"
        )
    }
}

/// Runs `elb launch`; Ctrl-C stops it and says what to clean up.
pub async fn run(settings: &Settings, request: LaunchRequest) -> Result<(), Error> {
    let mut created = Created::default();
    let outcome = tokio::select! {
        result = launch(settings, &request, &mut created) => Some(result),
        _ = tokio::signal::ctrl_c() => None,
    };
    match outcome {
        Some(result) => result,
        None => Err(Error::Interrupted(created.summary(&settings.project))),
    }
}

/// What the read-only checks found: where to launch, from which image, for which CPU.
struct Destination {
    image_id: String,
    network: Network,
    arch: Arch,
}

/// Read-only checks, so a refused launch creates nothing: the type's architecture (x86_64 when
/// it has it, else arm64), an AMI of that architecture (given or found), and the network.
async fn destination(ec2: &Ec2, args: &LaunchArgs) -> Result<Destination, Error> {
    let architectures = ec2.architectures(&args.instance_type).await?;
    let arch = instance_arch(&architectures).ok_or_else(|| Error::UnsupportedArch {
        instance_type: args.instance_type.clone(),
        architectures: architectures.join(", "),
    })?;
    let image_id = match &args.ami {
        Some(ami) => {
            let image_arch = ec2.image_architecture(ami).await?;
            if Arch::parse(&image_arch) != Some(arch) {
                return Err(Error::ImageArch {
                    ami: ami.clone(),
                    image_arch,
                    instance_type: args.instance_type.clone(),
                    arch: ec2_arch_name(arch),
                });
            }
            ami.clone()
        }
        None => ec2.amazon_linux_image(ec2_arch_name(arch)).await?,
    };
    let network = ec2.network(args.subnet.as_deref()).await?;
    tracing::info!(%image_id, vpc = %network.vpc_id, arch = arch.as_str(), "launch target");
    Ok(Destination {
        image_id,
        network,
        arch,
    })
}

/// The architecture an instance type is launched as: x86_64 where it runs, else arm64.
fn instance_arch(supported: &[String]) -> Option<Arch> {
    let supported: Vec<Arch> = supported.iter().filter_map(|a| Arch::parse(a)).collect();
    [Arch::X86_64, Arch::Arm64]
        .into_iter()
        .find(|arch| supported.contains(arch))
}

/// EC2's name of an architecture (AMI names and `DescribeImages`).
fn ec2_arch_name(arch: Arch) -> &'static str {
    match arch {
        Arch::X86_64 => "x86_64",
        Arch::Arm64 => "arm64",
    }
}

async fn launch(
    settings: &Settings,
    request: &LaunchRequest,
    created: &mut Created,
) -> Result<(), Error> {
    let args = &request.args;
    let ec2 = Ec2::new(&settings.sdk, &settings.project);
    let destination = destination(&ec2, args).await?;
    let user_data = agent::user_data(request, destination.arch)?;

    let key = settings.state.ensure_key()?;
    let key_pair = ec2.ensure_key_pair(&key.public_openssh).await?;
    created.key_pair = Some(key_pair.clone());

    if args.ssh_cidr.iter().any(Cidr::is_world) {
        eprintln!(
            "warning: SSH (port 22) will be open to the whole internet (--ssh-cidr 0.0.0.0/0)"
        );
    }
    let wanted = firewall::wanted_rules(&args.app_cidr, &args.ssh_cidr);
    let group = ec2
        .ensure_security_group(&destination.network.vpc_id, &wanted)
        .await?;
    created.security_group = Some(group.id.clone());
    let how = if group.created { "created" } else { "reusing" };
    eprintln!("security group {} ({how}), key pair {}", group.id, key_pair);
    for rule in &group.extra_rules {
        eprintln!(
            "note: security group {} also allows {rule}, which this launch did not ask for (elb \
             never revokes rules; remove it by hand if it is stale)",
            group.id
        );
    }

    let client_token = format!("elb-{:032x}", rand::random::<u128>());
    let image_id = &destination.image_id;
    let spec = LaunchSpec {
        cluster: &args.cluster,
        instance_type: &args.instance_type,
        count: args.count,
        image_id,
        security_group_id: &group.id,
        subnet_id: destination.network.subnet_id.as_deref(),
        user_data: user_data.as_deref(),
        client_token: &client_token,
    };
    eprintln!(
        "launching {} x {} ({image_id}) as cluster {}",
        args.count, args.instance_type, args.cluster
    );
    created.run_instances_sent = true;
    created.instances = ec2.run_instances(&spec).await?;

    let poll = Poll {
        interval: Duration::from_millis(args.poll_interval_ms),
        timeout: Duration::from_secs(args.timeout),
    };
    let total = created.instances.len();
    let mut progress = Progress::new("waiting", "running", total);
    let waited = wait::wait_until(&ec2, &created.instances, Target::Running, poll, |r, t| {
        progress.update(r, t);
    })
    .await;
    progress.finish();
    let mut instances = waited?;
    sort_instances(&mut instances);
    print(settings.output, &instances);
    agent::deliver(settings, request, &instances).await
}

fn print(format: OutputFormat, instances: &[Instance]) {
    match format {
        OutputFormat::Table => println!("{}", output::instance_table(instances)),
        OutputFormat::Json => println!("{}", output::instance_json(instances)),
        OutputFormat::Csv => println!("{}", output::instance_csv(instances)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    pub(crate) fn parse(extra: &[&str]) -> Result<LaunchRequest, Error> {
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
            crate::cli::Command::Launch(args) => args.validate(),
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
    fn an_instance_type_runs_x86_64_where_it_can_else_arm64() {
        let names = |n: &[&str]| n.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            instance_arch(&names(&["i386", "x86_64"])),
            Some(Arch::X86_64)
        );
        assert_eq!(instance_arch(&names(&["arm64"])), Some(Arch::Arm64));
        assert_eq!(instance_arch(&names(&["i386"])), None);
        assert_eq!(ec2_arch_name(Arch::Arm64), "arm64");
    }

    #[test]
    fn fresh_instances_get_three_minutes_to_start_sshd() {
        let request = parse(&["--ssh-cidr", "203.0.113.7/32"]).unwrap();
        assert_eq!(request.args.ssh.ssh_wait, 180);
        let request = parse(&["--ssh-cidr", "203.0.113.7/32", "--ssh-wait", "5"]).unwrap();
        assert_eq!(request.args.ssh.ssh_wait, 5);
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
    fn the_interruption_message_lists_what_exists_and_how_to_remove_it() {
        let created = Created {
            key_pair: Some("p-key".into()),
            security_group: Some("sg-1".into()),
            run_instances_sent: true,
            instances: vec!["i-1".into()],
        };
        let msg = created.summary("p");
        assert!(msg.contains("p-key") && msg.contains("sg-1") && msg.contains("i-1"));
        assert!(msg.contains("elb kill --project p"));
    }
}
