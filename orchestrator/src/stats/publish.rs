//! The fleet's figures as CloudWatch data (`elb stats --publish`), under the namespace `elb`:
//! per instance (dimensions `Project`, `Cluster`, `InstanceId`) the agent's instance-true CPU,
//! its requests per second and its p99; per cluster (`Project`, `Cluster`) the mean CPU, the
//! summed requests per second, the worst p99 and the number of agents that answered; and elb's
//! balancer's healthy targets per group and requests and errors per target. An agent that did
//! not answer publishes nothing (CloudWatch shows a gap, never a zero).

use crate::cloud::ec2::cloudwatch::Datum;

use super::view::StatsView;

/// The namespace of the fleet's figures.
pub(crate) const NAMESPACE: &str = "elb";

/// The data of one poll, for project `project`.
pub(crate) fn data(project: &str, view: &StatsView) -> Vec<Datum> {
    let mut data = Vec::new();
    for row in view.instances.iter().filter(|r| r.status == "up") {
        let dimensions = vec![
            ("Project", project.to_owned()),
            ("Cluster", row.cluster.clone()),
            ("InstanceId", row.id.clone()),
        ];
        let figures = [
            ("CPUUtilization", row.cpu_percent, "Percent"),
            ("RequestsPerSecond", row.requests_per_sec, "Count/Second"),
            ("LatencyP99", row.p99_ms, "Milliseconds"),
        ];
        data.extend(Datum::seen(&dimensions, figures));
    }
    for cluster in &view.clusters {
        let dimensions = vec![
            ("Project", project.to_owned()),
            ("Cluster", cluster.cluster.clone()),
        ];
        let figures = [
            ("CPUUtilization", cluster.cpu_percent_mean, "Percent"),
            (
                "RequestsPerSecond",
                (cluster.up > 0).then_some(cluster.requests_per_sec),
                "Count/Second",
            ),
            ("LatencyP99", cluster.p99_ms_max, "Milliseconds"),
            ("HealthyAgents", Some(cluster.up as f64), "Count"),
        ];
        data.extend(Datum::seen(&dimensions, figures));
    }
    data
}

/// elb's balancer's figures as CloudWatch data: per group (`Project`, `Cluster` = the group)
/// its `HealthyTargets`; per target (`Project`, `Cluster`, `InstanceId`) the requests and
/// errors it got per second since `before` (the previous poll's groups and the seconds since),
/// when there was a previous poll and its counters did not start again (a restarted balancer):
/// the balancer's counters are totals since it started.
pub(crate) fn balancer_data(
    project: &str,
    groups: &[proto::GroupStatus],
    before: Option<(&[proto::GroupStatus], f64)>,
) -> Vec<Datum> {
    let mut data = Vec::new();
    for group in groups {
        let group_dims = vec![
            ("Project", project.to_owned()),
            ("Cluster", group.name.clone()),
        ];
        data.push(Datum {
            metric: "HealthyTargets",
            dimensions: group_dims,
            value: f64::from(group.healthy_targets),
            unit: "Count",
        });
        let Some((previous, secs)) = before.filter(|(_, secs)| *secs > 0.0) else {
            continue;
        };
        let earlier = previous.iter().find(|g| g.name == group.name);
        for target in &group.targets {
            let Some(was) = earlier.and_then(|g| g.targets.iter().find(|t| t.id == target.id))
            else {
                continue;
            };
            if target.requests < was.requests || target.errors < was.errors {
                continue;
            }
            let dims = vec![
                ("Project", project.to_owned()),
                ("Cluster", group.name.clone()),
                ("InstanceId", target.id.clone()),
            ];
            let rates = [
                ("TargetRequestsPerSecond", target.requests - was.requests),
                ("TargetErrorsPerSecond", target.errors - was.errors),
            ];
            for (metric, delta) in rates {
                data.push(Datum {
                    metric,
                    dimensions: dims.clone(),
                    value: delta as f64 / secs,
                    unit: "Count/Second",
                });
            }
        }
    }
    data
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::view::tests::{reading, snapshot};

    #[test]
    fn answering_agents_publish_their_figures_and_clusters_their_sums() {
        let readings = [
            reading("i-1", "c1", Ok(snapshot(100, 10_000, 20.0))),
            reading("i-2", "c1", Err("connection refused".into())),
        ];
        let view = StatsView::new(&readings, &[], 0);
        let data = data("p", &view);
        let of = |metric: &str, instance: Option<&str>| {
            data.iter()
                .filter(|d| d.metric == metric)
                .find(|d| {
                    d.dimensions
                        .iter()
                        .find(|(k, _)| *k == "InstanceId")
                        .map(|(_, v)| v.as_str())
                        == instance
                })
                .map(|d| (d.value, d.unit))
        };
        assert_eq!(of("CPUUtilization", Some("i-1")), Some((20.0, "Percent")));
        assert_eq!(
            of("CPUUtilization", Some("i-2")),
            None,
            "no answer, no datum"
        );
        assert_eq!(of("HealthyAgents", None), Some((1.0, "Count")));
        assert_eq!(of("CPUUtilization", None), Some((20.0, "Percent")));
        assert!(data
            .iter()
            .all(|d| d.dimensions[0] == ("Project", "p".to_owned())
                && d.dimensions[1] == ("Cluster", "c1".to_owned())));
    }

    #[test]
    fn the_balancers_rates_need_a_previous_poll_and_unbroken_counters() {
        use crate::testing::{group, target};
        let first = balancer_data("p", &[group(vec![target("i-1", 100)])], None);
        assert_eq!(first.len(), 1, "the healthy count alone: {first:?}");
        assert_eq!((first[0].metric, first[0].value), ("HealthyTargets", 1.0));
        let before = [group(vec![target("i-1", 100)])];
        let next = balancer_data(
            "p",
            &[group(vec![target("i-1", 300)])],
            Some((&before, 2.0)),
        );
        let rate = |data: &[Datum], metric: &str| {
            data.iter().find(|d| d.metric == metric).map(|d| d.value)
        };
        assert_eq!(rate(&next, "TargetRequestsPerSecond"), Some(100.0));
        assert_eq!(rate(&next, "TargetErrorsPerSecond"), Some(0.0));
        let restarted = balancer_data("p", &[group(vec![target("i-1", 3)])], Some((&before, 2.0)));
        assert_eq!(
            rate(&restarted, "TargetRequestsPerSecond"),
            None,
            "not a made-up 0"
        );
    }
}
