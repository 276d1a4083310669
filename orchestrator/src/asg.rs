//! `elb asg`: a cluster scaled by EC2 Auto Scaling, AWS's scaler beside `elb autoscale`, so the
//! two can be compared on the same fleet. `up` makes (or updates) the cluster's launch template
//! from what `elb launch --deploy user-data` would run (the same image, key pair, security group
//! and agent installer, IMDSv2 required), its Auto Scaling group in the default subnets, joined
//! to the ALB's target group for the cluster when the project has one, and a target tracking
//! policy; `down` deletes the group (and its instances) and the template.

use std::time::Duration;

use serde::Serialize;
use tokio::time::Instant;

use crate::cloud::ec2::autoscaling::{AsgSpec, AsgTarget, AutoScalingGroup, Made};
use crate::cloud::ec2::Ec2;
use crate::cloud::spec::LaunchSpec;
use crate::cloud::Created;
use crate::Error;

/// What the group follows, as `elb asg up` takes it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Goal {
    /// The group's average CPU, in percent.
    Cpu(f64),
    /// Requests per second per instance through the ALB (ALB's `RequestCountPerTarget`, which
    /// target tracking counts per minute: times 60).
    RequestsPerTarget(f64),
}

/// What `up` made.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UpReport {
    pub group: String,
    pub launch_template: String,
    /// `created` or `updated`, for each.
    pub group_made: &'static str,
    pub template_made: &'static str,
    pub min: u32,
    pub max: u32,
    /// e.g. `ASGAverageCPUUtilization 50`.
    pub policy: String,
    /// The ALB target group its instances join, if any.
    pub target_group: Option<String>,
}

fn made(m: Made) -> &'static str {
    match m {
        Made::Created => "created",
        Made::Updated => "updated (a new default launch template version)",
    }
}

/// Makes or updates the cluster's group: `launch` is what `elb launch` would run (its cluster
/// and type), `min`, `max` and `goal` the group's bounds and policy.
pub async fn up(
    ec2: &Ec2,
    project: &str,
    launch: &LaunchSpec,
    (min, max): (u32, u32),
    goal: Goal,
) -> Result<UpReport, Error> {
    let lbs = ec2.load_balancing();
    let target_group = lbs
        .find_target_group(&crate::alb::target_group_name(project, &launch.cluster))
        .await?;
    let target = match goal {
        Goal::Cpu(pct) => AsgTarget::Cpu(pct),
        Goal::RequestsPerTarget(per_sec) => {
            let alb = lbs
                .find_load_balancer(&crate::alb::load_balancer_name(project))
                .await?;
            let (Some(alb), Some(group)) = (alb, &target_group) else {
                return Err(Error::Usage(format!(
                    "--target-requests-per-target follows the ALB's RequestCountPerTarget, and \
                     project {project} has no ALB target group for cluster {}: run `elb alb up` \
                     first, or use --target-cpu",
                    launch.cluster
                )));
            };
            let label =
                |arn: &str, marker: &str| arn.split_once(marker).map(|(_, rest)| rest.to_owned());
            let resource_label = format!(
                "{}/targetgroup/{}",
                label(&alb.arn, "loadbalancer/").unwrap_or_default(),
                label(&group.arn, "targetgroup/").unwrap_or_default()
            );
            AsgTarget::RequestsPerTarget {
                per_minute: per_sec * 60.0,
                resource_label,
            }
        }
    };
    let mut created = Created::default();
    let prepared = ec2.prepare(launch, &mut created).await?;
    let subnets: Vec<String> = match &launch.subnet {
        Some(subnet) => vec![subnet.clone()],
        None => ec2
            .default_subnets(&prepared.network.vpc_id)
            .await?
            .into_iter()
            .map(|(id, _)| id)
            .collect(),
    };
    if subnets.is_empty() {
        return Err(Error::Usage(format!(
            "the default VPC {} has no default subnet for the group: give one with --subnet",
            prepared.network.vpc_id
        )));
    }
    let (template, template_made) = ec2
        .ensure_launch_template(&launch.cluster, &launch.instance_type, &prepared)
        .await?;
    let spec = AsgSpec {
        cluster: launch.cluster.clone(),
        min,
        max,
        target: target.clone(),
        target_group_arn: target_group.as_ref().map(|g| g.arn.clone()),
    };
    let group_made = ec2
        .ensure_auto_scaling_group(&spec, &template, &subnets)
        .await?;
    let policy = match &target {
        AsgTarget::Cpu(pct) => format!("ASGAverageCPUUtilization {pct}"),
        AsgTarget::RequestsPerTarget { per_minute, .. } => {
            format!("ALBRequestCountPerTarget {per_minute}")
        }
    };
    Ok(UpReport {
        group: ec2.asg_name(&launch.cluster),
        launch_template: template,
        group_made: made(group_made),
        template_made: made(template_made),
        min,
        max,
        policy,
        target_group: target_group.map(|g| g.name),
    })
}

/// The project's groups.
pub async fn status(ec2: &Ec2) -> Result<Vec<AutoScalingGroup>, Error> {
    Ok(ec2.auto_scaling_groups_with_policies().await?)
}

/// Deletes the cluster's group (its instances with it, waited for up to `timeout`) and launch
/// template; false when there was neither.
pub async fn down(
    ec2: &Ec2,
    cluster: &str,
    timeout: Duration,
    interval: Duration,
) -> Result<bool, Error> {
    let name = ec2.asg_name(cluster);
    let deadline = Instant::now() + timeout;
    let had_group = !ec2.auto_scaling_groups(Some(&name)).await?.is_empty();
    if had_group {
        ec2.delete_auto_scaling_group(&name, interval, deadline)
            .await?;
        ec2.note(format!("deleted Auto Scaling group {name}"));
    }
    let templates = ec2.launch_templates().await?;
    let template = templates.iter().find(|(_, n)| *n == name);
    if let Some((id, _)) = template {
        ec2.delete_launch_template(id).await?;
        ec2.note(format!("deleted launch template {name} ({id})"));
    }
    Ok(had_group || template.is_some())
}

/// The groups for people: one line each, then its instances.
pub fn render(groups: &[AutoScalingGroup]) -> String {
    if groups.is_empty() {
        return "no Auto Scaling group".to_owned();
    }
    let mut out = String::new();
    for g in groups {
        out.push_str(&format!(
            "{} (cluster {}): min {} max {} desired {}, {} instance(s), policy {}, template {}{}\n",
            g.name,
            g.cluster,
            g.min,
            g.max,
            g.desired,
            g.instances.len(),
            g.policy.as_deref().unwrap_or("none"),
            g.launch_template.as_deref().unwrap_or("-"),
            if g.target_groups.is_empty() {
                String::new()
            } else {
                format!(", target groups {}", g.target_groups.join(", "))
            }
        ));
        for (id, state, health) in &g.instances {
            out.push_str(&format!("  {id}  {state}  {health}\n"));
        }
    }
    out.truncate(out.trim_end().len());
    out
}
