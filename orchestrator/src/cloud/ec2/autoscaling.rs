//! The project's EC2 Auto Scaling side (`elb asg`), AWS's scaler beside elb's own: per cluster
//! a launch template and an Auto Scaling group named `<project>-<cluster>`, both tagged as
//! everything elb makes (the group's tags propagated to its instances at launch, so `elb ls`,
//! `stats` and `bench` see them), and one target tracking policy. The kill switch deletes the
//! groups (waiting until they are gone, their instances with them) and the templates before it
//! terminates instances: otherwise a group would start new instances while the old ones go.

use std::time::Duration;

use tokio::time::Instant;

use super::provider::Prepared;
use super::Ec2;
use crate::aws::Service;
use crate::cloud::errors::CloudError;
use crate::cloud::MANAGED_BY;

/// The name of the target tracking policy elb puts on its groups.
const POLICY_NAME: &str = "elb-target-tracking";

/// What a group's size follows: AWS's predefined target tracking metrics.
#[derive(Debug, Clone, PartialEq)]
pub enum AsgTarget {
    /// `ASGAverageCPUUtilization`, in percent.
    Cpu(f64),
    /// `ALBRequestCountPerTarget` (requests per target per minute, as CloudWatch counts them)
    /// of the ALB target group `resource_label` (`app/<lb>/<id>/targetgroup/<tg>/<id>`).
    RequestsPerTarget {
        per_minute: f64,
        resource_label: String,
    },
}

impl AsgTarget {
    fn metric(&self) -> &'static str {
        match self {
            Self::Cpu(_) => "ASGAverageCPUUtilization",
            Self::RequestsPerTarget { .. } => "ALBRequestCountPerTarget",
        }
    }

    fn value(&self) -> f64 {
        match self {
            Self::Cpu(v) => *v,
            Self::RequestsPerTarget { per_minute, .. } => *per_minute,
        }
    }
}

/// A cluster's group as `elb asg up` wants it.
#[derive(Debug, Clone)]
pub struct AsgSpec {
    pub cluster: String,
    pub min: u32,
    pub max: u32,
    pub target: AsgTarget,
    /// The ALB target group of the cluster, which the group's instances join, if there is one.
    pub target_group_arn: Option<String>,
}

/// One of the project's groups, as Auto Scaling describes it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct AutoScalingGroup {
    pub name: String,
    pub cluster: String,
    pub min: u32,
    pub max: u32,
    pub desired: u32,
    pub launch_template: Option<String>,
    pub target_groups: Vec<String>,
    /// `(instance id, lifecycle state, health)`.
    pub instances: Vec<(String, String, String)>,
    /// `ASGAverageCPUUtilization 50`, when elb's policy is on it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
}

/// What `ensure` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Made {
    Created,
    Updated,
}

impl Ec2 {
    /// The name of the cluster's launch template and group.
    pub fn asg_name(&self, cluster: &str) -> String {
        format!("{}-{cluster}", self.project)
    }

    /// The project's tags and the cluster's, as `(key, value)`.
    fn asg_tags<'a>(&'a self, name: &'a str, cluster: &'a str) -> [(&'a str, &'a str); 4] {
        [
            ("Project", self.project.as_str()),
            ("ManagedBy", MANAGED_BY),
            ("Name", name),
            ("Cluster", cluster),
        ]
    }

    /// Makes the cluster's launch template from `prepared` (the image, key pair, security group
    /// and user data a launch would use), with IMDSv2 required and the instances tagged at
    /// launch; or, when it exists, a new version of it that becomes the default. Returns its
    /// id.
    pub async fn ensure_launch_template(
        &self,
        cluster: &str,
        instance_type: &str,
        prepared: &Prepared,
    ) -> Result<(String, Made), CloudError> {
        let name = self.asg_name(cluster);
        let tags = self.asg_tags(&name, cluster);
        let data = |params: &mut crate::aws::Params| {
            params
                .set("LaunchTemplateData.ImageId", &prepared.image_id)
                .set("LaunchTemplateData.InstanceType", instance_type)
                .set("LaunchTemplateData.KeyName", &prepared.key_pair)
                .set(
                    "LaunchTemplateData.SecurityGroupId.1",
                    &prepared.security_group_id,
                )
                .set("LaunchTemplateData.MetadataOptions.HttpTokens", "required")
                .set("LaunchTemplateData.MetadataOptions.HttpEndpoint", "enabled")
                .set(
                    "LaunchTemplateData.TagSpecification.1.ResourceType",
                    "instance",
                )
                .pairs("LaunchTemplateData.TagSpecification.1.Tag", tags)
                .maybe(
                    "LaunchTemplateData.UserData",
                    prepared
                        .user_data
                        .as_ref()
                        .map(aws_smithy_types::base64::encode),
                );
        };
        let mut find = Service::Ec2.params();
        find.filter("launch-template-name", &[&name])
            .filter("tag:Project", &[&self.project]);
        let existing = self
            .call("ec2:DescribeLaunchTemplates", &find, |root| {
                root.list("launchTemplates")
                    .find_map(|t| t.text("launchTemplateId").map(str::to_owned))
            })
            .await?;
        match existing {
            Some(id) => {
                let mut params = Service::Ec2.params();
                params.set("LaunchTemplateId", &id);
                data(&mut params);
                let version: String = self
                    .call("ec2:CreateLaunchTemplateVersion", &params, |root| {
                        root.at(&["launchTemplateVersion"])
                            .map(|v| v.string("versionNumber"))
                            .unwrap_or_default()
                    })
                    .await?;
                let mut params = Service::Ec2.params();
                params
                    .set("LaunchTemplateId", &id)
                    .set("SetDefaultVersion", version);
                self.call("ec2:ModifyLaunchTemplate", &params, |_| ())
                    .await?;
                Ok((id, Made::Updated))
            }
            None => {
                let mut params = Service::Ec2.params();
                params
                    .set("LaunchTemplateName", &name)
                    .set("TagSpecification.1.ResourceType", "launch-template")
                    .pairs("TagSpecification.1.Tag", tags);
                data(&mut params);
                let id = self
                    .call("ec2:CreateLaunchTemplate", &params, |root| {
                        root.at(&["launchTemplate"])
                            .map(|t| t.string("launchTemplateId"))
                            .unwrap_or_default()
                    })
                    .await?;
                Ok((id, Made::Created))
            }
        }
    }

    /// Makes the cluster's group (its launch template's default version, the default subnets
    /// `subnets`, `spec`'s bounds, the target group when there is one, tags propagated at
    /// launch), or updates the bounds, template and target group of the one that exists; then
    /// puts the target tracking policy on it.
    pub async fn ensure_auto_scaling_group(
        &self,
        spec: &AsgSpec,
        template_id: &str,
        subnets: &[String],
    ) -> Result<Made, CloudError> {
        let name = self.asg_name(&spec.cluster);
        let existing = self.auto_scaling_groups(Some(&name)).await?;
        let made = match existing.first() {
            Some(group) => {
                let mut params = Service::AutoScaling.params();
                params
                    .set("AutoScalingGroupName", &name)
                    .set("MinSize", spec.min)
                    .set("MaxSize", spec.max)
                    .set("LaunchTemplate.LaunchTemplateId", template_id)
                    .set("LaunchTemplate.Version", "$Default");
                self.call("autoscaling:UpdateAutoScalingGroup", &params, |_| ())
                    .await?;
                if let Some(arn) = spec
                    .target_group_arn
                    .as_ref()
                    .filter(|arn| !group.target_groups.contains(arn))
                {
                    let mut params = Service::AutoScaling.params();
                    params
                        .set("AutoScalingGroupName", &name)
                        .list("TargetGroupARNs", [arn]);
                    self.call(
                        "autoscaling:AttachLoadBalancerTargetGroups",
                        &params,
                        |_| (),
                    )
                    .await?;
                }
                Made::Updated
            }
            None => {
                let mut params = Service::AutoScaling.params();
                params
                    .set("AutoScalingGroupName", &name)
                    .set("LaunchTemplate.LaunchTemplateId", template_id)
                    .set("LaunchTemplate.Version", "$Default")
                    .set("MinSize", spec.min)
                    .set("MaxSize", spec.max)
                    .set("DesiredCapacity", spec.min)
                    .set("VPCZoneIdentifier", subnets.join(","))
                    .set(
                        "HealthCheckType",
                        if spec.target_group_arn.is_some() {
                            "ELB"
                        } else {
                            "EC2"
                        },
                    )
                    .set("HealthCheckGracePeriod", 300)
                    .list("TargetGroupARNs", spec.target_group_arn.iter())
                    .structs(
                        "Tags",
                        self.asg_tags(&name, &spec.cluster),
                        |p, prefix, (key, value)| {
                            p.set(format!("{prefix}.Key"), key)
                                .set(format!("{prefix}.Value"), value)
                                .set(format!("{prefix}.PropagateAtLaunch"), true);
                        },
                    );
                self.call("autoscaling:CreateAutoScalingGroup", &params, |_| ())
                    .await?;
                Made::Created
            }
        };
        let mut params = Service::AutoScaling.params();
        let config = "TargetTrackingConfiguration";
        params
            .set("AutoScalingGroupName", &name)
            .set("PolicyName", POLICY_NAME)
            .set("PolicyType", "TargetTrackingScaling")
            .set(
                format!("{config}.PredefinedMetricSpecification.PredefinedMetricType"),
                spec.target.metric(),
            )
            .set(format!("{config}.TargetValue"), spec.target.value());
        if let AsgTarget::RequestsPerTarget { resource_label, .. } = &spec.target {
            params.set(
                format!("{config}.PredefinedMetricSpecification.ResourceLabel"),
                resource_label,
            );
        }
        self.call("autoscaling:PutScalingPolicy", &params, |_| ())
            .await?;
        Ok(made)
    }

    /// The project's groups (by their `Project` tag), with elb's policy on each (one more call
    /// a group: for `elb asg status`).
    pub async fn auto_scaling_groups_with_policies(
        &self,
    ) -> Result<Vec<AutoScalingGroup>, CloudError> {
        let mut groups = self.auto_scaling_groups(None).await?;
        for group in &mut groups {
            let mut params = Service::AutoScaling.params();
            params
                .set("AutoScalingGroupName", &group.name)
                .list("PolicyNames", [POLICY_NAME]);
            group.policy = self
                .call("autoscaling:DescribePolicies", &params, |root| {
                    root.list("ScalingPolicies").find_map(|p| {
                        let config = p.child("TargetTrackingConfiguration")?;
                        Some(format!(
                            "{} {}",
                            config
                                .at(&["PredefinedMetricSpecification"])?
                                .text("PredefinedMetricType")?,
                            config.text("TargetValue")?
                        ))
                    })
                })
                .await?;
        }
        Ok(groups)
    }

    /// The project's groups (`name`: only that one), without their policies.
    pub async fn auto_scaling_groups(
        &self,
        name: Option<&str>,
    ) -> Result<Vec<AutoScalingGroup>, CloudError> {
        let mut params = Service::AutoScaling.params();
        params
            .set("Filters.member.1.Name", "tag:Project")
            .list("Filters.member.1.Values", [&self.project]);
        if let Some(name) = name {
            params.list("AutoScalingGroupNames", [name]);
        }
        super::pages(
            &self.client,
            "autoscaling:DescribeAutoScalingGroups",
            &params,
            "NextToken",
            |root| {
                let groups = root
                    .list("AutoScalingGroups")
                    .map(|g| AutoScalingGroup {
                        name: g.string("AutoScalingGroupName"),
                        cluster: g
                            .list("Tags")
                            .find(|t| t.text("Key") == Some("Cluster"))
                            .map(|t| t.string("Value"))
                            .unwrap_or_default(),
                        min: g.number("MinSize").unwrap_or(0),
                        max: g.number("MaxSize").unwrap_or(0),
                        desired: g.number("DesiredCapacity").unwrap_or(0),
                        launch_template: g
                            .at(&["LaunchTemplate"])
                            .and_then(|t| t.text("LaunchTemplateName").map(str::to_owned)),
                        target_groups: g
                            .list("TargetGroupARNs")
                            .map(|a| a.own_text().to_owned())
                            .collect(),
                        instances: g
                            .list("Instances")
                            .map(|i| {
                                (
                                    i.string("InstanceId"),
                                    i.string("LifecycleState"),
                                    i.string("HealthStatus"),
                                )
                            })
                            .collect(),
                        policy: None,
                    })
                    .collect();
                (groups, root.text("NextToken").map(str::to_owned))
            },
        )
        .await
    }

    /// Deletes the group `name` with its instances (`ForceDelete`) and waits until Auto
    /// Scaling no longer lists it (polling every `interval` until `deadline`).
    pub async fn delete_auto_scaling_group(
        &self,
        name: &str,
        interval: Duration,
        deadline: Instant,
    ) -> Result<(), CloudError> {
        let mut params = Service::AutoScaling.params();
        params
            .set("AutoScalingGroupName", name)
            .set("ForceDelete", true);
        let deleted = self
            .call("autoscaling:DeleteAutoScalingGroup", &params, |_| ())
            .await;
        if !super::is_code(&deleted, "ValidationError") {
            deleted?;
        }
        loop {
            if self.auto_scaling_groups(Some(name)).await?.is_empty() {
                return Ok(());
            }
            if Instant::now() + interval > deadline {
                return Err(CloudError::Timeout {
                    what: format!("Auto Scaling group {name} to be deleted"),
                    secs: deadline.saturating_duration_since(Instant::now()).as_secs(),
                });
            }
            tokio::time::sleep(interval).await;
        }
    }

    /// The project's launch templates as `(id, name)`.
    pub async fn launch_templates(&self) -> Result<Vec<(String, String)>, CloudError> {
        let mut params = Service::Ec2.params();
        params.filter("tag:Project", &[&self.project]);
        self.pages("ec2:DescribeLaunchTemplates", &params, |root| {
            let templates = root
                .list("launchTemplates")
                .map(|t| (t.string("launchTemplateId"), t.string("launchTemplateName")))
                .collect();
            (templates, root.text("nextToken").map(str::to_owned))
        })
        .await
    }

    /// Deletes the launch template `id`.
    pub async fn delete_launch_template(&self, id: &str) -> Result<(), CloudError> {
        let mut params = Service::Ec2.params();
        params.set("LaunchTemplateId", id);
        self.call("ec2:DeleteLaunchTemplate", &params, |_| ()).await
    }
}
