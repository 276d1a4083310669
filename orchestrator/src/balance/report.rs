//! `elb balance status`: every group and target as the balancer's `/status` reports it.

use proto::BalancerStatus;

use crate::output::{csv_line, OutputFormat};

const HEADERS: [&str; 12] = [
    "group",
    "target",
    "address",
    "type",
    "state",
    "reason",
    "in_flight",
    "latency_ms",
    "requests",
    "errors",
    "weight",
    "ejected",
];

fn rows(status: &BalancerStatus) -> Vec<[String; 12]> {
    status
        .groups
        .iter()
        .flat_map(|g| {
            g.targets.iter().map(move |t| {
                [
                    g.name.clone(),
                    t.id.clone(),
                    t.address.clone(),
                    t.instance_type.clone().unwrap_or_default(),
                    t.state.name().to_owned(),
                    t.reason.clone(),
                    t.in_flight.to_string(),
                    format!("{:.2}", t.latency_estimate_ms),
                    t.requests.to_string(),
                    t.errors.to_string(),
                    t.weight.to_string(),
                    if t.ejected {
                        format!("yes ({}x)", t.times_ejected)
                    } else {
                        "no".to_owned()
                    },
                ]
            })
        })
        .collect()
}

/// The status in `format`: a line per group and a table of targets, the JSON document as the
/// balancer sent it, or CSV (one row per target).
pub fn render_status(status: &BalancerStatus, format: OutputFormat) -> String {
    match format {
        OutputFormat::Json => serde_json::to_string_pretty(status).unwrap_or_default(),
        OutputFormat::Csv => {
            let mut out = csv_line(HEADERS);
            for row in rows(status) {
                out.push('\n');
                out.push_str(&csv_line(row));
            }
            out
        }
        OutputFormat::Table => {
            let mut out = format!(
                "config {} (generation {}), {} client connection(s){}\n",
                status.config_version,
                status.config_generation,
                status.active_connections,
                status
                    .last_reload_error
                    .as_ref()
                    .map(|e| format!("; last reload refused: {e}"))
                    .unwrap_or_default()
            );
            for g in &status.groups {
                out.push_str(&format!(
                    "group {} ({}): {} healthy, {} unhealthy{}, {} requests, {} retries\n",
                    g.name,
                    g.algorithm,
                    g.healthy_targets,
                    g.unhealthy_targets,
                    if g.failing_open { ", failing open" } else { "" },
                    g.requests,
                    g.retries
                ));
            }
            let mut table = crate::output::table(HEADERS);
            for row in rows(status) {
                table.add_row(row);
            }
            out.push_str(&table.to_string());
            out
        }
    }
}
