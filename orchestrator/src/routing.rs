//! Which cluster serves which request path: the seed's ALB rules, or rules of the user's, as
//! plain data. The managed ALB (`alb/`) and elb's own balancer are both configured from a
//! [`Routing`], so the two compare on the same rules.
//!
//! Semantics are ALB's: rules are evaluated in priority order (lowest first), a `path-pattern` is
//! case-sensitive with `*` (any run of characters) and `?` (one character), at most 128
//! characters, and the default action serves what no rule matched. A rule may add ALB's other
//! conditions (method, header, query string, source CIDR), all of which must match.
//!
//! A rule as a flag: `PATTERN[;CONDITION]...=ACTION`, each condition `KIND=VALUE[,VALUE]...`
//! (OR within one): `method=POST,PUT`, `header=NAME:PATTERN[,PATTERN]`,
//! `query=[KEY=]PATTERN[,...]`, `source=CIDR[,CIDR]`; e.g.
//! `--rule '/api*;method=POST;header=X-Canary:yes=cluster2'`. The action, after the last `=` (or
//! at `=redirect:` / `=fixed-response:`), is ALB's: a cluster; weighted clusters
//! `blue:95,green:5`, with ALB's group stickiness for a duration after `@`
//! (`blue:95,green:5@1h`); `redirect:301:https://#{host}/#{path}?#{query}`;
//! `fixed-response:503[:text/plain[:BODY]]`. The default action (`--default`) is a cluster or
//! a fixed response.

use std::collections::BTreeSet;

use proto::balancer_config::{
    FixedResponse, Forward, HeaderCondition, QueryCondition, QueryPair, Redirect, WeightedGroup,
};

use crate::Error;

/// Longest path pattern ALB accepts.
pub const MAX_PATTERN_LEN: usize = 128;
/// Priority of the first rule; each next rule gets [`PRIORITY_STEP`] more, leaving room between
/// them as the seed's 10 and 20 did.
const FIRST_PRIORITY: u32 = 10;
const PRIORITY_STEP: u32 = 10;

/// One path rule: requests whose path matches `pattern` go to `cluster`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PathRule {
    /// Evaluation order, lowest first (ALB: 1 to 50000).
    pub priority: u32,
    /// An ALB `path-pattern` such as `/cluster1*`.
    pub pattern: String,
    /// What matching requests get.
    pub action: RuleAction,
    /// ALB's other conditions, all of which must match too.
    pub conditions: Conditions,
}

/// ALB's rule actions.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub enum RuleAction {
    /// Forward to the cluster's group.
    Forward(String),
    /// Forward to clusters' groups by weight (ALB's weighted target groups), a client kept
    /// with the group drawn for it for `stickiness_ms` (0: each request draws).
    Weighted {
        groups: Vec<WeightedGroup>,
        stickiness_ms: u64,
    },
    /// Redirect.
    Redirect(Redirect),
    /// Answer without a target.
    Fixed(FixedResponse),
}

impl RuleAction {
    /// The clusters it sends to.
    pub fn clusters(&self) -> Vec<&str> {
        match self {
            Self::Forward(cluster) => vec![cluster.as_str()],
            Self::Weighted { groups, .. } => groups.iter().map(|g| g.group.as_str()).collect(),
            Self::Redirect(_) | Self::Fixed(_) => Vec::new(),
        }
    }

    /// For people: `cluster2`, `blue:95,green:5` (`@3600s` when sticky), `redirect 301`,
    /// `fixed-response 503`.
    pub fn describe(&self) -> String {
        match self {
            Self::Forward(cluster) => cluster.clone(),
            Self::Weighted {
                groups,
                stickiness_ms,
            } => {
                let weights = groups
                    .iter()
                    .map(|g| format!("{}:{}", g.group, g.weight))
                    .collect::<Vec<_>>()
                    .join(",");
                match stickiness_ms {
                    0 => weights,
                    ms => format!("{weights}@{}s", ms / 1000),
                }
            }
            Self::Redirect(r) => format!("redirect {}", r.status),
            Self::Fixed(f) => format!("fixed-response {}", f.status),
        }
    }

    /// Parses the action of a `--rule` flag (see the module's doc).
    fn parse(text: &str) -> Result<Self, String> {
        if let Some(rest) = text.strip_prefix("fixed-response:") {
            let mut parts = rest.splitn(3, ':');
            let status = parts.next().unwrap_or_default();
            let status = status
                .parse()
                .map_err(|_| format!("fixed-response status `{status}` is not a number"))?;
            return Ok(Self::Fixed(FixedResponse {
                status,
                content_type: parts.next().filter(|t| !t.is_empty()).map(str::to_owned),
                body: parts.next().map(str::to_owned),
            }));
        }
        if let Some(rest) = text.strip_prefix("redirect:") {
            let (status, url) = rest
                .split_once(':')
                .ok_or("write redirect:STATUS:URL, e.g. redirect:301:https://#{host}/#{path}")?;
            let status = status
                .parse()
                .map_err(|_| format!("redirect status `{status}` is not a number"))?;
            return Ok(Self::Redirect(redirect_parts(status, url)?));
        }
        let (text, stickiness_ms) = match text.split_once('@') {
            Some((weights, duration)) => {
                if !weights.contains([',', ':']) {
                    return Err(format!(
                        "`@{duration}` keeps a client with one of weighted clusters, and \
                         `{weights}` is one cluster: write e.g. blue:95,green:5@1h"
                    ));
                }
                let duration = crate::config::parse_duration(duration)?;
                (
                    weights,
                    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX),
                )
            }
            None => (text, 0),
        };
        if text.contains([',', ':']) {
            let groups = text
                .split(',')
                .map(|item| {
                    let (group, weight) = item
                        .split_once(':')
                        .ok_or_else(|| format!("`{item}` is not CLUSTER:WEIGHT"))?;
                    crate::config::validate_name("cluster in --rule", group)
                        .map_err(|e| e.to_string())?;
                    let weight = weight
                        .parse()
                        .map_err(|_| format!("weight `{weight}` of {group} is not a number"))?;
                    Ok(WeightedGroup {
                        group: group.to_owned(),
                        weight,
                    })
                })
                .collect::<Result<_, String>>()?;
            return Ok(Self::Weighted {
                groups,
                stickiness_ms,
            });
        }
        crate::config::validate_name("cluster in --rule", text).map_err(|e| e.to_string())?;
        Ok(Self::Forward(text.to_owned()))
    }
}

/// A redirect's parts from a URL template, `PROTOCOL://HOST[:PORT][/PATH][?QUERY]`, each part
/// as written (placeholders included); a part left out keeps the request's.
fn redirect_parts(status: u16, url: &str) -> Result<Redirect, String> {
    let (protocol, rest) = url.split_once("://").ok_or_else(|| {
        format!("redirect URL `{url}` has no PROTOCOL://, e.g. https://#{{host}}/#{{path}}")
    })?;
    let (rest, query) = match rest.split_once('?') {
        Some((rest, query)) => (rest, Some(query.to_owned())),
        None => (rest, None),
    };
    let (authority, path) = match rest.find('/') {
        Some(at) => (&rest[..at], Some(rest[at..].to_owned())),
        None => (rest, None),
    };
    let (host, port) = match authority.rsplit_once(':') {
        Some((host, port)) if !port.contains('}') || port == "#{port}" => {
            (host, Some(port.to_owned()))
        }
        _ => (authority, None),
    };
    let protocol = match protocol {
        "#{protocol}" => protocol.to_owned(),
        other => other.to_ascii_uppercase(),
    };
    Ok(Redirect {
        status,
        protocol: Some(protocol),
        host: (!host.is_empty()).then(|| host.to_owned()),
        port,
        path,
        query,
    })
}

/// ALB's conditions beside the path: AND across them, OR within one's values.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Conditions {
    /// `http-request-method`: one of these (exact).
    pub methods: Vec<String>,
    /// `http-header`: each header has a value matching one of its patterns.
    pub headers: Vec<HeaderCondition>,
    /// `query-string`: each condition has one of its pairs among the parameters.
    pub query: Vec<QueryCondition>,
    /// `source-ip`: the client is in one of these CIDRs.
    pub source_ips: Vec<String>,
}

impl Conditions {
    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self == &Self::default()
    }

    /// Adds the condition `KIND=VALUES` of a `--rule` flag.
    fn add(&mut self, text: &str) -> Result<(), String> {
        let (kind, values) = text
            .split_once('=')
            .ok_or_else(|| format!("condition `{text}` is not KIND=VALUE"))?;
        let list = || -> Result<Vec<String>, String> {
            let items: Vec<String> = values.split(',').map(str::to_owned).collect();
            if items.iter().any(String::is_empty) {
                return Err(format!("condition `{text}` has an empty value"));
            }
            Ok(items)
        };
        match kind {
            "method" => self.methods.extend(list()?),
            "source" => self.source_ips.extend(list()?),
            "header" => {
                let (name, patterns) = values
                    .split_once(':')
                    .ok_or_else(|| format!("`{text}` is not header=NAME:PATTERN[,PATTERN]"))?;
                self.headers.push(HeaderCondition {
                    name: name.to_owned(),
                    values: patterns.split(',').map(str::to_owned).collect(),
                });
            }
            "query" => self.query.push(QueryCondition {
                pairs: list()?
                    .into_iter()
                    .map(|item| match item.split_once('=') {
                        Some((key, value)) => QueryPair {
                            key: Some(key.to_owned()),
                            value: value.to_owned(),
                        },
                        None => QueryPair {
                            key: None,
                            value: item,
                        },
                    })
                    .collect(),
            }),
            other => {
                return Err(format!(
                    "unknown condition `{other}`: use method=, header=, query= or source="
                ))
            }
        }
        Ok(())
    }
}

impl PathRule {
    /// The rule as elb's balancer config holds it.
    pub fn balancer_rule(&self) -> proto::balancer_config::Rule {
        let (forward, redirect, fixed_response) = match &self.action {
            RuleAction::Forward(cluster) => (Some(Forward::Group(cluster.clone())), None, None),
            RuleAction::Weighted { groups, .. } => {
                (Some(Forward::Weighted(groups.clone())), None, None)
            }
            RuleAction::Redirect(redirect) => (None, Some(redirect.clone()), None),
            RuleAction::Fixed(fixed) => (None, None, Some(fixed.clone())),
        };
        let group_stickiness_ms = match &self.action {
            RuleAction::Weighted { stickiness_ms, .. } => *stickiness_ms,
            _ => 0,
        };
        proto::balancer_config::Rule {
            priority: self.priority,
            path_pattern: self.pattern.clone(),
            host: None,
            methods: self.conditions.methods.clone(),
            headers: self.conditions.headers.clone(),
            query: self.conditions.query.clone(),
            source_ips: self.conditions.source_ips.clone(),
            forward,
            group_stickiness_ms,
            redirect,
            fixed_response,
        }
    }
}

/// The rules in priority order and the default action.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Routing {
    /// Path rules, sorted by priority.
    pub rules: Vec<PathRule>,
    /// What every request no rule matched gets: a cluster ([`RuleAction::Forward`]) or a
    /// fixed response ([`RuleAction::Fixed`]).
    pub default: RuleAction,
}

impl Routing {
    /// The seed's ALB set-up: `/cluster1*` -> cluster1 (priority 10), `/cluster2*` -> cluster2
    /// (priority 20), default cluster1.
    pub fn seed() -> Self {
        Self {
            rules: vec![
                PathRule {
                    priority: 10,
                    pattern: "/cluster1*".into(),
                    action: RuleAction::Forward("cluster1".into()),
                    conditions: Conditions::default(),
                },
                PathRule {
                    priority: 20,
                    pattern: "/cluster2*".into(),
                    action: RuleAction::Forward("cluster2".into()),
                    conditions: Conditions::default(),
                },
            ],
            default: RuleAction::Forward("cluster1".into()),
        }
    }

    /// Rules from `PATTERN[;CONDITION]...=CLUSTER` texts (see the module's doc), in the order
    /// given (priorities 10, 20, ...), and the default cluster (else the first rule's). Without
    /// rules, the seed's. Every pattern, condition and cluster name is checked, conditions as
    /// elb's balancer checks them (ALB's limits); nothing is looked up.
    pub fn from_flags(rules: &[String], default: Option<&str>) -> Result<Self, Error> {
        let default = default.map(Self::parse_default).transpose()?;
        if rules.is_empty() {
            let mut seed = Self::seed();
            if let Some(default) = default {
                seed.default = default;
            }
            return Ok(seed);
        }
        let mut parsed = Vec::with_capacity(rules.len());
        for (i, text) in rules.iter().enumerate() {
            let split = ["=redirect:", "=fixed-response:"]
                .iter()
                .find_map(|marker| text.find(marker))
                .map(|at| (&text[..at], &text[at + 1..]))
                .or_else(|| text.rsplit_once('='));
            let (matching, action) = split.ok_or_else(|| {
                Error::Usage(format!(
                    "--rule `{text}` is not PATTERN=CLUSTER: write e.g. --rule '/api*=cluster1'"
                ))
            })?;
            let mut parts = matching.split(';');
            let pattern = parts.next().unwrap_or_default();
            check_pattern(pattern)?;
            let action = RuleAction::parse(action)
                .map_err(|why| Error::Usage(format!("--rule `{text}`: {why}")))?;
            let mut conditions = Conditions::default();
            for part in parts {
                conditions.add(part).map_err(|why| {
                    Error::Usage(format!(
                        "--rule `{text}`: {why}. Conditions follow the pattern, each after a `;`: \
                         e.g. --rule '/api*;method=POST;header=X-Canary:yes=cluster2'"
                    ))
                })?;
            }
            if parsed
                .iter()
                .any(|r: &PathRule| r.pattern == pattern && r.conditions == conditions)
            {
                return Err(Error::Usage(format!(
                    "--rule `{text}` is given twice: the second could never match; drop one"
                )));
            }
            let step = u32::try_from(i).unwrap_or(u32::MAX);
            let rule = PathRule {
                priority: FIRST_PRIORITY.saturating_add(PRIORITY_STEP.saturating_mul(step)),
                pattern: pattern.to_owned(),
                action,
                conditions,
            };
            balancer::check_rule(&rule.balancer_rule())
                .map_err(|why| Error::Usage(format!("--rule `{text}`: {why}")))?;
            parsed.push(rule);
        }
        let default = match default {
            Some(default) => default,
            None => parsed
                .iter()
                .find_map(|r: &PathRule| r.action.clusters().first().map(|c| (*c).to_owned()))
                .map(RuleAction::Forward)
                .ok_or_else(|| {
                    Error::Usage(
                        "no --rule forwards to a cluster, so none can be the default: give \
                         --default CLUSTER"
                            .into(),
                    )
                })?,
        };
        Ok(Self {
            rules: parsed,
            default,
        })
    }

    /// The default action of a `--default` flag: a cluster or `fixed-response:...`, as a
    /// rule's action is written; ALB's other actions are refused, with the way to get them.
    fn parse_default(text: &str) -> Result<RuleAction, Error> {
        let usage = |why: String| {
            Error::Usage(format!(
                "--default `{text}`: {why}; give a cluster (e.g. --default cluster1) or a fixed \
                 response (e.g. --default fixed-response:503:text/plain:Back soon)"
            ))
        };
        match RuleAction::parse(text).map_err(usage)? {
            RuleAction::Fixed(fixed) => {
                let rule = PathRule {
                    priority: FIRST_PRIORITY,
                    pattern: "*".into(),
                    action: RuleAction::Fixed(fixed.clone()),
                    conditions: Conditions::default(),
                };
                balancer::check_rule(&rule.balancer_rule()).map_err(usage)?;
                Ok(RuleAction::Fixed(fixed))
            }
            RuleAction::Forward(cluster) => Ok(RuleAction::Forward(cluster)),
            RuleAction::Weighted { .. } | RuleAction::Redirect(_) => Err(usage(
                "a default action weighs no clusters and redirects nowhere here; add it as the \
                 last --rule with the pattern * instead (e.g. --rule '*=blue:95,green:5')"
                    .into(),
            )),
        }
    }

    /// The default action as elb's balancer config holds it.
    pub fn balancer_default(&self) -> proto::balancer_config::DefaultAction {
        match &self.default {
            RuleAction::Fixed(fixed) => proto::balancer_config::DefaultAction {
                forward: None,
                fixed_response: Some(fixed.clone()),
            },
            other => proto::balancer_config::DefaultAction {
                forward: other.clusters().first().map(|c| (*c).to_owned()),
                fixed_response: None,
            },
        }
    }

    /// Every cluster the routing sends to, default included.
    pub fn clusters(&self) -> BTreeSet<&str> {
        self.rules
            .iter()
            .flat_map(|r| r.action.clusters())
            .chain(self.default.clusters())
            .collect()
    }

    /// Refuses clusters that have no running instance (but those in `special`, groups the
    /// caller makes itself): a rule to an empty cluster is a typo more often than a plan.
    pub fn check_clusters(
        &self,
        existing: &BTreeSet<String>,
        special: &[&str],
    ) -> Result<(), Error> {
        let unknown: Vec<&str> = self
            .clusters()
            .into_iter()
            .filter(|c| !existing.contains(*c) && !special.contains(c))
            .collect();
        if unknown.is_empty() {
            return Ok(());
        }
        let have = if existing.is_empty() {
            "none".to_owned()
        } else {
            existing.iter().cloned().collect::<Vec<_>>().join(", ")
        };
        Err(Error::Usage(format!(
            "no running instances in cluster(s) {} that the rules send to (the project's \
             clusters: {have}): fix --rule/--default, or launch the cluster first with `elb \
             launch --cluster {}`",
            unknown.join(", "),
            unknown[0]
        )))
    }

    /// The request path a person would try for each rule: the pattern up to its first wildcard
    /// (`/cluster1*` -> `/cluster1`), with the default's `/` first. Rules with conditions beside
    /// the path are left out: a plain GET of their path does not reach them.
    pub fn example_paths(&self) -> Vec<(String, &str)> {
        let mut paths: Vec<(String, &str)> = match &self.default {
            RuleAction::Forward(cluster) => vec![("/".to_owned(), cluster.as_str())],
            _ => Vec::new(),
        };
        for rule in self.rules.iter().filter(|r| r.conditions.is_empty()) {
            let path = rule
                .pattern
                .split(['*', '?'])
                .next()
                .unwrap_or_default()
                .to_owned();
            let path = if path.is_empty() {
                "/".to_owned()
            } else {
                path
            };
            if let RuleAction::Forward(cluster) = &rule.action {
                paths.push((path, cluster.as_str()));
            }
        }
        paths
    }
}

/// Checks a `path-pattern` as ALB does: 1 to 128 characters from `A-Z a-z 0-9 _ - . $ / ~ " ' @ :
/// + & * ?`, starting with `/` (or a wildcard).
pub fn check_pattern(pattern: &str) -> Result<(), Error> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || "_-.$/~\"'@:+&*?".contains(c);
    let why = if pattern.is_empty() {
        Some("it is empty".to_owned())
    } else if pattern.len() > MAX_PATTERN_LEN {
        Some(format!("it is longer than {MAX_PATTERN_LEN} characters"))
    } else if let Some(c) = pattern.chars().find(|c| !allowed(*c)) {
        Some(format!("`{c}` is not allowed"))
    } else if !pattern.starts_with(['/', '*', '?']) {
        Some("a path starts with `/`".to_owned())
    } else {
        None
    };
    match why {
        None => Ok(()),
        Some(why) => Err(Error::Usage(format!(
            "path pattern `{pattern}`: {why}. Use letters, digits and _ - . $ / ~ \" ' @ : + &, \
             with * for any run of characters and ? for one, e.g. '/cluster1*'"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags(rules: &[&str], default: Option<&str>) -> Result<Routing, Error> {
        let rules: Vec<String> = rules.iter().map(|r| (*r).to_owned()).collect();
        Routing::from_flags(&rules, default)
    }

    #[test]
    fn no_rules_are_the_seeds_alb_rules() {
        let seed = flags(&[], None).unwrap();
        assert_eq!(seed, Routing::seed());
        assert_eq!(
            seed.rules
                .iter()
                .map(|r| (r.priority, r.pattern.as_str(), r.action.describe()))
                .collect::<Vec<_>>(),
            [
                (10, "/cluster1*", "cluster1".to_owned()),
                (20, "/cluster2*", "cluster2".to_owned())
            ]
        );
        assert_eq!(seed.default, RuleAction::Forward("cluster1".into()));
        assert_eq!(
            flags(&[], Some("cluster2")).unwrap().default,
            RuleAction::Forward("cluster2".into())
        );
    }

    #[test]
    fn rules_take_priorities_in_the_order_given_and_the_first_is_the_default() {
        let r = flags(&["/api*=big", "/static/?.css=small"], None).unwrap();
        assert_eq!(r.rules[0].priority, 10);
        assert_eq!(r.rules[1].priority, 20);
        assert_eq!(r.rules[1].pattern, "/static/?.css");
        assert_eq!(r.default, RuleAction::Forward("big".into()));
        assert_eq!(
            r.example_paths(),
            [
                ("/".to_owned(), "big"),
                ("/api".to_owned(), "big"),
                ("/static/".to_owned(), "small")
            ]
        );
    }

    #[test]
    fn bad_rules_are_refused_with_the_fix() {
        for (rule, needle) in [
            ("/api*", "PATTERN=CLUSTER"),
            ("api*=c", "starts with `/`"),
            ("/a b=c", "` ` is not allowed"),
            ("/a=", "cluster in --rule"),
            ("/a=bad/name", "cluster in --rule"),
            ("/a;color=red=c", "unknown condition `color`"),
            ("/a;method=get=c", "in capitals"),
            ("/a;header=X-A=c", "header=NAME:PATTERN"),
            ("/a;source=10.0.0.1/8=c", "host bits"),
            ("/a;method=A,B,C,D,E=c", "at most 5 comparison values"),
        ] {
            let err = flags(&[rule], None).unwrap_err().to_string();
            assert!(err.contains(needle), "{rule}: {err}");
        }
        let long = format!("/{}={}", "a".repeat(128), "c");
        assert!(flags(&[&long], None)
            .unwrap_err()
            .to_string()
            .contains("128"));
        assert!(flags(&["/a=c", "/a=d"], None)
            .unwrap_err()
            .to_string()
            .contains("twice"));
    }

    #[test]
    fn conditions_follow_the_pattern_and_the_cluster_follows_the_last_equals_sign() {
        let r = flags(
            &[
                "/api*;method=POST;header=X-Canary:yes*;query=v=2*,beta=cluster2",
                "/api*;source=10.0.0.0/8=cluster1",
            ],
            None,
        )
        .unwrap();
        let c = &r.rules[0].conditions;
        assert_eq!(r.rules[0].action, RuleAction::Forward("cluster2".into()));
        assert_eq!(c.methods, ["POST"]);
        assert_eq!(c.headers[0].name, "X-Canary");
        assert_eq!(c.headers[0].values, ["yes*"]);
        assert_eq!(
            c.query[0].pairs,
            [
                QueryPair {
                    key: Some("v".into()),
                    value: "2*".into()
                },
                QueryPair {
                    key: None,
                    value: "beta".into()
                }
            ]
        );
        assert_eq!(r.rules[1].conditions.source_ips, ["10.0.0.0/8"]);
        assert!(Routing::seed()
            .rules
            .iter()
            .all(|r| r.conditions.is_empty()));
        assert_eq!(
            r.example_paths(),
            [("/".to_owned(), "cluster2")],
            "a GET reaches neither"
        );
    }

    #[test]
    fn actions_are_clusters_weights_redirects_or_fixed_responses() {
        let r = flags(
            &[
                "/api*=blue:95,green:5",
                "/old/*;method=GET=redirect:301:https://new.#{host}:8443/v2/#{path}?a=b&#{query}",
                "/down*=fixed-response:503:text/html:<p>back soon: a=b</p>",
                "/plain*=fixed-response:404",
            ],
            None,
        )
        .unwrap();
        assert_eq!(
            r.default,
            RuleAction::Forward("blue".into()),
            "the first cluster forwarded to"
        );
        assert_eq!(
            r.clusters().into_iter().collect::<Vec<_>>(),
            ["blue", "green"]
        );
        assert_eq!(
            r.rules[0].action,
            RuleAction::Weighted {
                groups: vec![
                    WeightedGroup {
                        group: "blue".into(),
                        weight: 95
                    },
                    WeightedGroup {
                        group: "green".into(),
                        weight: 5
                    },
                ],
                stickiness_ms: 0
            }
        );
        assert_eq!(
            r.rules[1].action,
            RuleAction::Redirect(Redirect {
                status: 301,
                protocol: Some("HTTPS".into()),
                host: Some("new.#{host}".into()),
                port: Some("8443".into()),
                path: Some("/v2/#{path}".into()),
                query: Some("a=b&#{query}".into()),
            })
        );
        assert_eq!(r.rules[1].conditions.methods, ["GET"]);
        assert_eq!(
            r.rules[2].action,
            RuleAction::Fixed(FixedResponse {
                status: 503,
                content_type: Some("text/html".into()),
                body: Some("<p>back soon: a=b</p>".into()),
            })
        );
        assert_eq!(
            r.rules[3].action,
            RuleAction::Fixed(FixedResponse {
                status: 404,
                content_type: None,
                body: None
            })
        );
        for (rule, needle) in [
            ("/a=blue:0,green:0", "weight above 0"),
            ("/a=redirect:301:#{protocol}://#{host}", "leads back"),
            ("/a=redirect:307:https://x/", "301"),
            ("/a=fixed-response:302", "2XX, 4XX or 5XX"),
            ("/a=blue:x", "not a number"),
        ] {
            let err = flags(&[rule], Some("blue")).unwrap_err().to_string();
            assert!(err.contains(needle), "{rule}: {err}");
        }
        let only_fixed = flags(&["/a=fixed-response:503"], None)
            .unwrap_err()
            .to_string();
        assert!(only_fixed.contains("--default"), "{only_fixed}");
    }

    #[test]
    fn weighted_clusters_take_group_stickiness_after_an_at_sign() {
        let r = flags(&["/api*=blue:95,green:5@1h"], None).unwrap();
        let RuleAction::Weighted { stickiness_ms, .. } = &r.rules[0].action else {
            panic!("weighted: {:?}", r.rules[0].action);
        };
        assert_eq!(*stickiness_ms, 3_600_000);
        assert_eq!(r.rules[0].action.describe(), "blue:95,green:5@3600s");
        assert_eq!(r.rules[0].balancer_rule().group_stickiness_ms, 3_600_000);
        for (rule, needle) in [
            ("/a=blue@1h", "one cluster"),
            ("/a=blue:1,green:1@1x", "unknown unit"),
            ("/a=blue:1,green:1@500ms", "604800000 ms (7 days)"),
            ("/a=blue:1,green:1@8d", "unknown unit"),
        ] {
            let err = flags(&[rule], None).unwrap_err().to_string();
            assert!(err.contains(needle), "{rule}: {err}");
        }
    }

    #[test]
    fn the_default_is_a_cluster_or_a_fixed_response() {
        let r = flags(
            &["/api*=blue"],
            Some("fixed-response:503:text/plain:Back soon"),
        )
        .unwrap();
        let fixed = FixedResponse {
            status: 503,
            content_type: Some("text/plain".into()),
            body: Some("Back soon".into()),
        };
        assert_eq!(r.default, RuleAction::Fixed(fixed.clone()));
        assert_eq!(r.clusters().into_iter().collect::<Vec<_>>(), ["blue"]);
        assert_eq!(r.balancer_default().fixed_response, Some(fixed));
        assert_eq!(r.balancer_default().forward, None);
        assert_eq!(r.example_paths(), [("/api".to_owned(), "blue")]);
        let seed = flags(&[], Some("fixed-response:404")).unwrap();
        assert_eq!(seed.rules, Routing::seed().rules);
        for (default, needle) in [
            ("blue:1,green:1", "last --rule with the pattern *"),
            ("redirect:301:https://#{host}:443/", "last --rule"),
            ("fixed-response:302", "2XX, 4XX or 5XX"),
            ("bad/name", "cluster in --rule"),
        ] {
            let err = flags(&["/a=blue"], Some(default)).unwrap_err().to_string();
            assert!(
                err.contains(needle) && err.contains("--default"),
                "{default}: {err}"
            );
        }
    }

    #[test]
    fn a_rule_to_a_cluster_without_instances_is_refused() {
        let existing: BTreeSet<String> = ["cluster1".to_owned()].into();
        let err = Routing::seed()
            .check_clusters(&existing, &[])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("cluster2") && err.contains("elb launch"),
            "{err}"
        );
        let both: BTreeSet<String> = ["cluster1".to_owned(), "cluster2".to_owned()].into();
        assert!(Routing::seed().check_clusters(&both, &[]).is_ok());
        let all = Routing {
            rules: Vec::new(),
            default: RuleAction::Forward("all".into()),
        };
        assert!(all.check_clusters(&existing, &["all"]).is_ok());
    }
}
