//! The run second by second, per instance: what the client saw (its samples binned by the
//! second each answer ended) and what each agent measured between its snapshots, which the
//! bench takes once a second during the run (requests counted, CPU and throttling from the
//! cumulative counters).

use serde::Serialize;

use super::loadgen::{Sample, UNKNOWN};
use super::report::percentile;
use crate::stats::{CpuFigures, Reading};

/// One instance's series.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct InstanceSeries {
    /// The instance as the answers name it; `None` for requests whose answer named no instance
    /// (no answer at all, or not an agent's).
    pub(crate) instance: Option<String>,
    /// Its type, when it is one of the fleet's instances.
    pub(crate) instance_type: Option<String>,
    /// One entry per second of the run, from its start to its last answer, empty seconds
    /// included.
    pub(crate) client: Vec<ClientSecond>,
    /// One entry per interval between two consecutive snapshots of the agent (empty without
    /// a fleet agent for the instance).
    pub(crate) agent: Vec<AgentInterval>,
}

/// What the client saw of one instance in one second.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub(crate) struct ClientSecond {
    /// Seconds since the run began: this entry covers `[second, second + 1)`.
    pub(crate) second: u64,
    /// Requests that ended in this second, answered or not.
    pub(crate) requests: u64,
    /// Of those, the ones without a 2xx answer.
    pub(crate) errors: u64,
    /// Latency of the answered ones (nearest rank); `None` when none was answered.
    pub(crate) p50_ms: Option<f64>,
    pub(crate) p99_ms: Option<f64>,
}

/// What an agent measured between two of its snapshots.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub(crate) struct AgentInterval {
    /// When the earlier and the later snapshot were taken, in seconds since the run began (by
    /// the agent's clock; negative before the run).
    pub(crate) from_secs: f64,
    pub(crate) to_secs: f64,
    /// Requests to the cluster's path the agent counted in between.
    pub(crate) requests: u64,
    /// The instance's CPU in between, as a share of its capacity (0-100).
    pub(crate) cpu_percent: f64,
    /// Share of the host's CPU time it was held back; `None` from an agent too old to say.
    pub(crate) throttled_percent: Option<f64>,
}

/// The client's side: `samples` binned per second and per instance (`names` are the
/// instances the answers named, `types` their types where known). Instances come in the order
/// of `names`, then the requests that named none, if any.
pub(crate) fn client_series(
    samples: &[Sample],
    names: &[String],
    type_of: impl Fn(&str) -> Option<String>,
) -> Vec<InstanceSeries> {
    let seconds = samples
        .iter()
        .map(|s| (s.start_us + u64::from(s.latency_us)) / 1_000_000 + 1)
        .max()
        .unwrap_or(0);
    let series = |served_by: u32, instance: Option<String>| {
        let mut bins: Vec<(u64, u64, Vec<u32>)> = vec![(0, 0, Vec::new()); seconds as usize];
        for s in samples.iter().filter(|s| s.served_by == served_by) {
            let bin = &mut bins[((s.start_us + u64::from(s.latency_us)) / 1_000_000) as usize];
            bin.0 += 1;
            if !s.ok() {
                bin.1 += 1;
            }
            if s.status != 0 {
                bin.2.push(s.latency_us);
            }
        }
        let client = bins
            .into_iter()
            .enumerate()
            .map(|(second, (requests, errors, mut us))| {
                us.sort_unstable();
                let ms = |q| (!us.is_empty()).then(|| f64::from(percentile(&us, q)) / 1000.0);
                ClientSecond {
                    second: second as u64,
                    requests,
                    errors,
                    p50_ms: ms(0.50),
                    p99_ms: ms(0.99),
                }
            })
            .collect();
        InstanceSeries {
            instance_type: instance.as_deref().and_then(&type_of),
            instance,
            client,
            agent: Vec::new(),
        }
    };
    let mut out: Vec<InstanceSeries> = names
        .iter()
        .enumerate()
        .map(|(i, name)| series(i as u32, Some(name.clone())))
        .collect();
    if samples.iter().any(|s| s.served_by == UNKNOWN) {
        out.push(series(UNKNOWN, None));
    }
    out
}

/// The agent's side for one instance: its snapshots among `polls` (in the order taken),
/// de-duplicated, each consecutive pair of the same agent run an interval. Times are relative
/// to `run_started_unix_ms`.
pub(crate) fn agent_intervals(
    id: &str,
    path: &str,
    polls: &[&[Reading]],
    run_started_unix_ms: u64,
) -> Vec<AgentInterval> {
    let mut snapshots: Vec<&proto::StatsSnapshot> = polls
        .iter()
        .filter_map(|poll| poll.iter().find(|r| r.agent.id == id))
        .filter_map(Reading::snapshot)
        .collect();
    snapshots.dedup_by_key(|s| (s.started_at_unix_ms, s.sampled_at_unix_ms));
    let secs = |unix_ms: u64| (unix_ms as f64 - run_started_unix_ms as f64) / 1000.0;
    let endpoint = super::counted_endpoint(path);
    let count = |s: &proto::StatsSnapshot| s.requests.per_endpoint.get(endpoint).copied();
    snapshots
        .windows(2)
        .filter(|w| {
            w[0].started_at_unix_ms == w[1].started_at_unix_ms
                && w[1].sampled_at_unix_ms > w[0].sampled_at_unix_ms
        })
        .map(|w| {
            let cpu = CpuFigures::of(Some(w[0]), w[1]);
            AgentInterval {
                from_secs: secs(w[0].sampled_at_unix_ms),
                to_secs: secs(w[1].sampled_at_unix_ms),
                requests: count(w[1])
                    .unwrap_or(0)
                    .saturating_sub(count(w[0]).unwrap_or(0)),
                cpu_percent: cpu.usage_percent,
                throttled_percent: cpu.throttled_percent,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::view::tests::{snapshot, with_instance};

    fn sample(end_ms: u64, latency_ms: u32, status: u16, served_by: u32) -> Sample {
        Sample {
            start_us: end_ms * 1000 - u64::from(latency_ms) * 1000,
            latency_us: latency_ms * 1000,
            status,
            served_by,
        }
    }

    #[test]
    fn every_request_lands_in_the_second_its_answer_ended_and_empty_seconds_stay() {
        let samples = [
            sample(100, 10, 200, 0),
            sample(900, 50, 200, 0),
            sample(2_500, 5, 200, 1),
            sample(2_600, 0, 0, UNKNOWN),
        ];
        let names = ["i-1".to_owned(), "i-2".to_owned()];
        let series = client_series(&samples, &names, |n| {
            (n == "i-1").then(|| "t3.micro".into())
        });
        assert_eq!(series.len(), 3, "two instances and the unnamed requests");
        assert_eq!(series[0].instance_type.as_deref(), Some("t3.micro"));
        assert_eq!(series[1].instance_type, None);
        let i1 = &series[0].client;
        assert_eq!(i1.len(), 3);
        assert_eq!(
            (i1[0].requests, i1[0].p50_ms, i1[0].p99_ms),
            (2, Some(10.0), Some(50.0))
        );
        assert_eq!((i1[1].requests, i1[1].p99_ms), (0, None));
        let unnamed = &series[2];
        assert_eq!(unnamed.instance, None);
        assert_eq!(
            (unnamed.client[2].requests, unnamed.client[2].errors),
            (1, 1)
        );
        let total: u64 = series
            .iter()
            .flat_map(|s| &s.client)
            .map(|c| c.requests)
            .sum();
        assert_eq!(total, samples.len() as u64);
    }

    fn reading(id: &str, s: proto::StatsSnapshot) -> Reading {
        crate::stats::view::tests::reading(id, "c", Ok(s))
    }

    #[test]
    fn agent_intervals_come_from_consecutive_distinct_snapshots() {
        let at = |ms: u64, total: u64, uptime: f64, usage: f64| {
            reading(
                "i-1",
                with_instance(snapshot(total, ms, 0.0), uptime, usage, 0.0),
            )
        };
        let polls: Vec<Vec<Reading>> = vec![
            vec![at(10_000, 5, 10.0, 1.0)],
            vec![
                at(10_000, 5, 10.0, 1.0),
                reading("i-2", snapshot(0, 1, 0.0)),
            ],
            vec![at(11_000, 105, 11.0, 1.2)],
            vec![at(12_000, 155, 12.0, 1.3)],
        ];
        let polls: Vec<&[Reading]> = polls.iter().map(Vec::as_slice).collect();
        let intervals = agent_intervals("i-1", "/cluster1", &polls, 10_500);
        assert_eq!(intervals.len(), 2, "the repeated snapshot is one");
        assert_eq!((intervals[0].from_secs, intervals[0].to_secs), (-0.5, 0.5));
        assert_eq!(intervals[0].requests, 100);
        assert!(
            (intervals[0].cpu_percent - 100.0).abs() < 1e-9,
            "{intervals:?}"
        );
        assert!(
            (intervals[1].cpu_percent - 50.0).abs() < 1e-9,
            "{intervals:?}"
        );
        assert!(agent_intervals("i-9", "/cluster1", &polls, 0).is_empty());
    }
}
