//! What the dashboard shows at one tick (a [`Frame`]: the fleet as `elb stats` sees it and the
//! balancer as its `/status` reports it, with per-target rates and shares of traffic), and the
//! last minutes of per-instance figures the charts draw ([`History`]).

use std::collections::VecDeque;

use proto::{BalancerStatus, GroupStatus};
use serde::Serialize;

use crate::stats::view::{ClusterRow, InstanceRow};

/// Version of the frame and history documents (`/api/snapshot`, the `frame` and `history`
/// events).
pub(crate) const SCHEMA: u32 = 1;

/// The dashboard's view of the fleet and the balancer at one tick.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Frame {
    pub(crate) schema: u32,
    pub(crate) project: String,
    /// `local` or `ec2`.
    pub(crate) provider: &'static str,
    /// Ticks since the dashboard started, from 1.
    pub(crate) tick: u64,
    /// Time between two ticks.
    pub(crate) tick_ms: u64,
    pub(crate) polled_at_unix_ms: u64,
    /// Why the last listing of the fleet failed (the rows are those of the listing before).
    pub(crate) fleet_error: Option<String>,
    /// Why the balancer could not be looked up (then `balancer` is `None`).
    pub(crate) balancer_error: Option<String>,
    /// Every instance with its agent's figures, or down with the reason (as `elb stats`).
    pub(crate) instances: Vec<InstanceRow>,
    pub(crate) clusters: Vec<ClusterRow>,
    /// The project's balancer, `None` when it has none.
    pub(crate) balancer: Option<BalancerView>,
    /// Clusters that `elb autoscale` scales (or scaled): bounds, loop, last decision.
    pub(crate) autoscaling: Vec<AutoscalingView>,
}

/// One autoscaled cluster, from its loop's state file.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct AutoscalingView {
    pub(crate) cluster: String,
    pub(crate) min: u32,
    pub(crate) max: u32,
    /// Whether its loop runs now.
    pub(crate) running: bool,
    /// The last decision: when, what, from and to how many instances, why.
    pub(crate) last: Option<crate::autoscale::LastDecision>,
}

impl AutoscalingView {
    /// The view of one loop's state.
    pub(crate) fn of(memory: &crate::autoscale::Memory) -> Self {
        Self {
            cluster: memory.cluster.clone(),
            min: memory.min,
            max: memory.max,
            running: crate::autoscale::loop_runs(memory),
            last: memory.last.clone(),
        }
    }
}

/// The balancer as the dashboard shows it.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct BalancerView {
    pub(crate) id: String,
    /// The client listener (`ip:port`).
    pub(crate) listen: String,
    /// The admin listener its status comes from.
    pub(crate) admin: String,
    /// `up`, or `down` with `reason` set (then `groups` is empty).
    pub(crate) status: &'static str,
    pub(crate) reason: Option<String>,
    pub(crate) config_generation: Option<u64>,
    pub(crate) active_connections: Option<u64>,
    pub(crate) groups: Vec<GroupView>,
}

/// One target group.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct GroupView {
    pub(crate) name: String,
    pub(crate) algorithm: String,
    pub(crate) healthy_targets: u32,
    pub(crate) unhealthy_targets: u32,
    /// No target is healthy, so the group routes to all of them (as an ALB does).
    pub(crate) failing_open: bool,
    pub(crate) requests: u64,
    /// Requests per second over the last tick; `None` on the first reading.
    pub(crate) requests_per_sec: Option<f64>,
    pub(crate) retries: u64,
    pub(crate) retries_over_budget: u64,
    pub(crate) targets: Vec<TargetView>,
}

/// One target of a group.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct TargetView {
    pub(crate) id: String,
    pub(crate) address: String,
    pub(crate) cluster: Option<String>,
    pub(crate) instance_type: Option<String>,
    /// `initial`, `healthy`, `unhealthy`, `draining`.
    pub(crate) state: &'static str,
    /// The ALB reason code for the state.
    pub(crate) reason: String,
    pub(crate) ejected: bool,
    pub(crate) in_flight: u64,
    pub(crate) latency_estimate_ms: f64,
    pub(crate) requests: u64,
    pub(crate) errors: u64,
    /// Requests per second over the last tick; `None` on the first reading.
    pub(crate) requests_per_sec: Option<f64>,
    /// Its share of the group's requests over the last tick, 0-100; `None` when the group sent
    /// none then.
    pub(crate) share_percent: Option<f64>,
    /// Its share of the group's requests since it was registered, 0-100.
    pub(crate) share_total_percent: Option<f64>,
}

impl BalancerView {
    /// A balancer whose `/status` did not come.
    pub(crate) fn down(id: String, listen: String, admin: String, reason: String) -> Self {
        Self {
            id,
            listen,
            admin,
            status: "down",
            reason: Some(reason),
            config_generation: None,
            active_connections: None,
            groups: Vec::new(),
        }
    }

    /// The view of `status`; `previous` (the last tick's status, with its age in seconds) gives
    /// the rates and the shares over the tick. A counter that went down (a restart, a target
    /// registered anew) gives no rate.
    pub(crate) fn up(
        id: String,
        listen: String,
        admin: String,
        status: &BalancerStatus,
        previous: Option<(&BalancerStatus, f64)>,
    ) -> Self {
        let groups = status
            .groups
            .iter()
            .map(|g| {
                let before = previous.and_then(|(p, secs)| {
                    p.groups
                        .iter()
                        .find(|b| b.name == g.name)
                        .map(|b| (b, secs))
                });
                group_view(g, before)
            })
            .collect();
        Self {
            id,
            listen,
            admin,
            status: "up",
            reason: None,
            config_generation: Some(status.config_generation),
            active_connections: Some(status.active_connections),
            groups,
        }
    }
}

fn group_view(group: &GroupStatus, previous: Option<(&GroupStatus, f64)>) -> GroupView {
    let delta = |now: u64, before: Option<u64>| before.and_then(|b| now.checked_sub(b));
    let target_deltas: Vec<Option<u64>> = group
        .targets
        .iter()
        .map(|t| {
            let before = previous.and_then(|(p, _)| {
                p.targets
                    .iter()
                    .find(|b| b.address == t.address)
                    .map(|b| b.requests)
            });
            delta(t.requests, before)
        })
        .collect();
    let tick_total: u64 = target_deltas.iter().flatten().sum();
    let total: u64 = group.targets.iter().map(|t| t.requests).sum();
    let secs = previous.map(|(_, secs)| secs).filter(|s| *s > 0.0);
    let rate = |d: Option<u64>| secs.and_then(|s| d.map(|d| d as f64 / s));
    let share = |part: u64, whole: u64| (whole > 0).then(|| 100.0 * part as f64 / whole as f64);
    let targets = group
        .targets
        .iter()
        .zip(&target_deltas)
        .map(|(t, d)| TargetView {
            id: t.id.clone(),
            address: t.address.clone(),
            cluster: t.cluster.clone(),
            instance_type: t.instance_type.clone(),
            state: t.state.name(),
            reason: t.reason.clone(),
            ejected: t.ejected,
            in_flight: t.in_flight,
            latency_estimate_ms: t.latency_estimate_ms,
            requests: t.requests,
            errors: t.errors,
            requests_per_sec: rate(*d),
            share_percent: d.and_then(|d| share(d, tick_total)),
            share_total_percent: share(t.requests, total),
        })
        .collect();
    GroupView {
        name: group.name.clone(),
        algorithm: group.algorithm.clone(),
        healthy_targets: group.healthy_targets,
        unhealthy_targets: group.unhealthy_targets,
        failing_open: group.failing_open,
        requests: group.requests,
        requests_per_sec: rate(delta(group.requests, previous.map(|(p, _)| p.requests))),
        retries: group.retries,
        retries_over_budget: group.retries_over_budget,
        targets,
    }
}

/// One instance's figures at one tick, as the charts draw them.
#[derive(Debug, Clone, PartialEq)]
struct Sample {
    id: String,
    requests_per_sec: Option<f64>,
    p99_ms: Option<f64>,
    cpu_percent: Option<f64>,
}

/// The charts' data over the last `capacity` ticks: per instance, requests per second, p99 and
/// CPU %, aligned on the ticks' times (a gap where an instance was down or not yet there).
#[derive(Debug)]
pub(crate) struct History {
    capacity: usize,
    ticks: VecDeque<(u64, Vec<Sample>)>,
}

/// [`History`] as the page reads it: `t` (unix seconds, one per tick) and one series per
/// instance seen in that window, each value array as long as `t`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Series {
    pub(crate) schema: u32,
    /// How many ticks the window holds (a page keeps no more).
    pub(crate) max_points: usize,
    /// The tick of the latest frame in it: the next `frame` event is this one's successor.
    pub(crate) last_tick: u64,
    pub(crate) t: Vec<f64>,
    pub(crate) instances: Vec<InstanceSeries>,
}

/// One instance's series.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct InstanceSeries {
    pub(crate) id: String,
    pub(crate) cluster: String,
    pub(crate) instance_type: String,
    pub(crate) requests_per_sec: Vec<Option<f64>>,
    pub(crate) p99_ms: Vec<Option<f64>>,
    pub(crate) cpu_percent: Vec<Option<f64>>,
}

impl History {
    /// A history of the last `capacity` ticks.
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            ticks: VecDeque::new(),
        }
    }

    /// Adds `frame`'s figures, dropping the oldest tick when full.
    pub(crate) fn push(&mut self, frame: &Frame) {
        if self.ticks.len() == self.capacity {
            self.ticks.pop_front();
        }
        let samples = frame
            .instances
            .iter()
            .map(|i| Sample {
                id: i.id.clone(),
                requests_per_sec: i.requests_per_sec,
                p99_ms: i.p99_ms,
                cpu_percent: i.cpu_percent,
            })
            .collect();
        self.ticks.push_back((frame.polled_at_unix_ms, samples));
    }

    /// The series, instances in the order of `frame` (the latest), then any that left within
    /// the window, in the order they were last seen.
    pub(crate) fn series(&self, latest: &Frame) -> Series {
        let mut instances: Vec<InstanceSeries> = latest
            .instances
            .iter()
            .map(|i| InstanceSeries::empty(&i.id, &i.cluster, &i.instance_type))
            .collect();
        for (_, samples) in self.ticks.iter().rev() {
            for s in samples {
                if !instances.iter().any(|i| i.id == s.id) {
                    instances.push(InstanceSeries::empty(&s.id, "", ""));
                }
            }
        }
        for (_, samples) in &self.ticks {
            for series in &mut instances {
                let sample = samples.iter().find(|s| s.id == series.id);
                series
                    .requests_per_sec
                    .push(sample.and_then(|s| s.requests_per_sec));
                series.p99_ms.push(sample.and_then(|s| s.p99_ms));
                series.cpu_percent.push(sample.and_then(|s| s.cpu_percent));
            }
        }
        Series {
            schema: SCHEMA,
            max_points: self.capacity,
            last_tick: latest.tick,
            t: self
                .ticks
                .iter()
                .map(|(ms, _)| *ms as f64 / 1000.0)
                .collect(),
            instances,
        }
    }
}

impl InstanceSeries {
    fn empty(id: &str, cluster: &str, instance_type: &str) -> Self {
        Self {
            id: id.to_owned(),
            cluster: cluster.to_owned(),
            instance_type: instance_type.to_owned(),
            requests_per_sec: Vec::new(),
            p99_ms: Vec::new(),
            cpu_percent: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{group, target};

    #[test]
    fn shares_are_over_the_last_tick_and_since_registration() {
        let before = group(vec![target("a:1", 100), target("b:1", 0)]);
        let now = group(vec![
            target("a:1", 130),
            target("b:1", 10),
            target("c:1", 5),
        ]);
        let view = group_view(&now, Some((&before, 2.0)));
        let [a, b, c] = &view.targets[..] else {
            panic!("three targets")
        };
        // Over the tick: a 30, b 10, c new (no rate, no share); since registration 130/10/5.
        assert_eq!(a.requests_per_sec, Some(15.0));
        assert_eq!(a.share_percent, Some(75.0));
        assert_eq!(b.share_percent, Some(25.0));
        assert_eq!((c.requests_per_sec, c.share_percent), (None, None));
        assert!((a.share_total_percent.unwrap() - 100.0 * 130.0 / 145.0).abs() < 1e-9);
        assert_eq!(view.requests_per_sec, Some(22.5));
    }

    #[test]
    fn an_idle_tick_or_a_reset_counter_gives_no_share_and_no_rate() {
        let before = group(vec![target("a:1", 50)]);
        let idle = group_view(&group(vec![target("a:1", 50)]), Some((&before, 1.0)));
        assert_eq!(idle.targets[0].share_percent, None);
        assert_eq!(idle.targets[0].requests_per_sec, Some(0.0));
        let reset = group_view(&group(vec![target("a:1", 3)]), Some((&before, 1.0)));
        assert_eq!(reset.targets[0].requests_per_sec, None);
        let first = group_view(&before, None);
        assert_eq!(first.targets[0].requests_per_sec, None);
        assert_eq!(first.targets[0].share_total_percent, Some(100.0));
    }

    fn frame(at_ms: u64, instances: &[(&str, f64)]) -> Frame {
        Frame {
            schema: SCHEMA,
            project: "p".into(),
            provider: "local",
            tick: at_ms / 1000,
            tick_ms: 1000,
            polled_at_unix_ms: at_ms,
            fleet_error: None,
            balancer_error: None,
            instances: instances
                .iter()
                .map(|(id, rps)| crate::stats::view::tests::row(id, Some(*rps)))
                .collect(),
            clusters: Vec::new(),
            balancer: None,
            autoscaling: Vec::new(),
        }
    }

    #[test]
    fn history_keeps_the_last_ticks_aligned_with_gaps_for_absent_instances() {
        let mut history = History::new(3);
        history.push(&frame(1_000, &[("i-a", 1.0)]));
        history.push(&frame(2_000, &[("i-a", 2.0), ("i-b", 20.0)]));
        history.push(&frame(3_000, &[("i-b", 30.0)]));
        let latest = frame(4_000, &[("i-b", 40.0), ("i-c", 4.0)]);
        history.push(&latest);
        let series = history.series(&latest);
        assert_eq!(series.t, vec![2.0, 3.0, 4.0], "the oldest tick dropped");
        assert_eq!(series.max_points, 3);
        assert_eq!(series.last_tick, 4);
        let ids: Vec<&str> = series.instances.iter().map(|i| i.id.as_str()).collect();
        assert_eq!(
            ids,
            ["i-b", "i-c", "i-a"],
            "the latest frame's, then those that left"
        );
        assert_eq!(
            series.instances[0].requests_per_sec,
            [Some(20.0), Some(30.0), Some(40.0)]
        );
        assert_eq!(
            series.instances[1].requests_per_sec,
            [None, None, Some(4.0)]
        );
        assert_eq!(
            series.instances[2].requests_per_sec,
            [Some(2.0), None, None]
        );
    }
}
