//! `elb bench`, the experiment: per cluster, snapshot its agents (and, through elb's balancer,
//! the balancer's per-target counts), send the load (`loadgen.rs`) while polling them once a
//! second, snapshot them again once they have sampled past the last request, and report
//! (`report.rs`, `timeline.rs`, `plot.rs`).

pub(crate) mod loadgen;
pub(crate) mod plot;
pub(crate) mod report;
pub(crate) mod scaling;
pub(crate) mod schedule;
pub(crate) mod timeline;
pub(crate) mod via;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::autoscale::Memories;
use crate::http::Endpoint;
use crate::progress::Progress;
use crate::state;
use crate::stats::{self, Agent, Reading};
use crate::Error;
use loadgen::Load;
use report::{ClusterResult, Results, TargetCounts};
use scaling::{ScalingEvent, ScalingRun, Size};

/// Per-agent timeout of the bench's own `/stats` requests.
const STATS_TIMEOUT: Duration = Duration::from_secs(1);
/// Time between two polls while waiting for the agents' next sample.
const FRESH_POLL: Duration = Duration::from_millis(100);
/// Time between two polls of the agents during the run, for the timeline.
const SERIES_POLL: Duration = Duration::from_secs(1);

/// One cluster's share of the experiment.
#[derive(Debug, Clone)]
pub(crate) struct ClusterPlan {
    pub(crate) cluster: String,
    /// The load: `/<cluster>` on these endpoints.
    pub(crate) load: Load,
    /// The cluster's agents, snapshotted before and after.
    pub(crate) agents: Vec<Agent>,
}

/// The whole experiment, built before any request is sent.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    pub(crate) clusters: Vec<ClusterPlan>,
    /// `--target` as given.
    pub(crate) target: Option<String>,
    /// The admin address of elb's balancer when the load goes through it: its per-target
    /// request counts, read before and after each cluster's run, are the third count.
    pub(crate) balancer_admin: Option<SocketAddr>,
    /// Where `elb autoscale` keeps its state, to put what it did to a cluster during the run
    /// beside the run's timeline.
    pub(crate) scaling: Option<Memories>,
}

impl Plan {
    /// Plans `requests` to each of `clusters` (default: every cluster of `agents`), sent to
    /// `target` if given, else spread over the cluster's agents.
    pub(crate) fn new(
        agents: &[Agent],
        clusters: &[String],
        target: Option<(String, Endpoint)>,
        template: &Load,
    ) -> Result<Self, Error> {
        let names: Vec<String> = if clusters.is_empty() {
            let all: BTreeSet<&str> = agents.iter().map(|a| a.cluster.as_str()).collect();
            all.into_iter().map(str::to_owned).collect()
        } else {
            clusters.to_vec()
        };
        if names.is_empty() {
            return Err(Error::Usage(
                "nothing to benchmark: the project has no running instances. Launch some \
                 (`elb launch`), or pass --target <url> --cluster <name>"
                    .into(),
            ));
        }
        let clusters = names
            .into_iter()
            .map(|cluster| {
                let agents: Vec<Agent> = agents
                    .iter()
                    .filter(|a| a.cluster == cluster)
                    .cloned()
                    .collect();
                let endpoints = match &target {
                    Some((_, endpoint)) => vec![endpoint.clone()],
                    None => agents
                        .iter()
                        .filter_map(|a| a.addr.map(Endpoint::agent))
                        .collect(),
                };
                if endpoints.is_empty() {
                    return Err(Error::Usage(format!(
                        "cluster {cluster} has no running instance with an address: check \
                         `elb ls`, or send the load through --target <url>"
                    )));
                }
                Ok(ClusterPlan {
                    load: Load {
                        endpoints,
                        path: format!("/{cluster}"),
                        ..template.clone()
                    },
                    cluster,
                    agents,
                })
            })
            .collect::<Result<_, Error>>()?;
        Ok(Self {
            clusters,
            target: target.map(|(url, _)| url),
            balancer_admin: None,
            scaling: None,
        })
    }

    /// Plans `requests` to `path` through `target` alone (e.g. `/` over every instance behind a
    /// balancer), counted by every one of `agents`. The run is named after the path.
    pub(crate) fn through(
        agents: &[Agent],
        path: &str,
        target: (String, Endpoint),
        template: &Load,
    ) -> Self {
        let (url, endpoint) = target;
        Self {
            clusters: vec![ClusterPlan {
                cluster: path.to_owned(),
                load: Load {
                    endpoints: vec![endpoint],
                    path: path.to_owned(),
                    ..template.clone()
                },
                agents: agents.to_vec(),
            }],
            target: Some(url),
            balancer_admin: None,
            scaling: None,
        }
    }

    /// The same plan, with what `elb autoscale` loops (their state in `memories`) did to each
    /// cluster during its run.
    pub(crate) fn watching_autoscaling(mut self, memories: Memories) -> Self {
        self.scaling = Some(memories);
        self
    }

    /// The same plan, the balancer at `admin` counting the requests too.
    pub(crate) fn counted_by_balancer(mut self, admin: SocketAddr) -> Self {
        self.balancer_admin = Some(admin);
        self
    }

    /// Runs the clusters one after the other.
    pub(crate) async fn run(&self) -> Results {
        let started_at_unix_ms = stats::unix_ms();
        let mut clusters = Vec::with_capacity(self.clusters.len());
        for plan in &self.clusters {
            let mut result = run_cluster(plan, self.balancer_admin).await;
            if let Some(memories) = &self.scaling {
                result.scaling = scaling_during(memories, &result);
            }
            clusters.push(result);
        }
        let template = self.clusters.first().map(|c| &c.load);
        Results {
            schema: report::SCHEMA,
            started_at_unix_ms,
            target: self.target.clone(),
            requests_per_cluster: template.map_or(0, |l| l.requests),
            concurrency: template.map_or(0, |l| l.concurrency),
            clusters,
        }
    }
}

/// What [`Plan::run_and_write`] produced.
#[derive(Debug)]
pub(crate) struct Report {
    /// The measurements.
    pub(crate) results: Results,
    /// The directory holding the files.
    pub(crate) dir: PathBuf,
    /// `results.json`, `results.csv` and the plots.
    pub(crate) files: Vec<PathBuf>,
}

impl Plan {
    /// Runs the plan and writes its files into `out` (default: `<prefix>-<UTC time>`);
    /// returns what was measured and written, for the driver to show.
    pub(crate) async fn run_and_write(
        &self,
        out: Option<PathBuf>,
        prefix: &str,
    ) -> Result<Report, Error> {
        let results = self.run().await;
        let dir = out.unwrap_or_else(|| {
            PathBuf::from(format!(
                "{prefix}-{}",
                utc_stamp(results.started_at_unix_ms / 1000)
            ))
        });
        let files = write(&results, &dir)?;
        Ok(Report {
            results,
            dir,
            files,
        })
    }
}

/// Requests the balancer at `admin` has sent to each target so far, by target id (summed over
/// its groups), or why they cannot be read.
async fn balancer_counts(admin: SocketAddr) -> Result<TargetCounts, String> {
    let status = crate::balance::admin_status(admin).await?;
    let mut counts = TargetCounts::new();
    for target in status.groups.iter().flat_map(|g| &g.targets) {
        *counts.entry(target.id.clone()).or_default() += target.requests;
    }
    Ok(counts)
}

async fn run_cluster(plan: &ClusterPlan, balancer: Option<SocketAddr>) -> ClusterResult {
    let before = stats::poll(&plan.agents, STATS_TIMEOUT).await;
    let balancer_before = match balancer {
        Some(admin) => Some(balancer_counts(admin).await),
        None => None,
    };
    tracing::info!(cluster = %plan.cluster, requests = plan.load.requests, "sending");
    let (stop, stopped) = tokio::sync::oneshot::channel();
    let series = tokio::spawn(poll_during_run(plan.agents.clone(), stopped));
    let started_at_unix_ms = stats::unix_ms();
    let total = plan.load.requests as usize;
    let mut progress = Progress::new(format!("bench {}", plan.cluster), "answered", total);
    let done = Arc::new(AtomicU64::new(0));
    let run = loadgen::run(&plan.load, done.clone());
    tokio::pin!(run);
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    let run = loop {
        tokio::select! {
            run = &mut run => break run,
            _ = tick.tick() => progress.update(done.load(Ordering::Relaxed) as usize, total),
        }
    };
    progress.update(total, total);
    progress.finish();
    let last_answer_unix_ms = stats::unix_ms();
    // The receiver is gone only if the task panicked; its polls are then lost, nothing else.
    let _ = stop.send(());
    let during = series.await.unwrap_or_default();
    let after = fresh_readings(&plan.agents, &before, last_answer_unix_ms).await;
    let mut polls: Vec<&[Reading]> = vec![before.as_slice()];
    polls.extend(during.iter().map(Vec::as_slice));
    polls.push(&after);
    let result = ClusterResult::new(&plan.cluster, &plan.load.path, run, &before, &after)
        .with_agent_series(started_at_unix_ms, &polls);
    match (balancer, balancer_before) {
        (Some(admin), Some(before)) => {
            let counts = match (before, balancer_counts(admin).await) {
                (Ok(before), Ok(after)) => Ok((before, after)),
                (Err(e), _) | (_, Err(e)) => Err(e),
            };
            result.with_balancer_counts(counts)
        }
        _ => result,
    }
}

/// What the cluster's autoscaling loop did during `result`'s run, if one ran: its instance
/// count second by second and its decisions, from the ticks its state keeps.
fn scaling_during(memories: &Memories, result: &ClusterResult) -> Option<ScalingRun> {
    let memory = memories.load(&result.cluster).ok()??;
    let start = result.started_at_unix_ms;
    let end = start + (result.elapsed_secs * 1000.0) as u64;
    let during: Vec<_> = memory
        .ticks
        .iter()
        .filter(|t| t.at_unix_ms + 60_000 >= start && t.at_unix_ms <= end)
        .collect();
    if !during.iter().any(|t| t.at_unix_ms >= start) {
        return None;
    }
    let sizes: Vec<Size> = during.iter().map(|t| (t.at_unix_ms, t.current)).collect();
    let events = during
        .iter()
        .filter(|t| t.at_unix_ms >= start && t.action != "hold")
        .map(|t| (t.at_unix_ms, ScalingEvent::of(t)))
        .collect();
    Some(ScalingRun::new(result, &sizes, events))
}

/// Polls `agents` every [`SERIES_POLL`] (all at once, each within [`STATS_TIMEOUT`]) until
/// `stop` fires; returns the polls in the order taken. A poll that outlasts the period delays
/// the next one rather than overlapping it. Without agents, nothing is polled.
async fn poll_during_run(
    agents: Vec<Agent>,
    mut stop: tokio::sync::oneshot::Receiver<()>,
) -> Vec<Vec<Reading>> {
    let mut polls = Vec::new();
    if agents.is_empty() {
        return polls;
    }
    let mut tick = tokio::time::interval(SERIES_POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The first tick is immediate, and the snapshot before the run was just taken.
    tick.tick().await;
    loop {
        tokio::select! {
            _ = &mut stop => return polls,
            _ = tick.tick() => {}
        }
        tokio::select! {
            _ = &mut stop => return polls,
            readings = stats::poll(&agents, STATS_TIMEOUT) => polls.push(readings),
        }
    }
}

/// Polls `agents` until each one that answers shows a sample taken after `since_unix_ms`, so
/// its counters include every request of the run (the agent counts a request before it sends
/// the answer). Gives up after two sample intervals plus a second and returns the last poll.
async fn fresh_readings(agents: &[Agent], before: &[Reading], since_unix_ms: u64) -> Vec<Reading> {
    let interval_ms = before
        .iter()
        .filter_map(Reading::snapshot)
        .map(|s| s.sample_interval_ms)
        .max()
        .unwrap_or(1000);
    let deadline = Instant::now() + Duration::from_millis(2 * interval_ms + 1000);
    loop {
        let readings = stats::poll(agents, STATS_TIMEOUT).await;
        let fresh = readings.iter().all(|r| {
            r.snapshot()
                .is_none_or(|s| s.sampled_at_unix_ms > since_unix_ms)
        });
        if fresh || Instant::now() >= deadline {
            if !fresh {
                tracing::warn!("some agents did not sample again in time; their counts may lag");
            }
            return readings;
        }
        tokio::time::sleep(FRESH_POLL).await;
    }
}

/// Writes `results.json`, `results.csv` and the plots into `dir` (created if needed); returns
/// the files written.
pub(crate) fn write(results: &Results, dir: &Path) -> Result<Vec<PathBuf>, Error> {
    std::fs::create_dir_all(dir).map_err(|source| state::StateError::Io {
        action: "creating",
        path: dir.to_owned(),
        source,
    })?;
    let json = dir.join("results.json");
    state::write_atomic(&json, results.json().as_bytes(), 0o644)?;
    let csv = dir.join("results.csv");
    state::write_atomic(&csv, results.csv().as_bytes(), 0o644)?;
    let mut written = vec![json, csv];
    written.extend(plot::write_all(results, dir)?);
    Ok(written)
}

/// Writes a comparison of runs into `dir`: `comparison.json` and the `comparison` plot;
/// returns the files written, the JSON first.
pub(crate) fn write_comparison(
    comparison: &via::Comparison,
    dir: &Path,
) -> Result<Vec<PathBuf>, Error> {
    let json = dir.join("comparison.json");
    state::write_atomic(&json, comparison.json().as_bytes(), 0o644)?;
    let mut written = vec![json];
    written.extend(plot::write_comparison(comparison, dir)?);
    Ok(written)
}

/// `YYYYmmddTHHMMSSZ` for seconds since the epoch (UTC, proleptic Gregorian calendar).
pub(crate) fn utc_stamp(unix_secs: u64) -> String {
    let (days, secs) = ((unix_secs / 86_400) as i64, unix_secs % 86_400);
    // Howard Hinnant's days-to-civil algorithm.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}{month:02}{day:02}T{:02}{:02}{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// The key under which the agents count requests to `path`: the path without its query
/// (`/work?us=200` is counted as `/work`).
pub(crate) fn counted_endpoint(path: &str) -> &str {
    path.split_once('?').map_or(path, |(endpoint, _)| endpoint)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agents_count_a_path_without_its_query() {
        assert_eq!(counted_endpoint("/work?us=200"), "/work");
        assert_eq!(counted_endpoint("/cluster1"), "/cluster1");
    }

    #[test]
    fn the_default_directory_name_is_the_utc_time() {
        assert_eq!(utc_stamp(0), "19700101T000000Z");
        assert_eq!(utc_stamp(1_764_080_519), "20251125T142159Z");
        assert_eq!(utc_stamp(951_782_400), "20000229T000000Z");
    }

    fn agent(id: &str, cluster: &str, port: u16) -> Agent {
        Agent {
            id: id.into(),
            cluster: cluster.into(),
            instance_type: "t3.micro".into(),
            addr: Some(std::net::SocketAddr::from(([127, 0, 0, 1], port))),
            state: "running".into(),
        }
    }

    fn template() -> Load {
        Load {
            endpoints: Vec::new(),
            path: String::new(),
            requests: 10,
            concurrency: 2,
            timeout: Duration::from_secs(1),
            schedule: None,
        }
    }

    #[test]
    fn every_cluster_of_the_fleet_is_loaded_on_its_own_path_and_instances() {
        let fleet = [
            agent("i-1", "c1", 1),
            agent("i-2", "c2", 2),
            agent("i-3", "c1", 3),
        ];
        let plan = Plan::new(&fleet, &[], None, &template()).unwrap();
        let c1 = &plan.clusters[0];
        assert_eq!((c1.cluster.as_str(), c1.load.path.as_str()), ("c1", "/c1"));
        let ports: Vec<u16> = c1.load.endpoints.iter().map(|e| e.addr.port()).collect();
        assert_eq!(ports, [1, 3]);
        assert_eq!(c1.agents.len(), 2);
        assert_eq!(plan.clusters[1].cluster, "c2");
    }

    #[test]
    fn a_target_takes_the_load_and_the_fleet_is_still_snapshotted() {
        let fleet = [agent("i-1", "c1", 1)];
        let target = Endpoint::agent("127.0.0.1:9".parse().unwrap());
        let plan = Plan::new(
            &fleet,
            &["c1".into(), "c2".into()],
            Some(("http://127.0.0.1:9".into(), target.clone())),
            &template(),
        )
        .unwrap();
        assert_eq!(
            plan.clusters[0].load.endpoints,
            std::slice::from_ref(&target)
        );
        assert_eq!(plan.clusters[0].agents.len(), 1);
        assert_eq!(plan.clusters[1].load.path, "/c2");
        assert!(plan.clusters[1].agents.is_empty());
    }

    #[test]
    fn nothing_to_load_is_a_usage_error_that_names_the_fix() {
        let err = Plan::new(&[], &[], None, &template()).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(err.to_string().contains("--target"), "{err}");
        let err =
            Plan::new(&[agent("i-1", "c1", 1)], &["c9".into()], None, &template()).unwrap_err();
        assert!(err.to_string().contains("cluster c9"), "{err}");
    }
}
