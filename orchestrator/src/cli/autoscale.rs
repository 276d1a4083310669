//! `elb autoscale`: flags in, the control loop (`autoscale/`), one line (or JSON object) per
//! tick out.

use std::time::Duration;

use clap::{ArgGroup, Args};

use super::launch::LaunchHow;
use super::values::parse_duration;
use crate::autoscale::{self, Bounds, Goal, Memories, Memory, MemoryError, Policy};
use crate::cloud::spec::KillOptions;
use crate::cloud::wait::Poll;
use crate::cloud::{Cloud, Instance};
use crate::config::{ProviderKind, Settings};
use crate::fleet::{Event, Events, ScalingTick};
use crate::output::OutputFormat;
use crate::Error;

/// Flags of `elb autoscale`.
#[derive(Debug, Args)]
#[command(group(
    ArgGroup::new("metric")
        .required(true)
        .args(["target_cpu", "target_requests_per_target", "target_p99_ms"])
))]
pub struct AutoscaleArgs {
    /// The cluster to scale (it must have at least one instance: `elb launch` it first).
    #[arg(long)]
    pub cluster: String,
    /// Fewest instances.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub min: u32,
    /// Most instances.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub max: u32,
    /// Keep the mean instance-true CPU of the ready instances at this % of their capacity.
    #[arg(long, value_name = "PCT")]
    pub target_cpu: Option<f64>,
    /// Keep the requests per second that elb's balancer receives for the cluster, per ready
    /// instance, at this rate (ALB's RequestCountPerTarget, per second).
    #[arg(long, value_name = "R")]
    pub target_requests_per_target: Option<f64>,
    /// Keep the p99 of elb's balancer's responses from the cluster at this many ms.
    #[arg(long, value_name = "MS")]
    pub target_p99_ms: Option<f64>,
    /// Time between two ticks (e.g. 10s, 500ms).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub interval: Duration,
    /// How long a new instance's figures are left out of the metric.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub warmup: Duration,
    /// A scale-in goes only down to the highest count recommended over this window.
    #[arg(long, default_value = "300s", value_parser = parse_duration)]
    pub scale_in_stabilization: Duration,
    /// Most instances added in one tick.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub max_step: u32,
    /// Instance type of new instances (default: the type most of the cluster has).
    #[arg(long = "type")]
    pub instance_type: Option<String>,
    /// Consecutive ticks an instance may look dead (agent silent, or unhealthy in elb's
    /// balancer) before it is replaced.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub unhealthy_ticks: u32,
    /// Largest share of the cluster replaced in one tick, in % (one instance always may be).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub max_replace_percent: u32,
    /// Longest wait for a leaving instance's requests to finish in the balancer (e.g. 300s).
    #[arg(long, default_value = "300s", value_parser = parse_duration)]
    pub drain_timeout: Duration,
    /// Seconds a local agent gets to exit after SIGTERM before SIGKILL (--local).
    #[arg(long, default_value_t = 15, value_parser = clap::value_parser!(u64).range(1..))]
    pub grace: u64,
    /// Decide and report every tick, but launch and remove nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Put each tick's figures into CloudWatch, namespace `elb` (instance count, desired count,
    /// the metric, per-instance CPU and the balancer's per-target rates). EC2 only.
    #[arg(long)]
    pub publish: bool,
    /// How new instances are made (as `elb launch`).
    #[command(flatten)]
    pub how: LaunchHow,
}

impl AutoscaleArgs {
    /// Checks what can be checked before any call: names, bounds, the target.
    pub(crate) fn validate(&self) -> Result<(), Error> {
        crate::config::validate_name("--cluster", &self.cluster)?;
        crate::balance::refuse_balancer_cluster("autoscale", &self.cluster)?;
        if self.min > self.max {
            return Err(Error::Usage(format!(
                "--min {} is above --max {}: pass a --max of at least {} (or a lower --min)",
                self.min, self.max, self.min
            )));
        }
        let (flag, value) = self.target_flag();
        if !(value.is_finite() && value > 0.0) {
            return Err(Error::Usage(format!(
                "{flag} {value} cannot be reached: the target must be a number above 0 \
                 (e.g. {flag} {})",
                match self.target() {
                    Goal::Cpu(_) => "50",
                    Goal::RequestsPerTarget(_) => "200",
                    Goal::P99Ms(_) => "100",
                }
            )));
        }
        if self.target_cpu.is_some_and(|v| v > 100.0) {
            return Err(Error::Usage(format!(
                "--target-cpu {value} is above 100 %: an instance cannot use more than its \
                 capacity; pass a share such as 50"
            )));
        }
        if self.interval.is_zero() {
            return Err(Error::Usage(
                "--interval must be longer than 0 (e.g. --interval 10s)".into(),
            ));
        }
        if let Some(t) = &self.instance_type {
            if t.trim().is_empty() {
                return Err(Error::Usage(
                    "--type is empty: name an instance type, e.g. --type t3.micro".into(),
                ));
            }
        }
        Ok(())
    }

    fn target(&self) -> Goal {
        match (
            self.target_cpu,
            self.target_requests_per_target,
            self.target_p99_ms,
        ) {
            (Some(v), _, _) => Goal::Cpu(v),
            (_, Some(v), _) => Goal::RequestsPerTarget(v),
            (_, _, Some(v)) => Goal::P99Ms(v),
            // clap's required group guarantees one.
            (None, None, None) => Goal::Cpu(50.0),
        }
    }

    fn target_flag(&self) -> (&'static str, f64) {
        match self.target() {
            Goal::Cpu(v) => ("--target-cpu", v),
            Goal::RequestsPerTarget(v) => ("--target-requests-per-target", v),
            Goal::P99Ms(v) => ("--target-p99-ms", v),
        }
    }
}

/// Runs `elb autoscale` until Ctrl-C or SIGTERM.
pub(crate) async fn run<C: Cloud>(
    cloud: &C,
    settings: &Settings,
    provider: ProviderKind,
    args: &AutoscaleArgs,
) -> Result<(), Error> {
    if args.publish && provider == ProviderKind::Local {
        return Err(Error::Usage(
            "--publish puts the ticks' figures into CloudWatch, which holds EC2's: drop --local \
             (and ELB_PROVIDER=local), or --publish"
                .into(),
        ));
    }
    let mut listed = cloud.instances(Some(&args.cluster), false).await?;
    listed.retain(|i| !i.is_balancer());
    if listed.is_empty() {
        return Err(Error::Usage(format!(
            "cluster {} of project {} has no instances {}: launch it first, e.g. `elb {}launch \
             --cluster {} --type t3.micro --count {}`",
            args.cluster,
            settings.project,
            cloud.location(),
            C::FLAG,
            args.cluster,
            args.min
        )));
    }
    let instance_type = match &args.instance_type {
        Some(t) => t.clone(),
        None => most_common_type(&listed),
    };
    cloud.check_type(&instance_type).await?;
    let growth = args
        .how
        .clone()
        .growth(args.cluster.clone(), instance_type, 1, provider)?;
    let policy = Policy {
        cluster: args.cluster.clone(),
        target: args.target(),
        bounds: Bounds {
            min: args.min,
            max: args.max,
            max_step: args.max_step,
            stabilization: args.scale_in_stabilization,
        },
        interval: args.interval,
        warmup: args.warmup,
        unhealthy_ticks: args.unhealthy_ticks,
        max_replace_share: f64::from(args.max_replace_percent) / 100.0,
        dry_run: args.dry_run,
        growth,
        removal: KillOptions {
            cluster: Some(args.cluster.clone()),
            dry_run: false,
            keep_network: true,
            grace: Duration::from_secs(args.grace),
            wait: Poll {
                interval: Duration::from_millis(args.how.wait.poll_interval_ms),
                timeout: Duration::from_secs(args.how.wait.timeout),
            },
        },
        drain: args.drain_timeout,
        publish: args.publish,
    };
    eprintln!(
        "autoscaling cluster {} {} between {} and {} instance(s) on {} = {}, a tick every {} \
         s{} (Ctrl-C stops the loop and leaves the fleet as it is)",
        args.cluster,
        cloud.location(),
        args.min,
        args.max,
        policy.target.name(),
        policy.target.value(),
        args.interval.as_secs_f64(),
        if args.dry_run { ", dry run" } else { "" }
    );
    let stop = stop_signal()?;
    autoscale::run(
        cloud,
        settings,
        &policy,
        &TickPrinter(settings.output),
        stop,
    )
    .await?;
    eprintln!(
        "autoscaling of {} stopped; the fleet stays as it is",
        args.cluster
    );
    Ok(())
}

/// Resolves on Ctrl-C or SIGTERM (the kill switch stops loops with SIGTERM). The handlers are
/// installed now, so a signal during the first tick is not lost.
fn stop_signal() -> Result<impl std::future::Future<Output = ()>, Error> {
    use tokio::signal::unix::{signal, SignalKind};
    let install =
        |kind| signal(kind).map_err(|e| Error::Usage(format!("cannot handle signals: {e}")));
    let mut interrupt = install(SignalKind::interrupt())?;
    let mut terminate = install(SignalKind::terminate())?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
    })
}

/// The type most instances of the cluster have (ties: the first by name).
fn most_common_type(instances: &[Instance]) -> String {
    let mut counts = std::collections::BTreeMap::<&str, usize>::new();
    for i in instances {
        *counts.entry(&i.instance_type).or_default() += 1;
    }
    let most = counts.values().copied().max().unwrap_or(0);
    counts
        .into_iter()
        .find(|(_, n)| *n == most)
        .map(|(t, _)| t.to_owned())
        .unwrap_or_default()
}

/// Renders a loop's events: each tick on stdout (a line, or a JSON object per line), launches
/// and removals as lines on stderr.
struct TickPrinter(OutputFormat);

impl Events for TickPrinter {
    fn event(&self, event: Event) {
        match event {
            Event::Scaling(tick) => match self.0 {
                OutputFormat::Json => {
                    println!("{}", serde_json::to_string(&*tick).expect("plain data"))
                }
                OutputFormat::Table | OutputFormat::Csv => println!("{}", tick_line(&tick)),
            },
            Event::Launched {
                cluster, instances, ..
            } => eprintln!(
                "launched {} into {cluster}",
                instances
                    .iter()
                    .map(|i| i.id.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Event::Removed { cluster, instances } => eprintln!(
                "removed {} from {cluster} (drained, then terminated)",
                instances.join(", ")
            ),
            Event::JoinedAlb {
                target_group,
                instances,
            } => eprintln!("ALB: {instances} instance(s) registered in {target_group}"),
            Event::IdleAlarms { instances, idle } => {
                eprintln!("{}", super::launch::idle_line(instances, &idle));
            }
        }
    }
}

/// One tick for people: time, counts, metric, decision and why.
fn tick_line(tick: &ScalingTick) -> String {
    let secs = tick.at_unix_ms / 1000;
    let clock = format!(
        "{:02}:{:02}:{:02}",
        secs / 3600 % 24,
        secs / 60 % 60,
        secs % 60
    );
    let warming = if tick.warming > 0 {
        format!(" ({} warming)", tick.warming)
    } else {
        String::new()
    };
    let value = tick.value.map_or("-".to_owned(), |v| format!("{v:.1}"));
    let mut line = format!(
        "{clock} {} current {}{warming} desired {} | {} {value} / {} from {} | {}",
        tick.cluster,
        tick.current,
        tick.desired,
        tick.metric,
        tick.target,
        tick.source,
        tick.action
    );
    if !tick.launched.is_empty() {
        line.push_str(&format!(" +[{}]", tick.launched.join(",")));
    }
    if !tick.removed.is_empty() {
        line.push_str(&format!(" -[{}]", tick.removed.join(",")));
    }
    line.push_str(&format!(": {}", tick.reason));
    if let Some(failure) = &tick.failure {
        line.push_str(&format!(" | FAILED: {failure}"));
    }
    line
}

/// The autoscaling lines `elb ls` and `elb stats` print under their tables for the project's
/// autoscaled clusters (or only `cluster`); `None` when there is none.
pub(crate) fn project_summary(
    settings: &Settings,
    cluster: Option<&str>,
) -> Result<Option<String>, MemoryError> {
    let mut scaled = Memories::new(&settings.state).all()?;
    scaled.retain(|m| cluster.is_none_or(|c| c == m.cluster));
    Ok((!scaled.is_empty()).then(|| summary(&scaled)))
}

/// Per cluster: min/max, the last decision and its reason, and whether a loop runs.
fn summary(memories: &[Memory]) -> String {
    memories
        .iter()
        .map(|m| {
            let running = if autoscale::loop_runs(m) {
                format!("loop running, pid {}", m.pid)
            } else {
                "no loop running".to_owned()
            };
            let last = m.last.as_ref().map_or("no decision yet".to_owned(), |l| {
                format!(
                    "last: {} {} -> {} ({})",
                    l.action, l.current, l.desired, l.reason
                )
            });
            format!(
                "autoscale {}: min {} max {}, {running}; {last}",
                m.cluster, m.min, m.max
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn parse(extra: &[&str]) -> Result<AutoscaleArgs, String> {
        let mut argv = vec!["elb", "autoscale", "--cluster", "c1"];
        argv.extend_from_slice(extra);
        match crate::cli::Cli::try_parse_from(argv) {
            Ok(cli) => match cli.command {
                crate::cli::Command::Autoscale(args) => {
                    args.validate().map_err(|e| e.to_string())?;
                    Ok(*args)
                }
                other => panic!("parsed {other:?}"),
            },
            Err(e) => Err(e.to_string()),
        }
    }

    #[test]
    fn bad_bounds_and_targets_are_refused_naming_the_fix() {
        let err = parse(&["--min", "5", "--max", "2", "--target-cpu", "50"]).unwrap_err();
        assert!(err.contains("--min 5 is above --max 2"), "{err}");
        let err = parse(&["--max", "2", "--target-cpu", "0"]).unwrap_err();
        assert!(
            err.contains("above 0") && err.contains("--target-cpu 50"),
            "{err}"
        );
        let err = parse(&["--max", "2", "--target-p99-ms", "-3"]).unwrap_err();
        assert!(err.contains("--target-p99-ms"), "{err}");
        let err = parse(&["--max", "2"]).unwrap_err();
        assert!(err.contains("--target-cpu"), "a metric is required: {err}");
        let err = parse(&["--max", "2", "--target-cpu", "50", "--target-p99-ms", "9"]).unwrap_err();
        assert!(err.contains("cannot be used with"), "{err}");
        let err = parse(&["--max", "2", "--target-cpu", "150"]).unwrap_err();
        assert!(err.contains("above 100"), "{err}");
        let err = parse(&["--max", "2", "--target-cpu", "50", "--interval", "0s"]).unwrap_err();
        assert!(err.contains("--interval must be longer than 0"), "{err}");
    }

    #[test]
    fn defaults_follow_hpa_and_ec2_auto_scaling() {
        let args = parse(&["--max", "4", "--target-cpu", "50"]).unwrap();
        assert_eq!(args.min, 1);
        assert_eq!(args.interval, Duration::from_secs(10));
        assert_eq!(args.warmup, Duration::from_secs(60));
        assert_eq!(args.scale_in_stabilization, Duration::from_secs(300));
        assert_eq!(args.target(), Goal::Cpu(50.0));
        let args = parse(&["--max", "4", "--target-requests-per-target", "200"]).unwrap();
        assert_eq!(args.target(), Goal::RequestsPerTarget(200.0));
    }

    #[test]
    fn the_balancer_is_not_a_cluster_to_scale_here() {
        let err = parse(&["--cluster", "balancer"]);
        // `--cluster` given twice is clap's own error; the balancer's name is refused by ours.
        assert!(err.is_err());
        let mut argv = vec!["elb", "autoscale", "--cluster", "balancer", "--max", "2"];
        argv.extend(["--target-cpu", "50"]);
        let cli = crate::cli::Cli::try_parse_from(argv).unwrap();
        let crate::cli::Command::Autoscale(args) = cli.command else {
            panic!()
        };
        assert!(args.validate().is_err());
    }

    #[test]
    fn a_tick_reads_as_one_line() {
        let tick = ScalingTick {
            at_unix_ms: 3_661_000,
            cluster: "c1".into(),
            current: 2,
            warming: 1,
            desired: 4,
            metric: "cpu",
            value: Some(87.25),
            target: 50.0,
            source: "agents (1 ready)".into(),
            action: "scale_out".into(),
            launched: vec!["local-1".into(), "local-2".into()],
            removed: vec![],
            reason: "cpu 87.2% against a target of cpu 50.0%: 4 wanted".into(),
            failure: None,
            dry_run: false,
        };
        let line = tick_line(&tick);
        assert!(
            line.starts_with("01:01:01 c1 current 2 (1 warming) desired 4"),
            "{line}"
        );
        assert!(
            line.contains("cpu 87.2 / 50 from agents (1 ready) | scale_out +[local-1,local-2]"),
            "{line}"
        );
    }
}
