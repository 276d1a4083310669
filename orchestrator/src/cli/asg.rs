//! `elb asg up|status|down`: a cluster scaled by EC2 Auto Scaling (EC2 only).

use std::time::Duration;

use clap::{Args, Subcommand};

use super::launch::{DeployMode, LaunchHow};
use crate::asg::{self, Goal};
use crate::cloud::ec2::Ec2;
use crate::config::{Provider, ProviderKind, Settings};

use crate::output::OutputFormat;
use crate::Error;

/// Flags of `elb asg`.
#[derive(Debug, Args)]
pub struct AsgArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: AsgCommand,
}

/// The `asg` subcommands.
#[derive(Debug, Subcommand)]
pub enum AsgCommand {
    /// Make (or update) the cluster's launch template, Auto Scaling group and target tracking
    /// policy; its instances install the agent at first boot (--deploy user-data).
    Up(Box<UpArgs>),
    /// The project's groups: bounds, instances and policy.
    Status,
    /// Delete the cluster's group (its instances with it) and launch template.
    Down(DownArgs),
}

/// Flags of `elb asg up`.
#[derive(Debug, Args)]
pub struct UpArgs {
    /// The cluster: the `Cluster` tag the group's instances get.
    #[arg(long)]
    pub cluster: String,
    /// Fewest instances (the group starts with this many).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(0..=1000))]
    pub min: u32,
    /// Most instances.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub max: u32,
    /// Keep the group's average CPU (ASGAverageCPUUtilization) at this percentage.
    #[arg(
        long,
        value_name = "PCT",
        conflicts_with = "target_requests_per_target"
    )]
    pub target_cpu: Option<f64>,
    /// Keep the requests per second each instance gets through the ALB at this rate
    /// (ALBRequestCountPerTarget, which counts per minute: times 60). Needs `elb alb up`.
    #[arg(long, value_name = "R")]
    pub target_requests_per_target: Option<f64>,
    /// Instance type of the group's instances.
    #[arg(long = "type", default_value = "t3.micro")]
    pub instance_type: String,
    /// How the instances are made, as `elb launch` (--deploy user-data with --agent-url).
    #[command(flatten)]
    pub how: LaunchHow,
}

/// Flags of `elb asg down`.
#[derive(Debug, Args)]
pub struct DownArgs {
    /// The cluster whose group goes.
    #[arg(long)]
    pub cluster: String,
    /// Seconds to wait for the group (and its instances) to be gone.
    #[arg(long, default_value_t = 600, value_parser = clap::value_parser!(u64).range(1..))]
    pub timeout: u64,
    /// Milliseconds between two looks while waiting.
    #[arg(long, default_value_t = 5000, value_parser = clap::value_parser!(u64).range(1..))]
    pub poll_interval_ms: u64,
}

impl UpArgs {
    /// The goal these flags give, checked before any call.
    fn goal(&self) -> Result<Goal, Error> {
        match (self.target_cpu, self.target_requests_per_target) {
            (Some(pct), None) if pct > 0.0 && pct < 100.0 => Ok(Goal::Cpu(pct)),
            (None, Some(r)) if r > 0.0 => Ok(Goal::RequestsPerTarget(r)),
            (None, None) => Err(Error::Usage(
                "give the group a target: --target-cpu PCT (e.g. 50) or \
                 --target-requests-per-target R (requests per second per instance)"
                    .into(),
            )),
            _ => Err(Error::Usage(
                "--target-cpu takes a percentage above 0 and below 100, \
                 --target-requests-per-target a rate above 0"
                    .into(),
            )),
        }
    }
}

/// Runs `elb asg ...`.
pub(crate) async fn run(settings: &Settings, args: AsgArgs) -> Result<(), Error> {
    let Provider::Ec2 { region, aws } = &settings.provider else {
        return Err(Error::Usage(
            "EC2 Auto Scaling scales EC2 instances: drop --local (and ELB_PROVIDER=local); \
             locally, `elb autoscale` scales a cluster"
                .into(),
        ));
    };
    let ec2 = Ec2::new(aws, region, settings);
    match args.command {
        AsgCommand::Up(up) => {
            crate::config::validate_name("--cluster", &up.cluster)?;
            crate::balance::refuse_balancer_cluster("asg up", &up.cluster)?;
            let goal = up.goal()?;
            if up.min > up.max {
                return Err(Error::Usage(format!(
                    "--min {} is above --max {}: the group could never be that small",
                    up.min, up.max
                )));
            }
            if up.how.deploy != DeployMode::UserData {
                return Err(Error::Usage(
                    "an Auto Scaling group launches instances on its own, with nobody to SSH \
                     the agent onto them: give --deploy user-data --agent-url <https URL>"
                        .into(),
                ));
            }
            let growth = up.how.clone().growth(
                up.cluster.clone(),
                up.instance_type.clone(),
                up.min.max(1),
                ProviderKind::Ec2,
            )?;
            let made = asg::up(
                &ec2,
                &settings.project,
                &growth.spec,
                (up.min, up.max),
                goal,
            )
            .await?;
            match settings.output {
                OutputFormat::Json => println!(
                    "{}",
                    serde_json::to_string_pretty(&made).expect("plain data")
                ),
                OutputFormat::Table | OutputFormat::Csv => println!(
                    "Auto Scaling group {} ({}), launch template {} ({}): min {} max {}, policy \
                     {}{}",
                    made.group,
                    made.group_made,
                    made.launch_template,
                    made.template_made,
                    made.min,
                    made.max,
                    made.policy,
                    made.target_group
                        .as_deref()
                        .map_or(String::new(), |g| format!(", joins target group {g}"))
                ),
            }
            Ok(())
        }
        AsgCommand::Status => {
            let groups = asg::status(&ec2).await?;
            match settings.output {
                OutputFormat::Json => println!(
                    "{}",
                    serde_json::to_string_pretty(&groups).expect("plain data")
                ),
                OutputFormat::Table | OutputFormat::Csv => println!("{}", asg::render(&groups)),
            }
            Ok(())
        }
        AsgCommand::Down(down) => {
            let gone = asg::down(
                &ec2,
                &down.cluster,
                Duration::from_secs(down.timeout),
                Duration::from_millis(down.poll_interval_ms),
            )
            .await?;
            if gone {
                eprintln!(
                    "done: cluster {}'s Auto Scaling group is gone",
                    down.cluster
                );
            } else {
                eprintln!("cluster {} has no Auto Scaling group", down.cluster);
            }
            Ok(())
        }
    }
}
