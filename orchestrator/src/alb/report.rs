//! What `elb alb up` and `elb alb status` print: for people a table, for scripts JSON or CSV
//! (one row per target).

use serde::Serialize;

use super::Listening;
use crate::cloud::ec2::elbv2::{ListenerProtocol, LoadBalancer, TargetHealth, LISTENER_PORT};
use crate::output::{csv_line, OutputFormat};
use crate::routing::Routing;

/// One target group's targets as the ALB reports them.
#[derive(Debug, Clone, Serialize)]
pub struct GroupReport {
    /// The cluster it serves.
    pub cluster: String,
    /// Its name.
    pub target_group: String,
    /// Its targets.
    pub targets: Vec<TargetHealth>,
}

impl GroupReport {
    /// How many of its targets are healthy.
    pub fn healthy(&self) -> usize {
        self.targets.iter().filter(|t| t.state == "healthy").count()
    }
}

/// What `up` leaves: the load balancer, where to send requests, and its targets' health.
#[derive(Debug, Clone, Serialize)]
pub struct AlbReport {
    /// The load balancer.
    pub load_balancer: LoadBalancer,
    /// `http://<dns>/<path>` for the default and each rule, with the cluster that serves it.
    pub urls: Vec<Url>,
    /// Target groups as `(cluster, arn)`.
    pub target_groups: Vec<(String, String)>,
    /// The HTTPS listener, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub https: Option<HttpsReport>,
    /// The last health reading, when `up` waited for it.
    pub health: Option<Vec<GroupReport>>,
}

/// The HTTPS listener as `up` left it.
#[derive(Debug, Clone, Serialize)]
pub struct HttpsReport {
    /// Its port.
    pub port: u16,
    /// Its security policy.
    pub policy: String,
    /// Its certificates' ARNs, the default first.
    pub certificates: Vec<String>,
}

impl HttpsReport {
    /// The report of an HTTPS listener.
    pub fn of(listening: &Listening) -> Self {
        let (policy, default) = match &listening.protocol {
            ListenerProtocol::Https {
                policy,
                certificate_arn,
            } => (policy.clone(), Some(certificate_arn.clone())),
            ListenerProtocol::Http => (String::new(), None),
        };
        Self {
            port: listening.port,
            policy,
            certificates: default.into_iter().chain(listening.sni.clone()).collect(),
        }
    }
}

/// A URL of the load balancer and who serves it.
#[derive(Debug, Clone, Serialize)]
pub struct Url {
    /// The URL.
    pub url: String,
    /// The cluster its path routes to.
    pub cluster: String,
}

impl AlbReport {
    /// The report of a load balancer set up for `routing`.
    pub fn new(
        load_balancer: LoadBalancer,
        routing: &Routing,
        groups: &[(String, String)],
        https: Option<HttpsReport>,
        health: Option<Vec<GroupReport>>,
    ) -> Self {
        let dns = &load_balancer.dns_name;
        let mut bases = vec![format!("http://{dns}")];
        bases.extend(https.as_ref().map(|h| match h.port {
            443 => format!("https://{dns}"),
            port => format!("https://{dns}:{port}"),
        }));
        let urls = bases
            .iter()
            .flat_map(|base| {
                routing
                    .example_paths()
                    .into_iter()
                    .map(move |(path, cluster)| Url {
                        url: format!("{base}{path}"),
                        cluster: cluster.to_owned(),
                    })
            })
            .collect();
        Self {
            load_balancer,
            urls,
            target_groups: groups.to_vec(),
            https,
            health,
        }
    }

    /// Targets that are not healthy, as `id (cluster): state, reason: description`.
    pub fn unhealthy(&self) -> Vec<String> {
        self.health
            .iter()
            .flatten()
            .flat_map(|g| {
                g.targets
                    .iter()
                    .filter(|t| t.state != "healthy")
                    .map(move |t| describe(g, t))
            })
            .collect()
    }

    /// The report in `format`.
    pub fn render(&self, format: OutputFormat) -> String {
        match format {
            OutputFormat::Json => serde_json::to_string_pretty(self).unwrap_or_default(),
            OutputFormat::Csv => targets_csv(self.health.as_deref().unwrap_or_default()),
            OutputFormat::Table => {
                let lb = &self.load_balancer;
                let mut out = format!(
                    "load balancer {} ({}), listener :{LISTENER_PORT}\n",
                    lb.name, lb.state
                );
                if let Some(https) = &self.https {
                    out.push_str(&format!(
                        "  HTTPS listener :{} ({}), certificates {}\n",
                        https.port,
                        https.policy,
                        https.certificates.join(", ")
                    ));
                }
                out.push_str(&format!("  DNS name {}\n", lb.dns_name));
                for url in &self.urls {
                    out.push_str(&format!("  {} -> {}\n", url.url, url.cluster));
                }
                if let Some(health) = &self.health {
                    out.push_str(&targets_table(health));
                }
                out.truncate(out.trim_end().len());
                out
            }
        }
    }
}

fn describe(group: &GroupReport, t: &TargetHealth) -> String {
    let mut line = format!("{} ({}): {}", t.id, group.cluster, t.state);
    if let Some(reason) = &t.reason {
        line.push_str(&format!(", {reason}"));
    }
    if let Some(description) = &t.description {
        line.push_str(&format!(": {description}"));
    }
    line
}

/// What `elb alb status` prints.
#[derive(Debug, Clone, Serialize)]
pub struct StatusReport {
    /// The load balancer.
    pub load_balancer: LoadBalancer,
    /// Each target group's targets.
    pub groups: Vec<GroupReport>,
}

impl StatusReport {
    /// The report in `format`.
    pub fn render(&self, format: OutputFormat) -> String {
        match format {
            OutputFormat::Json => serde_json::to_string_pretty(self).unwrap_or_default(),
            OutputFormat::Csv => targets_csv(&self.groups),
            OutputFormat::Table => format!(
                "load balancer {} ({}), DNS name {}\n{}",
                self.load_balancer.name,
                self.load_balancer.state,
                self.load_balancer.dns_name,
                targets_table(&self.groups)
            ),
        }
    }
}

const TARGET_HEADERS: [&str; 6] = [
    "cluster",
    "target_group",
    "target",
    "state",
    "reason",
    "description",
];

fn target_rows(groups: &[GroupReport]) -> impl Iterator<Item = [&str; 6]> {
    groups.iter().flat_map(|g| {
        g.targets.iter().map(move |t| {
            [
                g.cluster.as_str(),
                g.target_group.as_str(),
                t.id.as_str(),
                t.state.as_str(),
                t.reason.as_deref().unwrap_or(""),
                t.description.as_deref().unwrap_or(""),
            ]
        })
    })
}

fn targets_table(groups: &[GroupReport]) -> String {
    let mut table = crate::output::table(TARGET_HEADERS);
    for row in target_rows(groups) {
        table.add_row(row);
    }
    table.to_string()
}

fn targets_csv(groups: &[GroupReport]) -> String {
    let mut out = csv_line(TARGET_HEADERS);
    for row in target_rows(groups) {
        out.push('\n');
        out.push_str(&csv_line(row));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> AlbReport {
        let lb = LoadBalancer {
            arn: "arn:lb".into(),
            name: "p-alb".into(),
            dns_name: "p-alb-1.example".into(),
            state: "active".into(),
            reason: None,
        };
        let health = vec![GroupReport {
            cluster: "cluster1".into(),
            target_group: "p-cluster1".into(),
            targets: vec![
                TargetHealth {
                    id: "i-1".into(),
                    state: "healthy".into(),
                    reason: None,
                    description: None,
                },
                TargetHealth {
                    id: "i-2".into(),
                    state: "unhealthy".into(),
                    reason: Some("Target.ResponseCodeMismatch".into()),
                    description: Some("Health checks failed with these codes: [500]".into()),
                },
            ],
        }];
        AlbReport::new(lb, &Routing::seed(), &[], None, Some(health))
    }

    #[test]
    fn an_https_listener_adds_its_urls_and_a_line() {
        let base = report();
        let https = HttpsReport {
            port: 8443,
            policy: "ELBSecurityPolicy-TLS13-1-2-2021-06".into(),
            certificates: vec!["arn:default".into(), "arn:sni".into()],
        };
        let with = AlbReport::new(
            base.load_balancer.clone(),
            &Routing::seed(),
            &[],
            Some(https),
            None,
        );
        let urls: Vec<_> = with.urls.iter().map(|u| u.url.as_str()).collect();
        assert!(
            urls.contains(&"https://p-alb-1.example:8443/cluster1"),
            "{urls:?}"
        );
        assert_eq!(urls.len(), 6);
        let table = with.render(OutputFormat::Table);
        assert!(
            table.contains("HTTPS listener :8443 (ELBSecurityPolicy-TLS13-1-2-2021-06), certificates arn:default, arn:sni"),
            "{table}"
        );
    }

    #[test]
    fn the_urls_are_the_default_and_each_rules_path() {
        let urls: Vec<_> = report().urls.into_iter().map(|u| u.url).collect();
        assert_eq!(
            urls,
            [
                "http://p-alb-1.example/",
                "http://p-alb-1.example/cluster1",
                "http://p-alb-1.example/cluster2"
            ]
        );
    }

    #[test]
    fn unhealthy_targets_are_told_with_reason_and_description() {
        assert_eq!(
            report().unhealthy(),
            ["i-2 (cluster1): unhealthy, Target.ResponseCodeMismatch: Health checks failed with \
              these codes: [500]"]
        );
        let csv = report().render(OutputFormat::Csv);
        assert_eq!(csv.lines().count(), 3, "{csv}");
        assert!(
            csv.contains("\"Health checks failed with these codes: [500]\"")
                || csv.contains("[500]")
        );
    }
}
