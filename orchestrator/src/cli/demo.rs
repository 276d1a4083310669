//! `elb demo`: the whole experiment on this machine, with no AWS account. Launches the seed's two
//! clusters with the local provider (big instances against small ones), loads each with
//! `elb bench`'s engine, prints the comparison and where the report is, then removes everything
//! (unless `--keep`). Ctrl-C at any point removes what was started.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;

mod autoscaling;

use super::instances;
use super::settings;
use crate::balance::{self, BalanceSpec};
use crate::bench::loadgen::Load;
use crate::bench::report::ClusterResult;
use crate::bench::schedule::Schedule;
use crate::bench::via::Comparison;
use crate::bench::Plan;
use crate::cli::GlobalArgs;
use crate::cloud::local::LocalCloud;
use crate::cloud::spec::KillOptions;
use crate::cloud::wait::Poll;
use crate::cloud::{self, Cloud, Created};
use crate::config::{ProviderKind, Settings};
use crate::dashboard::{Dashboard, DashboardSpec};
use crate::fleet::{self, Growth, Quiet};
use crate::http::Endpoint;
use crate::output::OutputFormat;
use crate::routing::Routing;
use crate::stats::Agent;
use crate::Error;
use proto::balancer_config::Algorithm;

/// The experiment's clusters: name, instance type, count. Locally the type is a CPU quota (see
/// the table in docs/cli.md), so the micro cluster has a tenth of a large one's CPU per instance.
const CLUSTERS: [(&str, &str, u32); 2] = [("cluster1", "m4.large", 2), ("cluster2", "t3.micro", 3)];

/// Flags of `elb demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Requests sent to each cluster (enough for a few seconds of load, so that the micro
    /// instances' CPU quota shows beyond their first burst).
    #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    pub requests: u64,
    /// Connections per cluster, each with one request in flight.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub concurrency: u64,
    /// Directory for results.json, results.csv and the plots (default: ./elb-demo-<UTC time>).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Leave the clusters running afterwards (remove them with `elb --local kill`).
    #[arg(long)]
    pub keep: bool,
    /// The elb-agent executable to run (default: the static build found next to elb, or
    /// ELB_AGENT).
    #[arg(long)]
    pub agent: Option<PathBuf>,
    /// The elb-balancer executable (default: the build found next to elb, or ELB_BALANCER).
    #[arg(long)]
    pub balancer: Option<PathBuf>,
    /// The balancer's client port.
    #[arg(long, default_value_t = 80)]
    pub balancer_port: u16,
    /// CPU each request of the algorithm comparison costs the agent that answers it, in
    /// microseconds (`/work?us=N`): the plain endpoints cost so little that no micro instance
    /// ever reaches its quota through the balancer. 0 loads `/` instead.
    #[arg(long, value_name = "US", default_value_t = 200, value_parser = clap::value_parser!(u64).range(0..=100_000))]
    pub work_us: u64,
    /// The open-loop rate (requests/s) every algorithm of the comparison gets (default: 80 % of
    /// what least outstanding requests serves in a closed-loop probe).
    #[arg(long, value_name = "R")]
    pub algorithms_rate: Option<f64>,
    /// Only the direct comparison of the two clusters: no balancer, no algorithms.
    #[arg(long)]
    pub no_balancer: bool,
    /// Leave out the autoscaling part (a micro cluster under a stepped load, scaled by
    /// `elb autoscale`'s loop).
    #[arg(long)]
    pub no_autoscale: bool,
    /// The autoscaling part's time unit, in seconds: the load is low for half of it, high for
    /// two, low again for two; it is also the scale-in stabilization window.
    #[arg(long, value_name = "SECS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(4..=3600))]
    pub autoscale_step_secs: u64,
    /// Serve the live dashboard through the demo (its URL is printed first); it stops with
    /// the demo.
    #[arg(long)]
    pub dashboard: bool,
    /// Where `--dashboard` listens (port 0: any free port).
    #[arg(
        long,
        value_name = "ADDR",
        default_value = "127.0.0.1:8080",
        requires = "dashboard"
    )]
    pub dashboard_listen: std::net::SocketAddr,
}

/// Runs `elb demo`, always on the local provider.
pub(crate) async fn run(global: &GlobalArgs, args: &DemoArgs) -> Result<(), Error> {
    if let Some(rate) = args
        .algorithms_rate
        .filter(|r| !(r.is_finite() && *r > 0.0))
    {
        return Err(Error::Usage(format!(
            "--algorithms-rate {rate} sends nothing: give requests per second above 0"
        )));
    }
    let settings = settings::load(&global.options_for(ProviderKind::Local)).await?;
    let cloud = LocalCloud::new(&settings);
    let existing = cloud.instances(None, false).await?;
    if !existing.is_empty() {
        return Err(Error::Usage(format!(
            "project {0} already has {1} local instance(s), and the demo would mix them into its \
             results and then remove them: pass --project <another name>, or remove them first \
             with `elb --local kill --project {0}`",
            settings.project,
            existing.len()
        )));
    }
    // Kept until the demo returns: dropping it stops the page.
    let _dashboard = match args.dashboard {
        true => Some(dashboard(global, args).await?),
        false => None,
    };
    // Biased, Ctrl-C first: its handler must be installed before the first agent starts.
    let outcome = tokio::select! {
        biased;
        _ = tokio::signal::ctrl_c() => None,
        result = experiment(&cloud, &settings, args) => Some(result),
    };
    let keep = args.keep && matches!(outcome, Some(Ok(())));
    let cleaned = if keep {
        eprintln!(
            "the clusters keep running (--keep): `elb --local stats --project {0}` shows them, \
             `elb --local kill --project {0}` removes them",
            settings.project
        );
        Ok(())
    } else {
        clean_up(&cloud).await
    };
    match outcome {
        None => {
            cleaned?;
            Err(Error::Interrupted(
                "demo interrupted: every agent it started was stopped and its state removed".into(),
            ))
        }
        Some(Err(e)) => {
            if let Err(cleanup) = cleaned {
                eprintln!("error while cleaning up: {cleanup}");
            }
            Err(e)
        }
        Some(Ok(())) => cleaned,
    }
}

/// The live dashboard of the demo's project, its URL printed.
async fn dashboard(global: &GlobalArgs, args: &DemoArgs) -> Result<Dashboard, Error> {
    let settings = settings::load(&global.options_for(ProviderKind::Local)).await?;
    let spec = DashboardSpec::new(&settings, args.dashboard_listen, Duration::from_secs(1));
    let dashboard = Dashboard::start(Arc::new(settings), spec).await?;
    super::dashboard::announce(&dashboard);
    Ok(dashboard)
}

/// Launch, load, compare.
async fn experiment(cloud: &LocalCloud, settings: &Settings, args: &DemoArgs) -> Result<(), Error> {
    let mut created = Created::default();
    for (cluster, instance_type, count) in CLUSTERS {
        eprintln!("launching {cluster}: {count} x {instance_type}");
        let growth = Growth::local(cluster, instance_type, count, args.agent.clone());
        fleet::grow(cloud, settings, &growth, &mut created, &Quiet).await?;
    }
    let instances = cloud::fleet(settings, None).await?;
    if settings.output == OutputFormat::Table {
        println!("{}\n", instances::instance_tables_by_cluster(&instances));
    }
    let agents: Vec<Agent> = instances
        .iter()
        .map(Agent::of)
        .filter(Agent::running)
        .collect();
    let template = Load {
        endpoints: Vec::new(),
        path: String::new(),
        requests: args.requests,
        concurrency: usize::try_from(args.concurrency).unwrap_or(usize::MAX),
        timeout: Duration::from_secs(10),
        schedule: None,
    };
    let clusters: Vec<String> = CLUSTERS.iter().map(|(c, _, _)| (*c).to_owned()).collect();
    let dir = args.out.clone().unwrap_or_else(|| {
        PathBuf::from(format!(
            "elb-demo-{}",
            crate::bench::utc_stamp(crate::stats::unix_ms() / 1000)
        ))
    });
    let plan = Plan::new(&agents, &clusters, None, &template)?;
    let report = plan.run_and_write(Some(dir.clone()), "elb-demo").await?;
    super::bench::show(&report, settings.output);
    if settings.output == OutputFormat::Table {
        println!("{}", comparison(&report.results.clusters));
    }
    eprintln!("report: {}", report.dir.display());
    for file in &report.files {
        eprintln!("  {}", file.display());
    }
    if args.no_balancer {
        return Ok(());
    }
    through_the_balancer(settings, &agents, &clusters, &template, &dir, args).await?;
    if args.no_autoscale {
        return Ok(());
    }
    autoscaling::run(cloud, settings, args, &dir).await
}

/// The share of least outstanding requests' closed-loop throughput that every algorithm is then
/// offered, open loop: more than round robin can carry when it sends the micros their equal
/// share, less than a load-aware algorithm can.
const PROBE_SHARE: f64 = 0.8;

/// The algorithms the demo compares, round robin (the reference) first.
const ALGORITHMS: [Algorithm; 5] = [
    Algorithm::RoundRobin,
    Algorithm::LeastOutstandingRequests,
    Algorithm::P2cPeakEwma,
    Algorithm::AgentLoad,
    Algorithm::LowestLatency,
];

/// The two clusters through elb's balancer with the seed's rules, then the algorithms compared
/// on one mixed group (`/` over all five instances), and which gave the lowest p99.
async fn through_the_balancer(
    settings: &Settings,
    agents: &[Agent],
    clusters: &[String],
    template: &Load,
    dir: &std::path::Path,
    args: &DemoArgs,
) -> Result<(), Error> {
    let seed = BalanceSpec {
        routing: Routing::seed(),
        algorithm: Algorithm::RoundRobin,
        port: args.balancer_port,
        health_interval_ms: 500,
        https: None,
        http_redirect: None,
        slow_start: std::time::Duration::ZERO,
        stickiness: None,
        access_log: None,
    };
    eprintln!("starting elb's balancer with the seed's rules");
    let balancer = balance::up(settings, &seed, args.balancer.as_deref()).await?;
    balance::wait_healthy(&balancer, Duration::from_secs(30)).await?;
    let url = balancer.url();
    let endpoint = Endpoint::from_url(&url).await?;
    let plan = Plan::new(
        agents,
        clusters,
        Some((url.clone(), endpoint.clone())),
        template,
    )?
    .counted_by_balancer(balancer.admin);
    super::bench::run_one(&plan, &dir.join("balancer"), settings.output).await?;
    eprintln!(
        "report through the balancer: {}",
        dir.join("balancer").display()
    );

    let mixed = BalanceSpec {
        routing: Routing {
            rules: Vec::new(),
            default: crate::routing::RuleAction::Forward(balance::ALL.to_owned()),
        },
        ..seed
    };
    eprintln!(
        "one mixed group of all {} instances: comparing algorithms",
        agents.len()
    );
    balance::up(settings, &mixed, args.balancer.as_deref()).await?;
    let path = match args.work_us {
        0 => "/".to_owned(),
        us => format!("/work?us={us}"),
    };
    // Every algorithm gets the same offered load, open loop: a rate that the best of them can
    // carry, found by a closed-loop probe with least outstanding requests.
    let rate = match args.algorithms_rate {
        Some(rate) => rate,
        None => {
            balance::set_algorithm(settings, Algorithm::LeastOutstandingRequests).await?;
            balance::wait_healthy(&balancer, Duration::from_secs(30)).await?;
            let probe = Load {
                requests: (template.requests / 4).max(1000),
                ..template.clone()
            };
            let plan = Plan::through(agents, &path, (url.clone(), endpoint.clone()), &probe);
            let results = plan.run().await;
            let served = results.clusters.first().map_or(0.0, |c| c.requests_per_sec);
            let rate = (PROBE_SHARE * served).max(1.0);
            eprintln!(
                "probe: least outstanding requests served {served:.0} req/s closed loop; every \
                 algorithm gets {rate:.0} req/s open loop ({:.0} % of it)",
                PROBE_SHARE * 100.0
            );
            rate
        }
    };
    let open = Load {
        schedule: Some(Arc::new(Schedule::constant(rate, template.requests))),
        ..template.clone()
    };
    let mut runs = Vec::with_capacity(ALGORITHMS.len());
    for algorithm in ALGORITHMS {
        balance::set_algorithm(settings, algorithm).await?;
        balance::wait_healthy(&balancer, Duration::from_secs(30)).await?;
        eprintln!("algorithm {}", algorithm.name());
        let plan = Plan::through(agents, &path, (url.clone(), endpoint.clone()), &open)
            .counted_by_balancer(balancer.admin);
        let results = super::bench::run_one(
            &plan,
            &dir.join("algorithms").join(algorithm.name()),
            settings.output,
        )
        .await?;
        runs.push((algorithm.name().to_owned(), results));
    }
    let types = agents
        .iter()
        .map(|a| (a.id.clone(), a.instance_type.clone()))
        .collect();
    let comparison = Comparison::new(&runs, &types);
    let algorithms = dir.join("algorithms");
    crate::bench::write_comparison(&comparison, &algorithms)?;
    if settings.output == OutputFormat::Table {
        println!(
            "algorithms on the mixed group ({path} over 2 x m4.large + 3 x t3.micro, open loop \
             at {rate:.0} req/s)"
        );
        println!("{}", comparison.table());
        println!("{}", verdict(&comparison));
    }
    eprintln!("algorithm comparison: {}", algorithms.display());
    Ok(())
}

/// Which algorithm gave the lowest p99, against round robin's (the first row), said as what it
/// means to a user: how much less the slowest 1 % of requests waited.
fn verdict(comparison: &Comparison) -> String {
    let (Some(reference), Some(best)) = (
        comparison.rows.first(),
        comparison
            .rows
            .iter()
            .min_by(|a, b| a.latency_ms.p99.total_cmp(&b.latency_ms.p99)),
    ) else {
        return String::new();
    };
    let (best_ms, reference_ms) = (best.latency_ms.p99, reference.latency_ms.p99);
    if best_ms >= reference_ms || best_ms <= 0.0 {
        return format!(
            "lowest p99: round robin's own, {reference_ms:.2} ms: no algorithm shortened the \
             slowest 1 % of requests here"
        );
    }
    let idle = best
        .shares
        .iter()
        .filter(|(_, share)| *share < IDLE_SHARE)
        .count();
    let serving = match idle {
        0 => String::new(),
        n => format!(
            "; it left {n} of the {} instances nearly idle (under {:.0} % of the requests)",
            best.shares.len(),
            IDLE_SHARE * 100.0
        ),
    };
    format!(
        "lowest p99: {} at {best_ms:.2} ms against round robin's {reference_ms:.2} ms: the \
         slowest 1 % of requests waited {:.1}x less ({:.2}x){serving}",
        best.via,
        reference_ms / best_ms,
        best_ms / reference_ms
    )
}

/// Below this share of the requests an instance counts as left idle by an algorithm.
const IDLE_SHARE: f64 = 0.02;

/// Stops every agent of the project and removes its state and cgroups.
async fn clean_up(cloud: &LocalCloud) -> Result<(), Error> {
    let options = KillOptions {
        cluster: None,
        dry_run: false,
        keep_network: false,
        grace: Duration::from_secs(5),
        wait: Poll {
            interval: Duration::from_millis(200),
            timeout: Duration::from_secs(60),
        },
    };
    let plan = cloud.kill_plan(&options).await?;
    if plan.is_empty() {
        return Ok(());
    }
    eprintln!("removing the demo's {} instance(s)", plan.instances.len());
    cloud.kill(&plan, &options).await
}

/// The side-by-side table and a sentence that says which cluster did better.
fn comparison(clusters: &[ClusterResult]) -> String {
    let mut table = crate::output::table([
        "cluster",
        "instances",
        "req/s",
        "p50 ms",
        "p99 ms",
        "max ms",
        "errors",
        "CPU % (mean)",
        "throttled % (mean)",
    ]);
    for (result, (_, instance_type, count)) in clusters.iter().zip(CLUSTERS) {
        let l = &result.latency_ms;
        // Each instance's CPU during the run, as a share of its own capacity.
        let mean = |value: fn(&crate::bench::report::InstanceResult) -> Option<f64>| {
            let values: Vec<f64> = result.instances.iter().filter_map(value).collect();
            match values.len() {
                0 => "-".to_owned(),
                n => format!("{:.1}", values.iter().sum::<f64>() / n as f64),
            }
        };
        table.add_row([
            result.cluster.clone(),
            format!("{count} x {instance_type}"),
            format!("{:.0}", result.requests_per_sec),
            format!("{:.2}", l.p50),
            format!("{:.2}", l.p99),
            format!("{:.2}", l.max),
            result.errors.to_string(),
            mean(|i| i.cpu_percent),
            mean(|i| i.throttled_percent),
        ]);
    }
    let mut out = format!("comparison\n{table}\n");
    if let [big, small] = clusters {
        if small.requests_per_sec > 0.0 {
            out.push_str(&format!(
                "{} served {:.1}x the requests per second of {}; p99 {:.2} ms against {:.2} ms\n",
                big.cluster,
                big.requests_per_sec / small.requests_per_sec,
                small.cluster,
                big.latency_ms.p99,
                small.latency_ms.p99
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::report::Latency;
    use crate::bench::via::ViaRow;

    fn row(via: &str, p99: f64) -> ViaRow {
        ViaRow {
            via: via.into(),
            cluster: "/work".into(),
            requests: 100,
            errors: 0,
            requests_per_sec: 1000.0,
            latency_ms: Latency {
                p99,
                ..Latency::default()
            },
            shares: Vec::new(),
            client_shares: Vec::new(),
            balancer_shares: None,
            type_shares: Vec::new(),
        }
    }

    fn comparison(rows: Vec<ViaRow>) -> Comparison {
        Comparison {
            schema: proto::SCHEMA,
            rows,
        }
    }

    #[test]
    fn the_verdict_says_how_much_less_the_slowest_requests_waited() {
        let text = verdict(&comparison(vec![
            row("round_robin", 69.92),
            row("p2c_peak_ewma", 57.65),
            row("lowest_latency", 12.98),
        ]));
        assert_eq!(
            text,
            "lowest p99: lowest_latency at 12.98 ms against round robin's 69.92 ms: the \
             slowest 1 % of requests waited 5.4x less (0.19x)"
        );
        assert!(!text.contains("goal"));
    }

    #[test]
    fn the_verdict_says_when_the_best_left_instances_idle() {
        let mut best = row("lowest_latency", 13.0);
        best.shares = vec![("a".into(), 0.97), ("b".into(), 0.01), ("c".into(), 0.02)];
        let text = verdict(&comparison(vec![row("round_robin", 70.0), best]));
        assert!(
            text.ends_with(
                "; it left 1 of the 3 instances nearly idle (under 2 % of the requests)"
            ),
            "{text}"
        );
    }

    #[test]
    fn when_round_robin_is_best_the_verdict_says_so() {
        let text = verdict(&comparison(vec![
            row("round_robin", 10.0),
            row("lowest_latency", 12.0),
        ]));
        assert!(text.contains("round robin's own, 10.00 ms"), "{text}");
    }
}
