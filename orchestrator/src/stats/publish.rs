//! The fleet's figures as CloudWatch data (`elb stats --publish`), under the namespace `elb`:
//! per instance (dimensions `Project`, `Cluster`, `InstanceId`) the agent's instance-true CPU,
//! its requests per second and its p99; per cluster (`Project`, `Cluster`) the mean CPU, the
//! summed requests per second, the worst p99 and the number of agents that answered. An agent
//! that did not answer publishes nothing (CloudWatch shows a gap, never a zero).

use crate::cloud::ec2::cloudwatch::Datum;

use super::view::StatsView;

/// The namespace of the fleet's figures.
pub(crate) const NAMESPACE: &str = "elb";

/// The data of one poll, for project `project`.
pub(crate) fn data(project: &str, view: &StatsView) -> Vec<Datum> {
    let mut data = Vec::new();
    let figure = |metric, dimensions: &Vec<(&'static str, String)>, value, unit| Datum {
        metric,
        dimensions: dimensions.clone(),
        value,
        unit,
    };
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
        for (metric, value, unit) in figures {
            if let Some(value) = value {
                data.push(figure(metric, &dimensions, value, unit));
            }
        }
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
        for (metric, value, unit) in figures {
            if let Some(value) = value {
                data.push(figure(metric, &dimensions, value, unit));
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
}
