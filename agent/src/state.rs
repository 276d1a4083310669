//! What every request reads: the identity, the live counters, and the answers pre-rendered by
//! the sampler.
//!
//! The sampler renders every stats-bearing body once per interval and swaps them in whole
//! (`ArcSwap`), so a request takes no lock and serialises nothing: the counters it shows lag
//! the live ones by at most one sample interval.

use std::sync::Arc;

use arc_swap::{ArcSwap, Guard};
use bytes::Bytes;
use hyper::header::{HeaderMap, HeaderValue, CONTENT_LENGTH, CONTENT_TYPE};
use proto::{Health, InstanceAnswer, SCHEMA};

use crate::identity::Identity;
use crate::metrics;
use crate::stats::sampler::{Sample, Sampler};
use crate::stats::Live;

/// The seed app's messages, kept verbatim for its clients.
pub(crate) const ROOT_MESSAGE: &str = "Instance is responding";
pub(crate) const CLUSTER1_MESSAGE: &str = "Cluster 1 (Large) responding";
pub(crate) const CLUSTER2_MESSAGE: &str = "Cluster 2 (Micro) responding";

pub(crate) const JSON: &str = "application/json";

/// An answer rendered ahead of the requests: its body and its headers (`Content-Type`,
/// `Content-Length`). Answering with it clones them, which costs no hashing and no formatting.
#[derive(Clone)]
pub(crate) struct Rendered {
    pub body: Bytes,
    pub headers: HeaderMap,
}

impl Rendered {
    pub(crate) fn new(body: impl Into<Bytes>, content_type: &'static str) -> Self {
        let body = body.into();
        let mut headers = HeaderMap::with_capacity(2);
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
        headers.insert(CONTENT_LENGTH, HeaderValue::from(body.len()));
        Self { body, headers }
    }

    /// JSON, the type of every answer but `/metrics`.
    pub(crate) fn json(body: impl Into<Bytes>) -> Self {
        Self::new(body, JSON)
    }
}

/// Response bodies rendered from one sample.
pub(crate) struct Bodies {
    pub root: Rendered,
    pub cluster1: Rendered,
    pub cluster2: Rendered,
    pub stats: Rendered,
    pub metrics: Rendered,
}

impl Default for Bodies {
    fn default() -> Self {
        let empty = Rendered::json(Bytes::new());
        Self {
            root: empty.clone(),
            cluster1: empty.clone(),
            cluster2: empty.clone(),
            stats: empty.clone(),
            metrics: empty,
        }
    }
}

/// State shared by the server and the sampler.
pub(crate) struct AppState {
    pub identity: Identity,
    pub live: Live,
    /// Body of `/healthz` (and of `/sleep`), rendered once.
    pub health: Rendered,
    /// Whether `/sleep` is served.
    pub debug_endpoints: bool,
    bodies: ArcSwap<Bodies>,
}

impl AppState {
    pub(crate) fn new(identity: Identity, debug_endpoints: bool) -> Self {
        let health = Health {
            status: "ok".into(),
        };
        Self {
            identity,
            live: Live::default(),
            health: Rendered::json(serde_json::to_vec(&health).unwrap_or_default()),
            debug_endpoints,
            bodies: ArcSwap::default(),
        }
    }

    /// The latest rendered bodies.
    pub(crate) fn bodies(&self) -> Guard<Arc<Bodies>> {
        self.bodies.load()
    }

    /// Renders `sample` and makes it what requests see.
    pub(crate) fn publish(&self, sample: &Sample) -> Result<(), serde_json::Error> {
        let answer = |message: &str| -> Result<Rendered, serde_json::Error> {
            let answer = InstanceAnswer {
                schema: SCHEMA,
                message: message.to_string(),
                instance_id: self.identity.hostname.clone(),
                hostname: self.identity.hostname.clone(),
                cluster: self.identity.cluster.clone(),
                ec2_instance_id: self.identity.instance_id.clone(),
                ec2_instance_type: self.identity.instance_type.clone(),
                availability_zone: self.identity.availability_zone.clone(),
                stats: sample.snapshot.clone(),
            };
            serde_json::to_vec(&answer).map(Rendered::json)
        };
        let bodies = Bodies {
            root: answer(ROOT_MESSAGE)?,
            cluster1: answer(CLUSTER1_MESSAGE)?,
            cluster2: answer(CLUSTER2_MESSAGE)?,
            stats: Rendered::json(serde_json::to_vec(&sample.snapshot)?),
            metrics: Rendered::new(
                metrics::render(&self.identity, sample),
                metrics::CONTENT_TYPE,
            ),
        };
        self.bodies.store(Arc::new(bodies));
        Ok(())
    }
}

/// Samples every interval and publishes the result, forever (the runtime's end stops it).
pub(crate) async fn keep_sampling(state: &AppState, mut sampler: Sampler) {
    let mut ticker = tokio::time::interval(sampler.interval());
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The first tick is immediate, and main already published a first sample.
    ticker.tick().await;
    loop {
        ticker.tick().await;
        if let Err(e) = state.publish(&sampler.sample(&state.live)) {
            tracing::warn!("rendering the stats failed, keeping the previous ones: {e}");
        }
    }
}
