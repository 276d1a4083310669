//! Elastic Load Balancing v2 (the managed ALB) for the project: every ELBv2 call elb makes, each
//! scoped by name and the exact `Project` tag. What to create and in which order is decided in
//! `crate::alb`; this module only speaks the API.
//!
//! ELBv2 has no tag filter on its Describe calls: the project's resources are found by listing
//! and asking `DescribeTags` (20 ARNs a call) for their `Project` tag.

use std::time::Duration;

use aws_config::SdkConfig;
use aws_sdk_elasticloadbalancingv2::types::{
    Action, ActionTypeEnum, LoadBalancerSchemeEnum, LoadBalancerStateEnum, LoadBalancerTypeEnum,
    Matcher, PathPatternConditionConfig, ProtocolEnum, RuleCondition, Tag, TargetDescription,
    TargetGroupAttribute, TargetTypeEnum,
};
use aws_sdk_elasticloadbalancingv2::Client;
use tokio::time::Instant;

use super::is_code;
use crate::cloud::errors::CloudError;
use crate::cloud::MANAGED_BY;

/// Most ARNs one `DescribeTags` call takes.
const TAGS_BATCH: usize = 20;
/// The listener port of the seed's ALB.
pub const LISTENER_PORT: u16 = 80;

/// A load balancer as elb needs it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LoadBalancer {
    /// Its ARN.
    pub arn: String,
    /// Its name (`<project>-alb`).
    pub name: String,
    /// The DNS name clients use.
    pub dns_name: String,
    /// `provisioning`, `active`, `failed`, ...
    pub state: String,
    /// Why the state is what it is, when AWS says.
    pub reason: Option<String>,
}

/// How a target group checks its targets, as ELBv2 takes it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct HealthCheck {
    /// HTTP path probed.
    pub path: String,
    /// Seconds between two checks of a target (ELBv2: 5 to 300).
    pub interval_secs: u32,
    /// Seconds a check may take (ELBv2: 2 to 120, below the interval).
    pub timeout_secs: u32,
    /// Passing checks in a row before a target is healthy (2 to 10).
    pub healthy: u32,
    /// Failing checks in a row before a target is unhealthy (2 to 10).
    pub unhealthy: u32,
    /// Status codes that pass, ELBv2's matcher syntax (`200`, `200-299`).
    pub matcher: String,
}

/// A target group as elb needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetGroup {
    /// Its ARN.
    pub arn: String,
    /// Its name (`<project>-<cluster>`).
    pub name: String,
    /// Its health check as it is now.
    pub health: HealthCheck,
}

/// One target's health as the load balancer reports it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TargetHealth {
    /// Instance id.
    pub id: String,
    /// `initial`, `healthy`, `unhealthy`, `unused`, `draining`, `unavailable`.
    pub state: String,
    /// ELBv2's reason code (`Elb.RegistrationInProgress`, `Target.ResponseCodeMismatch`, ...).
    pub reason: Option<String>,
    /// ELBv2's sentence about it.
    pub description: Option<String>,
}

/// A listener rule other than the default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerRule {
    /// Its ARN.
    pub arn: String,
    /// Its priority.
    pub priority: u32,
    /// Its path patterns.
    pub patterns: Vec<String>,
    /// The target group it forwards to.
    pub target_group_arn: Option<String>,
}

/// A listener as elb needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    /// Its ARN.
    pub arn: String,
    /// Its port.
    pub port: u16,
    /// The target group of its default action.
    pub default_target_group_arn: Option<String>,
}

/// Everything of ELBv2 that carries the project's tag, for the kill switch.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Inventory {
    /// Load balancers as `(arn, name)`.
    pub load_balancers: Vec<(String, String)>,
    /// Their listeners' ARNs (deleted with them, first).
    pub listeners: Vec<String>,
    /// Their rules' ARNs other than the defaults (deleted with their listeners).
    pub rules: Vec<String>,
    /// Target groups as `(arn, name)`.
    pub target_groups: Vec<(String, String)>,
}

impl Inventory {
    /// Whether the project has no ELBv2 resource.
    pub fn is_empty(&self) -> bool {
        self.load_balancers.is_empty() && self.target_groups.is_empty()
    }
}

/// The project's view of ELBv2 in one region.
#[derive(Debug, Clone)]
pub struct LoadBalancing {
    client: Client,
    project: String,
    notes: std::sync::Arc<dyn crate::notes::Notes>,
}

fn sdk_err<E, R>(
    action: &'static str,
) -> impl FnOnce(aws_sdk_elasticloadbalancingv2::error::SdkError<E, R>) -> CloudError
where
    E: aws_sdk_elasticloadbalancingv2::error::ProvideErrorMetadata
        + std::error::Error
        + Send
        + Sync
        + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    move |e| CloudError::from_sdk(action, e)
}

fn forward(target_group_arn: &str) -> Action {
    Action::builder()
        .r#type(ActionTypeEnum::Forward)
        .target_group_arn(target_group_arn)
        .build()
}

fn path_condition(pattern: &str) -> RuleCondition {
    RuleCondition::builder()
        .field("path-pattern")
        .path_pattern_config(
            PathPatternConditionConfig::builder()
                .values(pattern)
                .build(),
        )
        .build()
}

fn to_load_balancer(lb: &aws_sdk_elasticloadbalancingv2::types::LoadBalancer) -> LoadBalancer {
    let owned = |s: Option<&str>| s.unwrap_or_default().to_owned();
    LoadBalancer {
        arn: owned(lb.load_balancer_arn()),
        name: owned(lb.load_balancer_name()),
        dns_name: owned(lb.dns_name()),
        state: owned(lb.state().and_then(|s| s.code()).map(|c| c.as_str())),
        reason: lb.state().and_then(|s| s.reason()).map(str::to_owned),
    }
}

fn positive(value: Option<i32>) -> u32 {
    value.and_then(|v| u32::try_from(v).ok()).unwrap_or(0)
}

fn to_i32(value: u32) -> i32 {
    i32::try_from(value).unwrap_or(i32::MAX)
}

impl LoadBalancing {
    /// A client for the project's ELBv2 resources in the region `sdk` is configured for.
    pub fn new(
        sdk: &SdkConfig,
        project: &str,
        notes: std::sync::Arc<dyn crate::notes::Notes>,
    ) -> Self {
        Self {
            client: Client::new(sdk),
            project: project.to_owned(),
            notes,
        }
    }

    fn tags(&self, name: &str, cluster: Option<&str>) -> Vec<Tag> {
        let mut pairs = vec![
            ("Project", self.project.as_str()),
            ("ManagedBy", MANAGED_BY),
            ("Name", name),
        ];
        pairs.extend(cluster.map(|c| ("Cluster", c)));
        pairs
            .into_iter()
            .map(|(k, v)| Tag::builder().key(k).value(v).build())
            .collect()
    }

    /// The load balancer called `name`, if there is one carrying the project's tag. One that
    /// exists under that name without the tag is refused: it belongs to someone else.
    pub async fn find_load_balancer(&self, name: &str) -> Result<Option<LoadBalancer>, CloudError> {
        let out = self
            .client
            .describe_load_balancers()
            .names(name)
            .send()
            .await;
        let found = match out {
            Ok(out) => out.load_balancers().first().map(to_load_balancer),
            Err(e) if is_code(&e, "LoadBalancerNotFound") => None,
            Err(e) => {
                return Err(CloudError::from_sdk(
                    "elasticloadbalancing:DescribeLoadBalancers",
                    e,
                ))
            }
        };
        match found {
            Some(lb) if self.owns(&lb.arn).await? => Ok(Some(lb)),
            Some(lb) => Err(CloudError::ForeignLoadBalancer {
                name: lb.name,
                project: self.project.clone(),
            }),
            None => Ok(None),
        }
    }

    /// Creates the internet-facing application load balancer `name` in `subnets` behind
    /// `security_group`, tagged at creation.
    pub async fn create_load_balancer(
        &self,
        name: &str,
        subnets: &[String],
        security_group: &str,
    ) -> Result<LoadBalancer, CloudError> {
        let out = self
            .client
            .create_load_balancer()
            .name(name)
            .r#type(LoadBalancerTypeEnum::Application)
            .scheme(LoadBalancerSchemeEnum::InternetFacing)
            .set_subnets(Some(subnets.to_vec()))
            .security_groups(security_group)
            .set_tags(Some(self.tags(name, None)))
            .send()
            .await
            .map_err(sdk_err("elasticloadbalancing:CreateLoadBalancer"))?;
        out.load_balancers()
            .first()
            .map(to_load_balancer)
            .ok_or_else(|| CloudError::Unexpected {
                action: "elasticloadbalancing:CreateLoadBalancer",
                what: "no load balancer in the answer".into(),
            })
    }

    /// Polls the load balancer `arn` until it is `active`, for at most `timeout`. Right after
    /// its creation ELBv2 may not know it yet (`LoadBalancerNotFound`): that counts as not
    /// active yet. A `failed` one ends the wait with its reason.
    pub async fn wait_active(
        &self,
        arn: &str,
        interval: Duration,
        timeout: Duration,
    ) -> Result<LoadBalancer, CloudError> {
        let deadline = Instant::now() + timeout;
        loop {
            let lb = self.describe_arn(arn).await?;
            if let Some(lb) = &lb {
                if lb.state == LoadBalancerStateEnum::Active.as_str() {
                    return Ok(lb.clone());
                }
                if lb.state == LoadBalancerStateEnum::Failed.as_str() {
                    return Err(CloudError::LoadBalancerFailed {
                        name: lb.name.clone(),
                        reason: lb
                            .reason
                            .clone()
                            .unwrap_or_else(|| "no reason given".into()),
                    });
                }
            }
            if Instant::now() >= deadline {
                return Err(CloudError::Timeout {
                    what: format!(
                        "load balancer {arn} to become active (it is {})",
                        lb.map_or_else(|| "not visible yet".to_owned(), |lb| lb.state)
                    ),
                    secs: timeout.as_secs(),
                });
            }
            tokio::time::sleep(interval).await;
        }
    }

    /// The load balancer `arn` as ELBv2 lists it now; `None` when it does not know it (not yet,
    /// right after creation, or no more, after deletion).
    async fn describe_arn(&self, arn: &str) -> Result<Option<LoadBalancer>, CloudError> {
        let out = self
            .client
            .describe_load_balancers()
            .load_balancer_arns(arn)
            .send()
            .await;
        match out {
            Ok(out) => Ok(out.load_balancers().first().map(to_load_balancer)),
            Err(e) if is_code(&e, "LoadBalancerNotFound") => Ok(None),
            Err(e) => Err(CloudError::from_sdk(
                "elasticloadbalancing:DescribeLoadBalancers",
                e,
            )),
        }
    }

    /// Whether the resource `arn` carries the project's exact `Project` tag.
    async fn owns(&self, arn: &str) -> Result<bool, CloudError> {
        Ok(self
            .tagged(&[arn.to_owned()])
            .await?
            .contains(&arn.to_owned()))
    }

    /// Those of `arns` that carry the project's exact `Project` tag.
    async fn tagged(&self, arns: &[String]) -> Result<Vec<String>, CloudError> {
        let mut ours = Vec::new();
        for batch in arns.chunks(TAGS_BATCH) {
            let out = self
                .client
                .describe_tags()
                .set_resource_arns(Some(batch.to_vec()))
                .send()
                .await
                .map_err(sdk_err("elasticloadbalancing:DescribeTags"))?;
            ours.extend(
                out.tag_descriptions()
                    .iter()
                    .filter(|d| {
                        d.tags().iter().any(|t| {
                            t.key() == Some("Project") && t.value() == Some(self.project.as_str())
                        })
                    })
                    .filter_map(|d| d.resource_arn().map(str::to_owned)),
            );
        }
        Ok(ours)
    }

    /// The target group called `name` carrying the project's tag, if any.
    pub async fn find_target_group(&self, name: &str) -> Result<Option<TargetGroup>, CloudError> {
        let out = self
            .client
            .describe_target_groups()
            .names(name)
            .send()
            .await;
        let group = match out {
            Ok(out) => out.target_groups().first().cloned(),
            Err(e) if is_code(&e, "TargetGroupNotFound") => None,
            Err(e) => {
                return Err(CloudError::from_sdk(
                    "elasticloadbalancing:DescribeTargetGroups",
                    e,
                ))
            }
        };
        let Some(group) = group else { return Ok(None) };
        let arn = group.target_group_arn().unwrap_or_default().to_owned();
        if !self.owns(&arn).await? {
            return Err(CloudError::ForeignLoadBalancer {
                name: name.to_owned(),
                project: self.project.clone(),
            });
        }
        Ok(Some(TargetGroup {
            arn,
            name: name.to_owned(),
            health: HealthCheck {
                path: group.health_check_path().unwrap_or("/").to_owned(),
                interval_secs: positive(group.health_check_interval_seconds()),
                timeout_secs: positive(group.health_check_timeout_seconds()),
                healthy: positive(group.healthy_threshold_count()),
                unhealthy: positive(group.unhealthy_threshold_count()),
                matcher: group
                    .matcher()
                    .and_then(|m| m.http_code())
                    .unwrap_or("200")
                    .to_owned(),
            },
        }))
    }

    /// Creates the target group `name` for `cluster`'s instances (HTTP on `port`) in `vpc_id`,
    /// with `health`, tagged at creation. Returns its ARN.
    pub async fn create_target_group(
        &self,
        name: &str,
        cluster: &str,
        vpc_id: &str,
        port: u16,
        health: &HealthCheck,
    ) -> Result<String, CloudError> {
        let out = self
            .client
            .create_target_group()
            .name(name)
            .protocol(ProtocolEnum::Http)
            .port(i32::from(port))
            .vpc_id(vpc_id)
            .target_type(TargetTypeEnum::Instance)
            .health_check_protocol(ProtocolEnum::Http)
            .health_check_path(&health.path)
            .health_check_interval_seconds(to_i32(health.interval_secs))
            .health_check_timeout_seconds(to_i32(health.timeout_secs))
            .healthy_threshold_count(to_i32(health.healthy))
            .unhealthy_threshold_count(to_i32(health.unhealthy))
            .matcher(Matcher::builder().http_code(&health.matcher).build())
            .set_tags(Some(self.tags(name, Some(cluster))))
            .send()
            .await
            .map_err(sdk_err("elasticloadbalancing:CreateTargetGroup"))?;
        out.target_groups()
            .first()
            .and_then(|g| g.target_group_arn())
            .map(str::to_owned)
            .ok_or_else(|| CloudError::Unexpected {
                action: "elasticloadbalancing:CreateTargetGroup",
                what: "no target group in the answer".into(),
            })
    }

    /// Sets a target group's health check to `health`.
    pub async fn modify_health_check(
        &self,
        arn: &str,
        health: &HealthCheck,
    ) -> Result<(), CloudError> {
        self.client
            .modify_target_group()
            .target_group_arn(arn)
            .health_check_path(&health.path)
            .health_check_interval_seconds(to_i32(health.interval_secs))
            .health_check_timeout_seconds(to_i32(health.timeout_secs))
            .healthy_threshold_count(to_i32(health.healthy))
            .unhealthy_threshold_count(to_i32(health.unhealthy))
            .matcher(Matcher::builder().http_code(&health.matcher).build())
            .send()
            .await
            .map(drop)
            .map_err(sdk_err("elasticloadbalancing:ModifyTargetGroup"))
    }

    /// A target group's deregistration delay in seconds, if set.
    pub async fn deregistration_delay(&self, arn: &str) -> Result<Option<u32>, CloudError> {
        let out = self
            .client
            .describe_target_group_attributes()
            .target_group_arn(arn)
            .send()
            .await
            .map_err(sdk_err(
                "elasticloadbalancing:DescribeTargetGroupAttributes",
            ))?;
        Ok(out
            .attributes()
            .iter()
            .find(|a| a.key() == Some("deregistration_delay.timeout_seconds"))
            .and_then(|a| a.value()?.parse().ok()))
    }

    /// Sets a target group's deregistration delay.
    pub async fn set_deregistration_delay(&self, arn: &str, secs: u32) -> Result<(), CloudError> {
        self.client
            .modify_target_group_attributes()
            .target_group_arn(arn)
            .attributes(
                TargetGroupAttribute::builder()
                    .key("deregistration_delay.timeout_seconds")
                    .value(secs.to_string())
                    .build(),
            )
            .send()
            .await
            .map(drop)
            .map_err(sdk_err("elasticloadbalancing:ModifyTargetGroupAttributes"))
    }

    /// Every target registered in a group, with its health.
    pub async fn target_health(&self, arn: &str) -> Result<Vec<TargetHealth>, CloudError> {
        let out = self
            .client
            .describe_target_health()
            .target_group_arn(arn)
            .send()
            .await
            .map_err(sdk_err("elasticloadbalancing:DescribeTargetHealth"))?;
        let mut targets: Vec<TargetHealth> = out
            .target_health_descriptions()
            .iter()
            .filter_map(|d| {
                let health = d.target_health();
                Some(TargetHealth {
                    id: d.target()?.id()?.to_owned(),
                    state: health
                        .and_then(|h| h.state())
                        .map_or("unknown", |s| s.as_str())
                        .to_owned(),
                    reason: health
                        .and_then(|h| h.reason())
                        .map(|r| r.as_str().to_owned()),
                    description: health.and_then(|h| h.description()).map(str::to_owned),
                })
            })
            .collect();
        targets.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(targets)
    }

    /// Registers instances `ids` (on `port`) in a group.
    pub async fn register(&self, arn: &str, ids: &[String], port: u16) -> Result<(), CloudError> {
        if ids.is_empty() {
            return Ok(());
        }
        self.client
            .register_targets()
            .target_group_arn(arn)
            .set_targets(Some(targets(ids, port)))
            .send()
            .await
            .map(drop)
            .map_err(sdk_err("elasticloadbalancing:RegisterTargets"))
    }

    /// Deregisters instances `ids` from a group (they drain for the deregistration delay).
    pub async fn deregister(&self, arn: &str, ids: &[String], port: u16) -> Result<(), CloudError> {
        if ids.is_empty() {
            return Ok(());
        }
        self.client
            .deregister_targets()
            .target_group_arn(arn)
            .set_targets(Some(targets(ids, port)))
            .send()
            .await
            .map(drop)
            .map_err(sdk_err("elasticloadbalancing:DeregisterTargets"))
    }

    /// The load balancer's listeners.
    pub async fn listeners(&self, lb_arn: &str) -> Result<Vec<Listener>, CloudError> {
        let out = self
            .client
            .describe_listeners()
            .load_balancer_arn(lb_arn)
            .send()
            .await
            .map_err(sdk_err("elasticloadbalancing:DescribeListeners"))?;
        Ok(out
            .listeners()
            .iter()
            .filter_map(|l| {
                Some(Listener {
                    arn: l.listener_arn()?.to_owned(),
                    port: u16::try_from(l.port()?).ok()?,
                    default_target_group_arn: l
                        .default_actions()
                        .iter()
                        .find_map(|a| a.target_group_arn())
                        .map(str::to_owned),
                })
            })
            .collect())
    }

    /// Creates an HTTP listener on [`LISTENER_PORT`] forwarding to `target_group_arn` by
    /// default, tagged at creation. Returns its ARN.
    pub async fn create_listener(
        &self,
        lb_arn: &str,
        name: &str,
        target_group_arn: &str,
    ) -> Result<String, CloudError> {
        let out = self
            .client
            .create_listener()
            .load_balancer_arn(lb_arn)
            .protocol(ProtocolEnum::Http)
            .port(i32::from(LISTENER_PORT))
            .default_actions(forward(target_group_arn))
            .set_tags(Some(self.tags(name, None)))
            .send()
            .await
            .map_err(sdk_err("elasticloadbalancing:CreateListener"))?;
        out.listeners()
            .first()
            .and_then(|l| l.listener_arn())
            .map(str::to_owned)
            .ok_or_else(|| CloudError::Unexpected {
                action: "elasticloadbalancing:CreateListener",
                what: "no listener in the answer".into(),
            })
    }

    /// Points a listener's default action at `target_group_arn`.
    pub async fn set_default_action(
        &self,
        listener_arn: &str,
        target_group_arn: &str,
    ) -> Result<(), CloudError> {
        self.client
            .modify_listener()
            .listener_arn(listener_arn)
            .default_actions(forward(target_group_arn))
            .send()
            .await
            .map(drop)
            .map_err(sdk_err("elasticloadbalancing:ModifyListener"))
    }

    /// A listener's rules other than the default, by priority.
    pub async fn rules(&self, listener_arn: &str) -> Result<Vec<ListenerRule>, CloudError> {
        let out = self
            .client
            .describe_rules()
            .listener_arn(listener_arn)
            .send()
            .await
            .map_err(sdk_err("elasticloadbalancing:DescribeRules"))?;
        let mut rules: Vec<ListenerRule> = out
            .rules()
            .iter()
            .filter(|r| r.is_default() != Some(true))
            .filter_map(|r| {
                Some(ListenerRule {
                    arn: r.rule_arn()?.to_owned(),
                    priority: r.priority()?.parse().ok()?,
                    patterns: r
                        .conditions()
                        .iter()
                        .filter(|c| c.field() == Some("path-pattern"))
                        .flat_map(|c| {
                            // The older `Values` field and `PathPatternConfig` both carry them.
                            let config = c
                                .path_pattern_config()
                                .map(|p| p.values())
                                .unwrap_or_default();
                            c.values().iter().chain(config).cloned().collect::<Vec<_>>()
                        })
                        .fold(Vec::new(), |mut seen, p| {
                            if !seen.contains(&p) {
                                seen.push(p);
                            }
                            seen
                        }),
                    target_group_arn: r
                        .actions()
                        .iter()
                        .find_map(|a| a.target_group_arn())
                        .map(str::to_owned),
                })
            })
            .collect();
        rules.sort_by_key(|r| r.priority);
        Ok(rules)
    }

    /// Adds a rule: `pattern` at `priority` forwards to `target_group_arn`, tagged at creation.
    pub async fn create_rule(
        &self,
        listener_arn: &str,
        priority: u32,
        pattern: &str,
        target_group_arn: &str,
        name: &str,
    ) -> Result<(), CloudError> {
        self.client
            .create_rule()
            .listener_arn(listener_arn)
            .priority(to_i32(priority))
            .conditions(path_condition(pattern))
            .actions(forward(target_group_arn))
            .set_tags(Some(self.tags(name, None)))
            .send()
            .await
            .map(drop)
            .map_err(sdk_err("elasticloadbalancing:CreateRule"))
    }

    /// Rewrites a rule's condition and action.
    pub async fn modify_rule(
        &self,
        rule_arn: &str,
        pattern: &str,
        target_group_arn: &str,
    ) -> Result<(), CloudError> {
        self.client
            .modify_rule()
            .rule_arn(rule_arn)
            .conditions(path_condition(pattern))
            .actions(forward(target_group_arn))
            .send()
            .await
            .map(drop)
            .map_err(sdk_err("elasticloadbalancing:ModifyRule"))
    }

    /// Deletes a rule.
    pub async fn delete_rule(&self, rule_arn: &str) -> Result<(), CloudError> {
        match self.client.delete_rule().rule_arn(rule_arn).send().await {
            Ok(_) => Ok(()),
            Err(e) if is_code(&e, "RuleNotFound") => Ok(()),
            Err(e) => Err(CloudError::from_sdk("elasticloadbalancing:DeleteRule", e)),
        }
    }

    /// Everything of ELBv2 that carries the project's tag: load balancers with their listeners
    /// and rules, and target groups. Another project's resources and untagged ones are not in it.
    pub async fn inventory(&self) -> Result<Inventory, CloudError> {
        let lbs = self
            .client
            .describe_load_balancers()
            .into_paginator()
            .send()
            .collect::<Result<Vec<_>, _>>()
            .await
            .map_err(sdk_err("elasticloadbalancing:DescribeLoadBalancers"))?;
        let lbs: Vec<LoadBalancer> = lbs
            .iter()
            .flat_map(|p| p.load_balancers())
            .map(to_load_balancer)
            .collect();
        let groups = self
            .client
            .describe_target_groups()
            .into_paginator()
            .send()
            .collect::<Result<Vec<_>, _>>()
            .await
            .map_err(sdk_err("elasticloadbalancing:DescribeTargetGroups"))?;
        let groups: Vec<(String, String)> = groups
            .iter()
            .flat_map(|p| p.target_groups())
            .filter_map(|g| {
                Some((
                    g.target_group_arn()?.to_owned(),
                    g.target_group_name()?.to_owned(),
                ))
            })
            .collect();
        let candidates: Vec<String> = lbs
            .iter()
            .map(|lb| lb.arn.clone())
            .chain(groups.iter().map(|(arn, _)| arn.clone()))
            .collect();
        let ours = self.tagged(&candidates).await?;
        let mut inventory = Inventory::default();
        for lb in lbs.into_iter().filter(|lb| ours.contains(&lb.arn)) {
            for listener in self.listeners(&lb.arn).await? {
                inventory
                    .rules
                    .extend(self.rules(&listener.arn).await?.into_iter().map(|r| r.arn));
                inventory.listeners.push(listener.arn);
            }
            inventory.load_balancers.push((lb.arn, lb.name));
        }
        inventory.target_groups = groups
            .into_iter()
            .filter(|(arn, _)| ours.contains(arn))
            .collect();
        Ok(inventory)
    }

    /// Deletes an inventory: listeners, load balancers (each waited for, every `poll`, until
    /// gone), then target groups (retrying `ResourceInUse` while a load balancer still holds
    /// them), all until `deadline`. Returns how many resources went.
    pub async fn delete(
        &self,
        inventory: &Inventory,
        poll: Duration,
        deadline: Instant,
    ) -> Result<usize, CloudError> {
        for arn in &inventory.listeners {
            self.delete_listener(arn).await?;
            self.notes.note(&format!("deleted listener {arn}"));
        }
        for (arn, name) in &inventory.load_balancers {
            self.delete_load_balancer(arn, poll, deadline).await?;
            self.notes.note(&format!("deleted load balancer {name}"));
        }
        for (arn, name) in &inventory.target_groups {
            self.delete_target_group(arn, deadline).await?;
            self.notes.note(&format!("deleted target group {name}"));
        }
        Ok(inventory.listeners.len()
            + inventory.load_balancers.len()
            + inventory.target_groups.len())
    }

    /// Deletes a listener (and its rules).
    pub async fn delete_listener(&self, arn: &str) -> Result<(), CloudError> {
        match self.client.delete_listener().listener_arn(arn).send().await {
            Ok(_) => Ok(()),
            Err(e) if is_code(&e, "ListenerNotFound") => Ok(()),
            Err(e) => Err(CloudError::from_sdk(
                "elasticloadbalancing:DeleteListener",
                e,
            )),
        }
    }

    /// Deletes a load balancer and waits, polling every `interval` until `deadline`, until
    /// ELBv2 no longer lists it.
    pub async fn delete_load_balancer(
        &self,
        arn: &str,
        interval: Duration,
        deadline: Instant,
    ) -> Result<(), CloudError> {
        match self
            .client
            .delete_load_balancer()
            .load_balancer_arn(arn)
            .send()
            .await
        {
            Ok(_) => {}
            Err(e) if is_code(&e, "LoadBalancerNotFound") => return Ok(()),
            Err(e) => {
                return Err(CloudError::from_sdk(
                    "elasticloadbalancing:DeleteLoadBalancer",
                    e,
                ))
            }
        }
        let started = Instant::now();
        loop {
            if self.describe_arn(arn).await?.is_none() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(CloudError::Timeout {
                    what: format!("load balancer {arn} to be deleted"),
                    secs: started.elapsed().as_secs(),
                });
            }
            tokio::time::sleep(interval).await;
        }
    }

    /// Deletes a target group, retrying with backoff while ELBv2 still counts it in use by a
    /// load balancer being deleted (`ResourceInUse`), until `deadline`.
    pub async fn delete_target_group(
        &self,
        arn: &str,
        deadline: Instant,
    ) -> Result<(), CloudError> {
        let mut backoff = Duration::from_millis(250);
        loop {
            match self
                .client
                .delete_target_group()
                .target_group_arn(arn)
                .send()
                .await
            {
                Ok(_) => return Ok(()),
                Err(e) if is_code(&e, "TargetGroupNotFound") => return Ok(()),
                Err(e) if is_code(&e, "ResourceInUse") => {
                    let now = Instant::now();
                    if now >= deadline {
                        return Err(CloudError::from_sdk(
                            "elasticloadbalancing:DeleteTargetGroup",
                            e,
                        ));
                    }
                    tracing::info!(%arn, ?backoff, "target group still in use; retrying");
                    tokio::time::sleep(backoff.min(deadline - now)).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
                Err(e) => {
                    return Err(CloudError::from_sdk(
                        "elasticloadbalancing:DeleteTargetGroup",
                        e,
                    ))
                }
            }
        }
    }
}

fn targets(ids: &[String], port: u16) -> Vec<TargetDescription> {
    ids.iter()
        .map(|id| {
            TargetDescription::builder()
                .id(id)
                .port(i32::from(port))
                .build()
        })
        .collect()
}
