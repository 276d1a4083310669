//! `elb autoscale`'s control loop: every interval it looks at one cluster (`observe.rs`),
//! replaces instances that died (`replace.rs`), decides the count the metric asks for
//! (`rule.rs`), and grows or shrinks the cluster through the fleet layer, which joins new
//! instances to the balancers in front of the cluster and drains leaving ones. What it
//! launched, and when, survives a restart (`memory.rs`). It never prints: each tick is one
//! [`ScalingTick`] event for the driver to render.
//!
//! Scale-in removes, first, instances that were due for replacement (they are not replaced
//! then), then the newest instances (the last launched, last in first out, as Kubernetes'
//! ReplicaSet prefers to remove the youngest pods: they have the least warm state; instances
//! launched before the loop count as the oldest), ties by id.

mod memory;
mod observe;
mod replace;
mod rule;

pub(crate) use memory::{LastDecision, Memories, Memory, MemoryError};
pub(crate) use rule::Bounds;

use std::collections::BTreeSet;
use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

use crate::cloud::spec::KillOptions;
use crate::cloud::{sort_instances, Cloud, Created, Instance, LAUNCHED_AT_TAG};
use crate::config::Settings;
use crate::fleet::{self, Event, Events, Growth, ScalingTick};
use crate::stats::unix_ms;
use crate::Error;
use memory::{instant_of, unix_ms_of, PendingLaunch};
use observe::{Observer, View};
use replace::{Looks, Watch};
use rule::{Figure, Limit, Reading, Recommendation, Stabilizer, TOLERANCE};

/// Tag (and its value) on the instances the loop launches, beside `LaunchedAt`.
const LAUNCHED_BY_TAG: &str = "LaunchedBy";
const LAUNCHED_BY: &str = "elb-autoscale";

/// The longest wait between two attempts at a launch that keeps failing.
const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// What the cluster's size follows.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Goal {
    /// Mean instance-true CPU of the ready instances, % of each instance's capacity.
    Cpu(f64),
    /// Requests per second that elb's balancer receives for the cluster's group, per ready
    /// instance (ALB's `RequestCountPerTarget`).
    RequestsPerTarget(f64),
    /// The p99 of the balancer's responses from the cluster's group, in ms.
    P99Ms(f64),
}

impl Goal {
    /// The metric's name in ticks and JSON.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Cpu(_) => "cpu",
            Self::RequestsPerTarget(_) => "requests_per_target",
            Self::P99Ms(_) => "p99_ms",
        }
    }

    /// The target value.
    pub(crate) fn value(self) -> f64 {
        match self {
            Self::Cpu(v) | Self::RequestsPerTarget(v) | Self::P99Ms(v) => v,
        }
    }

    /// `value` with its unit, for reasons.
    fn show(self, value: f64) -> String {
        match self {
            Self::Cpu(_) => format!("cpu {value:.1}%"),
            Self::RequestsPerTarget(_) => format!("{value:.1} req/s per target"),
            Self::P99Ms(_) => format!("p99 {value:.1} ms"),
        }
    }
}

/// How a loop scales one cluster.
#[derive(Debug, Clone)]
pub(crate) struct Policy {
    /// The cluster.
    pub cluster: String,
    /// What its size follows.
    pub target: Goal,
    /// Min, max, step and the scale-in stabilization window.
    pub bounds: Bounds,
    /// Time between two ticks.
    pub interval: Duration,
    /// How long a new instance's figures are left out of the metric.
    pub warmup: Duration,
    /// Consecutive bad ticks before an instance is replaced.
    pub unhealthy_ticks: u32,
    /// Largest share of the cluster replaced in one tick (at least one instance).
    pub max_replace_share: f64,
    /// Decide and report, but launch and remove nothing.
    pub dry_run: bool,
    /// What a launch makes (its `count` is set per launch).
    pub growth: Growth,
    /// How instances are terminated.
    pub removal: KillOptions,
    /// Longest wait for a leaving instance to drain.
    pub drain: Duration,
    /// Put each tick's figures into CloudWatch (namespace `elb`, EC2).
    pub publish: bool,
}

/// Runs the loop until `stop` completes (checked between ticks: a tick's launch or removal
/// finishes first, so the fleet is never left half-changed) or the cluster's lock cannot be
/// taken. Failures within a tick (the cloud's listing, a launch) are reported in the tick and
/// retried; only the start can fail.
pub(crate) async fn run<C: Cloud>(
    cloud: &C,
    settings: &Settings,
    policy: &Policy,
    events: &dyn Events,
    stop: impl Future<Output = ()>,
) -> Result<(), Error> {
    let memories = Memories::new(&settings.state);
    let _lock = memories.lock(&policy.cluster).map_err(usage)?;
    let mut memory = memories
        .load(&policy.cluster)
        .map_err(usage)?
        .unwrap_or_else(|| Memory::new(&policy.cluster, policy.bounds.min, policy.bounds.max));
    memory.pid = std::process::id();
    memory.min = policy.bounds.min;
    memory.max = policy.bounds.max;
    let (now, now_ms) = (Instant::now(), unix_ms());
    let history = memory
        .recommendations
        .iter()
        .map(|(at, n)| (instant_of(*at, now, now_ms), *n))
        .collect();
    let mut state = Loop {
        policy,
        memories,
        stabilizer: Stabilizer::new(policy.bounds, history),
        watch: Watch::new(policy.unhealthy_ticks, policy.max_replace_share),
        observer: Observer::new(&policy.cluster, policy.interval.min(Duration::from_secs(5))),
        memory,
        backoff: None,
    };
    tokio::pin!(stop);
    let mut next = Instant::now();
    loop {
        let tick = state.tick(cloud, settings, events).await;
        events.event(Event::Scaling(Box::new(tick)));
        if let Err(e) = state.memories.save(&state.memory) {
            tracing::warn!("cannot save the autoscaling state: {e}");
        }
        next += policy.interval;
        next = next.max(Instant::now());
        tokio::select! {
            biased;
            () = &mut stop => return Ok(()),
            () = tokio::time::sleep_until(next) => {}
        }
    }
}

fn usage(e: MemoryError) -> Error {
    Error::Usage(e.to_string())
}

/// A failed launch's back-off: when the next attempt may be made, and the current delay.
#[derive(Debug, Clone, Copy)]
struct Backoff {
    until: Instant,
    delay: Duration,
}

/// The loop's state between ticks.
struct Loop<'a> {
    policy: &'a Policy,
    /// Where the memory is saved.
    memories: Memories,
    stabilizer: Stabilizer,
    watch: Watch,
    observer: Observer,
    memory: Memory,
    backoff: Option<Backoff>,
}

/// What a tick intends to do.
#[derive(Debug, Default)]
struct Plan {
    /// Instances to remove (replaced ones, scale-in victims).
    remove: Vec<Instance>,
    /// Instances to launch (replacements and scale-out).
    launch: u32,
    /// Words for the reason, in order.
    notes: Vec<String>,
    /// Action names: `replace`, `scale_out`, `scale_in`.
    actions: Vec<&'static str>,
}

impl Loop<'_> {
    async fn tick<C: Cloud>(
        &mut self,
        cloud: &C,
        settings: &Settings,
        events: &dyn Events,
    ) -> ScalingTick {
        let policy = self.policy;
        let (now, now_ms) = (Instant::now(), unix_ms());
        let mut tick = ScalingTick {
            at_unix_ms: now_ms,
            cluster: policy.cluster.clone(),
            current: 0,
            warming: 0,
            desired: 0,
            metric: policy.target.name(),
            value: None,
            target: policy.target.value(),
            source: String::new(),
            action: "hold".to_owned(),
            launched: Vec::new(),
            removed: Vec::new(),
            reason: String::new(),
            failure: None,
            dry_run: policy.dry_run,
        };
        let instances = match cloud.instances(Some(&policy.cluster), false).await {
            Ok(mut listed) => {
                listed.retain(|i| !i.is_balancer());
                sort_instances(&mut listed);
                listed
            }
            Err(e) => {
                tick.failure = Some(format!("cannot list the cluster: {e}"));
                tick.reason = "no decision without the cluster's instances".to_owned();
                return tick;
            }
        };
        self.adopt(&instances);
        let view = self.observer.observe(settings, &instances).await;
        let warming: BTreeSet<&str> = instances
            .iter()
            .filter(|i| self.is_warming(&i.id, now_ms))
            .map(|i| i.id.as_str())
            .collect();
        let looks: Vec<(String, Looks)> = view
            .instances
            .iter()
            .map(|v| {
                (
                    v.instance.id.clone(),
                    look(v, warming.contains(v.instance.id.as_str())),
                )
            })
            .collect();
        let current = instances.len() as u32;
        tick.current = current;
        tick.warming = warming.len() as u32;

        let verdict = self.watch.observe(&looks);
        let mut plan = Plan::default();
        if verdict.all_look_dead {
            plan.notes.push(
                "every instance looks dead while the cloud says they run: replacing nothing \
                 (is this machine's network or the balancer down?)"
                    .to_owned(),
            );
        }
        for (id, how) in &verdict.replace {
            if let Some(instance) = instances.iter().find(|i| &i.id == id) {
                plan.remove.push(instance.clone());
                plan.launch += 1;
                plan.notes.push(format!(
                    "replacing {id} ({} for {} tick(s))",
                    looks_words(*how),
                    policy.unhealthy_ticks
                ));
            }
        }
        if !plan.remove.is_empty() {
            plan.actions.push("replace");
        }
        if verdict.held_back > 0 {
            plan.notes.push(format!(
                "{} more due for replacement, held back by the per-tick bound",
                verdict.held_back
            ));
        }

        let (reading, source) = reading(policy.target, &view, &looks);
        tick.source = source;
        let recommendation = rule::recommend(current, &reading, policy.target.value());
        let recommended = match recommendation {
            Recommendation::Count { desired, value } => {
                tick.value = Some(value);
                Some(desired)
            }
            Recommendation::NoData => None,
        };
        let decision = self.stabilizer.decide(now, current, recommended);
        tick.desired = decision.desired;
        plan.notes.insert(
            0,
            self.explain(
                recommendation.clone(),
                current,
                decision.desired,
                decision.limit,
            ),
        );
        self.resize(&mut plan, &instances, current, decision.desired);
        self.memory.recommendations = self
            .stabilizer
            .history()
            .map(|(at, n)| (unix_ms_of(*at, now, now_ms), *n))
            .collect();

        if !plan.actions.is_empty() {
            tick.action = plan.actions.join("+");
        }
        if !policy.dry_run {
            self.act(cloud, settings, events, &instances, &mut plan, &mut tick)
                .await;
        } else if plan.launch > 0 || !plan.remove.is_empty() {
            plan.notes.push(format!(
                "dry run: would launch {} and remove {}",
                plan.launch,
                ids(&plan.remove).join(", ")
            ));
        }
        tick.reason = plan.notes.join("; ");
        if policy.publish {
            if let Some(ec2) = crate::cloud::ec2_of(settings) {
                let data = observe::published(&settings.project, &policy.cluster, &view, &tick);
                if let Err(e) = ec2
                    .put_metrics(crate::stats::publish::NAMESPACE, &data)
                    .await
                {
                    let failure = format!("publishing to CloudWatch: {e}");
                    tick.failure = Some(match tick.failure.take() {
                        Some(earlier) => format!("{earlier}; {failure}"),
                        None => failure,
                    });
                }
            }
        }
        self.memory.record(LastDecision {
            at_unix_ms: now_ms,
            action: tick.action.clone(),
            current,
            desired: tick.desired,
            reason: tick.reason.clone(),
        });
        tick
    }

    /// Instances tagged with their launch time are known by it; instances that appeared since
    /// the last tick while a launch of ours was under way (the loop stopped between the launch
    /// and its record) are ours, launched then.
    fn adopt(&mut self, instances: &[Instance]) {
        for i in instances {
            if let Some(at) = i.launched_at_unix_ms {
                self.memory.launched.entry(i.id.clone()).or_insert(at);
            }
        }
        if let Some(pending) = self.memory.pending_launch.take() {
            for i in instances
                .iter()
                .filter(|i| !pending.existing.contains(&i.id))
            {
                self.memory
                    .launched
                    .entry(i.id.clone())
                    .or_insert(pending.at_unix_ms);
            }
        }
        self.memory
            .launched
            .retain(|id, _| instances.iter().any(|i| &i.id == id));
    }

    fn is_warming(&self, id: &str, now_ms: u64) -> bool {
        self.memory.launched.get(id).is_some_and(|at| {
            Duration::from_millis(now_ms.saturating_sub(*at)) < self.policy.warmup
        })
    }

    /// Adds what the decision asks for to `plan`: a scale-in first cancels replacements, then
    /// removes the newest instances; a scale-out launches the difference.
    fn resize(&self, plan: &mut Plan, instances: &[Instance], current: u32, desired: u32) {
        if desired > current {
            plan.launch += desired - current;
            plan.actions.push("scale_out");
            return;
        }
        let mut excess = current - desired;
        if excess == 0 {
            return;
        }
        plan.actions.push("scale_in");
        let cancelled = excess.min(plan.launch);
        plan.launch -= cancelled;
        excess -= cancelled;
        let mut candidates: Vec<&Instance> = instances
            .iter()
            .filter(|i| !plan.remove.iter().any(|r| r.id == i.id))
            .collect();
        let launched = |i: &Instance| self.memory.launched.get(&i.id).copied().unwrap_or(0);
        candidates.sort_by(|a, b| launched(b).cmp(&launched(a)).then(b.id.cmp(&a.id)));
        plan.remove
            .extend(candidates.into_iter().take(excess as usize).cloned());
    }

    /// Carries out `plan`, recording what happened in `tick`.
    async fn act<C: Cloud>(
        &mut self,
        cloud: &C,
        settings: &Settings,
        events: &dyn Events,
        instances: &[Instance],
        plan: &mut Plan,
        tick: &mut ScalingTick,
    ) {
        let policy = self.policy;
        if !plan.remove.is_empty() {
            let leaving = std::mem::take(&mut plan.remove);
            let ids = ids(&leaving);
            match fleet::shrink(
                cloud,
                settings,
                &policy.cluster,
                leaving,
                &policy.removal,
                policy.drain,
                events,
            )
            .await
            {
                Ok(()) => {
                    for id in &ids {
                        self.memory.launched.remove(id);
                    }
                    tick.removed = ids;
                }
                Err(e) => {
                    tick.failure = Some(format!("removing {}: {e}", ids.join(", ")));
                    return;
                }
            }
        }
        if plan.launch == 0 {
            return;
        }
        let now = Instant::now();
        if let Some(backoff) = self.backoff.filter(|b| b.until > now) {
            plan.notes.push(format!(
                "launch postponed: the last one failed, next attempt in {} s",
                (backoff.until - now).as_secs()
            ));
            return;
        }
        let mut growth = policy.growth.clone();
        growth.spec.count = plan.launch;
        let now_ms = unix_ms();
        // On the instances too, so that a loop without this state file (another machine, a
        // lost directory) still knows when they were launched.
        growth.spec.tags.extend([
            (LAUNCHED_BY_TAG.to_owned(), LAUNCHED_BY.to_owned()),
            (LAUNCHED_AT_TAG.to_owned(), now_ms.to_string()),
        ]);
        self.memory.pending_launch = Some(PendingLaunch {
            at_unix_ms: now_ms,
            count: plan.launch,
            existing: ids(instances),
        });
        // Saved before the launch: a loop stopped in the middle still knows these are its own.
        if let Err(e) = self.memories.save(&self.memory) {
            tracing::warn!("cannot save the autoscaling state: {e}");
        }
        let mut created = Created::default();
        match fleet::grow(cloud, settings, &growth, &mut created, events).await {
            Ok(launched) => {
                for i in &launched {
                    self.memory.launched.insert(i.id.clone(), now_ms);
                }
                self.memory.pending_launch = None;
                tick.launched = ids(&launched);
                self.backoff = None;
            }
            Err(e) => {
                // What did start is recorded as ours, launched now.
                for id in &created.instances {
                    self.memory.launched.insert(id.clone(), now_ms);
                }
                self.memory.pending_launch = None;
                let delay = self
                    .backoff
                    .map_or(policy.interval, |b| (b.delay * 2).min(MAX_BACKOFF));
                self.backoff = Some(Backoff {
                    until: Instant::now() + delay,
                    delay,
                });
                tick.failure = Some(format!(
                    "launching {} x {}: {e} (next attempt in {} s)",
                    plan.launch,
                    growth.spec.instance_type,
                    delay.as_secs()
                ));
            }
        }
    }

    /// The decision in words.
    fn explain(
        &self,
        recommendation: Recommendation,
        current: u32,
        desired: u32,
        limit: Option<Limit>,
    ) -> String {
        let target = self.policy.target;
        let bounds = self.policy.bounds;
        let mut words = match recommendation {
            Recommendation::NoData => "no figure from any ready instance: the count stays".into(),
            Recommendation::Count {
                desired: wanted,
                value,
            } => {
                let ratio = value / target.value();
                if (ratio - 1.0).abs() <= TOLERANCE && wanted == current {
                    format!(
                        "{} against a target of {}: within {:.0} %",
                        target.show(value),
                        target.show(target.value()),
                        TOLERANCE * 100.0
                    )
                } else {
                    format!(
                        "{} against a target of {}: {wanted} wanted",
                        target.show(value),
                        target.show(target.value()),
                    )
                }
            }
        };
        let held = match limit {
            None => None,
            Some(Limit::Min) => Some(format!("raised to --min {}", bounds.min)),
            Some(Limit::Max) => Some(format!("capped at --max {}", bounds.max)),
            Some(Limit::Step) => Some(format!("held to --max-step {}", bounds.max_step)),
            Some(Limit::Stabilization) => Some(format!(
                "scale-in held at {desired} by a higher recommendation within the {} s \
                 stabilization window",
                bounds.stabilization.as_secs()
            )),
        };
        if let Some(held) = held {
            words = format!("{words}, {held}");
        }
        words
    }
}

/// How an instance looks to health replacement. One that elb's balancer kept sending requests
/// to since the last tick is alive, whatever its agent or its health checks say: an instance
/// that is saturated (its agent too busy to answer `/stats` in time, its health checks timing
/// out while the group fails open) needs company, not replacing.
fn look(view: &observe::InstanceView, warming: bool) -> Looks {
    if view.instance.state != "running" {
        Looks::Gone
    } else if warming {
        Looks::Warming
    } else if view.serving() {
        Looks::Alive
    } else if view.silent.is_some() {
        Looks::Silent
    } else if view.target_state == Some(proto::TargetState::Unhealthy) {
        Looks::Unhealthy
    } else {
        Looks::Alive
    }
}

fn looks_words(looks: Looks) -> &'static str {
    match looks {
        Looks::Silent => "agent silent",
        Looks::Unhealthy => "unhealthy in the balancer",
        Looks::Gone => "no longer running",
        Looks::Alive | Looks::Warming => "alive",
    }
}

/// The metric's reading this tick, and where it came from. Instances that are gone count
/// nowhere; silent or unhealthy ones are missing figures; warming ones are left out.
fn reading(target: Goal, view: &View, looks: &[(String, Looks)]) -> (Reading, String) {
    let alive = looks.iter().filter(|(_, l)| *l == Looks::Alive).count() as u32;
    // A figure for the whole cluster over its alive instances; none (no ready instance) when
    // the balancer gave no figure.
    let whole = |value: Option<f64>| match value {
        Some(value) => Reading::Whole {
            value,
            ready: alive,
        },
        None => Reading::Whole {
            value: 0.0,
            ready: 0,
        },
    };
    let balancer = |what: &str| match (&view.group, &view.balancer_silent) {
        (Some(group), _) => format!("{what} balancer group {group}"),
        (None, Some(why)) => format!("balancer silent: {why}"),
        (None, None) => "no balancer serves this cluster (`elb balance up`)".to_owned(),
    };
    match target {
        Goal::Cpu(_) => {
            let figures: Vec<Figure> = view
                .instances
                .iter()
                .zip(looks)
                .filter_map(|(v, (_, look))| cpu_figure(v, *look))
                .collect();
            let ready = figures
                .iter()
                .filter(|f| matches!(f, Figure::Ready(_)))
                .count();
            let saturated = view
                .instances
                .iter()
                .zip(looks)
                .filter(|(v, (_, l))| *l == Looks::Alive && v.saturated())
                .count();
            let source = match saturated {
                0 => format!("agents ({ready} ready)"),
                n => format!(
                    "agents ({ready} ready; {n} too busy to answer, kept serving by the \
                     balancer: counted at 100 %)"
                ),
            };
            (Reading::PerInstance(figures), source)
        }
        // ALB's RequestCountPerTarget: the group's arrivals over its ready targets, so a
        // queue at the balancer counts (an instance's own completions stop at its capacity).
        Goal::RequestsPerTarget(_) => (
            whole(
                view.group_requests_per_sec
                    .filter(|_| alive > 0)
                    .map(|rate| rate / f64::from(alive)),
            ),
            balancer(&format!("arrivals over {alive} ready targets of")),
        ),
        Goal::P99Ms(_) => (whole(view.p99_ms), balancer("p99 over the tick of")),
    }
}

/// One instance's CPU figure for the rule, by how it looks (`None`: it counts nowhere).
fn cpu_figure(view: &observe::InstanceView, look: Looks) -> Option<Figure> {
    match look {
        Looks::Gone => None,
        Looks::Warming => Some(Figure::Warming),
        Looks::Silent | Looks::Unhealthy => Some(Figure::Missing),
        // An agent too busy to answer while the balancer keeps it serving: its CPU is full,
        // whatever its health checks say.
        Looks::Alive if view.saturated() => Some(Figure::Ready(100.0)),
        Looks::Alive => Some(view.cpu_percent.map_or(Figure::Missing, Figure::Ready)),
    }
}

/// Whether the loop that last wrote `memory` still runs.
pub(crate) fn loop_runs(memory: &Memory) -> bool {
    std::fs::read(format!("/proc/{}/cmdline", memory.pid))
        .is_ok_and(|cmdline| cmdline.split(|b| *b == 0).any(|arg| arg == b"autoscale"))
}

/// Stops the running loops of the project (every cluster's, or `cluster`'s) with SIGTERM (a
/// loop finishes its tick, then exits) and waits up to `timeout` for each, SIGKILL after;
/// then forgets their state. Returns the (cluster, pid) of the loops that were running.
pub(crate) async fn stop_loops(
    memories: &Memories,
    cluster: Option<&str>,
    timeout: Duration,
) -> Result<Vec<(String, u32)>, MemoryError> {
    let mut stopped = Vec::new();
    for memory in memories.all()? {
        if cluster.is_some_and(|c| c != memory.cluster) {
            continue;
        }
        if loop_runs(&memory) {
            let pid = memory.pid as libc::pid_t;
            // SAFETY: kill(2) with a pid read from our own state, checked to be a loop above.
            unsafe { libc::kill(pid, libc::SIGTERM) };
            let deadline = Instant::now() + timeout;
            while loop_runs(&memory) && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            if loop_runs(&memory) {
                // SAFETY: as above.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
            stopped.push((memory.cluster.clone(), memory.pid));
        }
        memories.remove(&memory.cluster);
    }
    Ok(stopped)
}

fn ids(instances: &[Instance]) -> Vec<String> {
    instances.iter().map(|i| i.id.clone()).collect()
}
