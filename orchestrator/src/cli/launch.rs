//! `elb launch`: checks the flags, then has the provider launch the cluster and wait for it.

use std::path::PathBuf;

use clap::Args;

use crate::cloud::firewall::Cidr;
use crate::cloud::{sort_instances, Cloud, Created, Instance};
use crate::config::{ProviderKind, Settings};
use crate::output::{self, OutputFormat};
use crate::Error;

/// EC2 refuses user data above 16 KiB (before base64).
const MAX_USER_DATA: usize = 16 * 1024;

/// Flags of `elb launch`.
#[derive(Debug, Args)]
pub struct LaunchArgs {
    /// Cluster name: the `Cluster` tag of the new instances.
    #[arg(long)]
    pub cluster: String,
    /// Instance type, e.g. t3.micro (x86_64 only). With --local it sets the agent's CPU quota
    /// (see docs/cli.md for the table).
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
    /// The elb-agent executable to run (--local only; default: as for deploy, the static build
    /// found next to elb, or ELB_AGENT).
    #[arg(long)]
    pub agent: Option<PathBuf>,
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
    pub(crate) args: LaunchArgs,
    pub(crate) user_data: Option<Vec<u8>>,
}

impl LaunchArgs {
    /// Checks everything that can be checked without the provider.
    pub fn validate(self, provider: ProviderKind) -> Result<LaunchRequest, Error> {
        super::validate_name("--cluster", &self.cluster)?;
        match provider {
            ProviderKind::Ec2 => self.validate_ec2()?,
            ProviderKind::Local => self.validate_local()?,
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

    /// The local provider has no AMI, subnet, SSH or user data: refuse them rather than ignore
    /// a flag the user counts on. (`--no-ssh` and `--app-cidr` are harmless and ignored.)
    fn validate_local(&self) -> Result<(), Error> {
        let ec2_only = [
            ("--ami", self.ami.is_some()),
            ("--subnet", self.subnet.is_some()),
            ("--ssh-cidr", !self.ssh_cidr.is_empty()),
            ("--user-data", self.user_data.is_some()),
        ];
        match ec2_only.iter().find(|(_, given)| *given) {
            Some((flag, _)) => Err(Error::Usage(format!(
                "{flag} is for EC2 only; a --local launch runs elb-agent processes on this \
                 machine: drop {flag}, or drop --local (and ELB_PROVIDER=local) to launch on EC2"
            ))),
            None => Ok(()),
        }
    }

    fn validate_ec2(&self) -> Result<(), Error> {
        if self.agent.is_some() {
            return Err(Error::Usage(
                "--agent is for --local launches; on EC2 the agent is installed by \
                 `elb deploy --agent <path>`"
                    .into(),
            ));
        }
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
        Ok(())
    }
}

/// Runs `elb launch`; Ctrl-C stops it and says what to clean up.
pub(crate) async fn run<C: Cloud>(
    cloud: &C,
    settings: &Settings,
    request: LaunchRequest,
) -> Result<(), Error> {
    let mut created = Created::default();
    // Biased, Ctrl-C first: its handler is installed when first polled, which must come before
    // the launch starts anything (the local provider starts agents before its first await).
    let outcome = tokio::select! {
        biased;
        _ = tokio::signal::ctrl_c() => None,
        result = cloud.launch(&request, &mut created) => Some(result),
    };
    let mut instances = match outcome {
        Some(result) => result?,
        None => return Err(Error::Interrupted(created.summary::<C>(&settings.project))),
    };
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
        parse_for(ProviderKind::Ec2, extra)
    }

    fn parse_for(provider: ProviderKind, extra: &[&str]) -> Result<LaunchRequest, Error> {
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
            crate::cli::Command::Launch(args) => args.validate(provider),
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
    fn local_needs_no_ssh_flag_and_refuses_ec2_only_ones() {
        assert!(parse_for(ProviderKind::Local, &[]).is_ok());
        assert!(parse_for(ProviderKind::Local, &["--no-ssh"]).is_ok());
        let err = parse_for(ProviderKind::Local, &["--ami", "ami-1"]).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(err.to_string().contains("--ami is for EC2 only"), "{err}");
        let err = parse(&["--no-ssh", "--agent", "/x"]).unwrap_err();
        assert!(err.to_string().contains("--agent is for --local"), "{err}");
    }
}
