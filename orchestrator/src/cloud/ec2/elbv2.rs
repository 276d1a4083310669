//! Elastic Load Balancing v2 (the managed ALB) for the project: every ELBv2 call elb makes, each
//! scoped by name and the exact `Project` tag. What to create and in which order is decided in
//! `crate::alb`; this module only speaks the API.
//!
//! ELBv2 has no tag filter on its Describe calls: the project's resources are found by listing
//! and asking `DescribeTags` (20 ARNs a call) for their `Project` tag.

use std::time::Duration;

use tokio::time::Instant;

use super::{call, is_code};
use crate::aws::{self, Node, Params, Service};
use crate::cloud::errors::CloudError;
use crate::cloud::MANAGED_BY;
use crate::routing::Conditions;
use proto::balancer_config::{FixedResponse, HeaderCondition, QueryCondition, QueryPair, Redirect};

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
    /// Its other conditions.
    pub conditions: Conditions,
    /// What it does, when elb knows the action's type.
    pub action: Option<AlbAction>,
}

/// A listener as elb needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    /// Its ARN.
    pub arn: String,
    /// Its port.
    pub port: u16,
    /// `HTTP` or `HTTPS`.
    pub protocol: String,
    /// Its default action, when elb knows the action's type.
    pub default_action: Option<AlbAction>,
    /// An HTTPS listener's security policy.
    pub ssl_policy: Option<String>,
    /// An HTTPS listener's default certificate.
    pub certificate_arn: Option<String>,
}

/// What a listener terminates: plain HTTP, or TLS with a policy and certificates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListenerProtocol {
    /// Plain HTTP.
    Http,
    /// HTTPS.
    Https {
        /// ELBv2's security policy name (`ELBSecurityPolicy-TLS13-1-2-2021-06`).
        policy: String,
        /// The default certificate's ARN.
        certificate_arn: String,
    },
}

impl ListenerProtocol {
    /// ELBv2's name for it.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Http => "HTTP",
            Self::Https { .. } => "HTTPS",
        }
    }

    /// Whether `listener` already terminates this way.
    pub fn matches(&self, listener: &Listener) -> bool {
        match self {
            Self::Http => listener.protocol == "HTTP",
            Self::Https {
                policy,
                certificate_arn,
            } => {
                listener.protocol == "HTTPS"
                    && listener.ssl_policy.as_deref() == Some(policy.as_str())
                    && listener.certificate_arn.as_deref() == Some(certificate_arn.as_str())
            }
        }
    }

    /// Its parameters: `Protocol`, and for HTTPS `SslPolicy` and the default certificate.
    fn set(&self, params: &mut Params) {
        params.set("Protocol", self.name());
        if let Self::Https {
            policy,
            certificate_arn,
        } = self
        {
            params.set("SslPolicy", policy);
            let entry = params.entry("Certificates", 0);
            params.set(format!("{entry}.CertificateArn"), certificate_arn);
        }
    }
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
    /// The certificates `elb alb up` imported into ACM, as `(arn, domain)` (deleted last, once
    /// no listener holds them).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub certificates: Vec<(String, String)>,
}

impl Inventory {
    /// Whether the project has no ELBv2 resource and no certificate.
    pub fn is_empty(&self) -> bool {
        self.load_balancers.is_empty()
            && self.target_groups.is_empty()
            && self.certificates.is_empty()
    }
}

/// The project's view of ELBv2 in one region.
#[derive(Debug, Clone)]
pub struct LoadBalancing {
    client: aws::Client,
    project: String,
    notes: std::sync::Arc<dyn crate::notes::Notes>,
}

/// A rule's action as ELBv2 holds it, target groups by ARN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AlbAction {
    /// `forward` to one group.
    Forward(String),
    /// `forward` to two or more groups by weight; a client kept with the group drawn for it
    /// for `stickiness_secs` (ForwardConfig's TargetGroupStickinessConfig), if some.
    Weighted {
        groups: Vec<(String, u32)>,
        stickiness_secs: Option<u64>,
    },
    /// `redirect` (ELBv2 fills the parts left out with their placeholders: [`Redirect::filled`]).
    Redirect(Redirect),
    /// `fixed-response`.
    Fixed(FixedResponse),
}

impl AlbAction {
    /// Its parameters as entry 1 of `list` (`Actions`).
    fn set(&self, params: &mut Params, list: &str) {
        let entry = params.entry(list, 0);
        let at = |name: &str| format!("{entry}.{name}");
        match self {
            Self::Forward(arn) => {
                params
                    .set(at("Type"), "forward")
                    .set(at("TargetGroupArn"), arn);
            }
            Self::Weighted {
                groups,
                stickiness_secs,
            } => {
                params.set(at("Type"), "forward").structs(
                    &at("ForwardConfig.TargetGroups"),
                    groups,
                    |p, group, (arn, weight)| {
                        p.set(format!("{group}.TargetGroupArn"), arn)
                            .set(format!("{group}.Weight"), weight);
                    },
                );
                let sticky = at("ForwardConfig.TargetGroupStickinessConfig");
                params
                    .set(format!("{sticky}.Enabled"), stickiness_secs.is_some())
                    .maybe(&format!("{sticky}.DurationSeconds"), *stickiness_secs);
            }
            Self::Redirect(redirect) => {
                let full = redirect.filled();
                params
                    .set(at("Type"), "redirect")
                    .set(
                        at("RedirectConfig.StatusCode"),
                        format!("HTTP_{}", full.status),
                    )
                    .maybe(&at("RedirectConfig.Protocol"), full.protocol)
                    .maybe(&at("RedirectConfig.Host"), full.host)
                    .maybe(&at("RedirectConfig.Port"), full.port)
                    .maybe(&at("RedirectConfig.Path"), full.path)
                    .maybe(&at("RedirectConfig.Query"), full.query);
            }
            Self::Fixed(fixed) => {
                params
                    .set(at("Type"), "fixed-response")
                    .set(at("FixedResponseConfig.StatusCode"), fixed.status)
                    .maybe(
                        &at("FixedResponseConfig.ContentType"),
                        fixed.content_type.as_deref(),
                    )
                    .maybe(
                        &at("FixedResponseConfig.MessageBody"),
                        fixed.body.as_deref(),
                    );
            }
        }
    }

    /// The first action of the list `list` of a rule (`Actions`) or a listener
    /// (`DefaultActions`) of a `Describe*` answer; `None` for a type elb does not make
    /// (authentication, say).
    fn read(node: Node<'_, '_>, list: &str) -> Option<Self> {
        let action = node.list(list).next()?;
        let text = |node: Option<Node<'_, '_>>, name: &str| {
            node.and_then(|n| n.text(name))
                .filter(|t| !t.is_empty())
                .map(str::to_owned)
        };
        match action.text("Type")? {
            "forward" => {
                let weighted: Vec<(String, u32)> = action
                    .at(&["ForwardConfig"])
                    .into_iter()
                    .flat_map(|c| c.list("TargetGroups"))
                    .filter_map(|g| {
                        Some((g.text("TargetGroupArn")?.to_owned(), g.number("Weight")?))
                    })
                    .collect();
                if weighted.len() > 1 {
                    let stickiness = action.at(&["ForwardConfig", "TargetGroupStickinessConfig"]);
                    let stickiness_secs = stickiness
                        .filter(|s| s.text("Enabled") == Some("true"))
                        .and_then(|s| s.number("DurationSeconds"));
                    Some(Self::Weighted {
                        groups: weighted,
                        stickiness_secs,
                    })
                } else {
                    text(Some(action), "TargetGroupArn")
                        .or_else(|| weighted.first().map(|(arn, _)| arn.clone()))
                        .map(Self::Forward)
                }
            }
            "redirect" => {
                let config = action.child("RedirectConfig");
                let status = text(config, "StatusCode")?
                    .trim_start_matches("HTTP_")
                    .parse()
                    .ok()?;
                Some(Self::Redirect(Redirect {
                    status,
                    protocol: text(config, "Protocol"),
                    host: text(config, "Host"),
                    port: text(config, "Port"),
                    path: text(config, "Path"),
                    query: config.and_then(|c| c.text("Query")).map(str::to_owned),
                }))
            }
            "fixed-response" => {
                let config = action.child("FixedResponseConfig");
                Some(Self::Fixed(FixedResponse {
                    status: text(config, "StatusCode")?.parse().ok()?,
                    content_type: text(config, "ContentType"),
                    body: text(config, "MessageBody"),
                }))
            }
            _ => None,
        }
    }
}

/// A rule's `Conditions`: the `path-pattern`, then one condition per method list, header,
/// query-string condition and source list, as ALB takes them.
fn rule_conditions(params: &mut Params, pattern: &str, conditions: &Conditions) {
    let mut count = 0;
    // The next `Conditions.member.N`, its `Field` set.
    let mut next = |p: &mut Params, field: &str| {
        let entry = p.entry("Conditions", count);
        count += 1;
        p.set(format!("{entry}.Field"), field);
        entry
    };
    let entry = next(params, "path-pattern");
    params.list(&format!("{entry}.PathPatternConfig.Values"), [pattern]);
    if !conditions.methods.is_empty() {
        let entry = next(params, "http-request-method");
        params.list(
            &format!("{entry}.HttpRequestMethodConfig.Values"),
            &conditions.methods,
        );
    }
    for header in &conditions.headers {
        let entry = next(params, "http-header");
        params
            .set(
                format!("{entry}.HttpHeaderConfig.HttpHeaderName"),
                &header.name,
            )
            .list(&format!("{entry}.HttpHeaderConfig.Values"), &header.values);
    }
    for query in &conditions.query {
        let entry = next(params, "query-string");
        params.structs(
            &format!("{entry}.QueryStringConfig.Values"),
            &query.pairs,
            |p, pair, QueryPair { key, value }| {
                p.maybe(&format!("{pair}.Key"), key.as_deref());
                p.set(format!("{pair}.Value"), value);
            },
        );
    }
    if !conditions.source_ips.is_empty() {
        let entry = next(params, "source-ip");
        params.list(
            &format!("{entry}.SourceIpConfig.Values"),
            &conditions.source_ips,
        );
    }
}

/// The conditions of a rule of a `DescribeRules` answer, beside its path patterns.
fn read_conditions(rule: Node<'_, '_>) -> Conditions {
    let values = |node: Option<Node<'_, '_>>| -> Vec<String> {
        node.into_iter()
            .flat_map(|n| n.list("Values"))
            .map(|v| v.own_text().to_owned())
            .collect()
    };
    let mut conditions = Conditions::default();
    for condition in rule.list("Conditions") {
        match condition.text("Field").unwrap_or_default() {
            "http-request-method" => conditions
                .methods
                .extend(values(condition.child("HttpRequestMethodConfig"))),
            "http-header" => {
                let config = condition.child("HttpHeaderConfig");
                conditions.headers.push(HeaderCondition {
                    name: config
                        .and_then(|c| c.text("HttpHeaderName"))
                        .unwrap_or_default()
                        .to_owned(),
                    values: values(config),
                });
            }
            "query-string" => conditions.query.push(QueryCondition {
                pairs: condition
                    .child("QueryStringConfig")
                    .into_iter()
                    .flat_map(|c| c.list("Values"))
                    .map(|pair| QueryPair {
                        key: pair
                            .text("Key")
                            .filter(|k| !k.is_empty())
                            .map(str::to_owned),
                        value: pair.string("Value"),
                    })
                    .collect(),
            }),
            "source-ip" => conditions
                .source_ips
                .extend(values(condition.child("SourceIpConfig"))),
            _ => {}
        }
    }
    conditions
}

/// A health check's parameters, as CreateTargetGroup and ModifyTargetGroup take them.
fn health_check(params: &mut Params, health: &HealthCheck) {
    params
        .set("HealthCheckPath", &health.path)
        .set("HealthCheckIntervalSeconds", health.interval_secs)
        .set("HealthCheckTimeoutSeconds", health.timeout_secs)
        .set("HealthyThresholdCount", health.healthy)
        .set("UnhealthyThresholdCount", health.unhealthy)
        .set("Matcher.HttpCode", &health.matcher);
}

/// A load balancer of a `LoadBalancers` list.
fn to_load_balancer(lb: Node<'_, '_>) -> LoadBalancer {
    LoadBalancer {
        arn: lb.string("LoadBalancerArn"),
        name: lb.string("LoadBalancerName"),
        dns_name: lb.string("DNSName"),
        state: lb
            .at(&["State", "Code"])
            .map(|c| c.own_text().to_owned())
            .unwrap_or_default(),
        reason: lb.at(&["State", "Reason"]).map(|r| r.own_text().to_owned()),
    }
}

/// The first load balancer of a `DescribeLoadBalancers` or `CreateLoadBalancer` answer.
fn first_load_balancer(root: Node<'_, '_>) -> Option<LoadBalancer> {
    root.list("LoadBalancers").next().map(to_load_balancer)
}

/// The ELBv2 `NextMarker`, when there is another page.
fn next_marker(root: Node<'_, '_>) -> Option<String> {
    root.text("NextMarker")
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
}

/// The path patterns of a rule: the older `Values` field and `PathPatternConfig` both carry
/// them; each pattern once.
fn rule_patterns(rule: Node<'_, '_>) -> Vec<String> {
    let mut patterns: Vec<String> = Vec::new();
    for condition in rule
        .list("Conditions")
        .filter(|c| c.text("Field") == Some("path-pattern"))
    {
        let config = condition
            .child("PathPatternConfig")
            .into_iter()
            .flat_map(|p| p.list("Values"));
        for value in condition.list("Values").chain(config) {
            let value = value.own_text().to_owned();
            if !patterns.contains(&value) {
                patterns.push(value);
            }
        }
    }
    patterns
}

/// The unexpected-answer error of a create call that returned nothing.
fn missing(action: &'static str, what: &str) -> CloudError {
    CloudError::Unexpected {
        action,
        what: format!("no {what} in the answer"),
    }
}

impl LoadBalancing {
    /// A client for the project's ELBv2 resources in the region `client` calls.
    pub fn new(
        client: &aws::Client,
        project: &str,
        notes: std::sync::Arc<dyn crate::notes::Notes>,
    ) -> Self {
        Self {
            client: client.clone(),
            project: project.to_owned(),
            notes,
        }
    }

    /// The client calls go through (ACM's too, in `acm.rs`).
    pub(super) fn client(&self) -> &aws::Client {
        &self.client
    }

    /// The project.
    pub(super) fn project(&self) -> &str {
        &self.project
    }

    /// Parameters for an ELBv2 call.
    fn params() -> Params {
        Service::Elbv2.params()
    }

    /// Calls the ELBv2 action IAM names `iam` (see [`super::call`]).
    async fn call<T>(
        &self,
        iam: &'static str,
        params: &Params,
        read: impl FnOnce(Node<'_, '_>) -> T,
    ) -> Result<T, CloudError> {
        call(&self.client, iam, params, read).await
    }

    /// Every page of a `Describe*` call that pages with `Marker`/`NextMarker`: the entries of
    /// each answer's `list` that `read` keeps.
    async fn pages<T>(
        &self,
        iam: &'static str,
        list: &str,
        read: impl Fn(Node<'_, '_>) -> Option<T>,
    ) -> Result<Vec<T>, CloudError> {
        super::pages(&self.client, iam, &Self::params(), "Marker", |root| {
            (
                root.list(list).filter_map(&read).collect(),
                next_marker(root),
            )
        })
        .await
    }

    /// Tags at creation (`Tags.member.N`): the project's, `Name`, and `Cluster` when given.
    fn tags(&self, params: &mut Params, name: &str, cluster: Option<&str>) {
        let mut pairs = vec![
            ("Project", self.project.as_str()),
            ("ManagedBy", MANAGED_BY),
            ("Name", name),
        ];
        pairs.extend(cluster.map(|c| ("Cluster", c)));
        params.pairs("Tags", pairs);
    }

    /// The load balancer called `name`, if there is one carrying the project's tag. One that
    /// exists under that name without the tag is refused: it belongs to someone else.
    pub async fn find_load_balancer(&self, name: &str) -> Result<Option<LoadBalancer>, CloudError> {
        let mut params = Self::params();
        params.list("Names", [name]);
        let found = self
            .call(
                "elasticloadbalancing:DescribeLoadBalancers",
                &params,
                first_load_balancer,
            )
            .await;
        let found = if is_code(&found, "LoadBalancerNotFound") {
            None
        } else {
            found?
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
        const ACTION: &str = "elasticloadbalancing:CreateLoadBalancer";
        let mut params = Self::params();
        params
            .set("Name", name)
            .set("Type", "application")
            .set("Scheme", "internet-facing")
            .list("Subnets", subnets)
            .list("SecurityGroups", [security_group]);
        self.tags(&mut params, name, None);
        self.call(ACTION, &params, first_load_balancer)
            .await?
            .ok_or_else(|| missing(ACTION, "load balancer"))
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
                if lb.state == "active" {
                    return Ok(lb.clone());
                }
                if lb.state == "failed" {
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
        let mut params = Self::params();
        params.list("LoadBalancerArns", [arn]);
        let found = self
            .call(
                "elasticloadbalancing:DescribeLoadBalancers",
                &params,
                first_load_balancer,
            )
            .await;
        if is_code(&found, "LoadBalancerNotFound") {
            return Ok(None);
        }
        found
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
            let mut params = Self::params();
            params.list("ResourceArns", batch);
            let tagged: Vec<String> = self
                .call("elasticloadbalancing:DescribeTags", &params, |root| {
                    root.list("TagDescriptions")
                        .filter(|d| d.tag("Tags", "Project") == Some(self.project.as_str()))
                        .map(|d| d.string("ResourceArn"))
                        .collect()
                })
                .await?;
            ours.extend(tagged);
        }
        Ok(ours)
    }

    /// The target group called `name` carrying the project's tag, if any.
    pub async fn find_target_group(&self, name: &str) -> Result<Option<TargetGroup>, CloudError> {
        let mut params = Self::params();
        params.list("Names", [name]);
        let group = self
            .call(
                "elasticloadbalancing:DescribeTargetGroups",
                &params,
                |root| {
                    root.list("TargetGroups").next().map(|g| TargetGroup {
                        arn: g.string("TargetGroupArn"),
                        name: name.to_owned(),
                        health: HealthCheck {
                            path: g.text("HealthCheckPath").unwrap_or("/").to_owned(),
                            interval_secs: g.number("HealthCheckIntervalSeconds").unwrap_or(0),
                            timeout_secs: g.number("HealthCheckTimeoutSeconds").unwrap_or(0),
                            healthy: g.number("HealthyThresholdCount").unwrap_or(0),
                            unhealthy: g.number("UnhealthyThresholdCount").unwrap_or(0),
                            matcher: g
                                .at(&["Matcher", "HttpCode"])
                                .map_or("200", |m| m.own_text())
                                .to_owned(),
                        },
                    })
                },
            )
            .await;
        let group = if is_code(&group, "TargetGroupNotFound") {
            None
        } else {
            group?
        };
        let Some(group) = group else { return Ok(None) };
        if !self.owns(&group.arn).await? {
            return Err(CloudError::ForeignLoadBalancer {
                name: name.to_owned(),
                project: self.project.clone(),
            });
        }
        Ok(Some(group))
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
        const ACTION: &str = "elasticloadbalancing:CreateTargetGroup";
        let mut params = Self::params();
        params
            .set("Name", name)
            .set("Protocol", "HTTP")
            .set("Port", port)
            .set("VpcId", vpc_id)
            .set("TargetType", "instance")
            .set("HealthCheckProtocol", "HTTP");
        health_check(&mut params, health);
        self.tags(&mut params, name, Some(cluster));
        self.call(ACTION, &params, |root| {
            root.list("TargetGroups")
                .next()
                .and_then(|g| g.text("TargetGroupArn"))
                .map(str::to_owned)
        })
        .await?
        .ok_or_else(|| missing(ACTION, "target group"))
    }

    /// Sets a target group's health check to `health`.
    pub async fn modify_health_check(
        &self,
        arn: &str,
        health: &HealthCheck,
    ) -> Result<(), CloudError> {
        let mut params = Self::params();
        params.set("TargetGroupArn", arn);
        health_check(&mut params, health);
        self.call("elasticloadbalancing:ModifyTargetGroup", &params, |_| ())
            .await
    }

    /// A target group's attributes as `key -> value`.
    pub async fn attributes(
        &self,
        arn: &str,
    ) -> Result<std::collections::BTreeMap<String, String>, CloudError> {
        let mut params = Self::params();
        params.set("TargetGroupArn", arn);
        self.call(
            "elasticloadbalancing:DescribeTargetGroupAttributes",
            &params,
            |root| {
                root.list("Attributes")
                    .filter_map(|a| Some((a.text("Key")?.to_owned(), a.string("Value"))))
                    .collect()
            },
        )
        .await
    }

    /// Sets target group attributes (`deregistration_delay.timeout_seconds`, ...) in one call.
    pub async fn set_attributes(
        &self,
        arn: &str,
        attributes: &[(&str, String)],
    ) -> Result<(), CloudError> {
        if attributes.is_empty() {
            return Ok(());
        }
        let mut params = Self::params();
        params.set("TargetGroupArn", arn).pairs(
            "Attributes",
            attributes.iter().map(|(k, v)| (*k, v.as_str())),
        );
        self.call(
            "elasticloadbalancing:ModifyTargetGroupAttributes",
            &params,
            |_| (),
        )
        .await
    }

    /// Every target registered in a group, with its health.
    pub async fn target_health(&self, arn: &str) -> Result<Vec<TargetHealth>, CloudError> {
        let mut params = Self::params();
        params.set("TargetGroupArn", arn);
        let mut targets: Vec<TargetHealth> = self
            .call(
                "elasticloadbalancing:DescribeTargetHealth",
                &params,
                |root| {
                    root.list("TargetHealthDescriptions")
                        .filter_map(|d| {
                            let health = d.child("TargetHealth");
                            let field = |name: &str| {
                                health
                                    .and_then(|h| h.text(name))
                                    .filter(|t| !t.is_empty())
                                    .map(str::to_owned)
                            };
                            Some(TargetHealth {
                                id: d.at(&["Target", "Id"])?.own_text().to_owned(),
                                state: field("State").unwrap_or_else(|| "unknown".into()),
                                reason: field("Reason"),
                                description: field("Description"),
                            })
                        })
                        .collect()
                },
            )
            .await?;
        targets.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(targets)
    }

    /// Registers instances `ids` (on `port`) in a group.
    pub async fn register(&self, arn: &str, ids: &[String], port: u16) -> Result<(), CloudError> {
        self.targets("elasticloadbalancing:RegisterTargets", arn, ids, port)
            .await
    }

    /// Deregisters instances `ids` from a group (they drain for the deregistration delay).
    pub async fn deregister(&self, arn: &str, ids: &[String], port: u16) -> Result<(), CloudError> {
        self.targets("elasticloadbalancing:DeregisterTargets", arn, ids, port)
            .await
    }

    /// Registers or deregisters (`iam`) instances `ids` on `port` in group `arn`.
    async fn targets(
        &self,
        iam: &'static str,
        arn: &str,
        ids: &[String],
        port: u16,
    ) -> Result<(), CloudError> {
        if ids.is_empty() {
            return Ok(());
        }
        let mut params = Self::params();
        params
            .set("TargetGroupArn", arn)
            .structs("Targets", ids, |p, target, id| {
                p.set(format!("{target}.Id"), id)
                    .set(format!("{target}.Port"), port);
            });
        self.call(iam, &params, |_| ()).await
    }

    /// The load balancer's listeners.
    pub async fn listeners(&self, lb_arn: &str) -> Result<Vec<Listener>, CloudError> {
        let mut params = Self::params();
        params.set("LoadBalancerArn", lb_arn);
        self.call("elasticloadbalancing:DescribeListeners", &params, |root| {
            root.list("Listeners")
                .filter_map(|l| {
                    let text =
                        |name: &str| l.text(name).filter(|t| !t.is_empty()).map(str::to_owned);
                    Some(Listener {
                        arn: text("ListenerArn")?,
                        port: l.number("Port")?,
                        protocol: text("Protocol").unwrap_or_default(),
                        default_action: AlbAction::read(l, "DefaultActions"),
                        ssl_policy: text("SslPolicy"),
                        certificate_arn: l
                            .list("Certificates")
                            .find_map(|c| c.text("CertificateArn"))
                            .map(str::to_owned),
                    })
                })
                .collect()
        })
        .await
    }

    /// Creates a listener on `port` terminating `protocol` with `default` as its default
    /// action, tagged at creation. Returns its ARN.
    pub async fn create_listener(
        &self,
        lb_arn: &str,
        name: &str,
        port: u16,
        protocol: &ListenerProtocol,
        default: &AlbAction,
    ) -> Result<String, CloudError> {
        const ACTION: &str = "elasticloadbalancing:CreateListener";
        let mut params = Self::params();
        params.set("LoadBalancerArn", lb_arn).set("Port", port);
        protocol.set(&mut params);
        default.set(&mut params, "DefaultActions");
        self.tags(&mut params, name, None);
        self.call(ACTION, &params, |root| {
            root.list("Listeners")
                .next()
                .and_then(|l| l.text("ListenerArn"))
                .map(str::to_owned)
        })
        .await?
        .ok_or_else(|| missing(ACTION, "listener"))
    }

    /// Sets a listener's default action.
    pub async fn set_default_action(
        &self,
        listener_arn: &str,
        default: &AlbAction,
    ) -> Result<(), CloudError> {
        let mut params = Self::params();
        params.set("ListenerArn", listener_arn);
        default.set(&mut params, "DefaultActions");
        self.call("elasticloadbalancing:ModifyListener", &params, |_| ())
            .await
    }

    /// Makes a listener terminate `protocol` (its policy and default certificate for HTTPS).
    pub async fn set_protocol(
        &self,
        listener_arn: &str,
        protocol: &ListenerProtocol,
    ) -> Result<(), CloudError> {
        let mut params = Self::params();
        params.set("ListenerArn", listener_arn);
        protocol.set(&mut params);
        self.call("elasticloadbalancing:ModifyListener", &params, |_| ())
            .await
    }

    /// An HTTPS listener's certificates other than the default (those clients reach by SNI).
    pub async fn sni_certificates(&self, listener_arn: &str) -> Result<Vec<String>, CloudError> {
        let mut params = Self::params();
        params.set("ListenerArn", listener_arn);
        self.call(
            "elasticloadbalancing:DescribeListenerCertificates",
            &params,
            |root| {
                root.list("Certificates")
                    .filter(|c| c.text("IsDefault") != Some("true"))
                    .filter_map(|c| c.text("CertificateArn").map(str::to_owned))
                    .collect()
            },
        )
        .await
    }

    /// Adds (`add`) or removes certificates `arns` to or from a listener's SNI certificates.
    pub async fn change_sni_certificates(
        &self,
        listener_arn: &str,
        arns: &[String],
        add: bool,
    ) -> Result<(), CloudError> {
        if arns.is_empty() {
            return Ok(());
        }
        let iam = if add {
            "elasticloadbalancing:AddListenerCertificates"
        } else {
            "elasticloadbalancing:RemoveListenerCertificates"
        };
        let mut params = Self::params();
        params
            .set("ListenerArn", listener_arn)
            .structs("Certificates", arns, |p, entry, arn| {
                p.set(format!("{entry}.CertificateArn"), arn);
            });
        self.call(iam, &params, |_| ()).await
    }

    /// A listener's rules other than the default, by priority.
    pub async fn rules(&self, listener_arn: &str) -> Result<Vec<ListenerRule>, CloudError> {
        let mut params = Self::params();
        params.set("ListenerArn", listener_arn);
        let mut rules: Vec<ListenerRule> = self
            .call("elasticloadbalancing:DescribeRules", &params, |root| {
                root.list("Rules")
                    .filter(|r| r.text("IsDefault") != Some("true"))
                    .filter_map(|r| {
                        Some(ListenerRule {
                            arn: r.text("RuleArn")?.to_owned(),
                            priority: r.number("Priority")?,
                            patterns: rule_patterns(r),
                            conditions: read_conditions(r),
                            action: AlbAction::read(r, "Actions"),
                        })
                    })
                    .collect()
            })
            .await?;
        rules.sort_by_key(|r| r.priority);
        Ok(rules)
    }

    /// Adds a rule: `pattern` and `conditions` at `priority` do `action`, tagged at creation.
    pub async fn create_rule(
        &self,
        listener_arn: &str,
        priority: u32,
        (pattern, conditions): (&str, &Conditions),
        action: &AlbAction,
        name: &str,
    ) -> Result<(), CloudError> {
        let mut params = Self::params();
        params
            .set("ListenerArn", listener_arn)
            .set("Priority", priority);
        rule_conditions(&mut params, pattern, conditions);
        action.set(&mut params, "Actions");
        self.tags(&mut params, name, None);
        self.call("elasticloadbalancing:CreateRule", &params, |_| ())
            .await
    }

    /// Rewrites a rule's conditions and action.
    pub async fn modify_rule(
        &self,
        rule_arn: &str,
        (pattern, conditions): (&str, &Conditions),
        action: &AlbAction,
    ) -> Result<(), CloudError> {
        let mut params = Self::params();
        params.set("RuleArn", rule_arn);
        rule_conditions(&mut params, pattern, conditions);
        action.set(&mut params, "Actions");
        self.call("elasticloadbalancing:ModifyRule", &params, |_| ())
            .await
    }

    /// Deletes a rule.
    pub async fn delete_rule(&self, rule_arn: &str) -> Result<(), CloudError> {
        self.delete_one(
            "elasticloadbalancing:DeleteRule",
            "RuleArn",
            rule_arn,
            "RuleNotFound",
        )
        .await
    }

    /// Calls the delete action `iam` on the resource whose ARN is the parameter `field`; one
    /// that is already gone (`not_found`) is no error.
    async fn delete_one(
        &self,
        iam: &'static str,
        field: &str,
        arn: &str,
        not_found: &str,
    ) -> Result<(), CloudError> {
        let mut params = Self::params();
        params.set(field, arn);
        let result = self.call(iam, &params, |_| ()).await;
        if is_code(&result, not_found) {
            return Ok(());
        }
        result
    }

    /// Everything of ELBv2 that carries the project's tag: load balancers with their listeners
    /// and rules, and target groups. Another project's resources and untagged ones are not in it.
    pub async fn inventory(&self) -> Result<Inventory, CloudError> {
        let lbs: Vec<LoadBalancer> = self
            .pages(
                "elasticloadbalancing:DescribeLoadBalancers",
                "LoadBalancers",
                |lb| Some(to_load_balancer(lb)),
            )
            .await?;
        let groups: Vec<(String, String)> = self
            .pages(
                "elasticloadbalancing:DescribeTargetGroups",
                "TargetGroups",
                |g| {
                    Some((
                        g.text("TargetGroupArn")?.to_owned(),
                        g.text("TargetGroupName")?.to_owned(),
                    ))
                },
            )
            .await?;
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
        inventory.certificates = self
            .project_certificates()
            .await?
            .into_iter()
            .map(|c| (c.arn, c.domain))
            .collect();
        Ok(inventory)
    }

    /// Deletes an inventory: listeners, load balancers (each waited for, every `poll`, until
    /// gone), then target groups (retrying `ResourceInUse` while a load balancer still holds
    /// them), then certificates (likewise), all until `deadline`. Returns how many resources
    /// went.
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
        for (arn, domain) in &inventory.certificates {
            self.delete_certificate(arn, deadline).await?;
            self.notes
                .note(&format!("deleted certificate {domain} ({arn})"));
        }
        Ok(inventory.listeners.len()
            + inventory.load_balancers.len()
            + inventory.target_groups.len()
            + inventory.certificates.len())
    }

    /// Deletes a listener (and its rules).
    pub async fn delete_listener(&self, arn: &str) -> Result<(), CloudError> {
        self.delete_one(
            "elasticloadbalancing:DeleteListener",
            "ListenerArn",
            arn,
            "ListenerNotFound",
        )
        .await
    }

    /// Deletes a load balancer and waits, polling every `interval` until `deadline`, until
    /// ELBv2 no longer lists it.
    pub async fn delete_load_balancer(
        &self,
        arn: &str,
        interval: Duration,
        deadline: Instant,
    ) -> Result<(), CloudError> {
        let mut params = Self::params();
        params.set("LoadBalancerArn", arn);
        let result = self
            .call("elasticloadbalancing:DeleteLoadBalancer", &params, |_| ())
            .await;
        if is_code(&result, "LoadBalancerNotFound") {
            return Ok(());
        }
        result?;
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
        let mut params = Self::params();
        params.set("TargetGroupArn", arn);
        loop {
            let result = self
                .call("elasticloadbalancing:DeleteTargetGroup", &params, |_| ())
                .await;
            if is_code(&result, "TargetGroupNotFound") {
                return Ok(());
            }
            let now = Instant::now();
            if !is_code(&result, "ResourceInUse") || now >= deadline {
                return result;
            }
            tracing::info!(%arn, ?backoff, "target group still in use; retrying");
            tokio::time::sleep(backoff.min(deadline - now)).await;
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    }
}
