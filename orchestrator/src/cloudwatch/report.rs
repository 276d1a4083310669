//! AWS's measurements of a bench run (`elb report --cloudwatch DIR`): each instance's
//! `CPUUtilization` (the hypervisor's view) over the run's window beside the agent's
//! instance-true CPU, the CPU credits of burstable types, and for a run through the project's
//! ALB its `RequestCount`, 5XX counts, rejected connections and `TargetResponseTime` p50/p99 (as
//! extended statistics), per load balancer and per target group.
//!
//! CloudWatch publishes EC2's figures a minute or more after the fact (every 5 minutes without
//! detailed monitoring): the report waits, up to `wait`, until every instance has a datapoint at
//! the end of the run, and says what is still missing when it stops waiting. A missing
//! datapoint is reported as missing, never as 0; so are percentiles CloudWatch would not give
//! and a call CloudWatch throttled past the client's retries.
//!
//! The agent and CloudWatch are said to disagree when their CPU figures for an instance differ
//! by more than [`AGREEMENT_POINTS`] percentage points over a window both cover: the agent
//! measures the run itself, CloudWatch averages whole periods, so a run shorter than
//! CloudWatch's period is compared with the idle time around it and is not judged.

use std::time::Duration;

use serde::Serialize;

use crate::cloud::ec2::cloudwatch::{MetricQuery, MetricSeries};
use crate::cloud::ec2::Ec2;
use crate::progress::Progress;
use crate::Error;

/// Percentage points of CPU by which the agent and CloudWatch may differ before the report says
/// they disagree: CloudWatch's `CPUUtilization` counts the hypervisor's view of the instance's
/// vCPUs, the agent the host's `/proc/stat` or its cgroup, so a few points apart is normal.
pub const AGREEMENT_POINTS: f64 = 10.0;
/// The period asked of CloudWatch: detailed monitoring's.
const PERIOD: u64 = 60;
/// Basic monitoring's period, at which CPU credits are published too.
const BASIC_PERIOD: u64 = 300;

/// The part of a bench run (`results.json`) the report needs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunWindow {
    /// When the first cluster's load began and the last one's ended, seconds since the epoch.
    pub start: u64,
    pub end: u64,
    /// Requests sent in all.
    pub requests: u64,
    /// Where the load went (the ALB's or balancer's address), when not to the instances.
    pub target: Option<String>,
    /// The EC2 instances that served, with the agent's CPU figure.
    pub instances: Vec<RunInstance>,
}

/// An instance of a run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunInstance {
    pub id: String,
    pub instance_type: Option<String>,
    pub agent_cpu_percent: Option<f64>,
}

impl RunWindow {
    /// Reads a bench's `results.json`; the error says what is missing.
    pub fn parse(json: &str) -> Result<Self, String> {
        let results: serde_json::Value =
            serde_json::from_str(json).map_err(|e| format!("not JSON: {e}"))?;
        let clusters = results["clusters"]
            .as_array()
            .filter(|c| !c.is_empty())
            .ok_or("no clusters: is it an `elb bench` results.json?")?;
        let mut start = u64::MAX;
        let mut end = 0;
        let mut requests = 0;
        let mut instances: Vec<RunInstance> = Vec::new();
        for cluster in clusters {
            let began = cluster["started_at_unix_ms"].as_u64().unwrap_or(0) / 1000;
            if began == 0 {
                return Err("a cluster without started_at_unix_ms (an older bench)".into());
            }
            let elapsed = cluster["elapsed_secs"].as_f64().unwrap_or(0.0);
            start = start.min(began);
            end = end.max(began + elapsed.ceil() as u64);
            requests += cluster["requests"].as_u64().unwrap_or(0);
            for instance in cluster["instances"].as_array().into_iter().flatten() {
                let Some(id) = instance["instance"]
                    .as_str()
                    .filter(|i| i.starts_with("i-"))
                else {
                    continue;
                };
                if instances.iter().any(|i| i.id == id) {
                    continue;
                }
                instances.push(RunInstance {
                    id: id.to_owned(),
                    instance_type: instance["instance_type"].as_str().map(str::to_owned),
                    agent_cpu_percent: instance["cpu_percent"].as_f64(),
                });
            }
        }
        Ok(Self {
            start,
            end: end.max(start + 1),
            requests,
            target: results["target"].as_str().map(str::to_owned),
            instances,
        })
    }

    /// The window asked of CloudWatch: whole minutes around the run.
    fn query_window(&self) -> (u64, u64) {
        let start = self.start / PERIOD * PERIOD;
        let end = self.end.div_ceil(PERIOD) * PERIOD;
        (start, end.max(start + PERIOD))
    }
}

/// What CloudWatch says of one instance.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InstanceFigures {
    pub id: String,
    pub instance_type: Option<String>,
    pub agent_cpu_percent: Option<f64>,
    /// The mean of CloudWatch's `CPUUtilization` datapoints in the run's window.
    pub cloudwatch_cpu_percent: Option<f64>,
    /// The seconds each of those datapoints averages (60 with detailed monitoring, 300 without).
    pub cloudwatch_period_secs: Option<u64>,
    /// CloudWatch's figure minus the agent's, in percentage points.
    pub difference_points: Option<f64>,
    /// Whether they differ by more than [`AGREEMENT_POINTS`] over comparable windows.
    pub disagrees: bool,
    /// Burstable types: the credit balance at the end, and surplus credits charged in the
    /// window.
    pub cpu_credit_balance: Option<f64>,
    pub cpu_surplus_credits_charged: Option<f64>,
    /// Why a figure is missing or not judged.
    pub note: Option<String>,
}

/// What CloudWatch says of the ALB the run went through.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AlbFigures {
    /// Its CloudWatch dimension, `app/<name>/<id>`.
    pub load_balancer: String,
    pub request_count: Option<f64>,
    /// The requests the bench sent, to compare.
    pub bench_requests: u64,
    pub elb_5xx: Option<f64>,
    pub target_5xx: Option<f64>,
    pub rejected_connections: Option<f64>,
    pub target_response_time_p50_ms: Option<f64>,
    pub target_response_time_p99_ms: Option<f64>,
    pub target_groups: Vec<TargetGroupFigures>,
    /// Why a figure is missing (e.g. percentiles CloudWatch would not give).
    pub notes: Vec<String>,
}

/// One target group's share of the ALB's figures.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TargetGroupFigures {
    /// Its CloudWatch dimension, `targetgroup/<name>/<id>`.
    pub target_group: String,
    pub request_count: Option<f64>,
    pub target_5xx: Option<f64>,
    pub target_response_time_p99_ms: Option<f64>,
}

/// AWS's view of a run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CloudReport {
    pub window: RunWindow,
    pub instances: Vec<InstanceFigures>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alb: Option<AlbFigures>,
    /// What the whole report should be read with (a short run, data still missing).
    pub notes: Vec<String>,
}

/// The ALB a run went through: its dimension and its target groups' dimensions.
#[derive(Debug, Clone)]
pub struct Alb {
    pub load_balancer: String,
    pub target_groups: Vec<String>,
}

impl Alb {
    /// The project's ALB when `window`'s load went through it (its address names the load
    /// balancer), from `(arn, name)` pairs of its load balancers and target groups.
    pub fn of_run(
        window: &RunWindow,
        load_balancers: &[(String, String)],
        target_groups: &[(String, String)],
    ) -> Option<Self> {
        let target = window.target.as_deref()?;
        let (arn, _) = load_balancers
            .iter()
            .find(|(_, name)| target.contains(name.as_str()))?;
        Some(Self {
            load_balancer: arn.split_once("loadbalancer/")?.1.to_owned(),
            target_groups: target_groups
                .iter()
                .filter_map(|(arn, _)| arn.rsplit(':').next().map(str::to_owned))
                .collect(),
        })
    }
}

/// The queries of a report: the plain statistics, then the percentiles apart, since CloudWatch
/// may refuse those where it gives the rest.
fn queries(window: &RunWindow, alb: Option<&Alb>) -> (Vec<MetricQuery>, Vec<MetricQuery>) {
    /// One query a `(id, metric, statistic, period)`, the id suffixed with `n`.
    fn each(
        namespace: &'static str,
        dimensions: &[(&'static str, String)],
        n: Option<usize>,
        wanted: &[(&str, &'static str, &str, u64)],
    ) -> Vec<MetricQuery> {
        wanted
            .iter()
            .map(|&(id, metric, stat, period_secs)| MetricQuery {
                id: n.map_or_else(|| id.to_owned(), |n| format!("{id}{n}")),
                namespace,
                metric,
                dimensions: dimensions.to_vec(),
                stat: stat.to_owned(),
                period_secs,
            })
            .collect()
    }
    let mut plain = Vec::new();
    for (n, instance) in window.instances.iter().enumerate() {
        let dims = [("InstanceId", instance.id.clone())];
        plain.extend(each(
            "AWS/EC2",
            &dims,
            Some(n),
            &[("cpu", "CPUUtilization", "Average", PERIOD)],
        ));
        if instance.instance_type.as_deref().is_some_and(is_burstable) {
            plain.extend(each(
                "AWS/EC2",
                &dims,
                Some(n),
                &[
                    ("credits", "CPUCreditBalance", "Average", BASIC_PERIOD),
                    ("surplus", "CPUSurplusCreditsCharged", "Sum", BASIC_PERIOD),
                ],
            ));
        }
    }
    let mut percentiles = Vec::new();
    if let Some(alb) = alb {
        const ELB: &str = "AWS/ApplicationELB";
        let (start, end) = window.query_window();
        // One datapoint over the whole window: the run's percentiles, not minutes' ones.
        let whole = end - start;
        let lb = [("LoadBalancer", alb.load_balancer.clone())];
        plain.extend(each(
            ELB,
            &lb,
            None,
            &[
                ("albrequests", "RequestCount", "Sum", PERIOD),
                ("albelb5xx", "HTTPCode_ELB_5XX_Count", "Sum", PERIOD),
                ("albtarget5xx", "HTTPCode_Target_5XX_Count", "Sum", PERIOD),
                ("albrejected", "RejectedConnectionCount", "Sum", PERIOD),
            ],
        ));
        percentiles.extend(each(
            ELB,
            &lb,
            None,
            &[
                ("albp50", "TargetResponseTime", "p50", whole),
                ("albp99", "TargetResponseTime", "p99", whole),
            ],
        ));
        for (n, group) in alb.target_groups.iter().enumerate() {
            let dims = [
                ("TargetGroup", group.clone()),
                ("LoadBalancer", alb.load_balancer.clone()),
            ];
            plain.extend(each(
                ELB,
                &dims,
                Some(n),
                &[
                    ("tgrequests", "RequestCount", "Sum", PERIOD),
                    ("tg5xx", "HTTPCode_Target_5XX_Count", "Sum", PERIOD),
                ],
            ));
            percentiles.extend(each(
                ELB,
                &dims,
                Some(n),
                &[("tgp99", "TargetResponseTime", "p99", whole)],
            ));
        }
    }
    (plain, percentiles)
}

/// T2, T3, T3a and T4g instances earn and spend CPU credits.
fn is_burstable(instance_type: &str) -> bool {
    ["t2.", "t3.", "t3a.", "t4g."]
        .iter()
        .any(|family| instance_type.starts_with(family))
}

/// Asks CloudWatch for `window`'s figures (and `alb`'s), waiting up to `wait` (asking every
/// `poll`) until every instance has a CPU datapoint at the run's end.
pub async fn report(
    ec2: &Ec2,
    window: &RunWindow,
    alb: Option<&Alb>,
    wait: Duration,
    poll: Duration,
) -> Result<CloudReport, Error> {
    let (start, end) = window.query_window();
    let (plain, percentiles) = queries(window, alb);
    let deadline = tokio::time::Instant::now() + wait;
    let total = window.instances.len();
    let mut progress = (!wait.is_zero() && total > 0)
        .then(|| Progress::new("waiting for CloudWatch", "published", total));
    let series = loop {
        let series = ec2.metric_data(&plain, start, end).await?;
        let published = window
            .instances
            .iter()
            .enumerate()
            .filter(|(n, _)| covers_end(&series, &format!("cpu{n}"), window.end))
            .count();
        if let Some(progress) = &mut progress {
            progress.update(published, total);
        }
        if published == total || tokio::time::Instant::now() + poll > deadline {
            break series;
        }
        tokio::time::sleep(poll).await;
    };
    if let Some(progress) = progress {
        progress.finish();
    }
    let percentiles = if percentiles.is_empty() {
        Ok(Vec::new())
    } else {
        ec2.metric_data(&percentiles, start, end)
            .await
            .map_err(|e| e.to_string())
    };
    Ok(assemble(window, alb, &series, percentiles))
}

/// Whether the series `id` has a datapoint in the period that holds `end` (or later): the
/// period is the spacing of its last two datapoints (60 s with detailed monitoring, 300 s
/// without), basic monitoring's when there is one datapoint.
fn covers_end(series: &[MetricSeries], id: &str, end: u64) -> bool {
    let Some(points) = series.iter().find(|s| s.id == id).map(|s| &s.points) else {
        return false;
    };
    let period = match &points[..] {
        [.., (before, _), (last, _)] => last - before,
        _ => BASIC_PERIOD,
    };
    points.last().is_some_and(|(t, _)| t + period > end)
}

/// The report from CloudWatch's answers.
fn assemble(
    window: &RunWindow,
    alb: Option<&Alb>,
    series: &[MetricSeries],
    percentiles: Result<Vec<MetricSeries>, String>,
) -> CloudReport {
    let points = |id: &str| -> &[(u64, f64)] {
        series
            .iter()
            .find(|s| s.id == id)
            .map_or(&[][..], |s| s.points.as_slice())
    };
    let sum = |id: &str| {
        let p = points(id);
        (!p.is_empty()).then(|| p.iter().map(|(_, v)| v).sum::<f64>())
    };
    let elapsed = window.end - window.start;
    let mut notes = Vec::new();
    if elapsed < PERIOD {
        notes.push(format!(
            "the run lasted {elapsed} s, less than CloudWatch's shortest EC2 period ({PERIOD} \
             s): its figures average the run with the idle time around it"
        ));
    }
    let instances: Vec<InstanceFigures> = window
        .instances
        .iter()
        .enumerate()
        .map(|(n, instance)| {
            let cpu = points(&format!("cpu{n}"));
            let period = match cpu {
                [] => None,
                [_] => Some(if elapsed >= BASIC_PERIOD {
                    PERIOD
                } else {
                    BASIC_PERIOD
                }),
                [a, b, ..] => Some(b.0 - a.0),
            };
            let mean = (!cpu.is_empty())
                .then(|| cpu.iter().map(|(_, v)| v).sum::<f64>() / cpu.len() as f64);
            let difference = mean.zip(instance.agent_cpu_percent).map(|(c, a)| c - a);
            let comparable = period.is_some_and(|p| elapsed >= p);
            let disagrees = comparable && difference.is_some_and(|d| d.abs() > AGREEMENT_POINTS);
            let note = match (mean, period) {
                (None, _) => Some(
                    "no CloudWatch datapoint yet (EC2 publishes a minute or more after, every 5 \
                     minutes without detailed monitoring): run `elb report --cloudwatch` again \
                     later"
                        .to_owned(),
                ),
                (Some(_), Some(p)) if !comparable => Some(format!(
                    "CloudWatch's {p}-second period is longer than the {elapsed}-second run: \
                     not compared"
                )),
                _ if disagrees => Some(format!(
                    "the agent and CloudWatch differ by more than {AGREEMENT_POINTS} points"
                )),
                _ => None,
            };
            InstanceFigures {
                id: instance.id.clone(),
                instance_type: instance.instance_type.clone(),
                agent_cpu_percent: instance.agent_cpu_percent,
                cloudwatch_cpu_percent: mean,
                cloudwatch_period_secs: period,
                difference_points: difference,
                disagrees,
                cpu_credit_balance: points(&format!("credits{n}")).last().map(|(_, v)| *v),
                cpu_surplus_credits_charged: sum(&format!("surplus{n}")),
                note,
            }
        })
        .collect();
    let missing = instances
        .iter()
        .filter(|i| i.cloudwatch_cpu_percent.is_none())
        .count();
    if missing > 0 {
        notes.push(format!(
            "{missing} of {} instances have no CPU datapoint in the window yet",
            instances.len()
        ));
    }
    let alb = alb.map(|alb| {
        let mut alb_notes = Vec::new();
        let (p50, p99, groups_p99) = match &percentiles {
            Ok(series) => {
                let one = |id: &str| {
                    series
                        .iter()
                        .find(|s| s.id == id)
                        .and_then(|s| s.points.first())
                        .map(|(_, v)| v * 1000.0)
                };
                let groups: Vec<Option<f64>> = (0..alb.target_groups.len())
                    .map(|n| one(&format!("tgp99{n}")))
                    .collect();
                (one("albp50"), one("albp99"), groups)
            }
            Err(why) => {
                alb_notes.push(format!("TargetResponseTime percentiles unavailable: {why}"));
                (None, None, vec![None; alb.target_groups.len()])
            }
        };
        let request_count = sum("albrequests");
        if request_count.is_none() {
            alb_notes.push("no RequestCount datapoint yet".to_owned());
        }
        AlbFigures {
            load_balancer: alb.load_balancer.clone(),
            request_count,
            bench_requests: window.requests,
            elb_5xx: sum("albelb5xx"),
            target_5xx: sum("albtarget5xx"),
            rejected_connections: sum("albrejected"),
            target_response_time_p50_ms: p50,
            target_response_time_p99_ms: p99,
            target_groups: alb
                .target_groups
                .iter()
                .enumerate()
                .map(|(n, group)| TargetGroupFigures {
                    target_group: group.clone(),
                    request_count: sum(&format!("tgrequests{n}")),
                    target_5xx: sum(&format!("tg5xx{n}")),
                    target_response_time_p99_ms: groups_p99[n],
                })
                .collect(),
            notes: alb_notes,
        }
    });
    CloudReport {
        window: window.clone(),
        instances,
        alb,
        notes,
    }
}

impl CloudReport {
    /// For people: a table of instances, the ALB's figures, then the notes.
    pub fn table(&self) -> String {
        let figure = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.1}"));
        let mut out = format!(
            "{:<21} {:<11} {:>9} {:>14} {:>6} {:>8} {:>8}  note\n",
            "instance", "type", "agent %", "CloudWatch %", "diff", "credits", "surplus"
        );
        for i in &self.instances {
            out.push_str(&format!(
                "{:<21} {:<11} {:>9} {:>14} {:>6} {:>8} {:>8}  {}\n",
                i.id,
                i.instance_type.as_deref().unwrap_or("-"),
                figure(i.agent_cpu_percent),
                figure(i.cloudwatch_cpu_percent),
                figure(i.difference_points),
                figure(i.cpu_credit_balance),
                figure(i.cpu_surplus_credits_charged),
                i.note.as_deref().unwrap_or("")
            ));
        }
        if let Some(alb) = &self.alb {
            out.push_str(&format!(
                "ALB {}: RequestCount {} (the bench sent {}), ELB 5XX {}, target 5XX {}, \
                 rejected connections {}, TargetResponseTime p50 {} ms, p99 {} ms\n",
                alb.load_balancer,
                figure(alb.request_count),
                alb.bench_requests,
                figure(alb.elb_5xx),
                figure(alb.target_5xx),
                figure(alb.rejected_connections),
                figure(alb.target_response_time_p50_ms),
                figure(alb.target_response_time_p99_ms),
            ));
            for g in &alb.target_groups {
                out.push_str(&format!(
                    "  {}: RequestCount {}, target 5XX {}, p99 {} ms\n",
                    g.target_group,
                    figure(g.request_count),
                    figure(g.target_5xx),
                    figure(g.target_response_time_p99_ms)
                ));
            }
            for note in &alb.notes {
                out.push_str(&format!("  note: {note}\n"));
            }
        }
        for note in &self.notes {
            out.push_str(&format!("note: {note}\n"));
        }
        out.truncate(out.trim_end().len());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(elapsed: u64) -> RunWindow {
        RunWindow {
            start: 6_000,
            end: 6_000 + elapsed,
            requests: 300,
            target: Some("http://p-alb-1.r.elb.amazonaws.com".into()),
            instances: vec![
                RunInstance {
                    id: "i-1".into(),
                    instance_type: Some("t3.micro".into()),
                    agent_cpu_percent: Some(30.0),
                },
                RunInstance {
                    id: "i-2".into(),
                    instance_type: Some("m5.large".into()),
                    agent_cpu_percent: Some(30.0),
                },
            ],
        }
    }

    fn series(id: &str, points: &[(u64, f64)]) -> MetricSeries {
        MetricSeries {
            id: id.into(),
            points: points.to_vec(),
            complete: true,
        }
    }

    #[test]
    fn results_json_gives_the_window_the_instances_and_their_cpu() {
        let json = r#"{"target": null, "clusters": [
            {"started_at_unix_ms": 6000500, "elapsed_secs": 119.2, "requests": 300,
             "instances": [{"instance": "i-1", "instance_type": "t3.micro", "cpu_percent": 30.5},
                           {"instance": "host-a", "instance_type": null, "cpu_percent": null}]}]}"#;
        let w = RunWindow::parse(json).unwrap();
        assert_eq!((w.start, w.end, w.requests), (6000, 6120, 300));
        assert_eq!(w.instances.len(), 1, "only EC2 instances: {w:?}");
        assert_eq!(w.query_window(), (6000, 6120));
        assert!(RunWindow::parse("{}").unwrap_err().contains("no clusters"));
    }

    #[test]
    fn a_missing_datapoint_is_missing_and_a_disagreement_is_said() {
        let w = window(600);
        let got = [series("cpu0", &[(6000, 80.0), (6060, 80.0)])];
        let report = assemble(&w, None, &got, Ok(Vec::new()));
        let (one, two) = (&report.instances[0], &report.instances[1]);
        assert_eq!(one.cloudwatch_cpu_percent, Some(80.0));
        assert_eq!(one.cloudwatch_period_secs, Some(60));
        assert!(one.disagrees, "{one:?}");
        assert_eq!(two.cloudwatch_cpu_percent, None, "never a 0");
        assert!(two
            .note
            .as_deref()
            .unwrap()
            .contains("no CloudWatch datapoint"));
        assert!(report.notes[0].contains("1 of 2 instances"));
    }

    #[test]
    fn the_end_is_covered_by_a_datapoint_of_its_period() {
        let detailed = [series("cpu0", &[(6000, 1.0), (6060, 1.0)])];
        assert!(
            !covers_end(&detailed, "cpu0", 6200),
            "minutes after 6120 not yet in"
        );
        assert!(covers_end(&detailed, "cpu0", 6100));
        let basic = [series("cpu0", &[(5700, 1.0), (6000, 1.0)])];
        assert!(covers_end(&basic, "cpu0", 6200));
        assert!(!covers_end(&[], "cpu0", 6200), "no series, not covered");
    }

    #[test]
    fn a_run_shorter_than_the_period_is_not_judged() {
        let w = window(30);
        let got = [series("cpu0", &[(6000, 2.0)])];
        let report = assemble(&w, None, &got, Ok(Vec::new()));
        assert!(!report.instances[0].disagrees);
        assert!(report.instances[0]
            .note
            .as_deref()
            .unwrap()
            .contains("not compared"));
        assert!(report.notes[0].contains("less than CloudWatch's shortest"));
    }

    #[test]
    fn the_alb_is_found_by_the_runs_address_and_refused_percentiles_are_said() {
        let w = window(600);
        let lbs = [(
            "arn:aws:elasticloadbalancing:r:1:loadbalancer/app/p-alb/abc".to_owned(),
            "p-alb".to_owned(),
        )];
        let tgs = [(
            "arn:aws:elasticloadbalancing:r:1:targetgroup/p-c1/def".to_owned(),
            "p-c1".to_owned(),
        )];
        let alb = Alb::of_run(&w, &lbs, &tgs).unwrap();
        assert_eq!(alb.load_balancer, "app/p-alb/abc");
        assert_eq!(alb.target_groups, ["targetgroup/p-c1/def"]);
        let (plain, percentiles) = queries(&w, Some(&alb));
        assert_eq!(percentiles.len(), 3, "p50, p99 and the group's p99");
        assert_eq!(percentiles[0].period_secs, 600, "one datapoint for the run");
        assert!(
            plain.iter().any(|q| q.metric == "CPUCreditBalance"),
            "t3 earns credits"
        );
        let got = [series("albrequests", &[(6000, 100.0), (6060, 200.0)])];
        let report = assemble(&w, Some(&alb), &got, Err("InternalFailure".into()));
        let figures = report.alb.unwrap();
        assert_eq!(figures.request_count, Some(300.0));
        assert_eq!(figures.target_response_time_p99_ms, None);
        assert!(figures.notes[0].contains("percentiles unavailable: InternalFailure"));
        let mut elsewhere = window(600);
        elsewhere.target = None;
        assert!(Alb::of_run(&elsewhere, &lbs, &tgs).is_none());
    }
}
