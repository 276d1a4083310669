//! `elb ls`: the project's instances, by cluster.

use clap::Args;

use super::instances;
use crate::cloud::{sort_instances, Cloud};
use crate::config::Settings;
use crate::output::OutputFormat;
use crate::Error;

/// Flags of `elb ls`.
#[derive(Debug, Args)]
pub struct LsArgs {
    /// Include terminated instances (EC2).
    #[arg(long)]
    pub all: bool,
    /// Only this cluster.
    #[arg(long)]
    pub cluster: Option<String>,
}

/// Runs `elb ls`.
pub(crate) async fn run(
    cloud: &impl Cloud,
    settings: &Settings,
    args: &LsArgs,
) -> Result<(), Error> {
    let mut instances = cloud.instances(args.cluster.as_deref(), args.all).await?;
    sort_instances(&mut instances);
    match settings.output {
        OutputFormat::Json => println!("{}", instances::instance_json(&instances)),
        OutputFormat::Csv => println!("{}", instances::instance_csv(&instances)),
        OutputFormat::Table if instances.is_empty() => println!(
            "no {}instances for project {} {}{}",
            if args.all { "" } else { "live " },
            settings.project,
            cloud.location(),
            if args.all {
                ""
            } else {
                " (--all shows terminated ones)"
            }
        ),
        OutputFormat::Table => println!("{}", instances::instance_tables_by_cluster(&instances)),
    }
    if settings.output == OutputFormat::Table {
        let summary = super::autoscale::project_summary(settings, args.cluster.as_deref())
            .map_err(|e| Error::Usage(e.to_string()))?;
        if let Some(summary) = summary {
            println!("{summary}");
        }
    }
    Ok(())
}
