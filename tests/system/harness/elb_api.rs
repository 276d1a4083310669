//! A raw ELBv2 Query API client straight to moto (through [`Ec2Api`]'s transport, same account),
//! for what the ALB tests check behind `elb`'s back (tags, rules, health checks, targets) and
//! for the decoys they plant.

use std::collections::BTreeMap;

use roxmltree::Node;

use super::ec2_api::{child, parse, text, ApiError, Ec2Api};

const ELBV2: (&str, &str) = ("elasticloadbalancing", "2015-12-01");

/// ELBv2 of one moto account.
#[derive(Clone)]
pub struct ElbApi {
    api: Ec2Api,
}

#[derive(Debug, Clone)]
pub struct LoadBalancer {
    pub arn: String,
    pub name: String,
    pub scheme: String,
    pub security_groups: Vec<String>,
    pub zones: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct TargetGroup {
    pub arn: String,
    pub name: String,
    pub port: String,
    pub protocol: String,
    pub health_path: String,
    pub interval: String,
    pub timeout: String,
    pub healthy: String,
    pub unhealthy: String,
    pub matcher: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpsListener {
    pub arn: String,
    pub port: String,
    pub policy: String,
    pub default_certificate: String,
    pub sni_certificates: Vec<String>,
}

/// A rule's conditions as `(field, values)`.
pub type Conditions = Vec<(String, Vec<String>)>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerRule {
    pub priority: String,
    pub patterns: Vec<String>,
    pub target_group_arn: String,
}

fn members<'a, 'i>(node: Node<'a, 'i>) -> impl Iterator<Item = Node<'a, 'i>> {
    node.children().filter(|n| n.has_tag_name("member"))
}

fn list<'a, 'i>(node: Node<'a, 'i>, name: &str) -> Vec<Node<'a, 'i>> {
    child(node, name)
        .map(|n| members(n).collect())
        .unwrap_or_default()
}

impl ElbApi {
    pub fn new(api: Ec2Api) -> Self {
        Self { api }
    }

    /// Calls `action` and returns the XML of a 2xx answer.
    pub fn call(
        &self,
        region: &str,
        action: &str,
        params: &[(&str, &str)],
    ) -> Result<String, ApiError> {
        self.api.call_service(ELBV2, region, action, params)
    }

    fn call_ok(&self, region: &str, action: &str, params: &[(&str, &str)]) -> String {
        self.call(region, action, params)
            .unwrap_or_else(|e| panic!("{action} in {region} failed: {e:?}"))
    }

    pub fn load_balancers(&self, region: &str) -> Vec<LoadBalancer> {
        let xml = self.call_ok(region, "DescribeLoadBalancers", &[]);
        let doc = parse(&xml);
        let Some(set) = doc.descendants().find(|n| n.has_tag_name("LoadBalancers")) else {
            return Vec::new();
        };
        members(set)
            .map(|lb| LoadBalancer {
                arn: text(lb, "LoadBalancerArn"),
                name: text(lb, "LoadBalancerName"),
                scheme: text(lb, "Scheme"),
                security_groups: list(lb, "SecurityGroups")
                    .iter()
                    .filter_map(|n| n.text().map(str::to_owned))
                    .collect(),
                zones: list(lb, "AvailabilityZones")
                    .iter()
                    .map(|z| text(*z, "ZoneName"))
                    .collect(),
            })
            .collect()
    }

    pub fn target_groups(&self, region: &str) -> Vec<TargetGroup> {
        let xml = self.call_ok(region, "DescribeTargetGroups", &[]);
        let doc = parse(&xml);
        let Some(set) = doc.descendants().find(|n| n.has_tag_name("TargetGroups")) else {
            return Vec::new();
        };
        members(set)
            .map(|g| TargetGroup {
                arn: text(g, "TargetGroupArn"),
                name: text(g, "TargetGroupName"),
                port: text(g, "Port"),
                protocol: text(g, "Protocol"),
                health_path: text(g, "HealthCheckPath"),
                interval: text(g, "HealthCheckIntervalSeconds"),
                timeout: text(g, "HealthCheckTimeoutSeconds"),
                healthy: text(g, "HealthyThresholdCount"),
                unhealthy: text(g, "UnhealthyThresholdCount"),
                matcher: child(g, "Matcher")
                    .map(|m| text(m, "HttpCode"))
                    .unwrap_or_default(),
            })
            .collect()
    }

    /// Tags of one resource.
    pub fn tags(&self, region: &str, arn: &str) -> BTreeMap<String, String> {
        let xml = self.call_ok(region, "DescribeTags", &[("ResourceArns.member.1", arn)]);
        let doc = parse(&xml);
        doc.descendants()
            .filter(|n| n.has_tag_name("Tags"))
            .flat_map(members)
            .map(|t| (text(t, "Key"), text(t, "Value")))
            .collect()
    }

    /// The attribute `key` of a target group.
    pub fn target_group_attribute(&self, region: &str, arn: &str, key: &str) -> Option<String> {
        let xml = self.call_ok(
            region,
            "DescribeTargetGroupAttributes",
            &[("TargetGroupArn", arn)],
        );
        let doc = parse(&xml);
        doc.descendants()
            .filter(|n| n.has_tag_name("member"))
            .find(|m| text(*m, "Key") == key)
            .map(|m| text(m, "Value"))
    }

    /// Ids of the targets registered in a group, sorted.
    pub fn targets(&self, region: &str, arn: &str) -> Vec<String> {
        let xml = self.call_ok(region, "DescribeTargetHealth", &[("TargetGroupArn", arn)]);
        let doc = parse(&xml);
        let mut ids: Vec<String> = doc
            .descendants()
            .filter(|n| n.has_tag_name("Target"))
            .map(|t| text(t, "Id"))
            .collect();
        ids.sort();
        ids
    }

    /// `(listener arn, port, default target group arn)` of a load balancer.
    pub fn listeners(&self, region: &str, lb_arn: &str) -> Vec<(String, String, String)> {
        let xml = self.call_ok(region, "DescribeListeners", &[("LoadBalancerArn", lb_arn)]);
        let doc = parse(&xml);
        let Some(set) = doc.descendants().find(|n| n.has_tag_name("Listeners")) else {
            return Vec::new();
        };
        members(set)
            .map(|l| {
                let default = list(l, "DefaultActions")
                    .first()
                    .map(|a| text(*a, "TargetGroupArn"))
                    .unwrap_or_default();
                (text(l, "ListenerArn"), text(l, "Port"), default)
            })
            .collect()
    }

    /// The HTTPS listeners of a load balancer, with their policy and certificates.
    pub fn https_listeners(&self, region: &str, lb_arn: &str) -> Vec<HttpsListener> {
        let xml = self.call_ok(region, "DescribeListeners", &[("LoadBalancerArn", lb_arn)]);
        let doc = parse(&xml);
        let Some(set) = doc.descendants().find(|n| n.has_tag_name("Listeners")) else {
            return Vec::new();
        };
        let https: Vec<(String, String, String)> = members(set)
            .filter(|l| text(*l, "Protocol") == "HTTPS")
            .map(|l| {
                (
                    text(l, "ListenerArn"),
                    text(l, "Port"),
                    text(l, "SslPolicy"),
                )
            })
            .collect();
        https
            .into_iter()
            .map(|(arn, port, policy)| {
                let xml = self.call_ok(
                    region,
                    "DescribeListenerCertificates",
                    &[("ListenerArn", &arn)],
                );
                let doc = parse(&xml);
                let certificates: Vec<(String, bool)> = doc
                    .descendants()
                    .find(|n| n.has_tag_name("Certificates"))
                    .map(|set| {
                        members(set)
                            .map(|c| (text(c, "CertificateArn"), text(c, "IsDefault") == "true"))
                            .collect()
                    })
                    .unwrap_or_default();
                HttpsListener {
                    default_certificate: certificates
                        .iter()
                        .find(|(_, default)| *default)
                        .map(|(arn, _)| arn.clone())
                        .unwrap_or_default(),
                    sni_certificates: certificates
                        .iter()
                        .filter(|(_, default)| !default)
                        .map(|(arn, _)| arn.clone())
                        .collect(),
                    arn,
                    port,
                    policy,
                }
            })
            .collect()
    }

    /// Every certificate in ACM: `(arn, PEM body, tags)`.
    pub fn acm_certificates(
        &self,
        region: &str,
    ) -> Vec<(String, String, BTreeMap<String, String>)> {
        let call = |action: &str, body: serde_json::Value| {
            self.api
                .call_json(("acm", "CertificateManager"), region, action, &body)
                .unwrap_or_else(|e| panic!("acm:{action}: {e:?}"))
        };
        let listed = call(
            "ListCertificates",
            serde_json::json!({ "Includes": { "keyTypes": ["RSA_2048", "EC_prime256v1"] } }),
        );
        listed["CertificateSummaryList"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c["CertificateArn"].as_str())
            .map(|arn| {
                let pem = call(
                    "GetCertificate",
                    serde_json::json!({ "CertificateArn": arn }),
                );
                let tags = call(
                    "ListTagsForCertificate",
                    serde_json::json!({ "CertificateArn": arn }),
                );
                let tags = tags["Tags"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|t| {
                        Some((
                            t["Key"].as_str()?.to_owned(),
                            t["Value"].as_str()?.to_owned(),
                        ))
                    })
                    .collect();
                (
                    arn.to_owned(),
                    pem["Certificate"].as_str().unwrap_or_default().to_owned(),
                    tags,
                )
            })
            .collect()
    }

    /// A listener's rules other than the default, by priority.
    pub fn rules(&self, region: &str, listener_arn: &str) -> Vec<ListenerRule> {
        let xml = self.call_ok(region, "DescribeRules", &[("ListenerArn", listener_arn)]);
        let doc = parse(&xml);
        let Some(set) = doc.descendants().find(|n| n.has_tag_name("Rules")) else {
            return Vec::new();
        };
        let mut rules: Vec<ListenerRule> = members(set)
            .filter(|r| text(*r, "IsDefault") != "true")
            .map(|r| {
                let mut patterns: Vec<String> = r
                    .descendants()
                    .filter(|n| n.has_tag_name("Values"))
                    .flat_map(members)
                    .filter_map(|v| v.text().map(str::to_owned))
                    .collect();
                patterns.sort();
                patterns.dedup();
                ListenerRule {
                    priority: text(r, "Priority"),
                    patterns,
                    target_group_arn: list(r, "Actions")
                        .first()
                        .map(|a| text(*a, "TargetGroupArn"))
                        .unwrap_or_default(),
                }
            })
            .collect();
        rules.sort_by_key(|r| r.priority.parse::<u32>().unwrap_or(u32::MAX));
        rules
    }

    /// A listener's rules' conditions by priority, each as `(field, values)`: an
    /// `http-header` condition's values are `NAME:VALUE`, a `query-string`'s `KEY=VALUE` (or
    /// `VALUE`).
    pub fn rule_conditions(&self, region: &str, listener_arn: &str) -> Vec<(String, Conditions)> {
        let xml = self.call_ok(region, "DescribeRules", &[("ListenerArn", listener_arn)]);
        let doc = parse(&xml);
        let Some(set) = doc.descendants().find(|n| n.has_tag_name("Rules")) else {
            return Vec::new();
        };
        let texts = |node: Option<Node>| -> Vec<String> {
            node.and_then(|n| n.children().find(|c| c.has_tag_name("Values")))
                .map(|v| {
                    members(v)
                        .filter_map(|m| m.text().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default()
        };
        members(set)
            .filter(|r| text(*r, "IsDefault") != "true")
            .map(|r| {
                let conditions = list(r, "Conditions")
                    .into_iter()
                    .map(|c| {
                        let field = text(c, "Field");
                        let config = |name: &str| c.children().find(|n| n.has_tag_name(name));
                        let values = match field.as_str() {
                            "path-pattern" => texts(config("PathPatternConfig")),
                            "http-request-method" => texts(config("HttpRequestMethodConfig")),
                            "source-ip" => texts(config("SourceIpConfig")),
                            "http-header" => {
                                let header = config("HttpHeaderConfig");
                                let name = header
                                    .map(|h| text(h, "HttpHeaderName"))
                                    .unwrap_or_default();
                                texts(header)
                                    .into_iter()
                                    .map(|v| format!("{name}:{v}"))
                                    .collect()
                            }
                            "query-string" => config("QueryStringConfig")
                                .map(|q| list(q, "Values"))
                                .unwrap_or_default()
                                .into_iter()
                                .map(|pair| match text(pair, "Key") {
                                    key if key.is_empty() => text(pair, "Value"),
                                    key => format!("{key}={}", text(pair, "Value")),
                                })
                                .collect(),
                            _ => Vec::new(),
                        };
                        (field, values)
                    })
                    .collect();
                (text(r, "Priority"), conditions)
            })
            .collect()
    }

    /// A listener's rules' first actions by priority, as text (see [`describe_action`]).
    pub fn rule_actions(&self, region: &str, listener_arn: &str) -> Vec<(String, String)> {
        self.described_rules(region, listener_arn)
            .into_iter()
            .filter(|(_, default, _)| !default)
            .map(|(priority, _, action)| (priority, action))
            .collect()
    }

    /// The listener's default action, described as [`ElbApi::rule_actions`] describes them.
    pub fn default_action(&self, region: &str, listener_arn: &str) -> String {
        self.described_rules(region, listener_arn)
            .into_iter()
            .find(|(_, default, _)| *default)
            .map(|(_, _, action)| action)
            .expect("a listener has a default rule")
    }

    /// Every rule of a listener: priority, whether it is the default, its first action
    /// described.
    fn described_rules(&self, region: &str, listener_arn: &str) -> Vec<(String, bool, String)> {
        let xml = self.call_ok(region, "DescribeRules", &[("ListenerArn", listener_arn)]);
        let doc = parse(&xml);
        let Some(set) = doc.descendants().find(|n| n.has_tag_name("Rules")) else {
            return Vec::new();
        };
        members(set)
            .map(|r| {
                let action = list(r, "Actions").first().copied();
                (
                    text(r, "Priority"),
                    text(r, "IsDefault") == "true",
                    action.map_or_else(String::new, describe_action),
                )
            })
            .collect()
    }

    /// Creates a decoy target group `name` in `vpc_id` with `tags` (possibly none); returns its
    /// ARN.
    pub fn create_target_group(
        &self,
        region: &str,
        name: &str,
        vpc_id: &str,
        tags: &[(&str, &str)],
    ) -> String {
        let mut params: Vec<(String, String)> = vec![
            ("Name".into(), name.into()),
            ("Protocol".into(), "HTTP".into()),
            ("Port".into(), "8000".into()),
            ("VpcId".into(), vpc_id.into()),
        ];
        for (i, (k, v)) in tags.iter().enumerate() {
            params.push((format!("Tags.member.{}.Key", i + 1), (*k).into()));
            params.push((format!("Tags.member.{}.Value", i + 1), (*v).into()));
        }
        let refs: Vec<(&str, &str)> = params
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let xml = self.call_ok(region, "CreateTargetGroup", &refs);
        let doc = parse(&xml);
        doc.descendants()
            .find(|n| n.has_tag_name("TargetGroupArn"))
            .and_then(|n| n.text())
            .expect("CreateTargetGroup answers with the ARN")
            .to_owned()
    }

    /// Creates a decoy load balancer `name` in `subnets` tagged `Project=<project>`; returns its
    /// ARN.
    pub fn create_load_balancer(
        &self,
        region: &str,
        name: &str,
        subnets: &[String],
        project: &str,
    ) -> String {
        let mut params: Vec<(String, String)> = vec![
            ("Name".into(), name.into()),
            ("Tags.member.1.Key".into(), "Project".into()),
            ("Tags.member.1.Value".into(), project.into()),
        ];
        for (i, subnet) in subnets.iter().enumerate() {
            params.push((format!("Subnets.member.{}", i + 1), subnet.clone()));
        }
        let refs: Vec<(&str, &str)> = params
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let xml = self.call_ok(region, "CreateLoadBalancer", &refs);
        let doc = parse(&xml);
        doc.descendants()
            .find(|n| n.has_tag_name("LoadBalancerArn"))
            .and_then(|n| n.text())
            .expect("CreateLoadBalancer answers with the ARN")
            .to_owned()
    }
}

/// An action for a test's comparison: `forward ARN`, `weighted ARN:W,ARN:W[ sticky SECONDS]`,
/// `redirect STATUS PROTOCOL HOST PORT PATH QUERY`, `fixed STATUS TYPE BODY`.
fn describe_action(a: Node<'_, '_>) -> String {
    let config = |name: &str| a.children().find(|n| n.has_tag_name(name));
    match text(a, "Type").as_str() {
        "forward" => {
            let forward = config("ForwardConfig");
            let weighted: Vec<String> = forward
                .map(|c| list(c, "TargetGroups"))
                .unwrap_or_default()
                .into_iter()
                .map(|g| format!("{}:{}", text(g, "TargetGroupArn"), text(g, "Weight")))
                .collect();
            let sticky = forward
                .and_then(|c| {
                    c.children()
                        .find(|n| n.has_tag_name("TargetGroupStickinessConfig"))
                })
                .filter(|s| text(*s, "Enabled") == "true")
                .map(|s| format!(" sticky {}", text(s, "DurationSeconds")))
                .unwrap_or_default();
            if weighted.len() > 1 {
                format!("weighted {}{sticky}", weighted.join(","))
            } else {
                format!("forward {}", text(a, "TargetGroupArn"))
            }
        }
        "redirect" => {
            let c = config("RedirectConfig").expect("RedirectConfig");
            format!(
                "redirect {} {} {} {} {} {}",
                text(c, "StatusCode"),
                text(c, "Protocol"),
                text(c, "Host"),
                text(c, "Port"),
                text(c, "Path"),
                text(c, "Query")
            )
        }
        "fixed-response" => {
            let c = config("FixedResponseConfig").expect("FixedResponseConfig");
            format!(
                "fixed {} {} {}",
                text(c, "StatusCode"),
                text(c, "ContentType"),
                text(c, "MessageBody")
            )
        }
        other => other.to_owned(),
    }
}
