//! The demo's autoscaling part: a cluster of micro instances behind elb's balancer, scaled by
//! `elb autoscale`'s loop (in this process) on the requests per target that the balancer
//! receives (ALB's `RequestCountPerTarget`, whose target tracking is the usual way to scale
//! behind a load balancer), under an open-loop load that
//! steps from well under one instance's capacity to several times it and back. It reports how
//! many instances the loop reached, how long the p99 stayed above an objective after the step,
//! when the cluster was back at its minimum, and whether any request failed while instances
//! were added, drained and removed.
//!
//! The figures come from the local instance types' CPU table: a t3.micro has 2 vCPUs at a 10 %
//! baseline, 0.2 of a core, so requests that cost 2 ms of CPU fill one at about 100 a second.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use super::DemoArgs;
use crate::autoscale::{self, Bounds, Goal, Policy};
use crate::balance::{self, BalanceSpec};
use crate::bench::loadgen::Load;
use crate::bench::plot::{self, Scaling};
use crate::bench::scaling::{ScalingEvent, ScalingRun, Size};
use crate::bench::schedule::{Schedule, Step};
use crate::bench::Plan;
use crate::cloud::local::LocalCloud;
use crate::cloud::spec::KillOptions;
use crate::cloud::wait::Poll;
use crate::cloud::{self, Created};
use crate::config::Settings;
use crate::fleet::{self, Event, Events, Growth, Quiet, ScalingTick};
use crate::http::Endpoint;
use crate::output::OutputFormat;
use crate::routing::Routing;
use crate::stats::Agent;
use crate::Error;
use proto::balancer_config::Algorithm;

/// The autoscaled cluster.
const CLUSTER: &str = "autoscaled";
/// Its instances' type.
const TYPE: &str = "t3.micro";
/// CPU each request costs (`/work?us=N`).
const WORK_US: u64 = 2000;
/// Requests per second one instance serves at full CPU: 0.2 of a core / 2 ms.
const CAPACITY: f64 = 100.0;
/// The load's low and high rates, as shares of one instance's capacity.
const LOW: f64 = 0.3;
const HIGH: f64 = 2.5;
/// The p99 the run is judged against.
const OBJECTIVE_MS: f64 = 100.0;
/// The loop's settings: requests per target (half of one instance's capacity), bounds, tick and
/// warm-up. Requests, not CPU: CPU stops at 100 % of an instance, so against a 50 % target one
/// tick can at most double the count, and HPA's rule then waits out the warm-up before the
/// next step; the balancer's arrivals show the whole load at once.
const TARGET_RPS: f64 = CAPACITY / 2.0;
const MAX: u32 = 4;
const MAX_STEP: u32 = 4;
const INTERVAL: Duration = Duration::from_secs(5);
const WARMUP: Duration = Duration::from_secs(10);

/// Collects the loop's ticks and says on stderr what changed.
#[derive(Default)]
struct Log {
    ticks: Mutex<Vec<ScalingTick>>,
}

impl Log {
    fn ticks(&self) -> Vec<ScalingTick> {
        self.ticks.lock().expect("ticks").clone()
    }

    /// Whether the last tick found the cluster at its minimum, and wanting no more.
    fn at_min(&self) -> bool {
        self.ticks
            .lock()
            .expect("ticks")
            .last()
            .is_some_and(|t| t.current == 1 && t.desired == 1)
    }
}

impl Events for Log {
    fn event(&self, event: Event) {
        if let Event::Scaling(tick) = event {
            if tick.action != "hold" || tick.failure.is_some() {
                eprintln!(
                    "autoscale: {} -> {} instance(s), {}: {}{}",
                    tick.current,
                    tick.desired,
                    tick.action,
                    tick.reason,
                    tick.failure
                        .as_deref()
                        .map(|f| format!(" (failed: {f})"))
                        .unwrap_or_default()
                );
            }
            self.ticks.lock().expect("ticks").push(*tick);
        }
    }
}

/// Runs the part: launch, balance, load under the loop, report into `dir/autoscaling`.
pub(super) async fn run(
    cloud: &LocalCloud,
    settings: &Settings,
    args: &DemoArgs,
    dir: &Path,
) -> Result<(), Error> {
    let step = Duration::from_secs(args.autoscale_step_secs);
    let (low, high) = (LOW * CAPACITY, HIGH * CAPACITY);
    eprintln!(
        "autoscaling: cluster {CLUSTER} from 1 x {TYPE} (about {CAPACITY:.0} requests/s each at \
         {} ms of CPU per request), target {TARGET_RPS:.0} requests/s per instance, at most \
         {MAX}; load {low:.0} -> {high:.0} -> {low:.0} requests/s",
        WORK_US / 1000
    );
    let growth = Growth::local(CLUSTER, TYPE, 1, args.agent.clone());
    fleet::grow(cloud, settings, &growth, &mut Created::default(), &Quiet).await?;
    let spec = BalanceSpec {
        routing: Routing {
            rules: Vec::new(),
            default: crate::routing::RuleAction::Forward(CLUSTER.to_owned()),
        },
        algorithm: Algorithm::LeastOutstandingRequests,
        port: args.balancer_port,
        health_interval_ms: 500,
        https: None,
        http_redirect: None,
        slow_start: std::time::Duration::ZERO,
        stickiness: None,
        access_log: None,
    };
    let balancer = balance::up(settings, &spec, args.balancer.as_deref()).await?;
    balance::wait_healthy(&balancer, Duration::from_secs(30)).await?;

    let policy = Policy {
        cluster: CLUSTER.to_owned(),
        target: Goal::RequestsPerTarget(TARGET_RPS),
        bounds: Bounds {
            min: 1,
            max: MAX,
            max_step: MAX_STEP,
            stabilization: step,
        },
        interval: INTERVAL,
        warmup: WARMUP,
        unhealthy_ticks: 3,
        max_replace_share: 0.1,
        dry_run: false,
        growth,
        removal: KillOptions {
            cluster: Some(CLUSTER.to_owned()),
            dry_run: false,
            keep_network: true,
            grace: Duration::from_secs(5),
            wait: Poll {
                interval: Duration::from_millis(200),
                timeout: Duration::from_secs(60),
            },
        },
        drain: Duration::from_secs(15),
        publish: false,
    };
    let phases = [(low, step / 2), (high, 2 * step), (low, 2 * step)];
    let schedule = Schedule::new(
        phases
            .iter()
            .map(|&(rate, duration)| Step { rate, duration })
            .collect(),
    );
    let path = format!("/work?us={WORK_US}");
    let template = Load {
        endpoints: Vec::new(),
        path: path.clone(),
        requests: schedule.requests(),
        // Enough connections for the high rate with a second of queueing.
        concurrency: high as usize + 50,
        timeout: Duration::from_secs(10),
        schedule: Some(Arc::new(schedule)),
    };
    let agents: Vec<Agent> = cloud::fleet(settings, Some(CLUSTER))
        .await?
        .iter()
        .map(Agent::of)
        .collect();
    let url = balancer.url();
    let endpoint = Endpoint::from_url(&url).await?;
    let plan = Plan::through(&agents, &path, (url, endpoint), &template);

    let log = Log::default();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let looping = autoscale::run(cloud, settings, &policy, &log, async {
        let _ = stopped.await;
    });
    let driving = async {
        let results = plan.run().await;
        // The load is over: give the loop the stabilization window (and a little) to go back
        // to its minimum.
        let deadline = Instant::now() + step + Duration::from_secs(30);
        while !log.at_min() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        let _ = stop.send(());
        results
    };
    let (looped, results) = tokio::join!(looping, driving);
    looped?;

    let cluster = results
        .clusters
        .first()
        .ok_or_else(|| Error::Usage("the autoscaling load produced no result".into()))?;
    let ticks = log.ticks();
    let sizes: Vec<Size> = ticks.iter().map(|t| (t.at_unix_ms, t.current)).collect();
    let events = ticks
        .iter()
        .filter(|t| t.action != "hold" && t.failure.is_none())
        .map(|t| {
            let event = ScalingEvent {
                second: 0.0,
                action: t.action.clone(),
                from: t.current,
                to: t.desired,
                reason: t.reason.clone(),
            };
            (t.at_unix_ms, event)
        })
        .collect();
    let run = ScalingRun::new(cluster, &sizes, events);
    let out = dir.join("autoscaling");
    let mut results = results.clone();
    if let Some(first) = results.clusters.first_mut() {
        first.scaling = Some(run.clone());
    }
    let mut files = crate::bench::write(&results, &out)?;
    let json = out.join("scaling.json");
    crate::state::write_atomic(&json, run.json().as_bytes(), 0o644)?;
    files.push(json);
    let figure = Scaling {
        run: &run,
        objective_ms: Some(OBJECTIVE_MS),
    };
    files.extend(plot::write_scaling(&figure, &out)?);

    let step_at = phases[0].1.as_secs();
    let fall_at = step_at + phases[1].1.as_secs();
    let above = run.seconds_above(step_at, phases[1].1.as_secs(), OBJECTIVE_MS);
    let back = run
        .events
        .iter()
        .filter(|e| e.action.contains("scale_in") && e.to == 1 && e.second >= fall_at as f64)
        .map(|e| e.second - fall_at as f64)
        .next();
    if settings.output == OutputFormat::Table {
        println!(
            "{}",
            summary(&run, cluster.requests, above, back, step.as_secs())
        );
    }
    eprintln!("autoscaling report: {}", out.display());
    Ok(())
}

/// What the part showed, in words.
fn summary(
    run: &ScalingRun,
    requests: u64,
    above: Option<u64>,
    back: Option<f64>,
    stabilization: u64,
) -> String {
    let budget = WARMUP.as_secs() + 2 * INTERVAL.as_secs();
    let recovery = match above {
        Some(0) => format!("the p99 stayed under {OBJECTIVE_MS} ms after the step up"),
        Some(secs) => format!(
            "after the step up the p99 was above {OBJECTIVE_MS} ms for {secs} s (warm-up {} s + \
             2 ticks of {} s = {budget} s: {})",
            WARMUP.as_secs(),
            INTERVAL.as_secs(),
            if secs <= budget { "within" } else { "over" }
        ),
        None => format!(
            "the p99 was still above {OBJECTIVE_MS} ms when the load fell (the backlog of the \
             step had not drained; warm-up + 2 ticks = {budget} s)"
        ),
    };
    let back = match back {
        Some(secs) => format!(
            "back to 1 instance {secs:.0} s after the load fell (stabilization window \
             {stabilization} s)"
        ),
        None => "not back to 1 instance by the end".to_owned(),
    };
    format!(
        "autoscaling: reached {} instance(s) (at most {MAX}); {recovery}; {back}; {} of \
         {requests} requests failed while instances were added, drained and removed",
        run.most_instances(),
        run.errors(),
    )
}
