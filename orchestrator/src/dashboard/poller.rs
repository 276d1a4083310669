//! The dashboard's one poller: each tick it asks every agent for `/stats` (concurrently, each
//! with the per-agent timeout `elb stats` uses) and the balancer for `/status`, builds a
//! [`Frame`] and publishes it. Pages only ever read what it published, so the agents and the
//! balancer see one request per tick however many pages are open.
//!
//! The fleet itself (which instances exist, where the balancer is) is listed every
//! [`DashboardSpec::fleet_every`] ticks: on EC2 that is a `DescribeInstances`, which need not
//! run every second.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use proto::BalancerStatus;
use tokio::sync::watch;
use tokio::time::MissedTickBehavior;

use super::frame::{AutoscalingView, BalancerView, Frame, History};
use super::DashboardSpec;
use crate::autoscale::Memories;
use crate::balance::{self, Balancer};
use crate::cloud;
use crate::config::Settings;
use crate::stats::view::StatsView;
use crate::stats::{self, unix_ms, Agent, Reading};

/// What the poller publishes and the server reads.
#[derive(Debug)]
pub(crate) struct Shared {
    /// The latest frame and the history, updated together.
    state: Mutex<Published>,
    /// The latest frame as JSON, for the event streams; `None` before the first tick.
    frames: watch::Sender<Option<Bytes>>,
}

#[derive(Debug)]
struct Published {
    latest: Option<Frame>,
    history: History,
}

impl Shared {
    /// Nothing published yet; the history holds `ticks` ticks.
    pub(crate) fn new(ticks: usize) -> Self {
        Self {
            state: Mutex::new(Published {
                latest: None,
                history: History::new(ticks),
            }),
            frames: watch::channel(None).0,
        }
    }

    /// The latest frame as JSON.
    pub(crate) fn snapshot(&self) -> Option<Bytes> {
        self.frames.borrow().clone()
    }

    /// The history as JSON (the series of [`History::series`]); `None` before the first tick.
    pub(crate) fn history(&self) -> Option<Bytes> {
        let state = self.state.lock().expect("dashboard state");
        series_json(&state)
    }

    /// The history (`None` before the first tick) and a receiver of the frames published after
    /// it, taken together so that no tick falls between the two. The receiver holds the latest
    /// frame only: a reader that falls a tick behind sees the gap in the frames' `tick`.
    pub(crate) fn subscribe(&self) -> (Option<Bytes>, watch::Receiver<Option<Bytes>>) {
        let state = self.state.lock().expect("dashboard state");
        (series_json(&state), self.frames.subscribe())
    }

    fn publish(&self, frame: Frame) {
        let json = Bytes::from(serde_json::to_vec(&frame).expect("a frame serializes"));
        let mut state = self.state.lock().expect("dashboard state");
        state.history.push(&frame);
        state.latest = Some(frame);
        self.frames.send_replace(Some(json));
    }
}

fn series_json(state: &Published) -> Option<Bytes> {
    let series = state.history.series(state.latest.as_ref()?);
    Some(Bytes::from(
        serde_json::to_vec(&series).expect("a history serializes"),
    ))
}

/// What the poller knows of the fleet between two listings.
#[derive(Default)]
struct Fleet {
    agents: Vec<Agent>,
    balancer: Option<Balancer>,
    fleet_error: Option<String>,
    balancer_error: Option<String>,
}

impl Fleet {
    /// Lists the instances and finds the balancer; a failed listing keeps what was known and
    /// says why.
    async fn refresh(&mut self, settings: &Settings) {
        match cloud::fleet(settings, None).await {
            Ok(instances) => {
                self.agents = instances.iter().map(Agent::of).collect();
                self.fleet_error = None;
            }
            Err(e) => self.fleet_error = Some(e.to_string()),
        }
        match balance::find(settings).await {
            Ok(found) => {
                self.balancer = found;
                self.balancer_error = None;
            }
            Err(e) => {
                self.balancer = None;
                self.balancer_error = Some(e.to_string());
            }
        }
    }
}

/// The snapshots each agent's rates are taken over. An agent samples its host on its own clock
/// (once a second by default), so two polls a tick apart can return the same snapshot; the rate
/// and CPU of a tick are then those between the two latest *distinct* snapshots, not the
/// agent's longer latency window.
#[derive(Default)]
struct Baselines {
    /// Per agent: the latest distinct snapshot's reading, and the one before it.
    by_agent: HashMap<String, (Reading, Option<Reading>)>,
}

impl Baselines {
    /// Takes in this tick's readings; returns the readings to compute their rates from.
    fn advance(&mut self, readings: &[Reading]) -> Vec<Reading> {
        let sampled = |r: &Reading| {
            r.snapshot()
                .map(|s| (s.started_at_unix_ms, s.sampled_at_unix_ms))
        };
        let mut previous = Vec::new();
        for reading in readings.iter().filter(|r| r.snapshot().is_some()) {
            let id = &reading.agent.id;
            let entry = match self.by_agent.remove(id) {
                Some((latest, prior)) if sampled(&latest) == sampled(reading) => (latest, prior),
                Some((latest, _)) => (reading.clone(), Some(latest)),
                None => (reading.clone(), None),
            };
            previous.extend(entry.1.clone());
            self.by_agent.insert(id.clone(), entry);
        }
        // Agents that left the fleet or did not answer start afresh.
        self.by_agent.retain(|id, _| {
            readings
                .iter()
                .any(|r| &r.agent.id == id && r.snapshot().is_some())
        });
        previous
    }
}

/// Polls until the task is aborted, publishing one frame per tick into `shared`.
pub(crate) async fn run(settings: Arc<Settings>, spec: DashboardSpec, shared: Arc<Shared>) {
    let provider = cloud::provider_name(&settings);
    let mut interval = tokio::time::interval(spec.tick);
    interval.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut fleet = Fleet::default();
    let mut baselines = Baselines::default();
    let mut previous_status: Option<(BalancerStatus, Instant)> = None;
    for tick in 1u64.. {
        interval.tick().await;
        if (tick - 1) % u64::from(spec.fleet_every.max(1)) == 0 {
            fleet.refresh(&settings).await;
        }
        let admin = fleet.balancer.as_ref().map(|b| b.admin);
        let (readings, status) =
            tokio::join!(stats::poll(&fleet.agents, spec.agent_timeout), async {
                match admin {
                    Some(admin) => Some(balance::admin_status(admin).await),
                    None => None,
                }
            });
        let now = Instant::now();
        let view = StatsView::new(&readings, &baselines.advance(&readings), unix_ms());
        let balancer = fleet.balancer.as_ref().zip(status).map(|(b, status)| {
            let (id, listen, admin) = (b.id.clone(), b.listen.to_string(), b.admin.to_string());
            match status {
                Ok(status) => {
                    let before = previous_status
                        .as_ref()
                        .map(|(s, at)| (s, now.duration_since(*at).as_secs_f64()));
                    let view = BalancerView::up(id, listen, admin, &status, before);
                    previous_status = Some((status, now));
                    view
                }
                Err(why) => {
                    previous_status = None;
                    BalancerView::down(id, listen, admin, why)
                }
            }
        });
        shared.publish(Frame {
            schema: super::frame::SCHEMA,
            project: settings.project.clone(),
            provider,
            tick,
            tick_ms: spec.tick.as_millis() as u64,
            polled_at_unix_ms: view.polled_at_unix_ms,
            fleet_error: fleet.fleet_error.clone(),
            balancer_error: fleet.balancer_error.clone(),
            instances: view.instances,
            clusters: view.clusters,
            balancer,
            autoscaling: autoscaling(&settings),
        });
    }
}

/// Every autoscaled cluster's view; none (and a warning in the log) when the state cannot be
/// read.
fn autoscaling(settings: &Settings) -> Vec<AutoscalingView> {
    match Memories::new(&settings.state).all() {
        Ok(memories) => memories.iter().map(AutoscalingView::of).collect(),
        Err(e) => {
            tracing::warn!("cannot read the autoscaling state: {e}");
            Vec::new()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::view::tests::snapshot;

    fn reading(id: &str, sampled_at: u64) -> Reading {
        crate::stats::view::tests::reading(id, "c", Ok(snapshot(sampled_at, sampled_at, 1.0)))
    }

    fn sampled(previous: &[Reading]) -> Vec<u64> {
        previous
            .iter()
            .map(|r| r.snapshot().unwrap().sampled_at_unix_ms)
            .collect()
    }

    #[test]
    fn rates_are_over_the_two_latest_distinct_snapshots() {
        let mut b = Baselines::default();
        assert!(
            b.advance(&[reading("a", 1_000)]).is_empty(),
            "nothing before the first"
        );
        assert_eq!(sampled(&b.advance(&[reading("a", 2_000)])), [1_000]);
        // The agent has not sampled again: the same pair, not the snapshot against itself.
        assert_eq!(sampled(&b.advance(&[reading("a", 2_000)])), [1_000]);
        assert_eq!(sampled(&b.advance(&[reading("a", 3_000)])), [2_000]);
        let down = crate::stats::view::tests::reading("a", "c", Err("connection refused".into()));
        assert!(b.advance(&[down]).is_empty());
        assert!(
            b.advance(&[reading("a", 9_000)]).is_empty(),
            "afresh after a gap"
        );
    }
}
