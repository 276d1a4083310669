//! `elb cloudwatch dashboard`: the project's CloudWatch dashboard (EC2).

use clap::{Args, Subcommand};

use crate::config::{Provider, Settings};
use crate::output::OutputFormat;
use crate::Error;

/// Flags of `elb cloudwatch`.
#[derive(Debug, Args)]
pub struct CloudwatchArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: CloudwatchCommand,
}

/// The `cloudwatch` subcommands.
#[derive(Debug, Subcommand)]
pub enum CloudwatchCommand {
    /// Create or update the dashboard `elb-<project>`: each instance's CPU as AWS measures it
    /// beside the agents' (`elb stats --publish`), each cluster's req/s and p99, and the ALB's
    /// requests, 5XX and response times. The kill switch deletes it.
    Dashboard,
}

/// Runs `elb cloudwatch ...`.
pub(crate) async fn run(settings: &Settings, args: &CloudwatchArgs) -> Result<(), Error> {
    let Provider::Ec2 { region, aws } = &settings.provider else {
        return Err(Error::Usage(
            "CloudWatch holds the figures of EC2 instances: drop --local (and \
             ELB_PROVIDER=local); locally, `elb dashboard` shows the fleet live"
                .into(),
        ));
    };
    match args.command {
        CloudwatchCommand::Dashboard => {
            let ec2 = crate::cloud::ec2::Ec2::new(aws, region, settings);
            let made = crate::cloudwatch::put_dashboard(&ec2, &settings.project, region).await?;
            match settings.output {
                OutputFormat::Json => println!(
                    "{}",
                    serde_json::to_string_pretty(&made).expect("plain data")
                ),
                OutputFormat::Table | OutputFormat::Csv => println!(
                    "dashboard {}: {} widgets, {} instance(s) in {} cluster(s){}\n\
                     https://{region}.console.aws.amazon.com/cloudwatch/home?region={region}#dashboards/dashboard/{}",
                    made.name,
                    made.widgets,
                    made.instances,
                    made.clusters,
                    made.alb
                        .as_deref()
                        .map_or(String::new(), |lb| format!(", ALB {lb}")),
                    made.name
                ),
            }
            Ok(())
        }
    }
}
