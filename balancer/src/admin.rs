//! The admin listener: `GET /metrics` (Prometheus text) and `GET /status` (JSON,
//! [`proto::BalancerStatus`]). Anything else gets a JSON 404.

use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use proto::{BalancerStatus, GroupStatus, TargetStatus};

use crate::metrics;
use crate::proxy::ResponseBody;
use crate::shared::Shared;
use crate::target::Member;

/// Answers one admin request.
pub(crate) fn handle(shared: &Shared, request: &Request<Incoming>) -> Response<ResponseBody> {
    let (status, content_type, body) = match (request.method(), request.uri().path()) {
        (&Method::GET, "/metrics") => (
            StatusCode::OK,
            "text/plain; version=0.0.4",
            metrics::render(shared).into_bytes(),
        ),
        (&Method::GET, "/status") => (
            StatusCode::OK,
            "application/json",
            serde_json::to_vec_pretty(&status(shared)).unwrap_or_default(),
        ),
        _ => (
            StatusCode::NOT_FOUND,
            "application/json",
            serde_json::to_vec(&proto::ErrorBody {
                schema: proto::SCHEMA,
                status: 404,
                error: "not found: try /metrics or /status".into(),
            })
            .unwrap_or_default(),
        ),
    };
    let mut response = Response::new(ResponseBody::full(body));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// The `/status` document.
pub(crate) fn status(shared: &Shared) -> BalancerStatus {
    let snapshot = shared.snapshot();
    let draining = shared.registry.draining();
    let groups = snapshot
        .groups
        .iter()
        .map(|g| {
            let healthy = g.eligible().1.len();
            let base = Duration::from_millis(g.config.outlier_detection.base_ejection_ms);
            let now = tokio::time::Instant::now();
            let status = |m: &Member| target_status(m, base, now);
            let mut targets: Vec<TargetStatus> = g.members.iter().map(status).collect();
            targets.extend(
                draining
                    .iter()
                    .filter(|d| d.group == g.config.name)
                    .map(|d| status(&d.member)),
            );
            GroupStatus {
                name: g.config.name.clone(),
                algorithm: g.config.algorithm.name().into(),
                healthy_targets: healthy as u32,
                unhealthy_targets: (g.members.len() - healthy) as u32,
                failing_open: g.failing_open(),
                all_targets_failing: g.stats.all_failing.load(Relaxed),
                queue_full: g.stats.queue_full.load(Relaxed),
                queue_timeouts: g.stats.queue_timeouts.load(Relaxed),
                requests: g.stats.requests.load(Relaxed),
                retries: g.stats.retries.load(Relaxed),
                retries_over_budget: g.stats.retries_over_budget.load(Relaxed),
                targets,
            }
        })
        .collect();
    let c = &shared.counters;
    BalancerStatus {
        schema: proto::SCHEMA,
        balancer_version: env!("CARGO_PKG_VERSION").into(),
        config_version: snapshot.version.clone(),
        config_generation: snapshot.generation,
        config_path: shared.config_path.display().to_string(),
        config_loaded_at_unix_ms: snapshot.loaded_at_unix_ms,
        started_at_unix_ms: shared.started_at_unix_ms,
        reloads_refused: c.reloads_refused.load(Relaxed),
        last_reload_error: c
            .last_reload_error
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone(),
        active_connections: c.active_connections.load(Relaxed),
        groups,
    }
}

/// `base` is the group's `base_ejection_ms`, for the decay of `times_ejected`.
fn target_status(member: &Member, base: Duration, now: tokio::time::Instant) -> TargetStatus {
    let target = &member.target;
    let health = target.health();
    TargetStatus {
        id: member.id.clone(),
        address: target.address.to_string(),
        state: health.state(),
        reason: health.reason().code().into(),
        ejected: health.ejected(),
        times_ejected: health.times_ejected(base, now),
        in_flight: target.in_flight(),
        queued: target.queued(),
        latency_estimate_ms: target.latency().as_secs_f64() * 1000.0,
        requests: target.counters.requests(),
        errors: target.counters.errors(),
        weight: member.weight,
        instance_type: member.instance_type.clone(),
        cluster: member.cluster.clone(),
        agent_busy_percent: target.agent_load().map(|l| l.busy_percent),
    }
}
