//! Command-line interface: the flags every command shares, one module per subcommand.

pub mod deploy;
pub mod kill;
pub mod launch;
pub mod ls;

use clap::{Args, Parser, Subcommand};

use crate::config::Settings;
use crate::output::OutputFormat;
use crate::Error;

/// elb: launch, list and tear down the EC2 instances of an elb project.
#[derive(Debug, Parser)]
#[command(name = "elb", version, about)]
pub struct Cli {
    /// Flags shared by every subcommand.
    #[command(flatten)]
    pub global: GlobalArgs,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Flags accepted before or after the subcommand.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Project: the value of the `Project` tag on everything elb creates and touches.
    #[arg(
        long,
        global = true,
        env = "ELB_PROJECT",
        default_value = "elb-from-scratch"
    )]
    pub project: String,
    /// AWS region (default: the AWS configuration's region, else ca-central-1).
    #[arg(long, global = true)]
    pub region: Option<String>,
    /// AWS profile from ~/.aws/config (default: AWS_PROFILE, else `default`).
    #[arg(long, global = true)]
    pub profile: Option<String>,
    /// Send EC2 requests to this endpoint instead of AWS's (AWS_ENDPOINT_URL also works).
    #[arg(long, global = true)]
    pub endpoint_url: Option<String>,
    /// Output format.
    #[arg(long, global = true, value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,
    /// More logs on stderr (-v info, -vv debug); RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Launch a cluster of tagged instances (key pair and security group are created as needed).
    Launch(launch::LaunchArgs),
    /// List the project's instances, grouped by cluster.
    Ls(ls::LsArgs),
    /// Deploy or upgrade the agent over SSH: on the project's running instances, or on any
    /// Linux hosts with --hosts.
    Deploy(deploy::DeployArgs),
    /// The kill switch: terminate every instance of the project, then its security group and key pair.
    Kill(kill::KillArgs),
}

/// Runs the parsed command line.
pub async fn run(cli: Cli) -> Result<(), Error> {
    match cli.command {
        Command::Launch(args) => {
            let request = args.validate()?;
            launch::run(&Settings::load(&cli.global).await?, request).await
        }
        Command::Deploy(args) => deploy::run(&cli.global, &args).await,
        Command::Ls(args) => ls::run(&Settings::load(&cli.global).await?, &args).await,
        Command::Kill(args) => {
            args.validate()?;
            kill::run(&Settings::load(&cli.global).await?, &args).await
        }
    }
}

/// Accepts names used in tags, resource names and paths: 1 to 64 of `[A-Za-z0-9._-]`, not
/// starting with a dot or dash.
pub fn validate_name(flag: &str, value: &str) -> Result<(), Error> {
    let ok_chars = value
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    let ok_start = !value.starts_with(['.', '-']);
    if (1..=64).contains(&value.len()) && ok_chars && ok_start {
        Ok(())
    } else {
        Err(Error::Usage(format!(
            "invalid {flag} `{value}`: use 1 to 64 letters, digits, `.`, `_` or `-`, not starting \
             with `.` or `-`"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_are_safe_in_tags_and_paths_are_accepted() {
        for ok in ["elb-from-scratch", "cluster1", "a.b_c-d", "X"] {
            assert!(validate_name("--cluster", ok).is_ok(), "{ok}");
        }
        for bad in ["", "..", "-x", "a/b", "a b", "é", &"x".repeat(65)] {
            assert!(validate_name("--cluster", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn global_flags_work_after_the_subcommand() {
        let cli = Cli::try_parse_from(["elb", "ls", "--project", "p", "--output", "json"]).unwrap();
        assert_eq!(cli.global.project, "p");
        assert_eq!(cli.global.output, OutputFormat::Json);
    }
}
