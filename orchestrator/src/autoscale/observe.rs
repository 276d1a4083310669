//! One tick's view of a cluster: what each instance's agent answers (its instance-true CPU) and
//! what elb's balancer sees of it (its health state, the requests it was sent), plus the p99 of
//! the balancer's group for the cluster. Rates and the p99 are over the time since the previous
//! tick: counters are read every tick and differenced.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use proto::{BalancerStatus, GroupStatus, StatsSnapshot, TargetState};
use tokio::time::Instant;

use crate::balance::{self, Balancer};
use crate::cloud::Instance;
use crate::config::Settings;
use crate::stats::{self, Agent, CpuFigures};

/// The histogram `elb-balancer` keeps per group of the time targets take to answer.
const RESPONSE_TIME: &str = "elb_target_response_time_seconds_bucket";

/// What one instance showed this tick.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct InstanceView {
    pub instance: Instance,
    /// Why its agent did not answer, if it did not.
    pub silent: Option<String>,
    /// Instance-true CPU over the tick, 0-100 % of the instance's capacity.
    pub cpu_percent: Option<f64>,
    /// Requests per second the balancer sent it over the tick.
    pub requests_per_sec: Option<f64>,
    /// Of those, the ones that failed (connect errors, resets, timeouts, 5xx) per second.
    pub errors_per_sec: Option<f64>,
    /// Its state in elb's balancer, if it is a target there.
    pub target_state: Option<TargetState>,
}

impl InstanceView {
    /// Whether elb's balancer sent it requests since the last tick and its agent did not answer
    /// `/stats` in time: it is alive, but too busy to report (a saturated instance, which may
    /// well fail its health checks too while the group fails open).
    pub(crate) fn saturated(&self) -> bool {
        self.silent.is_some() && self.serving()
    }

    /// Whether elb's balancer sent it requests since the last tick.
    pub(crate) fn serving(&self) -> bool {
        self.requests_per_sec.is_some_and(|r| r > 0.0)
    }
}

/// One tick's view.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct View {
    pub instances: Vec<InstanceView>,
    /// p99 of the balancer's responses from the cluster's group over the tick, in ms.
    pub p99_ms: Option<f64>,
    /// The balancer's group the p99 and request rates come from.
    pub group: Option<String>,
    /// Requests per second that group received over the tick (arrivals, queued ones
    /// included: what ALB's `RequestCount` counts).
    pub group_requests_per_sec: Option<f64>,
    /// Why the balancer gave nothing this tick, when one was expected.
    pub balancer_silent: Option<String>,
}

/// Counters of the previous tick, for the differences.
struct Previous {
    at: Instant,
    group_requests: Option<u64>,
    snapshots: HashMap<String, StatsSnapshot>,
    /// Each target's requests and errors, by id.
    requests: HashMap<String, (u64, u64)>,
    histogram: Option<Histogram>,
}

/// Looks at one cluster tick after tick.
pub(crate) struct Observer {
    cluster: String,
    balancer: Option<Balancer>,
    previous: Option<Previous>,
    timeout: Duration,
}

impl Observer {
    /// An observer of `cluster`; each agent and the balancer get `timeout` to answer.
    pub(crate) fn new(cluster: &str, timeout: Duration) -> Self {
        Self {
            cluster: cluster.to_owned(),
            balancer: None,
            previous: None,
            timeout,
        }
    }

    /// This tick's view of `instances` (the cluster's, from the cloud).
    pub(crate) async fn observe(&mut self, settings: &Settings, instances: &[Instance]) -> View {
        let now = Instant::now();
        let agents: Vec<Agent> = instances.iter().map(Agent::of).collect();
        let readings = stats::poll(&agents, self.timeout).await;
        let (balancer, balancer_silent) = self.balancer(settings).await;
        let previous = self.previous.take();
        let elapsed = previous
            .as_ref()
            .map(|p| now.duration_since(p.at).as_secs_f64())
            .filter(|secs| *secs > 0.0);
        let group_status = balancer
            .as_ref()
            .and_then(|(status, _)| group_of(status, &self.cluster));
        let group = group_status.map(|g| g.name.as_str());
        let targets: HashMap<&str, &proto::TargetStatus> = group_status
            .map(|g| g.targets.iter().map(|t| (t.id.as_str(), t)).collect())
            .unwrap_or_default();
        let group_requests = group_status.map(|g| g.requests);
        let group_requests_per_sec = match (group_requests, previous.as_ref()) {
            (Some(now), Some(p)) => p
                .group_requests
                .zip(elapsed)
                .map(|(before, secs)| now.saturating_sub(before) as f64 / secs),
            _ => None,
        };
        let mut views = Vec::with_capacity(instances.len());
        let mut snapshots = HashMap::new();
        for (instance, reading) in instances.iter().zip(readings) {
            let earlier = previous
                .as_ref()
                .and_then(|p| p.snapshots.get(&instance.id));
            let target = targets.get(instance.id.as_str());
            let (silent, cpu) = match reading.result {
                Ok(snapshot) => {
                    let cpu = CpuFigures::of(earlier, &snapshot).usage_percent;
                    snapshots.insert(instance.id.clone(), snapshot);
                    (None, Some(cpu))
                }
                Err(why) => (Some(why), None),
            };
            let before = target.and_then(|t| Some((t, *previous.as_ref()?.requests.get(&t.id)?)));
            let requests_per_sec = before.and_then(|(t, (requests, _))| {
                Some(t.requests.saturating_sub(requests) as f64 / elapsed?)
            });
            // An error counter that went down is a restarted balancer's: no rate, not a 0.
            let errors_per_sec = before
                .filter(|(t, (_, errors))| t.errors >= *errors)
                .and_then(|(t, (_, errors))| Some((t.errors - errors) as f64 / elapsed?));
            views.push(InstanceView {
                instance: instance.clone(),
                silent,
                cpu_percent: cpu,
                requests_per_sec,
                errors_per_sec,
                target_state: target.map(|t| t.state),
            });
        }
        let histogram = match (&balancer, group) {
            (Some((_, text)), Some(group)) => Histogram::parse(text, group),
            _ => None,
        };
        let p99_ms = match (
            &histogram,
            previous.as_ref().and_then(|p| p.histogram.as_ref()),
        ) {
            (Some(now), Some(before)) => now.since(before).quantile(0.99).map(|s| s * 1000.0),
            _ => None,
        };
        self.previous = Some(Previous {
            at: now,
            group_requests,
            snapshots,
            requests: targets
                .values()
                .map(|t| (t.id.clone(), (t.requests, t.errors)))
                .collect(),
            histogram,
        });
        View {
            instances: views,
            p99_ms,
            group: group.map(str::to_owned),
            group_requests_per_sec,
            balancer_silent,
        }
    }

    /// The balancer's status and metrics text, finding the balancer when it is not known yet
    /// (it may be started after the loop); `None` with a reason when one exists but does not
    /// answer.
    async fn balancer(
        &mut self,
        settings: &Settings,
    ) -> (Option<(BalancerStatus, String)>, Option<String>) {
        if self.balancer.is_none() {
            match balance::find(settings).await {
                Ok(found) => self.balancer = found,
                Err(e) => return (None, Some(e.to_string())),
            }
        }
        let Some(balancer) = &self.balancer else {
            return (None, None);
        };
        match read_balancer(balancer.admin, self.timeout).await {
            Ok(both) => (Some(both), None),
            Err(why) => {
                // Looked up afresh next tick: it may have been replaced.
                self.balancer = None;
                (None, Some(why))
            }
        }
    }
}

async fn read_balancer(
    admin: SocketAddr,
    timeout: Duration,
) -> Result<(BalancerStatus, String), String> {
    let status = balance::admin_status(admin).await?;
    let metrics = crate::http::get_body(admin, "/metrics", timeout).await?;
    Ok((status, String::from_utf8_lossy(&metrics).into_owned()))
}

/// The balancer's group for `cluster`: the one named after it, else the first whose targets
/// include one of the cluster's instances.
fn group_of<'a>(status: &'a BalancerStatus, cluster: &str) -> Option<&'a GroupStatus> {
    let named = status.groups.iter().find(|g| g.name == cluster);
    named.or_else(|| {
        status.groups.iter().find(|g| {
            g.targets
                .iter()
                .any(|t| t.cluster.as_deref() == Some(cluster))
        })
    })
}

/// A group's cumulative response-time histogram as `/metrics` shows it: (upper bound in
/// seconds, count at or below it), ascending, `+Inf` last.
#[derive(Debug, Clone, PartialEq)]
struct Histogram {
    buckets: Vec<(f64, u64)>,
}

impl Histogram {
    /// The histogram of `group` in a Prometheus text exposition.
    fn parse(text: &str, group: &str) -> Option<Self> {
        let label = format!("group=\"{group}\"");
        let mut buckets = Vec::new();
        for line in text.lines() {
            let Some(rest) = line.strip_prefix(RESPONSE_TIME) else {
                continue;
            };
            let Some((labels, value)) = rest.rsplit_once(' ') else {
                continue;
            };
            if !labels.contains(&label) {
                continue;
            }
            let le = labels.split("le=\"").nth(1)?.split('"').next()?;
            let bound = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().ok()?
            };
            buckets.push((bound, value.trim().parse().ok()?));
        }
        buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        (!buckets.is_empty()).then_some(Self { buckets })
    }

    /// The counts observed since `earlier`.
    fn since(&self, earlier: &Histogram) -> Histogram {
        let before = |bound: f64| {
            earlier
                .buckets
                .iter()
                .find(|(b, _)| *b == bound)
                .map_or(0, |(_, n)| *n)
        };
        Histogram {
            buckets: self
                .buckets
                .iter()
                .map(|(b, n)| (*b, n.saturating_sub(before(*b))))
                .collect(),
        }
    }

    /// The `q` quantile in seconds, interpolated linearly within its bucket as Prometheus'
    /// `histogram_quantile` does (a quantile in the `+Inf` bucket is the highest finite bound);
    /// `None` when the histogram is empty.
    fn quantile(&self, q: f64) -> Option<f64> {
        let total = self.buckets.last()?.1;
        if total == 0 {
            return None;
        }
        let rank = q * total as f64;
        let (mut lower, mut below) = (0.0, 0);
        for &(bound, count) in &self.buckets {
            if count as f64 >= rank {
                if bound.is_infinite() {
                    return Some(lower);
                }
                let within = (count - below) as f64;
                let share = if within > 0.0 {
                    (rank - below as f64) / within
                } else {
                    1.0
                };
                return Some(lower + (bound - lower) * share);
            }
            (lower, below) = (bound, count);
        }
        Some(lower)
    }
}

/// A tick's figures for CloudWatch (`elb autoscale --publish`), namespace `elb`: per instance
/// (`Project`, `Cluster`, `InstanceId`) the instance-true `CPUUtilization` and the requests and
/// errors per second elb's balancer saw it take (`TargetRequestsPerSecond`,
/// `TargetErrorsPerSecond`); per cluster (`Project`, `Cluster`)
/// `InstanceCount`, `DesiredInstances`, the loop's metric as `ScalingMetric` (with a `Metric`
/// dimension: `cpu`, `requests_per_target`, `p99_ms`) and, through elb's balancer, its group's
/// `GroupRequestsPerSecond`, `GroupLatencyP99` and `HealthyTargets`. What the tick did not see
/// is not published.
pub(crate) fn published(
    project: &str,
    cluster: &str,
    view: &View,
    tick: &crate::fleet::ScalingTick,
) -> Vec<crate::cloud::ec2::cloudwatch::Datum> {
    use crate::cloud::ec2::cloudwatch::Datum;
    let cluster_dims = vec![
        ("Project", project.to_owned()),
        ("Cluster", cluster.to_owned()),
    ];
    let mut data = Vec::new();
    for v in &view.instances {
        let dims = vec![
            ("Project", project.to_owned()),
            ("Cluster", cluster.to_owned()),
            ("InstanceId", v.instance.id.clone()),
        ];
        let figures = [
            ("CPUUtilization", v.cpu_percent, "Percent"),
            (
                "TargetRequestsPerSecond",
                v.requests_per_sec,
                "Count/Second",
            ),
            ("TargetErrorsPerSecond", v.errors_per_sec, "Count/Second"),
        ];
        data.extend(Datum::seen(&dims, figures));
    }
    let healthy = view.group.as_ref().map(|_| {
        view.instances
            .iter()
            .filter(|v| v.target_state == Some(TargetState::Healthy))
            .count() as f64
    });
    let figures = [
        ("InstanceCount", Some(f64::from(tick.current)), "Count"),
        ("DesiredInstances", Some(f64::from(tick.desired)), "Count"),
        (
            "GroupRequestsPerSecond",
            view.group_requests_per_sec,
            "Count/Second",
        ),
        ("GroupLatencyP99", view.p99_ms, "Milliseconds"),
        ("HealthyTargets", healthy, "Count"),
    ];
    data.extend(Datum::seen(&cluster_dims, figures));
    if let Some(value) = tick.value {
        let mut dims = cluster_dims;
        dims.push(("Metric", tick.metric.to_owned()));
        data.push(Datum {
            metric: "ScalingMetric",
            dimensions: dims,
            value,
            unit: "None",
        });
    }
    data
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "\
# TYPE elb_target_response_time_seconds histogram
elb_target_response_time_seconds_bucket{group=\"c1\",le=\"0.01\"} 90
elb_target_response_time_seconds_bucket{group=\"c1\",le=\"0.1\"} 99
elb_target_response_time_seconds_bucket{group=\"c1\",le=\"1\"} 100
elb_target_response_time_seconds_bucket{group=\"c1\",le=\"+Inf\"} 100
elb_target_response_time_seconds_bucket{group=\"c2\",le=\"0.01\"} 5
elb_target_response_time_seconds_sum{group=\"c1\"} 1.5
";

    #[test]
    fn the_p99_comes_from_the_groups_buckets_interpolated() {
        let h = Histogram::parse(TEXT, "c1").unwrap();
        assert_eq!(h.buckets.len(), 4);
        // Rank 99 of 100 is the last of the 9 in (0.01, 0.1]: its upper bound.
        assert!((h.quantile(0.99).unwrap() - 0.1).abs() < 1e-9);
        // Rank 50 falls in the first bucket, halfway between 0 and 0.01 at 45/90... : 0.00556.
        assert!((h.quantile(0.5).unwrap() - 0.01 * 50.0 / 90.0).abs() < 1e-9);
        assert!(Histogram::parse(TEXT, "c3").is_none());
    }

    #[test]
    fn the_p99_of_a_tick_is_over_the_requests_since_the_last_one() {
        let before = Histogram::parse(TEXT, "c1").unwrap();
        let later = TEXT
            .replace("le=\"1\"} 100", "le=\"1\"} 200")
            .replace("le=\"+Inf\"} 100", "le=\"+Inf\"} 200");
        let now = Histogram::parse(&later, "c1").unwrap();
        // The 100 new requests all took between 0.1 and 1 s.
        let p99 = now.since(&before).quantile(0.99).unwrap();
        assert!(p99 > 0.9 && p99 <= 1.0, "{p99}");
        assert_eq!(before.since(&before).quantile(0.99), None, "no requests");
    }
}
