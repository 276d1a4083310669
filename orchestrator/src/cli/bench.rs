//! `elb bench`: the load experiment, cluster by cluster.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use crate::bench::loadgen::Load;
use crate::bench::Plan;
use crate::cli::GlobalArgs;
use crate::cloud;
use crate::config::Settings;
use crate::http::Endpoint;
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
    let target = match &args.target {
        Some(url) => Some((url.clone(), Endpoint::from_url(url).await?)),
        None => None,
    };
    let (output, agents) = if args.no_fleet {
        (global.output, Vec::new())
    } else {
        let settings = Settings::load(&global.options()).await?;
        let instances = cloud::fleet(&settings, None).await?;
        let agents = instances.iter().map(Agent::of).filter(Agent::running);
        (settings.output, agents.collect())
    };
    let template = Load {
        endpoints: Vec::new(),
        path: String::new(),
        requests: args.requests,
        concurrency: args.concurrency as usize,
        timeout: Duration::from_millis(args.timeout_ms),
    };
    let plan = Plan::new(&agents, &args.cluster, target, &template)?;
    plan.run_and_report(args.out.clone(), "elb-bench", output)
        .await
        .map(drop)
}
