//! `/metrics`: Prometheus text format 0.0.4, named after ALB's CloudWatch metrics.
//!
//! | metric | ALB name | labels |
//! | --- | --- | --- |
//! | `elb_request_count_total` | `RequestCount` | group |
//! | `elb_target_request_count_total` | `HTTPCode_Target_{1..5}XX_Count` | group, target, code_class |
//! | `elb_target_connection_error_count_total` | `TargetConnectionErrorCount` | group, target |
//! | `elb_target_reset_count_total` | (none) | group, target |
//! | `elb_target_timeout_count_total` | (none) | group, target |
//! | `elb_target_response_time_seconds` | `TargetResponseTime` | group (histogram) |
//! | `elb_httpcode_elb_count_total` | `HTTPCode_ELB_{4,5}XX_Count` | group, code |
//! | `elb_healthy_host_count` | `HealthyHostCount` | group |
//! | `elb_unhealthy_host_count` | `UnHealthyHostCount` | group |
//! | `elb_target_in_flight` | (none) | group, target |
//! | `elb_target_latency_estimate_seconds` | (none) | group, target |
//! | `elb_target_healthy` | (none) | group, target, state |
//! | `elb_retry_count_total` | (none) | group |
//! | `elb_retry_over_budget_count_total` | (none) | group |
//! | `elb_ejection_count_total` | (none) | group, target |
//! | `elb_target_queued` | (none) | group, target |
//! | `elb_all_targets_failing` | (none) | group |
//! | `elb_queue_full_count_total` | (none) | group |
//! | `elb_queue_timeout_count_total` | (none) | group |
//! | `elb_client_error_count_total` | `HTTPCode_ELB_4XX_Count`, by cause | reason |
//! | `elb_active_connection_count` | `ActiveConnectionCount` | |
//! | `elb_new_connection_count_total` | `NewConnectionCount` | |
//! | `elb_reload_count_total` | (none) | result (`ok`, `refused`) |
//! | `elb_config_generation` | (none) | |

use std::fmt::Write;
use std::sync::atomic::Ordering::Relaxed;

use crate::group::Group;
use crate::health::State;
use crate::proxy::CLIENT_ERRORS;
use crate::shared::Shared;
use crate::target::Member;

/// A label value, escaped as the text format requires.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// Renders every metric.
/// A family of one unlabelled sample.
fn single(out: &mut String, name: &str, kind: &str, help: &str, value: u64) {
    header(out, name, kind, help);
    let _ = writeln!(out, "{name} {value}");
}

pub(crate) fn render(shared: &Shared) -> String {
    let snapshot = shared.snapshot();
    let draining = shared.registry.draining();
    let mut out = String::with_capacity(4096);
    let group_label = |g: &Group| format!("group=\"{}\"", escape(&g.config.name));
    let target_label = |group: &str, m: &Member| {
        format!(
            "group=\"{}\",target=\"{}\",address=\"{}\"",
            escape(group),
            escape(&m.id),
            m.target.address
        )
    };
    // Every member of every group, draining ones included, with its label set.
    let mut targets: Vec<(String, &Member)> = Vec::new();
    for g in &snapshot.groups {
        for m in &g.members {
            targets.push((target_label(&g.config.name, m), m));
        }
    }
    for d in &draining {
        targets.push((target_label(&d.group, &d.member), &d.member));
    }

    let per_group =
        |out: &mut String, name: &str, kind: &str, help: &str, value: &dyn Fn(&Group) -> u64| {
            header(out, name, kind, help);
            for g in &snapshot.groups {
                let _ = writeln!(out, "{name}{{{}}} {}", group_label(g), value(g));
            }
        };
    per_group(
        &mut out,
        "elb_request_count_total",
        "counter",
        "Requests routed to the group.",
        &|g| g.stats.requests.load(Relaxed),
    );
    per_group(
        &mut out,
        "elb_retry_count_total",
        "counter",
        "Retries on another target.",
        &|g| g.stats.retries.load(Relaxed),
    );
    per_group(
        &mut out,
        "elb_retry_over_budget_count_total",
        "counter",
        "Retries refused because the retry budget was spent.",
        &|g| g.stats.retries_over_budget.load(Relaxed),
    );
    per_group(
        &mut out,
        "elb_healthy_host_count",
        "gauge",
        "Targets taking new requests.",
        &|g| g.eligible().1.len() as u64,
    );
    per_group(
        &mut out,
        "elb_unhealthy_host_count",
        "gauge",
        "Registered targets not taking new requests (initial, unhealthy, ejected).",
        &|g| (g.members.len() - g.eligible().1.len()) as u64,
    );
    per_group(
        &mut out,
        "elb_failing_open",
        "gauge",
        "1 when no target is healthy and the group routes to all.",
        &|g| u64::from(g.failing_open()),
    );
    per_group(
        &mut out,
        "elb_all_targets_failing",
        "gauge",
        "1 while outlier detection holds back because every target taking requests fails.",
        &|g| u64::from(g.stats.all_failing.load(Relaxed)),
    );
    per_group(
        &mut out,
        "elb_queue_full_count_total",
        "counter",
        "Requests refused with 503 because their target's queue was full.",
        &|g| g.stats.queue_full.load(Relaxed),
    );
    per_group(
        &mut out,
        "elb_queue_timeout_count_total",
        "counter",
        "Requests answered 503 after waiting in a target's queue for the queue timeout.",
        &|g| g.stats.queue_timeouts.load(Relaxed),
    );

    header(
        &mut out,
        "elb_httpcode_elb_count_total",
        "counter",
        "Answers made by the balancer itself.",
    );
    for g in &snapshot.groups {
        for (code, counter) in [
            ("502", &g.stats.elb_502),
            ("503", &g.stats.elb_503),
            ("504", &g.stats.elb_504),
        ] {
            let _ = writeln!(
                out,
                "elb_httpcode_elb_count_total{{{},code=\"{code}\"}} {}",
                group_label(g),
                counter.load(Relaxed)
            );
        }
    }
    let _ = writeln!(
        out,
        "elb_httpcode_elb_count_total{{group=\"\",code=\"4xx\"}} {}",
        shared.counters.elb_4xx.load(Relaxed)
    );

    header(
        &mut out,
        "elb_target_response_time_seconds",
        "histogram",
        "Time from sending a request to a target to its response head.",
    );
    for g in &snapshot.groups {
        g.stats.response_time.render(
            &mut out,
            "elb_target_response_time_seconds",
            &group_label(g),
        );
    }

    header(
        &mut out,
        "elb_target_request_count_total",
        "counter",
        "Answers from targets by status class.",
    );
    for (labels, m) in &targets {
        for (i, class) in ["1xx", "2xx", "3xx", "4xx", "5xx"].iter().enumerate() {
            let _ = writeln!(
                out,
                "elb_target_request_count_total{{{labels},code_class=\"{class}\"}} {}",
                m.target.counters.by_class[i].load(Relaxed)
            );
        }
    }
    let per_target = |out: &mut String,
                      name: &str,
                      kind: &str,
                      help: &str,
                      value: &dyn Fn(&Member) -> String| {
        header(out, name, kind, help);
        for (labels, m) in &targets {
            let _ = writeln!(out, "{name}{{{labels}}} {}", value(m));
        }
    };
    per_target(
        &mut out,
        "elb_target_connection_error_count_total",
        "counter",
        "Connections to the target that could not be made.",
        &|m| m.target.counters.connect_errors.load(Relaxed).to_string(),
    );
    per_target(
        &mut out,
        "elb_target_reset_count_total",
        "counter",
        "Connections that failed before the response head.",
        &|m| m.target.counters.resets.load(Relaxed).to_string(),
    );
    per_target(
        &mut out,
        "elb_target_timeout_count_total",
        "counter",
        "Requests without a response head within the response timeout.",
        &|m| m.target.counters.timeouts.load(Relaxed).to_string(),
    );
    per_target(
        &mut out,
        "elb_ejection_count_total",
        "counter",
        "Passive outlier ejections.",
        &|m| m.target.counters.ejections.load(Relaxed).to_string(),
    );
    per_target(
        &mut out,
        "elb_target_in_flight",
        "gauge",
        "Requests in flight to the target.",
        &|m| m.target.in_flight().to_string(),
    );
    per_target(
        &mut out,
        "elb_target_queued",
        "gauge",
        "Requests waiting for room under max_requests_per_target.",
        &|m| m.target.queued().to_string(),
    );
    per_target(
        &mut out,
        "elb_target_latency_estimate_seconds",
        "gauge",
        "Peak-EWMA latency estimate.",
        &|m| m.target.latency().as_secs_f64().to_string(),
    );
    header(
        &mut out,
        "elb_target_healthy",
        "gauge",
        "1 for the target's current state (initial, healthy, unhealthy, draining).",
    );
    for (labels, m) in &targets {
        let state = m.target.health().state();
        for s in [
            State::Initial,
            State::Healthy,
            State::Unhealthy,
            State::Draining,
        ] {
            let _ = writeln!(
                out,
                "elb_target_healthy{{{labels},state=\"{}\"}} {}",
                s.name(),
                u8::from(s == state)
            );
        }
    }

    let c = &shared.counters;
    header(
        &mut out,
        "elb_client_error_count_total",
        "counter",
        "Requests the client got wrong, answered by the balancer; none counts against a target.",
    );
    for (failure, counter) in CLIENT_ERRORS.iter().zip(&c.client_errors) {
        let _ = writeln!(
            out,
            "elb_client_error_count_total{{reason=\"{}\"}} {}",
            failure.code(),
            counter.load(Relaxed)
        );
    }
    single(
        &mut out,
        "elb_active_connection_count",
        "gauge",
        "Client connections open.",
        c.active_connections.load(Relaxed),
    );
    single(
        &mut out,
        "elb_new_connection_count_total",
        "counter",
        "Client connections accepted.",
        c.new_connections.load(Relaxed),
    );
    single(
        &mut out,
        "elb_client_tls_negotiation_error_count_total",
        "counter",
        "TLS handshakes with clients that failed or timed out.",
        c.tls_handshake_failures.load(Relaxed),
    );
    single(
        &mut out,
        "elb_http_redirect_count_total",
        "counter",
        "Redirects made by a rule's redirect action.",
        c.redirects.load(Relaxed),
    );
    single(
        &mut out,
        "elb_http_fixed_response_count_total",
        "counter",
        "Answers made by a rule's fixed-response action.",
        c.fixed_responses.load(Relaxed),
    );
    single(
        &mut out,
        "elb_websocket_connections_open",
        "gauge",
        "WebSocket connections open (upgraded by a target's 101).",
        c.websockets_open.load(Relaxed),
    );
    let log = &shared.access_log;
    for (name, help, value) in [
        (
            "elb_access_log_lines_total",
            "Access log lines written.",
            &log.lines,
        ),
        (
            "elb_access_log_dropped_total",
            "Access log lines dropped because the writer was behind.",
            &log.dropped,
        ),
        (
            "elb_access_log_write_errors_total",
            "Access log lines lost because the file could not be opened or written.",
            &log.write_errors,
        ),
    ] {
        single(&mut out, name, "counter", help, value.load(Relaxed));
    }
    header(
        &mut out,
        "elb_reload_count_total",
        "counter",
        "Config reloads by result.",
    );
    let _ = writeln!(
        out,
        "elb_reload_count_total{{result=\"ok\"}} {}",
        c.reloads_ok.load(Relaxed)
    );
    let _ = writeln!(
        out,
        "elb_reload_count_total{{result=\"refused\"}} {}",
        c.reloads_refused.load(Relaxed)
    );
    single(
        &mut out,
        "elb_config_generation",
        "gauge",
        "Configs loaded since start, the first included.",
        snapshot.generation,
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\n"), "a\\\"b\\\\c\\n");
    }
}
