//! `elb stats`: every agent's `/stats`, as a table per instance and per cluster.

use std::io::Write;
use std::time::{Duration, Instant};

use clap::Args;

use crate::cloud;
use crate::cloud::ec2::Ec2;
use crate::config::{Provider, Settings};
use crate::output::OutputFormat;
use crate::stats::view::StatsView;
use crate::stats::{self, unix_ms, Agent, Reading};
use crate::Error;

/// Clears the terminal and moves the cursor home, like `top` between two frames.
const CLEAR_SCREEN: &str = "\x1b[2J\x1b[H";

/// Flags of `elb stats`.
#[derive(Debug, Args)]
pub struct StatsArgs {
    /// Only this cluster.
    #[arg(long)]
    pub cluster: Option<String>,
    /// Per-agent timeout, from connect to the last byte of the answer.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=60_000))]
    pub timeout_ms: u64,
    /// Redraw every SECS seconds until Ctrl-C.
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub watch: Option<u64>,
    /// Also put each poll's figures into CloudWatch, namespace `elb` (per instance and per
    /// cluster: CPU, requests per second, p99; answering agents per cluster). EC2 only.
    #[arg(long)]
    pub publish: bool,
}

/// Runs `elb stats`: one poll, or one per `--watch` period until Ctrl-C. Fails (exit 1) when
/// an agent of the last poll did not answer.
pub async fn run(settings: &Settings, args: &StatsArgs) -> Result<(), Error> {
    let timeout = Duration::from_millis(args.timeout_ms);
    let publisher = match (&settings.provider, args.publish) {
        (_, false) => None,
        (Provider::Ec2 { region, aws }, true) => Some(Ec2::new(aws, region, settings)),
        (Provider::Local, true) => {
            return Err(Error::Usage(
                "--publish puts the figures into CloudWatch, which holds EC2's: drop --local \
                 (and ELB_PROVIDER=local), or --publish"
                    .into(),
            ))
        }
    };
    // elb's balancer, when the project has one and its figures are published.
    let balancer = match &publisher {
        Some(_) => crate::balance::find(settings).await?,
        None => None,
    };
    let mut balancer_before: Option<(proto::BalancerStatus, Instant)> = None;
    let mut previous: Vec<Reading> = Vec::new();
    // One listener for the whole watch, so a Ctrl-C during a poll is not lost.
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    loop {
        // Every live instance, running or not: one whose agent cannot answer stays in the table.
        let instances = cloud::fleet(settings, args.cluster.as_deref()).await?;
        let agents: Vec<Agent> = instances.iter().map(Agent::of).collect();
        let readings = stats::poll(&agents, timeout).await;
        let view = StatsView::new(&readings, &previous, unix_ms());
        print_view(settings.output, &view, args.watch.is_some());
        if let Some(ec2) = &publisher {
            let mut data = stats::publish::data(&settings.project, &view);
            if let Some(balancer) = &balancer {
                match crate::balance::admin_status(balancer.admin).await {
                    Ok(status) => {
                        let before = balancer_before.as_ref().map(
                            |(s, at): &(proto::BalancerStatus, Instant)| {
                                (s.groups.as_slice(), at.elapsed().as_secs_f64())
                            },
                        );
                        data.extend(stats::publish::balancer_data(
                            &settings.project,
                            &status.groups,
                            before,
                        ));
                        balancer_before = Some((status, Instant::now()));
                    }
                    Err(why) => tracing::warn!("the balancer's figures are left out: {why}"),
                }
            }
            crate::cloudwatch::publish(ec2, &data).await?;
            eprintln!(
                "CloudWatch: {} figures published under namespace {}",
                data.len(),
                stats::publish::NAMESPACE
            );
        }
        if settings.output == OutputFormat::Table {
            print_autoscaling(settings, args.cluster.as_deref());
        }
        let Some(secs) = args.watch else {
            return verdict(&view);
        };
        previous = readings;
        tokio::select! {
            () = tokio::time::sleep(Duration::from_secs(secs)) => {}
            _ = &mut ctrl_c => return verdict(&view),
        }
    }
}

/// Under the tables: each autoscaled cluster's bounds and last decision (`elb autoscale`).
fn print_autoscaling(settings: &Settings, cluster: Option<&str>) {
    match super::autoscale::project_summary(settings, cluster) {
        Ok(Some(summary)) => println!("{summary}"),
        Ok(None) => {}
        Err(e) => tracing::warn!("cannot read the autoscaling state: {e}"),
    }
}

fn print_view(format: OutputFormat, view: &StatsView, watch: bool) {
    let text = match format {
        OutputFormat::Table if view.instances.is_empty() => "no instances".to_owned(),
        OutputFormat::Table => view.tables(),
        // In --watch, one compact document per line (JSON Lines).
        OutputFormat::Json if watch => serde_json::to_string(view).expect("view serializes"),
        OutputFormat::Json => view.json(),
        OutputFormat::Csv if watch => format!("{}\n", view.csv()),
        OutputFormat::Csv => view.csv(),
    };
    let mut out = std::io::stdout().lock();
    if watch && format == OutputFormat::Table {
        let _ = write!(out, "{CLEAR_SCREEN}");
    }
    let _ = writeln!(out, "{text}");
    let _ = out.flush();
}

fn verdict(view: &StatsView) -> Result<(), Error> {
    match view.down() {
        0 => Ok(()),
        down => Err(Error::AgentsDown {
            down,
            total: view.instances.len(),
        }),
    }
}
