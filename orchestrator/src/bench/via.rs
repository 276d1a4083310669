//! `elb bench --via`: the same load straight at the instances, through the managed ALB or
//! through elb's own balancer, and the side-by-side comparison of the runs. Which instance
//! served a request is counted by the agents themselves, so the per-instance shares compare
//! whatever the path; the client's answers and, through elb's balancer, the balancer's own
//! counts give the same shares from the two other sides.

use std::collections::BTreeMap;

use serde::Serialize;

use super::report::{InstanceResult, Latency, Results};

/// Where the load goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Via {
    /// Spread over each cluster's instances by the load generator.
    Direct,
    /// Through the project's managed ALB (its DNS name).
    Alb,
    /// Through the project's own balancer (`elb balance up`).
    Balancer,
}

impl Via {
    /// The name on the command line and in the report.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Direct => "direct",
            Self::Alb => "alb",
            Self::Balancer => "balancer",
        }
    }
}

/// One run (a via, or an algorithm of the balancer), summed up per cluster.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct ViaRow {
    /// What was compared: the via's or the algorithm's name.
    pub(crate) via: String,
    pub(crate) cluster: String,
    pub(crate) requests: u64,
    pub(crate) errors: u64,
    pub(crate) requests_per_sec: f64,
    pub(crate) latency_ms: Latency,
    /// Share (0-1) of the cluster's requests each instance's agent counted.
    pub(crate) shares: Vec<(String, f64)>,
    /// The same shares as the client counted them (the answers that named each instance).
    pub(crate) client_shares: Vec<(String, f64)>,
    /// The same shares as elb's balancer counted them; `None` unless the run went through it.
    pub(crate) balancer_shares: Option<Vec<(String, f64)>>,
    /// The same shares summed per instance type.
    pub(crate) type_shares: Vec<(String, f64)>,
}

/// Each instance's share (0-1) of what `count` says it served, over the sum of the counts.
fn shares_by(
    instances: &[InstanceResult],
    count: impl Fn(&InstanceResult) -> Option<u64>,
) -> Vec<(String, f64)> {
    let total: u64 = instances.iter().filter_map(&count).sum();
    instances
        .iter()
        .map(|i| {
            let n = count(i).unwrap_or(0);
            let share = if total == 0 {
                0.0
            } else {
                n as f64 / total as f64
            };
            (i.instance.clone(), share)
        })
        .collect()
}

/// Whether the sources that counted a row give every instance the same share (to 0.1 %):
/// `yes (3)` with the balancer's counts, `yes (2)` without, else which one differs.
fn agreement(row: &ViaRow) -> String {
    let same = |a: &[(String, f64)], b: &[(String, f64)]| {
        a.len() == b.len()
            && a.iter()
                .zip(b)
                .all(|(x, y)| x.0 == y.0 && (x.1 - y.1).abs() < 1e-3)
    };
    let mut differ = Vec::new();
    if !same(&row.client_shares, &row.shares) {
        differ.push("client");
    }
    if let Some(balancer) = &row.balancer_shares {
        if !same(balancer, &row.shares) {
            differ.push("balancer");
        }
    }
    match (differ.is_empty(), row.balancer_shares.is_some()) {
        (true, true) => "yes (3)".to_owned(),
        (true, false) => "yes (2)".to_owned(),
        (false, _) => format!("no: {} vs agents", differ.join(", ")),
    }
}

/// The side-by-side report of several runs (`comparison.json`).
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Comparison {
    pub(crate) schema: u32,
    pub(crate) rows: Vec<ViaRow>,
}

impl Comparison {
    /// The rows of `runs` (a label and its results), in the order run; `types` names each
    /// instance's type.
    pub(crate) fn new(runs: &[(String, Results)], types: &BTreeMap<String, String>) -> Self {
        let rows = runs
            .iter()
            .flat_map(|(label, results)| {
                results.clusters.iter().map(move |c| {
                    let shares = shares_by(&c.instances, |i| i.agent_counted);
                    let mut by_type: BTreeMap<String, f64> = BTreeMap::new();
                    for (instance, share) in &shares {
                        let t = types.get(instance).cloned().unwrap_or_else(|| "?".into());
                        *by_type.entry(t).or_default() += share;
                    }
                    ViaRow {
                        via: label.clone(),
                        cluster: c.cluster.clone(),
                        requests: c.requests,
                        errors: c.errors,
                        requests_per_sec: c.requests_per_sec,
                        latency_ms: c.latency_ms,
                        client_shares: shares_by(&c.instances, |i| Some(i.served)),
                        balancer_shares: c
                            .balancer_counted
                            .map(|_| shares_by(&c.instances, |i| i.balancer_counted)),
                        shares,
                        type_shares: by_type.into_iter().collect(),
                    }
                })
            })
            .collect();
        Self {
            schema: super::report::SCHEMA,
            rows,
        }
    }

    /// `comparison.json`.
    pub(crate) fn json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// The table for people: a row per via and cluster.
    pub(crate) fn table(&self) -> String {
        let mut table = crate::output::table([
            "run",
            "cluster",
            "req/s",
            "p50 ms",
            "p99 ms",
            "p99.9 ms",
            "errors",
            "share per type",
            "share per instance (agents' counts)",
            "client, balancer agree",
        ]);
        for r in &self.rows {
            let l = &r.latency_ms;
            let percent = |shares: &[(String, f64)]| {
                shares
                    .iter()
                    .map(|(i, s)| format!("{i} {:.0}%", 100.0 * s))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            table.add_row([
                r.via.clone(),
                r.cluster.clone(),
                format!("{:.0}", r.requests_per_sec),
                format!("{:.2}", l.p50),
                format!("{:.2}", l.p99),
                format!("{:.2}", l.p999),
                r.errors.to_string(),
                percent(&r.type_shares),
                percent(&r.shares),
                agreement(r),
            ]);
        }
        table.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::report::tests::results;

    #[test]
    fn each_via_and_cluster_is_a_row_with_the_agents_shares() {
        let runs = [
            ("direct".to_owned(), results()),
            ("alb".to_owned(), results()),
        ];
        let types = [("i-1".to_owned(), "m4.large".to_owned())].into();
        let comparison = Comparison::new(&runs, &types);
        let per_run = results().clusters.len();
        assert_eq!(comparison.rows.len(), 2 * per_run);
        assert_eq!(comparison.rows[per_run].via, "alb");
        let types: Vec<&str> = comparison.rows[0]
            .type_shares
            .iter()
            .map(|(t, _)| t.as_str())
            .collect();
        assert_eq!(types, ["?", "m4.large"]);
        for row in &comparison.rows {
            let total: f64 = row.shares.iter().map(|(_, s)| s).sum();
            assert!(total == 0.0 || (total - 1.0).abs() < 1e-9, "{row:?}");
        }
        // The fixture's client and agents agree; no balancer counted.
        assert!(comparison.rows.iter().all(|r| r.balancer_shares.is_none()));
        let table = comparison.table();
        assert!(table.contains("yes (2)"), "{table}");
        assert!(table.contains("direct") && table.contains("alb"), "{table}");
        assert!(table.contains("share per type"), "{table}");
        let json: serde_json::Value = serde_json::from_str(&comparison.json()).unwrap();
        assert_eq!(json["rows"][per_run]["via"], "alb");
    }

    #[test]
    fn a_balancer_that_counted_otherwise_is_named() {
        let counts = |n: u64| [("i-1".to_owned(), 0), ("i-2".to_owned(), n)].into();
        let mut through = results();
        through.clusters[0] = through.clusters[0]
            .clone()
            .with_balancer_counts(Ok((counts(0), counts(99))));
        let comparison = Comparison::new(&[("balancer".to_owned(), through)], &BTreeMap::new());
        let row = &comparison.rows[0];
        assert_eq!(
            row.balancer_shares.as_deref(),
            Some(&[("i-1".to_owned(), 0.0), ("i-2".to_owned(), 1.0)][..])
        );
        assert_eq!(agreement(row), "no: balancer vs agents");
    }
}
