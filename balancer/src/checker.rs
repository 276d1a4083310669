//! Active health checks: one task per target, one `GET` per interval.
//!
//! A check passes when the answer's status is one the matcher accepts, within the timeout. It
//! opens a new connection each time, as ALB's checks do, so a check proves that the target
//! still accepts connections, not only that an old one is alive. With `agent_load` the checked
//! path is the agent's `/stats`, and its CPU figure is kept for selection.
//!
//! The task holds the target weakly: it ends by itself once the registry drops the target.

use std::sync::{Arc, Weak};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper::Uri;
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use tokio::time::Instant;

use crate::health::{Check, CheckSpec, Reason};
use crate::selection::with_rng;
use crate::target::{AgentLoad, Target};

/// Largest `/stats` document read.
const MAX_STATS_BYTES: usize = 1024 * 1024;

/// The client of every health check: no pooled connections.
pub(crate) type CheckClient = Client<HttpConnector, Empty<Bytes>>;

pub(crate) fn client() -> CheckClient {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(0)
        .build(connector)
}

/// Starts checking `target` until it is dropped.
pub(crate) fn spawn(target: &Arc<Target>, client: CheckClient) {
    let target = Arc::downgrade(target);
    tokio::spawn(run(target, client));
}

async fn run(target: Weak<Target>, client: CheckClient) {
    // A small random delay spreads the checks of many targets registered at once.
    let first = target.upgrade().map_or(Duration::ZERO, |t| {
        let spread = t.check.load().interval.as_millis().min(100) as usize + 1;
        Duration::from_millis(with_rng(|rng| rng.below(spread)) as u64)
    });
    tokio::time::sleep(first).await;
    loop {
        let Some(target) = target.upgrade() else {
            return;
        };
        let spec = target.check.load_full();
        let started = Instant::now();
        let (check, load) = check(&client, &target, &spec).await;
        if check == Check::Pass {
            target.observe_probe(started.elapsed());
        }
        if spec.reads_agent_stats {
            target.set_agent_load(load);
        }
        apply(&target, &spec, check);
        drop(target);
        tokio::time::sleep_until(started + spec.interval).await;
    }
}

/// Records a check and logs a change of state.
fn apply(target: &Target, spec: &CheckSpec, check: Check) {
    let (before, after) = target.update_health(|health| {
        let before = health.state();
        let changed = health.observe(
            check,
            spec.healthy_threshold,
            spec.unhealthy_threshold,
            Instant::now(),
        );
        ((before, (health.state(), health.check_reason())), changed)
    });
    if before != after.0 {
        tracing::warn!(
            target = %target.address,
            "{} -> {} ({})",
            before.name(),
            after.0.name(),
            after.1.code()
        );
    }
}

/// One check of `target`.
async fn check(
    client: &CheckClient,
    target: &Target,
    spec: &CheckSpec,
) -> (Check, Option<AgentLoad>) {
    let Ok(uri) = Uri::try_from(format!("http://{}{}", target.address, spec.path)) else {
        return (Check::Fail(Reason::FailedHealthChecks), None);
    };
    let exchange = async {
        let response = client
            .get(uri)
            .await
            .map_err(|_| Reason::FailedHealthChecks)?;
        let status = response.status().as_u16();
        if !spec.matcher.passes(status) {
            return Err(Reason::ResponseCodeMismatch);
        }
        if !spec.reads_agent_stats {
            return Ok(None);
        }
        let body = Limited::new(response.into_body(), MAX_STATS_BYTES)
            .collect()
            .await
            .map_err(|_| Reason::FailedHealthChecks)?
            .to_bytes();
        Ok(agent_load(&body))
    };
    match tokio::time::timeout(spec.timeout, exchange).await {
        Ok(Ok(load)) => (Check::Pass, load),
        Ok(Err(reason)) => (Check::Fail(reason), None),
        Err(_) => (Check::Fail(Reason::Timeout), None),
    }
}

/// The load figures of an agent's `/stats` document; `None` if it is not one.
fn agent_load(body: &[u8]) -> Option<AgentLoad> {
    let stats: proto::StatsSnapshot = serde_json::from_slice(body).ok()?;
    Some(AgentLoad {
        busy_percent: stats.cpu.busy_percent,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_that_is_not_agent_stats_gives_no_load() {
        assert_eq!(agent_load(b"{\"status\":\"ok\"}"), None);
        assert_eq!(agent_load(b"not json"), None);
    }
}
