//! `elb launch`: key pair, security group, one RunInstances for the whole cluster, then wait.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use crate::cloud::ec2::{Ec2, LaunchSpec, Network};
use crate::cloud::firewall::{self, Cidr};
use crate::cloud::wait::{self, Poll, Target};
use crate::cloud::{sort_instances, Instance};
use crate::config::Settings;
use crate::output::{self, OutputFormat};
use crate::progress::Progress;
use crate::Error;

/// EC2 refuses user data above 16 KiB (before base64).
const MAX_USER_DATA: usize = 16 * 1024;

/// Flags of `elb launch`.
#[derive(Debug, Args)]
pub struct LaunchArgs {
    /// Cluster name: the `Cluster` tag of the new instances.
    #[arg(long)]
    pub cluster: String,
    /// EC2 instance type, e.g. t3.micro (x86_64 only).
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
    /// Open no SSH port (deploy then needs user data).
    #[arg(long, conflicts_with = "ssh_cidr")]
    pub no_ssh: bool,
    /// File passed to the instances as user data.
    #[arg(long)]
    pub user_data: Option<PathBuf>,
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
}

impl LaunchArgs {
    /// Checks everything that can be checked without AWS.
    pub fn validate(self) -> Result<LaunchRequest, Error> {
        super::validate_name("--cluster", &self.cluster)?;
        if self.ssh_cidr.is_empty() && !self.no_ssh {
            return Err(Error::Usage(
                "the deploy step needs SSH, but no --ssh-cidr says who may connect. Pass your own \
                 public address as a /32: find it with `curl -s https://checkip.amazonaws.com`, \
                 then add `--ssh-cidr <ip>/32` (e.g. --ssh-cidr 203.0.113.7/32; repeat the flag \
                 for more sources). `--ssh-cidr 0.0.0.0/0` opens SSH to the whole internet; \
                 `--no-ssh` opens no SSH port at all"
                    .into(),
            ));
        }
        let user_data = match &self.user_data {
            None => None,
            Some(path) => {
                let bytes = std::fs::read(path).map_err(|e| {
                    Error::Usage(format!("cannot read --user-data {}: {e}", path.display()))
                })?;
                if bytes.len() > MAX_USER_DATA {
                    return Err(Error::Usage(format!(
                        "--user-data {} is {} bytes; EC2 accepts at most {MAX_USER_DATA}",
                        path.display(),
                        bytes.len()
                    )));
                }
                Some(bytes)
            }
        };
        Ok(LaunchRequest {
            args: self,
            user_data,
        })
    }
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

/// Read-only checks, so a refused launch creates nothing: the type must run x86_64, the AMI
/// (given or found) must be x86_64, and the network must exist. Returns the AMI and network.
async fn destination(ec2: &Ec2, args: &LaunchArgs) -> Result<(String, Network), Error> {
    let architectures = ec2.architectures(&args.instance_type).await?;
    if !architectures.iter().any(|a| a == "x86_64") {
        return Err(Error::Arm64 {
            instance_type: args.instance_type.clone(),
        });
    }
    let image_id = match &args.ami {
        Some(ami) => {
            let arch = ec2.image_architecture(ami).await?;
            if arch != "x86_64" {
                return Err(Error::ImageArch {
                    ami: ami.clone(),
                    arch,
                });
            }
            ami.clone()
        }
        None => ec2.amazon_linux_image("x86_64").await?,
    };
    let network = ec2.network(args.subnet.as_deref()).await?;
    tracing::info!(%image_id, vpc = %network.vpc_id, "launch target");
    Ok((image_id, network))
}

async fn launch(
    settings: &Settings,
    request: &LaunchRequest,
    created: &mut Created,
) -> Result<(), Error> {
    let args = &request.args;
    let ec2 = Ec2::new(&settings.sdk, &settings.project);
    let (image_id, network) = destination(&ec2, args).await?;

    let key = settings.state.ensure_key()?;
    let key_pair = ec2.ensure_key_pair(&key.public_openssh).await?;
    created.key_pair = Some(key_pair.clone());

    if args.ssh_cidr.iter().any(Cidr::is_world) {
        eprintln!(
            "warning: SSH (port 22) will be open to the whole internet (--ssh-cidr 0.0.0.0/0)"
        );
    }
    let wanted = firewall::wanted_rules(&args.app_cidr, &args.ssh_cidr);
    let group = ec2.ensure_security_group(&network.vpc_id, &wanted).await?;
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
    let spec = LaunchSpec {
        cluster: &args.cluster,
        instance_type: &args.instance_type,
        count: args.count,
        image_id: &image_id,
        security_group_id: &group.id,
        subnet_id: network.subnet_id.as_deref(),
        user_data: request.user_data.as_deref(),
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
    Ok(())
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

    fn parse(extra: &[&str]) -> Result<LaunchRequest, Error> {
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
        assert!(parse(&["--no-ssh"]).is_ok());
        assert!(parse(&["--ssh-cidr", "203.0.113.7/32"]).is_ok());
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
