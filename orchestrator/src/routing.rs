//! Which cluster serves which request path: the seed's ALB rules, or rules of the user's, as
//! plain data. The managed ALB (`alb/`) and elb's own balancer are both configured from a
//! [`Routing`], so the two compare on the same rules.
//!
//! Semantics are ALB's: rules are evaluated in priority order (lowest first), a `path-pattern` is
//! case-sensitive with `*` (any run of characters) and `?` (one character), at most 128
//! characters, and the default action serves what no rule matched. A rule may add ALB's other
//! conditions (method, header, query string, source CIDR), all of which must match.
//!
//! A rule as a flag: `PATTERN[;CONDITION]...=CLUSTER`, the cluster after the last `=`, each
//! condition `KIND=VALUE[,VALUE]...` (OR within one):
//! `method=POST,PUT`, `header=NAME:PATTERN[,PATTERN]`, `query=[KEY=]PATTERN[,...]`,
//! `source=CIDR[,CIDR]`; e.g. `--rule '/api*;method=POST;header=X-Canary:yes=cluster2'`.

use std::collections::BTreeSet;

use proto::balancer_config::{HeaderCondition, QueryCondition, QueryPair};

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
    /// The cluster (and its target group) that serves it.
    pub cluster: String,
    /// ALB's other conditions, all of which must match too.
    pub conditions: Conditions,
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
        proto::balancer_config::Rule {
            priority: self.priority,
            path_pattern: self.pattern.clone(),
            host: None,
            methods: self.conditions.methods.clone(),
            headers: self.conditions.headers.clone(),
            query: self.conditions.query.clone(),
            source_ips: self.conditions.source_ips.clone(),
            forward: Some(proto::balancer_config::Forward::Group(self.cluster.clone())),
            redirect: None,
            fixed_response: None,
        }
    }
}

/// The rules in priority order and the default cluster.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Routing {
    /// Path rules, sorted by priority.
    pub rules: Vec<PathRule>,
    /// The cluster that serves every request no rule matched.
    pub default: String,
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
                    cluster: "cluster1".into(),
                    conditions: Conditions::default(),
                },
                PathRule {
                    priority: 20,
                    pattern: "/cluster2*".into(),
                    cluster: "cluster2".into(),
                    conditions: Conditions::default(),
                },
            ],
            default: "cluster1".into(),
        }
    }

    /// Rules from `PATTERN[;CONDITION]...=CLUSTER` texts (see the module's doc), in the order
    /// given (priorities 10, 20, ...), and the default cluster (else the first rule's). Without
    /// rules, the seed's. Every pattern, condition and cluster name is checked, conditions as
    /// elb's balancer checks them (ALB's limits); nothing is looked up.
    pub fn from_flags(rules: &[String], default: Option<&str>) -> Result<Self, Error> {
        if rules.is_empty() {
            let mut seed = Self::seed();
            if let Some(default) = default {
                crate::config::validate_name("--default", default)?;
                seed.default = default.to_owned();
            }
            return Ok(seed);
        }
        let mut parsed = Vec::with_capacity(rules.len());
        for (i, text) in rules.iter().enumerate() {
            let (matching, cluster) = text.rsplit_once('=').ok_or_else(|| {
                Error::Usage(format!(
                    "--rule `{text}` is not PATTERN=CLUSTER: write e.g. --rule '/api*=cluster1'"
                ))
            })?;
            let mut parts = matching.split(';');
            let pattern = parts.next().unwrap_or_default();
            check_pattern(pattern)?;
            crate::config::validate_name("cluster in --rule", cluster)?;
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
                cluster: cluster.to_owned(),
                conditions,
            };
            balancer::check_rule_conditions(&rule.balancer_rule())
                .map_err(|why| Error::Usage(format!("--rule `{text}`: {why}")))?;
            parsed.push(rule);
        }
        let default = match default {
            Some(default) => {
                crate::config::validate_name("--default", default)?;
                default.to_owned()
            }
            None => parsed[0].cluster.clone(),
        };
        Ok(Self {
            rules: parsed,
            default,
        })
    }

    /// Every cluster the routing sends to, default included.
    pub fn clusters(&self) -> BTreeSet<&str> {
        self.rules
            .iter()
            .map(|r| r.cluster.as_str())
            .chain([self.default.as_str()])
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
        let mut paths = vec![("/".to_owned(), self.default.as_str())];
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
            paths.push((path, rule.cluster.as_str()));
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
                .map(|r| (r.priority, r.pattern.as_str(), r.cluster.as_str()))
                .collect::<Vec<_>>(),
            [
                (10, "/cluster1*", "cluster1"),
                (20, "/cluster2*", "cluster2")
            ]
        );
        assert_eq!(seed.default, "cluster1");
        assert_eq!(flags(&[], Some("cluster2")).unwrap().default, "cluster2");
    }

    #[test]
    fn rules_take_priorities_in_the_order_given_and_the_first_is_the_default() {
        let r = flags(&["/api*=big", "/static/?.css=small"], None).unwrap();
        assert_eq!(r.rules[0].priority, 10);
        assert_eq!(r.rules[1].priority, 20);
        assert_eq!(r.rules[1].pattern, "/static/?.css");
        assert_eq!(r.default, "big");
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
        assert_eq!(r.rules[0].cluster, "cluster2");
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
            default: "all".into(),
        };
        assert!(all.check_clusters(&existing, &["all"]).is_ok());
    }
}
