//! `elb bench`: the load experiment, cluster by cluster.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use crate::bench::loadgen::Load;
use crate::bench::via::{Comparison, Via};
use crate::bench::Plan;
use crate::cli::GlobalArgs;
use crate::cloud;
use crate::config::Settings;
use crate::http::Endpoint;
use crate::output::OutputFormat;
use crate::stats::Agent;
use crate::Error;

/// Flags of `elb bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Requests sent to each cluster.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=100_000_000))]
    pub requests: u64,
    /// Connections per cluster, each with one request in flight.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub concurrency: u64,
    /// Clusters to load, comma-separated (default: every cluster of the project).
    #[arg(long, value_delimiter = ',')]
    pub cluster: Vec<String>,
    /// Send every request to this URL (`http://host:port`, e.g. a load balancer) instead of
    /// to the instances; the path `/<cluster>` is appended.
    #[arg(long, value_name = "URL")]
    pub target: Option<String>,
    /// Where the load goes, comma-separated for a side-by-side comparison of the same load:
    /// `direct` (spread over the instances), `alb` (the project's managed ALB, `elb alb up`).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "direct",
        conflicts_with = "target"
    )]
    pub(crate) via: Vec<Via>,
    /// With --target: do not look up the project's instances (no cloud call, no agent
    /// snapshots), e.g. to load a single agent.
    #[arg(long, requires = "target")]
    pub no_fleet: bool,
    /// Directory for results.json, results.csv and the plots (default:
    /// ./elb-bench-<UTC time>).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Longest wait for one answer; slower requests count as errors.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub timeout_ms: u64,
}

/// Runs `elb bench`.
pub async fn run(global: &GlobalArgs, args: &BenchArgs) -> Result<(), Error> {
    for cluster in &args.cluster {
        crate::config::validate_name("--cluster", cluster)?;
    }
    if args.no_fleet && args.cluster.is_empty() {
        return Err(Error::Usage(
            "--no-fleet needs --cluster <name>[,<name>...]: without the fleet, elb cannot know \
             which clusters exist"
                .into(),
        ));
    }
    let mut vias = args.via.clone();
    vias.dedup();
    let target = match &args.target {
        Some(url) => Some((url.clone(), Endpoint::from_url(url).await?)),
        None => None,
    };
    let template = Load {
        endpoints: Vec::new(),
        path: String::new(),
        requests: args.requests,
        concurrency: args.concurrency as usize,
        timeout: Duration::from_millis(args.timeout_ms),
    };
    if args.no_fleet {
        let plan = Plan::new(&[], &args.cluster, target, &template)?;
        return plan
            .run_and_report(args.out.clone(), "elb-bench", global.output)
            .await
            .map(drop);
    }
    let settings = Settings::load(&global.options()).await?;
    let instances = cloud::fleet(&settings, None).await?;
    let agents: Vec<Agent> = instances
        .iter()
        .map(Agent::of)
        .filter(Agent::running)
        .collect();
    if target.is_some() || vias == [Via::Direct] {
        let plan = Plan::new(&agents, &args.cluster, target, &template)?;
        return plan
            .run_and_report(args.out.clone(), "elb-bench", settings.output)
            .await
            .map(drop);
    }
    // Every via's target is found before any load is sent.
    let mut plans = Vec::with_capacity(vias.len());
    for via in &vias {
        let target = match via {
            Via::Direct => None,
            Via::Alb => {
                let url = alb_url(&settings).await?;
                Some((url.clone(), Endpoint::from_url(&url).await?))
            }
        };
        plans.push((*via, Plan::new(&agents, &args.cluster, target, &template)?));
    }
    let dir = args.out.clone().unwrap_or_else(|| {
        PathBuf::from(format!(
            "elb-bench-{}",
            crate::bench::utc_stamp(crate::stats::unix_ms() / 1000)
        ))
    });
    let mut runs = Vec::with_capacity(plans.len());
    for (via, plan) in plans {
        eprintln!("via {}", via.name());
        let report = plan
            .run_and_report(Some(dir.join(via.name())), "elb-bench", settings.output)
            .await?;
        runs.push((via, report.results));
    }
    let comparison = Comparison::new(&runs);
    let file = dir.join("comparison.json");
    crate::state::write_atomic(&file, comparison.json().as_bytes(), 0o644)?;
    match settings.output {
        OutputFormat::Table => println!("{}", comparison.table()),
        OutputFormat::Json => println!("{}", comparison.json()),
        OutputFormat::Csv => {}
    }
    eprintln!("comparison: {}", file.display());
    Ok(())
}

/// The base URL of the project's managed ALB (`http://<DNS name>`).
async fn alb_url(settings: &Settings) -> Result<String, Error> {
    let ec2 = super::alb::client(settings)?;
    let name = crate::alb::load_balancer_name(&settings.project);
    match ec2.load_balancing().find_load_balancer(&name).await? {
        Some(lb) => Ok(format!("http://{}", lb.dns_name)),
        None => Err(Error::Usage(format!(
            "--via alb: project {} has no ALB ({name}): create it with `elb alb up`",
            settings.project
        ))),
    }
}
