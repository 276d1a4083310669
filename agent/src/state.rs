//! What every request reads: the identity, the live counters, and the answers pre-rendered by
//! the sampler.
//!
//! The sampler renders every stats-bearing body once per interval and swaps them in whole
//! (`ArcSwap`), so a request takes no lock and serialises nothing: the counters it shows lag
//! the live ones by at most one sample interval.

use std::sync::Arc;

use arc_swap::{ArcSwap, Guard};
use bytes::Bytes;
use proto::{Health, InstanceAnswer, SCHEMA};

use crate::identity::Identity;
use crate::metrics;
use crate::stats::sampler::{Sample, Sampler};
use crate::stats::Live;

/// The seed app's messages, kept verbatim for its clients.
pub(crate) const ROOT_MESSAGE: &str = "Instance is responding";
pub(crate) const CLUSTER1_MESSAGE: &str = "Cluster 1 (Large) responding";
pub(crate) const CLUSTER2_MESSAGE: &str = "Cluster 2 (Micro) responding";

/// Response bodies rendered from one sample.
#[derive(Default)]
pub(crate) struct Bodies {
    pub root: Bytes,
    pub cluster1: Bytes,
    pub cluster2: Bytes,
    pub stats: Bytes,
    pub metrics: Bytes,
}

/// State shared by the server and the sampler.
pub(crate) struct AppState {
    pub identity: Identity,
    pub live: Live,
    /// Body of `/healthz` (and of `/sleep`), rendered once.
    pub health: Bytes,
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
            health: serde_json::to_vec(&health).unwrap_or_default().into(),
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
        let answer = |message: &str| -> Result<Bytes, serde_json::Error> {
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
            serde_json::to_vec(&answer).map(Bytes::from)
        };
        let bodies = Bodies {
            root: answer(ROOT_MESSAGE)?,
            cluster1: answer(CLUSTER1_MESSAGE)?,
            cluster2: answer(CLUSTER2_MESSAGE)?,
            stats: serde_json::to_vec(&sample.snapshot)?.into(),
            metrics: metrics::render(&self.identity, sample).into(),
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
