//! Command-line interface: the flags every command shares, one module per subcommand.

pub mod alb;
pub mod asg;
pub mod autoscale;
pub mod balance;
pub mod bench;
pub mod cloudwatch;
pub mod dashboard;
pub mod demo;
pub mod deploy;
mod instances;
pub mod kill;
pub mod launch;
pub mod ls;
pub mod report;
mod settings;
pub mod stats;
mod values;

use clap::{Args, Parser, Subcommand};

use crate::cloud::ec2::Ec2;
use crate::cloud::local::LocalCloud;
use crate::cloud::Cloud;
use crate::config::{self, Provider, ProviderKind, Settings};
use crate::output::OutputFormat;
use crate::Error;

/// elb: launch, deploy, list and tear down the instances of an elb project, on EC2 or (--local)
/// as processes on this machine; read their agents' stats, load them, compare clusters (demo).
#[derive(Debug, Parser)]
// A flag given twice takes its last value (`--output json ... --output table`), as in a shell
// alias that a user extends.
#[command(name = "elb", version, about, args_override_self = true)]
pub struct Cli {
    /// Flags shared by every subcommand.
    #[command(flatten)]
    pub global: GlobalArgs,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Flags accepted before or after the subcommand. In a subcommand's help they come last, under
/// their own heading.
#[derive(Debug, Args)]
#[command(next_help_heading = "Global options")]
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
    /// Send EC2 and ELBv2 requests to this endpoint instead of AWS's (AWS_ENDPOINT_URL also works).
    #[arg(long, global = true)]
    pub endpoint_url: Option<String>,
    /// Output format.
    #[arg(long, global = true, value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,
    /// Run the instances as elb-agent processes on this machine instead of EC2 (same as
    /// `--provider local`); needs no AWS account.
    #[arg(long, global = true)]
    pub local: bool,
    /// Where instances live: ec2 or local.
    #[arg(long, global = true, env = "ELB_PROVIDER", value_enum)]
    pub provider: Option<ProviderKind>,
    /// More logs on stderr (-v info, -vv debug); RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

impl GlobalArgs {
    /// The provider: `--local` wins, then `--provider`/`ELB_PROVIDER`, else EC2.
    pub fn provider_kind(&self) -> ProviderKind {
        if self.local {
            ProviderKind::Local
        } else {
            self.provider.unwrap_or(ProviderKind::Ec2)
        }
    }

    /// The options these flags give, for the provider they select.
    pub(crate) fn options(&self) -> config::Options {
        self.options_for(self.provider_kind())
    }

    /// The options these flags give, with the provider fixed by the command (`elb demo` always
    /// runs locally).
    pub(crate) fn options_for(&self, provider: ProviderKind) -> config::Options {
        config::Options {
            project: self.project.clone(),
            region: self.region.clone(),
            profile: self.profile.clone(),
            endpoint_url: self.endpoint_url.clone(),
            output: self.output,
            provider,
        }
    }
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
    /// Every agent's load: CPU, memory, requests, latency, per instance and per cluster.
    Stats(stats::StatsArgs),
    /// The load experiment: requests to each cluster, latency and per-instance counts, plots.
    Bench(bench::BenchArgs),
    /// The whole experiment on this machine, no AWS account: two local clusters (2 x m4.large,
    /// 3 x t3.micro), loaded and compared, then removed.
    Demo(demo::DemoArgs),
    /// The managed AWS Application Load Balancer, for comparison with elb's own: up, status,
    /// down (EC2 only).
    Alb(alb::AlbArgs),
    /// elb's own load balancer in front of the fleet: up, sync, status, down (--local).
    Balance(balance::BalanceArgs),
    /// Keep a cluster's size following its load: a control loop that adds instances when the
    /// metric is above its target, removes them when below, and replaces dead ones.
    Autoscale(Box<autoscale::AutoscaleArgs>),
    /// A live page of the fleet and the balancer in the browser: every instance's CPU, memory,
    /// requests and p99, every target's state, and charts of the last minutes.
    Dashboard(dashboard::DashboardArgs),
    /// The project in Amazon CloudWatch: its dashboard (EC2 only).
    Cloudwatch(cloudwatch::CloudwatchArgs),
    /// AWS's own measurements of a bench run, from CloudWatch (EC2 only).
    Report(report::ReportArgs),
    /// A cluster scaled by EC2 Auto Scaling, beside `elb autoscale`: up, status, down (EC2
    /// only).
    Asg(asg::AsgArgs),
}

/// A command whose input was checked before any settings were loaded.
enum Checked {
    Launch(Box<crate::fleet::Growth>),
    Ls(ls::LsArgs),
    Kill(kill::KillArgs),
    Alb(alb::Checked),
    Autoscale(Box<autoscale::AutoscaleArgs>),
}

/// Runs the parsed command line: checks the input, loads the settings, then runs the command on
/// the chosen provider (the one place besides [`crate::cloud::fleet`] that picks it).
pub async fn run(cli: Cli) -> Result<(), Error> {
    let kind = cli.global.provider_kind();
    let command = match cli.command {
        Command::Launch(args) => Checked::Launch(Box::new(args.validate(kind)?)),
        Command::Ls(args) => Checked::Ls(args),
        Command::Kill(args) => {
            args.validate(kind)?;
            Checked::Kill(args)
        }
        Command::Alb(args) => Checked::Alb(args.validate(&cli.global.project)?),
        Command::Autoscale(args) => {
            args.validate()?;
            Checked::Autoscale(args)
        }
        // These reach the instances through `cloud::fleet`, whatever the provider; a bench with
        // `--no-fleet` loads no settings at all.
        Command::Stats(args) => {
            return stats::run(&settings::load(&cli.global.options()).await?, &args).await
        }
        Command::Bench(args) => return bench::run(&cli.global, &args).await,
        // `--hosts` needs no cloud; the project's instances come through `cloud::fleet`.
        Command::Deploy(args) => return deploy::run(&cli.global, &args).await,
        Command::Demo(args) => return demo::run(&cli.global, &args).await,
        Command::Dashboard(args) => {
            return dashboard::run(settings::load(&cli.global.options()).await?, &args).await
        }
        Command::Cloudwatch(args) => {
            return cloudwatch::run(&settings::load(&cli.global.options()).await?, &args).await
        }
        Command::Report(args) => {
            return report::run(&settings::load(&cli.global.options()).await?, &args).await
        }
        Command::Asg(args) => {
            return asg::run(&settings::load(&cli.global.options()).await?, args).await
        }
        Command::Balance(args) => {
            if let balance::BalanceCommand::Up(up) = &args.command {
                up.spec()?;
            }
            return balance::run(&settings::load(&cli.global.options()).await?, &args).await;
        }
    };
    let mut settings = settings::load(&cli.global.options()).await?;
    if matches!(command, Checked::Autoscale(_)) {
        // A tick line says what the loop did; the steps under it (syncs, stops) go to the log.
        settings.notes = std::sync::Arc::new(crate::notes::Log);
    }
    match &settings.provider {
        Provider::Ec2 { region, aws } => {
            let cloud = Ec2::new(aws, region, &settings);
            execute(&cloud, &settings, kind, command).await
        }
        Provider::Local => execute(&LocalCloud::new(&settings), &settings, kind, command).await,
    }
}

async fn execute(
    cloud: &impl Cloud,
    settings: &Settings,
    kind: ProviderKind,
    command: Checked,
) -> Result<(), Error> {
    match command {
        Checked::Autoscale(args) => autoscale::run(cloud, settings, kind, &args).await,
        Checked::Launch(request) => launch::run(cloud, settings, *request).await,
        Checked::Ls(args) => ls::run(cloud, settings, &args).await,
        Checked::Kill(args) => kill::run(cloud, settings, &args).await,
        Checked::Alb(command) => alb::run(settings, command).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn global_flags_work_after_the_subcommand() {
        let cli = Cli::try_parse_from(["elb", "ls", "--project", "p", "--output", "json"]).unwrap();
        assert_eq!(cli.global.project, "p");
        assert_eq!(cli.global.output, OutputFormat::Json);
    }

    #[test]
    fn subcommand_help_puts_the_global_flags_last_under_their_own_heading() {
        let help = Cli::try_parse_from(["elb", "kill", "--help"])
            .expect_err("--help ends parsing")
            .to_string();
        let own = help.find("--dry-run").expect("kill's own flag");
        let heading = help
            .find("Global options:")
            .expect("a heading for the global flags");
        let global = help.find("--project").expect("a global flag");
        assert!(own < heading && heading < global, "{help}");
    }

    #[test]
    fn local_wins_over_the_provider_flag() {
        let cli = Cli::try_parse_from(["elb", "ls", "--provider", "ec2", "--local"]).unwrap();
        assert_eq!(cli.global.provider_kind(), ProviderKind::Local);
        let cli = Cli::try_parse_from(["elb", "--provider", "local", "ls"]).unwrap();
        assert_eq!(cli.global.provider_kind(), ProviderKind::Local);
    }
}
