//! `elb ls`: the project's instances, by cluster.

use clap::Args;

use super::instances;
use crate::cloud::ec2::cloudwatch::IdleAlarm;
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
    let idle = idle_alarms(settings).await;
    match settings.output {
        OutputFormat::Json => println!("{}", with_idle(&instances, &idle)),
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
        let carrying: Vec<String> = instances
            .iter()
            .filter_map(|i| {
                let alarm = idle.iter().find(|a| a.instance_id == i.id)?;
                Some(format!("{} ({})", i.id, describe(alarm)))
            })
            .collect();
        if !carrying.is_empty() {
            println!("idle alarms (CloudWatch): {}", carrying.join(", "));
        }
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

/// The idle alarms named as the project's (EC2; matched to the listed instances by id); none
/// locally, or when CloudWatch cannot be read (warned: `ls` still lists the instances).
async fn idle_alarms(settings: &Settings) -> Vec<IdleAlarm> {
    let Some(ec2) = crate::cloud::ec2_of(settings) else {
        return Vec::new();
    };
    ec2.named_idle_alarms().await.unwrap_or_else(|e| {
        tracing::warn!("cannot read the idle alarms from CloudWatch: {e}");
        Vec::new()
    })
}

/// `1h below 5% CPU`.
fn describe(alarm: &IdleAlarm) -> String {
    format!(
        "{} below {}% CPU",
        alarm.idle.describe(),
        alarm.idle.cpu_percent
    )
}

/// `instances` as JSON, each with `idle_terminate` (`{"after": "1h", "cpu_percent": 5.0}`)
/// when an idle alarm will terminate it.
fn with_idle(instances: &[crate::cloud::Instance], idle: &[IdleAlarm]) -> String {
    let rows: Vec<serde_json::Value> = instances
        .iter()
        .map(|i| {
            let mut row = serde_json::to_value(i).unwrap_or_default();
            if let (Some(alarm), Some(fields)) = (
                idle.iter().find(|a| a.instance_id == i.id),
                row.as_object_mut(),
            ) {
                fields.insert(
                    "idle_terminate".into(),
                    serde_json::json!({
                        "after": alarm.idle.describe(),
                        "cpu_percent": alarm.idle.cpu_percent,
                        "alarm": alarm.name,
                    }),
                );
            }
            row
        })
        .collect();
    serde_json::to_string_pretty(&rows).unwrap_or_else(|_| "[]".to_owned())
}
