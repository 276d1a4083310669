//! The bench's results: computed from the load generator's samples and the agents' snapshots,
//! printed as a table per cluster, written as `results.json` (summary and per-second series)
//! and `results.csv` (one row per request).

use std::collections::BTreeMap;

use serde::Serialize;

use super::loadgen::{Run, Sample, UNKNOWN};
use super::timeline::{self, InstanceSeries};
use crate::output::csv_line;
use crate::stats::view::type_counts;
use crate::stats::Reading;

/// Version of `results.json`.
pub(crate) const SCHEMA: u32 = 1;

/// Everything one `elb bench` measured.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Results {
    pub(crate) schema: u32,
    pub(crate) started_at_unix_ms: u64,
    /// `--target` (or the load balancer of `--via`), when the load went through it rather than
    /// to the instances.
    pub(crate) target: Option<String>,
    pub(crate) requests_per_cluster: u64,
    pub(crate) concurrency: usize,
    pub(crate) clusters: Vec<ClusterResult>,
}

/// Latency summary in milliseconds (nearest-rank percentiles over every answered request).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub(crate) struct Latency {
    pub(crate) mean: f64,
    pub(crate) p50: f64,
    pub(crate) p90: f64,
    pub(crate) p99: f64,
    pub(crate) p999: f64,
    pub(crate) max: f64,
}

/// One instance's part in a cluster's run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct InstanceResult {
    /// Instance id as the answers name it (`ec2_instance_id`, else the hostname).
    pub(crate) instance: String,
    /// Its type, when it is one of the fleet's instances.
    pub(crate) instance_type: Option<String>,
    /// Answers that named this instance.
    pub(crate) served: u64,
    /// Requests to the cluster's path the agent counted between the two snapshots.
    pub(crate) agent_counted: Option<u64>,
    /// Requests elb's balancer sent to this instance during the run (its `/status` before and
    /// after), when the load went through it; retries count once per attempt.
    pub(crate) balancer_counted: Option<u64>,
    /// CPU seconds the instance used between the snapshots that bracket the run (its cgroup's
    /// locally, the host's on EC2).
    pub(crate) cpu_secs: Option<f64>,
    /// `cpu_secs` over the run's duration x the instance's capacity, 0-100: its CPU use during
    /// the run, as CloudWatch's `CPUUtilization` would average it (the agents are idle outside
    /// the run, so the snapshots' wider window adds next to nothing).
    pub(crate) cpu_percent: Option<f64>,
    /// Time held back (throttled or stolen) between the snapshots over the run's duration x the
    /// host's cores, 0-100.
    pub(crate) throttled_percent: Option<f64>,
    /// CPU the instance may use, in cores (its quota, else the host's cores).
    pub(crate) cpu_capacity_cores: Option<f64>,
    /// Where the CPU figures come from (`cgroup_v1`, `cgroup_v2`, `host`).
    pub(crate) cpu_source: Option<&'static str>,
    /// The host's busy share over the agent's last interval before the run (an instant
    /// sample, the same for every instance of one host; kept for older readers).
    pub(crate) cpu_percent_before: Option<f64>,
    /// The same, after the run.
    pub(crate) cpu_percent_after: Option<f64>,
    /// Why a snapshot is missing, when one is.
    pub(crate) stats_error: Option<String>,
}

/// Requests elb's balancer has sent to each target so far, by instance id.
pub(crate) type TargetCounts = BTreeMap<String, u64>;

/// One cluster's run.
#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct ClusterResult {
    pub(crate) cluster: String,
    /// When the load began (milliseconds since the epoch, taken just before the connections
    /// open); 0 when unknown.
    pub(crate) started_at_unix_ms: u64,
    pub(crate) path: String,
    pub(crate) requests: u64,
    /// Requests without a 2xx answer (no answer, or another status).
    pub(crate) errors: u64,
    /// Requests without an answer, by reason.
    pub(crate) error_reasons: BTreeMap<String, u64>,
    /// Answers by HTTP status.
    pub(crate) statuses: BTreeMap<u16, u64>,
    pub(crate) elapsed_secs: f64,
    pub(crate) requests_per_sec: f64,
    pub(crate) latency_ms: Latency,
    pub(crate) instances: Vec<InstanceResult>,
    /// Sum of `agent_counted`; equals `requests` when every request reached a fleet agent.
    pub(crate) agents_counted: Option<u64>,
    /// Sum of `balancer_counted`; equals `requests` when the balancer sent each request once.
    pub(crate) balancer_counted: Option<u64>,
    /// Why the balancer's counts are missing, when the load went through it and they are.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) balancer_error: Option<String>,
    /// Second by second, per instance: the client's bins (their `requests` sum to
    /// `requests`) and the agents' intervals.
    pub(crate) timeline: Vec<InstanceSeries>,
    /// When `elb autoscale` scaled the cluster during the run: second by second the offered and
    /// served rates, the p99 and the instance count, and the scaling decisions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) scaling: Option<super::scaling::ScalingRun>,
    /// Per-request samples (in `results.csv`), with their instance names.
    #[serde(skip)]
    pub(crate) samples: Vec<Sample>,
    #[serde(skip)]
    pub(crate) sample_instances: Vec<String>,
}

/// Nearest-rank percentile `q` (0-1] of sorted values.
pub(crate) fn percentile(sorted: &[u32], q: f64) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn latency(samples: &[Sample]) -> Latency {
    let mut us: Vec<u32> = samples
        .iter()
        .filter(|s| s.status != 0)
        .map(|s| s.latency_us)
        .collect();
    us.sort_unstable();
    let ms = |v: u32| f64::from(v) / 1000.0;
    let sum: u64 = us.iter().map(|&v| u64::from(v)).sum();
    Latency {
        mean: if us.is_empty() {
            0.0
        } else {
            sum as f64 / us.len() as f64 / 1000.0
        },
        p50: ms(percentile(&us, 0.50)),
        p90: ms(percentile(&us, 0.90)),
        p99: ms(percentile(&us, 0.99)),
        p999: ms(percentile(&us, 0.999)),
        max: ms(us.last().copied().unwrap_or(0)),
    }
}

/// Requests to `path` an agent counted between two readings, and the CPU it used in between
/// over `run_secs`.
fn agent_side(
    path: &str,
    before: Option<&Reading>,
    after: Option<&Reading>,
    run_secs: f64,
) -> InstanceResult {
    let (b, a) = (
        before.and_then(Reading::snapshot),
        after.and_then(Reading::snapshot),
    );
    let endpoint = super::counted_endpoint(path);
    let count = |s: &proto::StatsSnapshot| s.requests.per_endpoint.get(endpoint).copied();
    let stats_error = [before, after]
        .into_iter()
        .flatten()
        .find_map(|r| r.result.as_ref().err().cloned());
    let cpu = |s: &proto::StatsSnapshot| s.instance.as_ref().map(|i| i.cpu.clone());
    let run = match (b.and_then(cpu), a.and_then(cpu)) {
        (Some(b), Some(a)) if run_secs > 0.0 => Some((a.over(&b, run_secs), a)),
        _ => None,
    };
    InstanceResult {
        instance: String::new(),
        instance_type: after.or(before).map(|r| r.agent.instance_type.clone()),
        served: 0,
        balancer_counted: None,
        agent_counted: match (b, a) {
            (Some(b), Some(a)) => Some(count(a).unwrap_or(0).saturating_sub(count(b).unwrap_or(0))),
            _ => None,
        },
        cpu_secs: run.as_ref().map(|(w, _)| w.usage_secs),
        cpu_percent: run.as_ref().map(|(w, _)| w.usage_percent),
        throttled_percent: run.as_ref().map(|(w, _)| w.throttled_percent),
        cpu_capacity_cores: run.as_ref().map(|(_, a)| a.capacity_cores),
        cpu_source: run.as_ref().map(|(_, a)| a.source.name()),
        cpu_percent_before: b.map(|s| s.cpu.busy_percent),
        cpu_percent_after: a.map(|s| s.cpu.busy_percent),
        stats_error,
    }
}

impl ClusterResult {
    /// The result of one cluster's run; `before` and `after` are readings of the cluster's
    /// agents (empty without a fleet), matched to the answers by instance id.
    pub(crate) fn new(
        cluster: &str,
        path: &str,
        run: Run,
        before: &[Reading],
        after: &[Reading],
    ) -> Self {
        let elapsed_secs = run.elapsed.as_secs_f64();
        let mut instances: Vec<InstanceResult> = before
            .iter()
            .map(|b| {
                let a = after.iter().find(|a| a.agent.id == b.agent.id);
                InstanceResult {
                    instance: b.agent.id.clone(),
                    ..agent_side(path, Some(b), a, elapsed_secs)
                }
            })
            .collect();
        for (index, name) in run.instances.iter().enumerate() {
            let served = run
                .samples
                .iter()
                .filter(|s| s.served_by == index as u32)
                .count() as u64;
            match instances.iter_mut().find(|i| &i.instance == name) {
                Some(row) => row.served = served,
                None => instances.push(InstanceResult {
                    instance: name.clone(),
                    served,
                    ..agent_side(path, None, None, elapsed_secs)
                }),
            }
        }
        let mut statuses = BTreeMap::new();
        for s in run.samples.iter().filter(|s| s.status != 0) {
            *statuses.entry(s.status).or_default() += 1;
        }
        let requests = run.samples.len() as u64;
        let timeline = timeline::client_series(&run.samples, &run.instances, |name| {
            before
                .iter()
                .find(|r| r.agent.id == name)
                .map(|r| r.agent.instance_type.clone())
        });
        let agents_counted =
            (!before.is_empty()).then(|| instances.iter().filter_map(|i| i.agent_counted).sum());
        Self {
            cluster: cluster.to_owned(),
            started_at_unix_ms: 0,
            path: path.to_owned(),
            requests,
            errors: run.samples.iter().filter(|s| !s.ok()).count() as u64,
            error_reasons: run.errors,
            statuses,
            elapsed_secs,
            requests_per_sec: if elapsed_secs > 0.0 {
                requests as f64 / elapsed_secs
            } else {
                0.0
            },
            latency_ms: latency(&run.samples),
            instances,
            agents_counted,
            balancer_counted: None,
            balancer_error: None,
            timeline,
            scaling: None,
            samples: run.samples,
            sample_instances: run.instances,
        }
    }

    /// Adds the agents' side of the timeline: `polls` are every poll of the cluster's agents
    /// in the order taken (before, during and after the run), the run began at
    /// `started_at_unix_ms`. An agent that served nothing gets a series of its own.
    pub(crate) fn with_agent_series(
        mut self,
        started_at_unix_ms: u64,
        polls: &[&[Reading]],
    ) -> Self {
        self.started_at_unix_ms = started_at_unix_ms;
        for agent in polls
            .first()
            .map_or(&[][..], |p| *p)
            .iter()
            .map(|r| &r.agent)
        {
            let intervals =
                timeline::agent_intervals(&agent.id, &self.path, polls, started_at_unix_ms);
            match self
                .timeline
                .iter_mut()
                .find(|s| s.instance.as_deref() == Some(agent.id.as_str()))
            {
                Some(series) => series.agent = intervals,
                None => self.timeline.push(InstanceSeries {
                    instance: Some(agent.id.clone()),
                    instance_type: Some(agent.instance_type.clone()),
                    client: Vec::new(),
                    agent: intervals,
                }),
            }
        }
        self
    }

    /// `2 x m4.large`: the cluster's instance types, from its instances that have one.
    pub(crate) fn instance_types(&self) -> String {
        type_counts(
            self.instances
                .iter()
                .filter_map(|i| i.instance_type.as_deref()),
        )
    }

    /// The same result with the balancer's per-target counts (`Ok((before, after))`, by
    /// instance id) as the third count of each instance, or why they could not be read.
    pub(crate) fn with_balancer_counts(
        mut self,
        counts: Result<(TargetCounts, TargetCounts), String>,
    ) -> Self {
        let (before, after) = match counts {
            Ok(counts) => counts,
            Err(why) => {
                self.balancer_error = Some(why);
                return self;
            }
        };
        for (id, n) in &after {
            let delta = n.saturating_sub(before.get(id).copied().unwrap_or(0));
            match self.instances.iter_mut().find(|i| &i.instance == id) {
                Some(row) => row.balancer_counted = Some(delta),
                None if delta > 0 => self.instances.push(InstanceResult {
                    instance: id.clone(),
                    balancer_counted: Some(delta),
                    ..agent_side(&self.path, None, None, self.elapsed_secs)
                }),
                None => {}
            }
        }
        for row in &mut self.instances {
            row.balancer_counted.get_or_insert(0);
        }
        self.balancer_counted = Some(
            self.instances
                .iter()
                .filter_map(|i| i.balancer_counted)
                .sum(),
        );
        self
    }

    /// The terminal report: a summary line, then a table per instance.
    pub(crate) fn table(&self) -> String {
        let l = &self.latency_ms;
        let mut out = format!(
            "{} ({}{}): {} requests in {:.2} s = {:.0} req/s, {} errors; latency ms p50 {:.2}, \
             p90 {:.2}, p99 {:.2}, max {:.2}\n",
            self.cluster,
            self.path,
            match self.instance_types() {
                t if t.is_empty() => String::new(),
                t => format!(", {t}"),
            },
            self.requests,
            self.elapsed_secs,
            self.requests_per_sec,
            self.errors,
            l.p50,
            l.p90,
            l.p99,
            l.max
        );
        for (reason, n) in &self.error_reasons {
            out.push_str(&format!("  {n} x {reason}\n"));
        }
        for (who, counted) in [
            ("agents", self.agents_counted),
            ("balancer", self.balancer_counted),
        ] {
            if let Some(counted) = counted {
                let verdict = if counted == self.requests { "=" } else { "!=" };
                out.push_str(&format!(
                    "{who} counted {counted} {verdict} requests sent\n"
                ));
            }
        }
        if let Some(why) = &self.balancer_error {
            out.push_str(&format!("balancer counts unavailable: {why}\n"));
        }
        let through_balancer = self.balancer_counted.is_some();
        let mut table = crate::output::table(
            [
                "instance",
                "served (client)",
                "balancer counted",
                "agent counted",
                "CPU s",
                "CPU % (of capacity)",
                "throttled %",
                "capacity",
            ]
            .into_iter()
            .filter(|h| through_balancer || *h != "balancer counted"),
        );
        let num = |v: Option<f64>| v.map_or_else(|| "-".into(), |v| format!("{v:.1}"));
        for i in &self.instances {
            let mut row = vec![
                match &i.instance_type {
                    Some(t) => format!("{} ({t})", i.instance),
                    None => i.instance.clone(),
                },
                i.served.to_string(),
            ];
            if through_balancer {
                row.push(i.balancer_counted.unwrap_or(0).to_string());
            }
            row.extend([
                match (&i.agent_counted, &i.stats_error) {
                    (Some(n), _) => n.to_string(),
                    (None, Some(e)) => format!("- ({e})"),
                    (None, None) => "-".into(),
                },
                i.cpu_secs.map_or_else(|| "-".into(), |v| format!("{v:.2}")),
                num(i.cpu_percent),
                num(i.throttled_percent),
                match (i.cpu_capacity_cores, i.cpu_source) {
                    (Some(cores), Some(source)) => format!("{cores:.2} cores ({source})"),
                    _ => "-".into(),
                },
            ]);
            table.add_row(row);
        }
        out.push_str(&table.to_string());
        out
    }
}

impl Results {
    /// `results.json`.
    pub(crate) fn json(&self) -> String {
        serde_json::to_string_pretty(self).expect("results serialize")
    }

    /// `results.csv`: one line per request, `cluster,start_us,latency_us,status,instance`
    /// (`status` 0 and an empty instance for a request that got no answer).
    pub(crate) fn csv(&self) -> String {
        let mut out = csv_line(["cluster", "start_us", "latency_us", "status", "instance"]);
        out.push('\n');
        for c in &self.clusters {
            let mut samples = c.samples.clone();
            samples.sort_unstable_by_key(|s| s.start_us);
            for s in samples {
                let instance = match s.served_by {
                    UNKNOWN => "",
                    i => &c.sample_instances[i as usize],
                };
                out.push_str(&csv_line([
                    c.cluster.as_str(),
                    &s.start_us.to_string(),
                    &s.latency_us.to_string(),
                    &s.status.to_string(),
                    instance,
                ]));
                out.push('\n');
            }
        }
        out
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::stats::view::tests::{snapshot, with_instance};
    use crate::stats::Agent;
    use std::time::Duration;

    fn sample(latency_us: u32, status: u16, served_by: u32) -> Sample {
        Sample {
            start_us: u64::from(latency_us),
            latency_us,
            status,
            served_by,
        }
    }

    fn reading(id: &str, counted: u64, cpu: f64) -> Reading {
        let uptime = cpu / 10.0;
        Reading {
            agent: Agent {
                id: id.into(),
                cluster: "cluster1".into(),
                instance_type: "t3.micro".into(),
                addr: None,
                state: "running".into(),
            },
            // The instance's counters: CPU seconds used = uptime / 5 (all in the run).
            result: Ok(with_instance(
                snapshot(counted, 0, cpu),
                uptime,
                uptime / 5.0,
                0.0,
            )),
        }
    }

    /// A run of [`cluster`] alone.
    pub(crate) fn results() -> Results {
        Results {
            schema: SCHEMA,
            started_at_unix_ms: 1,
            target: None,
            requests_per_cluster: 100,
            concurrency: 4,
            clusters: vec![cluster()],
        }
    }

    /// 100 requests: 60 served by i-1, 39 by i-2, one refused; agents counted the same.
    pub(crate) fn cluster() -> ClusterResult {
        let mut samples: Vec<Sample> = (1..=60).map(|ms| sample(ms * 1000, 200, 0)).collect();
        samples.extend((61..=99).map(|ms| sample(ms * 1000, 200, 1)));
        samples.push(sample(5, 0, UNKNOWN));
        let run = Run {
            samples,
            instances: vec!["i-2".into(), "i-1".into()],
            errors: [("connection refused".to_owned(), 1)].into(),
            elapsed: Duration::from_millis(500),
        };
        let before = [reading("i-1", 10, 5.0), reading("i-2", 0, 6.0)];
        let after = [reading("i-1", 49, 50.0), reading("i-2", 60, 60.0)];
        ClusterResult::new("cluster1", "/cluster1", run, &before, &after)
    }

    #[test]
    fn the_balancers_counts_are_deltas_per_instance_and_a_third_column() {
        let before = [("i-1".to_owned(), 5), ("i-2".to_owned(), 0)].into();
        let after = [
            ("i-1".to_owned(), 44),
            ("i-2".to_owned(), 60),
            ("i-3".to_owned(), 0),
        ]
        .into();
        let c = cluster().with_balancer_counts(Ok((before, after)));
        let counted: Vec<(&str, Option<u64>)> = c
            .instances
            .iter()
            .map(|i| (i.instance.as_str(), i.balancer_counted))
            .collect();
        assert_eq!(counted, [("i-1", Some(39)), ("i-2", Some(60))]);
        assert_eq!(c.balancer_counted, Some(99));
        let table = c.table();
        assert!(
            table.contains("balancer counted 99 != requests sent"),
            "{table}"
        );
        assert!(table.contains("┆ balancer counted ┆"), "{table}");
        assert!(!cluster().table().contains("balancer counted"));

        let failed = cluster().with_balancer_counts(Err("timed out".into()));
        assert_eq!(failed.balancer_counted, None);
        assert!(failed
            .table()
            .contains("balancer counts unavailable: timed out"));
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let v: Vec<u32> = (1..=100).collect();
        assert_eq!(percentile(&v, 0.5), 50);
        assert_eq!(percentile(&v, 0.99), 99);
        assert_eq!(percentile(&v, 1.0), 100);
        assert_eq!(percentile(&[7], 0.99), 7);
        assert_eq!(percentile(&[], 0.5), 0);
    }

    #[test]
    fn answers_and_agent_counters_are_matched_by_instance() {
        let c = cluster();
        assert_eq!((c.requests, c.errors), (100, 1));
        assert_eq!(c.requests_per_sec, 200.0);
        assert_eq!(c.statuses[&200], 99);
        let l = c.latency_ms;
        assert_eq!((l.p50, l.p90, l.p99, l.max), (50.0, 90.0, 99.0, 99.0));
        let i1 = &c.instances[0];
        assert_eq!(i1.instance, "i-1");
        assert_eq!((i1.served, i1.agent_counted), (39, Some(39)));
        assert_eq!(
            (i1.cpu_percent_before, i1.cpu_percent_after),
            (Some(5.0), Some(50.0))
        );
        assert_eq!(c.instances[1].served, 60);
        assert_eq!(c.agents_counted, Some(99));
        // i-1 used 1.0 - 0.1 = 0.9 CPU seconds in the 0.5 s run, of a 0.2-core quota.
        assert!((i1.cpu_secs.unwrap() - 0.9).abs() < 1e-9, "{i1:?}");
        assert!((i1.cpu_percent.unwrap() - 900.0).abs() < 1e-6, "{i1:?}");
        assert_eq!(i1.throttled_percent, Some(0.0));
        assert_eq!(i1.instance_type.as_deref(), Some("t3.micro"));
        assert_eq!(c.instance_types(), "2 x t3.micro");
        let text = c.table();
        assert!(
            text.contains("agents counted 99 != requests sent"),
            "{text}"
        );
        assert!(text.contains("1 x connection refused"), "{text}");
        assert!(text.contains("i-1 (t3.micro)"), "{text}");
        assert!(text.contains("0.20 cores (cgroup_v1)"), "{text}");
    }

    #[test]
    fn the_timeline_has_every_request_once_and_each_agents_intervals() {
        let c = cluster();
        let total: u64 = c
            .timeline
            .iter()
            .flat_map(|s| &s.client)
            .map(|b| b.requests)
            .sum();
        assert_eq!(total, c.requests);
        let before = [reading("i-1", 10, 5.0), reading("i-2", 0, 6.0)];
        let after = [reading("i-1", 49, 50.0), reading("i-2", 60, 60.0)];
        let c = c.with_agent_series(7, &[&before, &after]);
        assert_eq!(c.started_at_unix_ms, 7);
        let i1 = c
            .timeline
            .iter()
            .find(|s| s.instance.as_deref() == Some("i-1"))
            .unwrap();
        assert_eq!(i1.instance_type.as_deref(), Some("t3.micro"));
        // Both snapshots were taken at the same time: no interval between them.
        assert!(i1.agent.is_empty());
    }

    #[test]
    fn json_has_a_schema_and_csv_a_row_per_request() {
        let results = results();
        let json: serde_json::Value = serde_json::from_str(&results.json()).unwrap();
        assert_eq!(json["schema"], 1);
        assert_eq!(json["clusters"][0]["latency_ms"]["p99"], 99.0);
        assert_eq!(json["clusters"][0]["instances"][1]["served"], 60);
        assert!(json["clusters"][0].get("samples").is_none());
        let csv = results.csv();
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines.len(), 101);
        assert_eq!(lines[0], "cluster,start_us,latency_us,status,instance");
        assert_eq!(
            lines[1], "cluster1,5,5,0,",
            "the refused request, first sent"
        );
        assert_eq!(lines[2], "cluster1,1000,1000,200,i-2");
    }
}
