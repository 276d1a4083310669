//! The project in CloudWatch, as a workflow over the fleet: its dashboard (`elb cloudwatch
//! dashboard`), with AWS's own measurements (the hypervisor's CPU of each instance, the ALB's
//! requests, errors and response times) beside the figures `elb stats --publish` puts under the
//! namespace `elb`; the publishing itself; and AWS's measurements of a bench run
//! (`report.rs`).

pub(crate) mod report;

use serde_json::{json, Value};

use crate::cloud::ec2::cloudwatch::Datum;
use crate::cloud::ec2::Ec2;
use crate::cloud::{Cloud, Instance};
use crate::stats::publish::NAMESPACE;
use crate::Error;

/// A widget's size on CloudWatch's 24-column grid: two widgets a row.
const WIDTH: u32 = 12;
const HEIGHT: u32 = 6;

/// What a dashboard was made of.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Dashboard {
    pub name: String,
    pub instances: usize,
    pub clusters: usize,
    /// The ALB shown, by its CloudWatch dimension (`app/<name>/<id>`), if the project has one.
    pub alb: Option<String>,
    pub widgets: usize,
}

/// Creates or replaces the project's dashboard from the fleet and the ALB as they are now.
pub async fn put_dashboard(ec2: &Ec2, project: &str, region: &str) -> Result<Dashboard, Error> {
    let mut instances = ec2.instances(None, false).await?;
    crate::cloud::sort_instances(&mut instances);
    let inventory = ec2.load_balancing().inventory().await?;
    let alb = inventory
        .load_balancers
        .first()
        .and_then(|(arn, _)| dimension(arn, "loadbalancer/"));
    let body = body(project, region, &instances, alb.as_deref());
    let widgets = body["widgets"].as_array().map_or(0, Vec::len);
    ec2.put_dashboard(&body.to_string()).await?;
    Ok(Dashboard {
        name: ec2.dashboard_name(),
        instances: instances.len(),
        clusters: clusters(&instances).len(),
        alb,
        widgets,
    })
}

/// Publishes one poll's `data` under the namespace `elb`.
pub async fn publish(ec2: &Ec2, data: &[Datum]) -> Result<(), Error> {
    ec2.put_metrics(NAMESPACE, data).await.map_err(Error::from)
}

/// The CloudWatch dimension of an ELBv2 ARN: what follows `marker` (`loadbalancer/` gives
/// `app/<name>/<id>`).
fn dimension(arn: &str, marker: &str) -> Option<String> {
    arn.split_once(marker).map(|(_, rest)| rest.to_owned())
}

/// The clusters of `instances`, in name order.
fn clusters(instances: &[Instance]) -> Vec<&str> {
    let mut names: Vec<&str> = instances.iter().map(|i| i.cluster.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    names
}

/// The dashboard's body (CloudWatch's dashboard JSON): instances' CPU as AWS and as the agents
/// measure it, each cluster's requests per second and p99 (`elb stats --publish`), and the ALB's
/// requests, 5XX and target response time when there is one.
fn body(project: &str, region: &str, instances: &[Instance], alb: Option<&str>) -> Value {
    let agents: Vec<&Instance> = instances.iter().filter(|i| i.role.is_none()).collect();
    let clusters = clusters(instances);
    let by_cluster = |metric: &str| -> Vec<Value> {
        clusters
            .iter()
            .map(|c| json!([NAMESPACE, metric, "Project", project, "Cluster", c]))
            .collect()
    };
    let mut widgets = vec![
        (
            "CPU by instance: AWS/EC2 (the hypervisor's view)",
            "Average",
            300,
            agents
                .iter()
                .map(|i| json!(["AWS/EC2", "CPUUtilization", "InstanceId", i.id]))
                .collect::<Vec<_>>(),
        ),
        (
            "CPU by instance: elb agents (instance-true)",
            "Average",
            60,
            agents
                .iter()
                .map(|i| {
                    json!([
                        NAMESPACE,
                        "CPUUtilization",
                        "Project",
                        project,
                        "Cluster",
                        i.cluster,
                        "InstanceId",
                        i.id
                    ])
                })
                .collect(),
        ),
        (
            "Requests per second by cluster (elb agents)",
            "Average",
            60,
            by_cluster("RequestsPerSecond"),
        ),
        (
            "p99 by cluster, ms (elb agents, worst instance)",
            "Maximum",
            60,
            by_cluster("LatencyP99"),
        ),
    ];
    if let Some(lb) = alb {
        let alb_metric = |metric: &str| json!(["AWS/ApplicationELB", metric, "LoadBalancer", lb]);
        widgets.push((
            "ALB: requests and 5XX (AWS/ApplicationELB)",
            "Sum",
            60,
            vec![
                alb_metric("RequestCount"),
                alb_metric("HTTPCode_ELB_5XX_Count"),
                alb_metric("HTTPCode_Target_5XX_Count"),
                alb_metric("RejectedConnectionCount"),
            ],
        ));
        widgets.push((
            "ALB: target response time, s (p50, p99)",
            "p50",
            60,
            vec![
                json!(["AWS/ApplicationELB", "TargetResponseTime", "LoadBalancer", lb,
                       {"stat": "p50"}]),
                json!(["AWS/ApplicationELB", "TargetResponseTime", "LoadBalancer", lb,
                       {"stat": "p99"}]),
            ],
        ));
    }
    let widgets: Vec<Value> = widgets
        .into_iter()
        .enumerate()
        .map(|(n, (title, stat, period, metrics))| {
            let n = u32::try_from(n).unwrap_or(0);
            json!({
                "type": "metric",
                "x": (n % 2) * WIDTH,
                "y": (n / 2) * HEIGHT,
                "width": WIDTH,
                "height": HEIGHT,
                "properties": {
                    "title": title,
                    "region": region,
                    "view": "timeSeries",
                    "stat": stat,
                    "period": period,
                    "metrics": metrics,
                },
            })
        })
        .collect();
    json!({ "widgets": widgets })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_body_shows_every_agent_every_cluster_and_the_alb() {
        let fleet = [
            Instance::running("i-1", "c1"),
            Instance::running("i-2", "c2"),
        ];
        let arn = "arn:aws:elasticloadbalancing:r:1:loadbalancer/app/p-alb/abc";
        let lb = dimension(arn, "loadbalancer/").unwrap();
        assert_eq!(lb, "app/p-alb/abc");
        let made = body("p", "r", &fleet, Some(&lb));
        let widgets = made["widgets"].as_array().unwrap();
        assert_eq!(widgets.len(), 6);
        let text = made.to_string();
        for needle in [
            r#"["AWS/EC2","CPUUtilization","InstanceId","i-2"]"#,
            r#"["elb","RequestsPerSecond","Project","p","Cluster","c1"]"#,
            r#"["AWS/ApplicationELB","RequestCount","LoadBalancer","app/p-alb/abc"]"#,
        ] {
            assert!(text.contains(needle), "{needle} in {text}");
        }
        assert_eq!(
            body("p", "r", &fleet, None)["widgets"]
                .as_array()
                .unwrap()
                .len(),
            4
        );
        assert_eq!(widgets[3]["x"], 12);
        assert_eq!(widgets[3]["y"], 6);
    }
}
