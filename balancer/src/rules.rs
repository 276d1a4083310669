//! Routing rules with ALB's semantics: rules in ascending priority, the first match wins, the
//! default action last.
//!
//! A `path-pattern` is case-sensitive; `*` matches any run of characters (also none), `?`
//! exactly one; it is matched against the whole path, without the query string. A host pattern
//! uses the same wildcards but ignores case and the port. The other conditions (method, header,
//! query string, source address) are in `conditions.rs`; a rule matches when all of its
//! conditions do.
//!
//! A rule's action is ALB's: forward to one group, forward to weighted groups (each request to
//! one drawn in proportion to the weights, as ALB's weighted target groups), redirect, or a
//! fixed response.

use crate::conditions::{Conditions, RequestView};
use crate::config::{Config, DefaultAction, FixedResponse, Forward, Redirect};
use crate::pattern::Pattern;
use crate::selection::with_rng;

/// What a request gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action<'a> {
    /// Forward to the target group at this index of the config's `target_groups`.
    Forward(usize),
    /// Forward to one of weighted groups: the one the client's group stickiness cookie keeps,
    /// else one drawn by weight.
    Weighted(&'a Weighted),
    /// Redirect as this says.
    Redirect(&'a Redirect),
    /// Answer this.
    Fixed(&'a FixedResponse),
    /// A fixed JSON 404 (no rule matched and no default action).
    NotFound,
}

/// A request's action and the priority of the rule that gave it (0: the default action, as
/// ALB's access log has it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Routed<'a> {
    pub action: Action<'a>,
    pub priority: u32,
}

/// A weighted forward (ALB's weighted target groups), compiled.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Weighted {
    /// Groups by index with their cumulative weights; the last is the total (above zero).
    /// Groups of weight 0 are left out: they get no requests.
    cumulative: Vec<(usize, u32)>,
    /// How long a client stays with the group drawn for it; zero: each request draws.
    pub stickiness_ms: u64,
}

impl Weighted {
    /// One group, drawn in proportion to the weights.
    pub(crate) fn draw(&self) -> usize {
        let total = self.cumulative.last().map_or(1, |(_, w)| *w);
        let draw = with_rng(|rng| rng.below(total as usize)) as u32;
        let (group, _) = self
            .cumulative
            .iter()
            .find(|(_, upto)| draw < *upto)
            .unwrap_or(&self.cumulative[self.cumulative.len() - 1]);
        *group
    }

    /// Whether `group` gets requests of this forward (a weight above zero).
    pub(crate) fn offers(&self, group: usize) -> bool {
        self.cumulative.iter().any(|(g, _)| *g == group)
    }
}

/// A rule's action, compiled.
#[derive(Debug)]
enum RuleAction {
    Forward(usize),
    Weighted(Weighted),
    Redirect(Redirect),
    Fixed(FixedResponse),
}

impl RuleAction {
    fn action(&self) -> Action<'_> {
        match self {
            Self::Forward(group) => Action::Forward(*group),
            Self::Weighted(weighted) => Action::Weighted(weighted),
            Self::Redirect(redirect) => Action::Redirect(redirect),
            Self::Fixed(fixed) => Action::Fixed(fixed),
        }
    }
}

#[derive(Debug)]
struct CompiledRule {
    priority: u32,
    path: Pattern,
    /// Lowercased host pattern.
    host: Option<Pattern>,
    conditions: Conditions,
    action: RuleAction,
}

/// The rules of one config, sorted by priority.
#[derive(Debug)]
pub(crate) struct Router {
    rules: Vec<CompiledRule>,
    /// The default action; none: [`Action::NotFound`].
    default: Option<RuleAction>,
}

impl Router {
    /// Compiles the rules of a validated config.
    pub(crate) fn new(config: &Config) -> Self {
        let group = |name: &str| {
            config
                .target_groups
                .iter()
                .position(|g| g.name == name)
                .unwrap_or_else(|| unreachable!("validation checked group {name}"))
        };
        let mut rules: Vec<_> = config.rules.iter().collect();
        rules.sort_by_key(|r| r.priority);
        let rules = rules
            .into_iter()
            .filter_map(|r| {
                Some(CompiledRule {
                    priority: r.priority,
                    path: Pattern::new(&r.path_pattern).ok()?,
                    host: match &r.host {
                        Some(h) => Some(Pattern::new(&h.to_ascii_lowercase()).ok()?),
                        None => None,
                    },
                    conditions: Conditions::new(r).ok()?,
                    action: match (&r.forward, &r.redirect, &r.fixed_response) {
                        (Some(Forward::Group(name)), _, _) => RuleAction::Forward(group(name)),
                        (Some(Forward::Weighted(groups)), _, _) => {
                            let mut total = 0;
                            let cumulative = groups
                                .iter()
                                .filter(|g| g.weight > 0)
                                .map(|g| {
                                    total += g.weight;
                                    (group(&g.group), total)
                                })
                                .collect();
                            RuleAction::Weighted(Weighted {
                                cumulative,
                                stickiness_ms: r.group_stickiness_ms,
                            })
                        }
                        (None, Some(redirect), _) => RuleAction::Redirect(redirect.clone()),
                        (None, None, Some(fixed)) => RuleAction::Fixed(fixed.clone()),
                        (None, None, None) => return None,
                    },
                })
            })
            .collect();
        let default = match &config.default_action {
            DefaultAction {
                forward: Some(name),
                ..
            } => Some(RuleAction::Forward(group(name))),
            DefaultAction {
                fixed_response: Some(fixed),
                ..
            } => Some(RuleAction::Fixed(fixed.clone())),
            DefaultAction { .. } => None,
        };
        Self { rules, default }
    }

    /// The action for `request` (its host: the `Host` header or the absolute URI's authority,
    /// port ignored).
    pub(crate) fn route(&self, request: &RequestView<'_>) -> Routed<'_> {
        // Lowercased only when some rule looks at the host: most configs route by path alone.
        let host = request
            .host
            .filter(|_| self.rules.iter().any(|r| r.host.is_some()))
            .map(|h| strip_port(h).to_ascii_lowercase());
        let matched = self.rules.iter().find(|rule| {
            rule.path.matches(request.path.as_bytes())
                && match (&rule.host, &host) {
                    (None, _) => true,
                    (Some(pattern), Some(host)) => pattern.matches(host.as_bytes()),
                    (Some(_), None) => false,
                }
                && rule.conditions.match_all(request)
        });
        match matched {
            Some(rule) => Routed {
                action: rule.action.action(),
                priority: rule.priority,
            },
            None => Routed {
                action: self
                    .default
                    .as_ref()
                    .map_or(Action::NotFound, RuleAction::action),
                priority: 0,
            },
        }
    }
}

/// `example.com:8080` -> `example.com`; `[::1]:80` -> `[::1]`.
pub(crate) fn strip_port(host: &str) -> &str {
    match host.rfind(':') {
        Some(i) if !host[i..].contains(']') => &host[..i],
        _ => host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::seed;
    use hyper::HeaderMap;

    /// A GET from loopback to `path` on `host`, no headers.
    fn get<'a>(headers: &'a HeaderMap, host: Option<&'a str>, path: &'a str) -> RequestView<'a> {
        RequestView {
            host,
            path,
            query: None,
            method: "GET",
            headers,
            client: std::net::Ipv4Addr::LOCALHOST.into(),
        }
    }

    /// A forward weighing cluster1 and cluster2 so.
    fn weighted(cluster1: u32, cluster2: u32) -> Forward {
        let group = |name: &str, weight| crate::config::WeightedGroup {
            group: name.into(),
            weight,
        };
        Forward::Weighted(vec![
            group("cluster1", cluster1),
            group("cluster2", cluster2),
        ])
    }

    /// The action for a GET of `path` on `host`, a weighted forward's group drawn.
    fn route<'r>(router: &'r Router, host: Option<&str>, path: &str) -> Action<'r> {
        match router.route(&get(&HeaderMap::new(), host, path)).action {
            Action::Weighted(weighted) => Action::Forward(weighted.draw()),
            action => action,
        }
    }

    #[test]
    fn the_seed_rules_route_by_path_and_default_to_cluster1() {
        let router = Router::new(&seed().config);
        assert_eq!(route(&router, None, "/cluster1"), Action::Forward(0));
        assert_eq!(route(&router, None, "/cluster2/x"), Action::Forward(1));
        assert_eq!(route(&router, None, "/Cluster2"), Action::Forward(0));
        assert_eq!(route(&router, None, "/"), Action::Forward(0));
    }

    #[test]
    fn rules_run_in_priority_order_not_file_order() {
        let mut config = seed().config;
        config.rules[0].priority = 30;
        config.rules[1].path_pattern = "/cluster*".into();
        let router = Router::new(&config);
        assert_eq!(route(&router, None, "/cluster1"), Action::Forward(1));
    }

    #[test]
    fn without_a_default_action_unmatched_requests_get_404() {
        let mut config = seed().config;
        config.default_action.forward = None;
        let router = Router::new(&config);
        assert_eq!(route(&router, None, "/other"), Action::NotFound);
        assert_eq!(route(&router, None, "/cluster1"), Action::Forward(0));
    }

    #[test]
    fn host_rules_ignore_case_and_port_and_need_a_host() {
        let mut config = seed().config;
        config.rules[1].host = Some("*.Example.com".into());
        config.rules[1].path_pattern = "*".into();
        config.rules[1].priority = 5;
        let router = Router::new(&config);
        assert_eq!(
            route(&router, Some("API.example.COM:8080"), "/x"),
            Action::Forward(1)
        );
        assert_eq!(
            route(&router, Some("example.org"), "/x"),
            Action::Forward(0)
        );
        assert_eq!(route(&router, None, "/x"), Action::Forward(0));
    }

    #[test]
    fn a_rule_with_conditions_needs_them_all_and_the_next_rule_gets_the_rest() {
        let mut config = seed().config;
        config.rules[1].path_pattern = "/cluster1*".into();
        config.rules[1].priority = 5;
        config.rules[1].methods = vec!["POST".into()];
        let router = Router::new(&config);
        assert_eq!(
            route(&router, None, "/cluster1"),
            Action::Forward(0),
            "a GET"
        );
        let headers = HeaderMap::new();
        let post = RequestView {
            method: "POST",
            ..get(&headers, None, "/cluster1")
        };
        assert_eq!(
            router.route(&post),
            Routed {
                action: Action::Forward(1),
                priority: 5
            }
        );
    }

    #[test]
    fn weighted_forwards_split_by_weight_and_skip_zero_weights() {
        let mut config = seed().config;
        config.rules[0].forward = Some(weighted(0, 1));
        let router = Router::new(&config);
        for _ in 0..100 {
            assert_eq!(route(&router, None, "/cluster1"), Action::Forward(1));
        }
        config.rules[0].forward = Some(weighted(900, 100));
        let router = Router::new(&config);
        let n = 20_000;
        let second = (0..n)
            .filter(|_| route(&router, None, "/cluster1") == Action::Forward(1))
            .count();
        // Binomial(20000, 0.1): mean 2000, sd 42; five sd either way.
        assert!(
            (1790..=2210).contains(&second),
            "{second} of {n} to the 10 % group"
        );
    }

    #[test]
    fn redirects_and_fixed_responses_are_rule_actions() {
        let mut config = seed().config;
        config.rules[0].forward = None;
        config.rules[0].fixed_response = Some(FixedResponse {
            status: 503,
            ..FixedResponse::default()
        });
        config.rules[1].forward = None;
        config.rules[1].redirect = Some(Redirect {
            status: 301,
            protocol: Some("HTTPS".into()),
            ..Redirect::default()
        });
        let router = Router::new(&config);
        assert!(matches!(route(&router, None, "/cluster1"), Action::Fixed(f) if f.status == 503));
        assert!(
            matches!(route(&router, None, "/cluster2"), Action::Redirect(r) if r.status == 301)
        );
        assert_eq!(route(&router, None, "/"), Action::Forward(0));
    }

    #[test]
    fn a_fixed_response_default_answers_what_no_rule_matches_at_priority_0() {
        let mut config = seed().config;
        config.default_action = DefaultAction {
            forward: None,
            fixed_response: Some(FixedResponse {
                status: 503,
                ..FixedResponse::default()
            }),
        };
        let router = Router::new(&config);
        let headers = HeaderMap::new();
        let routed = router.route(&get(&headers, None, "/other"));
        assert!(matches!(routed.action, Action::Fixed(f) if f.status == 503));
        assert_eq!(routed.priority, 0);
        assert_eq!(router.route(&get(&headers, None, "/cluster2")).priority, 20);
    }

    #[test]
    fn a_weighted_forward_offers_only_groups_weighing_above_zero() {
        let mut config = seed().config;
        config.rules[0].forward = Some(weighted(0, 5));
        config.rules[0].group_stickiness_ms = 60_000;
        let router = Router::new(&config);
        let headers = HeaderMap::new();
        let Action::Weighted(weighted) = router.route(&get(&headers, None, "/cluster1")).action
        else {
            panic!("a weighted forward");
        };
        assert_eq!(weighted.stickiness_ms, 60_000);
        assert!(weighted.offers(1) && !weighted.offers(0));
    }

    #[test]
    fn ports_are_stripped_from_hosts_but_not_from_ipv6_literals() {
        assert_eq!(strip_port("a.b:80"), "a.b");
        assert_eq!(strip_port("[::1]:80"), "[::1]");
        assert_eq!(strip_port("[::1]"), "[::1]");
        assert_eq!(strip_port("a.b"), "a.b");
    }
}
