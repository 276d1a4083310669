//! `elb bench`: the load experiment, cluster by cluster.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;

use super::settings;
use super::values::parse_duration;
use crate::autoscale::Memories;
use crate::balance;
use crate::bench::loadgen::Load;
use crate::bench::report::Results;
use crate::bench::schedule::Schedule;
use crate::bench::via::{Comparison, Via};
use crate::bench::{Plan, Report};
use crate::cli::GlobalArgs;
use crate::cloud;
use crate::config::Settings;
use crate::http::Endpoint;
use crate::output::OutputFormat;
use crate::stats::Agent;
use crate::Error;
use proto::balancer_config::Algorithm;

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
    /// `direct` (spread over the instances), `alb` (the project's managed ALB, `elb alb up`),
    /// `balancer` (the project's own, `elb balance up`).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "direct",
        conflicts_with = "target"
    )]
    pub(crate) via: Vec<Via>,
    /// Run the same load through the project's balancer once per algorithm, comma-separated
    /// (reconfiguring it between runs and waiting until its targets are healthy), and compare.
    #[arg(
        long,
        value_delimiter = ',',
        conflicts_with_all = ["target", "no_fleet"],
        value_parser = super::values::algorithm_parser()
    )]
    pub(crate) algorithms: Vec<Algorithm>,
    /// With --algorithms or --via balancer: load this one path (e.g. `/`, which the default
    /// action routes) instead of `/<cluster>` per cluster.
    #[arg(long)]
    pub path: Option<String>,
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
    /// Open loop: send --requests at this fixed rate (requests per second, per cluster), each
    /// request's latency counted from when it was due (wrk2's correction for coordinated
    /// omission); --concurrency connections carry them. Without it the load is closed loop.
    #[arg(long, value_name = "R", conflicts_with = "profile")]
    pub rate: Option<f64>,
    /// Open loop with the rate changing in steps: RATE:DURATION,... (e.g.
    /// 200:30s,1500:60s,200:60s); the steps set the number of requests (not with --requests).
    #[arg(long, value_name = "STEPS", conflicts_with = "requests")]
    pub profile: Option<String>,
}

impl BenchArgs {
    /// The open-loop schedule of `--rate` or `--profile`, if either is given.
    fn schedule(&self) -> Result<Option<Schedule>, Error> {
        if let Some(rate) = self.rate {
            if !(rate.is_finite() && rate > 0.0) {
                return Err(Error::Usage(format!(
                    "--rate {rate} sends nothing: give requests per second above 0 (e.g. --rate 200)"
                )));
            }
            return Ok(Some(Schedule::constant(rate, self.requests)));
        }
        match &self.profile {
            Some(text) => Schedule::parse(text, parse_duration)
                .map(Some)
                .map_err(|why| Error::Usage(format!("--profile {text}: {why}"))),
            None => Ok(None),
        }
    }
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
    let schedule = args.schedule()?;
    let template = Load {
        endpoints: Vec::new(),
        path: String::new(),
        requests: schedule.as_ref().map_or(args.requests, Schedule::requests),
        concurrency: args.concurrency as usize,
        timeout: Duration::from_millis(args.timeout_ms),
        schedule: schedule.map(Arc::new),
    };
    if args.no_fleet {
        let plan = Plan::new(&[], &args.cluster, target, &template)?;
        return plan
            .run_and_write(args.out.clone(), "elb-bench")
            .await
            .map(|report| show(&report, global.output));
    }
    if let Some(path) = &args.path {
        if !path.starts_with('/') {
            return Err(Error::Usage(format!(
                "--path `{path}` must start with `/` (e.g. --path /)"
            )));
        }
    }
    let settings = settings::load(&global.options()).await?;
    let instances = cloud::fleet(&settings, None).await?;
    let agents: Vec<Agent> = instances
        .iter()
        .map(Agent::of)
        .filter(Agent::running)
        .collect();
    let types = instances
        .iter()
        .map(|i| (i.id.clone(), i.instance_type.clone()))
        .collect();
    let dir = args.out.clone().unwrap_or_else(|| {
        PathBuf::from(format!(
            "elb-bench-{}",
            crate::bench::utc_stamp(crate::stats::unix_ms() / 1000)
        ))
    });
    if !args.algorithms.is_empty() {
        let runs = compare_algorithms(&settings, &agents, args, &template, &dir).await?;
        return report_comparison(&settings, &runs, &types, &dir);
    }
    if target.is_some() || vias == [Via::Direct] {
        let plan = Plan::new(&agents, &args.cluster, target, &template)?
            .watching_autoscaling(Memories::new(&settings.state));
        return plan
            .run_and_write(args.out.clone(), "elb-bench")
            .await
            .map(|report| {
                show(&report, settings.output);
                cloudwatch_hint(&settings, &report);
            });
    }
    // Every via's target is found before any load is sent.
    let mut plans = Vec::with_capacity(vias.len());
    for via in &vias {
        let (target, admin) = match via {
            Via::Direct => (None, None),
            Via::Alb => (Some(alb_url(&settings).await?), None),
            Via::Balancer => {
                let (url, balancer) = balancer_url(&settings).await?;
                (Some(url), Some(balancer.admin))
            }
        };
        let plan = match (target, &args.path) {
            (Some(url), Some(path)) => {
                let endpoint = Endpoint::from_url(&url).await?;
                Plan::through(&agents, path, (url, endpoint), &template)
            }
            (Some(url), None) => {
                let endpoint = Endpoint::from_url(&url).await?;
                Plan::new(&agents, &args.cluster, Some((url, endpoint)), &template)?
            }
            (None, _) => Plan::new(&agents, &args.cluster, None, &template)?,
        };
        let plan = plan.watching_autoscaling(Memories::new(&settings.state));
        let plan = match admin {
            Some(admin) => plan.counted_by_balancer(admin),
            None => plan,
        };
        plans.push((*via, plan));
    }
    if vias.len() == 1 {
        let (_, plan) = plans.remove(0);
        return plan
            .run_and_write(args.out.clone(), "elb-bench")
            .await
            .map(|report| {
                show(&report, settings.output);
                cloudwatch_hint(&settings, &report);
            });
    }
    let mut runs = Vec::with_capacity(plans.len());
    for (via, plan) in plans {
        eprintln!("via {}", via.name());
        let results = run_one(&plan, &dir.join(via.name()), settings.output).await?;
        runs.push((via.name().to_owned(), results));
    }
    report_comparison(&settings, &runs, &types, &dir)
}

/// `--algorithms`: per algorithm, the balancer reconfigured, its targets healthy, then the same
/// load through it.
async fn compare_algorithms(
    settings: &Settings,
    agents: &[Agent],
    args: &BenchArgs,
    template: &Load,
    dir: &std::path::Path,
) -> Result<Vec<(String, Results)>, Error> {
    let (url, balancer) = balancer_url(settings).await?;
    let endpoint = Endpoint::from_url(&url).await?;
    let mut runs = Vec::with_capacity(args.algorithms.len());
    for algorithm in &args.algorithms {
        balance::set_algorithm(settings, *algorithm).await?;
        let status = balance::wait_healthy(&balancer, Duration::from_secs(30)).await?;
        let unhealthy: Vec<String> = status
            .groups
            .iter()
            .flat_map(|g| &g.targets)
            .filter(|t| t.state != proto::TargetState::Healthy)
            .map(|t| format!("{} {} ({})", t.id, t.state.name(), t.reason))
            .collect();
        if !unhealthy.is_empty() {
            eprintln!(
                "warning: {algorithm:?}: not every target is healthy after 30 s: {}",
                unhealthy.join(", ")
            );
        }
        eprintln!("algorithm {}", algorithm.name());
        let plan = match &args.path {
            Some(path) => Plan::through(agents, path, (url.clone(), endpoint.clone()), template),
            None => Plan::new(
                agents,
                &args.cluster,
                Some((url.clone(), endpoint.clone())),
                template,
            )?,
        }
        .counted_by_balancer(balancer.admin);
        let results = run_one(&plan, &dir.join(algorithm.name()), settings.output).await?;
        runs.push((algorithm.name().to_owned(), results));
    }
    Ok(runs)
}

/// One run of a comparison, its files in `dir`: with tables, each run's tables are printed as
/// it ends; with JSON or CSV only the comparison goes to stdout, so it stays one document.
pub(crate) async fn run_one(
    plan: &Plan,
    dir: &std::path::Path,
    output: OutputFormat,
) -> Result<Results, Error> {
    if output == OutputFormat::Table {
        let report = plan
            .run_and_write(Some(dir.to_owned()), "elb-bench")
            .await?;
        show(&report, output);
        return Ok(report.results);
    }
    let results = plan.run().await;
    crate::bench::write(&results, dir)?;
    Ok(results)
}

/// Writes `comparison.json` (and its plot) into `dir` and prints the side-by-side table.
fn report_comparison(
    settings: &Settings,
    runs: &[(String, Results)],
    types: &std::collections::BTreeMap<String, String>,
    dir: &std::path::Path,
) -> Result<(), Error> {
    let comparison = Comparison::new(runs, types);
    let files = crate::bench::write_comparison(&comparison, dir)?;
    match settings.output {
        OutputFormat::Table => println!("{}", comparison.table()),
        OutputFormat::Json => println!("{}", comparison.json()),
        OutputFormat::Csv => {}
    }
    eprintln!("comparison:");
    for file in files {
        eprintln!("  {}", file.display());
    }
    Ok(())
}

/// The project's balancer's client URL, or why there is none.
async fn balancer_url(settings: &Settings) -> Result<(String, balance::Balancer), Error> {
    match balance::find(settings).await? {
        Some(balancer) => Ok((balancer.url(), balancer)),
        None => Err(Error::Usage(format!(
            "--via balancer / --algorithms: project {} has no balancer: start it with `elb \
             {}balance up`",
            settings.project,
            balance::provider_flag(settings)
        ))),
    }
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

/// On EC2, where AWS's own figures of the run come from, and when.
fn cloudwatch_hint(settings: &Settings, report: &Report) {
    if matches!(settings.provider, crate::config::Provider::Ec2 { .. }) {
        eprintln!(
            "CloudWatch's view of this run (each instance's CPUUtilization, the ALB's figures) \
             arrives a minute or more later: `elb report --cloudwatch {}`",
            report.dir.display()
        );
    }
}

/// Shows a run: the per-cluster tables (or the JSON or CSV) on stdout, where the files went
/// and a warning where the agents' or the balancer's counts disagree with the requests sent on
/// stderr.
pub(crate) fn show(report: &Report, output: OutputFormat) {
    let results = &report.results;
    match output {
        OutputFormat::Table => {
            for cluster in &results.clusters {
                println!("{}\n", cluster.table());
            }
        }
        OutputFormat::Json => println!("{}", results.json()),
        OutputFormat::Csv => print!("{}", results.csv()),
    }
    eprintln!(
        "wrote {} files to {}",
        report.files.len(),
        report.dir.display()
    );
    for cluster in &results.clusters {
        if cluster
            .agents_counted
            .is_some_and(|n| n != cluster.requests)
        {
            eprintln!(
                "warning: {}: the agents counted {} requests to {}, {} were sent (see the \
                 table)",
                cluster.cluster,
                cluster.agents_counted.unwrap_or(0),
                cluster.path,
                cluster.requests
            );
        }
        if let Some(counted) = cluster.balancer_counted.filter(|n| *n != cluster.requests) {
            eprintln!(
                "warning: {}: the balancer counted {counted} requests to its targets, {} were \
                 sent (retries count twice; see the table)",
                cluster.cluster, cluster.requests
            );
        }
    }
}
