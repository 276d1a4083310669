//! Every target the balancer knows, keyed by address, and every group's counters, keyed by
//! name: the state that survives reloads. A reload builds a new [`Snapshot`] from a config
//! and this registry, so a target that stays keeps its in-flight count, latency estimate,
//! health and counters; a removed one is drained; an added one starts `initial`.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::time::Instant;

use crate::checker;
use crate::config::Loaded;
use crate::group::{Group, GroupStats};
use crate::health::CheckSpec;
use crate::rules::Router;
use crate::selection;
use crate::snapshot::Snapshot;
use crate::target::Member;
use crate::target::Target;

/// A removed target, finishing its in-flight requests.
#[derive(Debug, Clone)]
pub(crate) struct Draining {
    /// The group it was removed from.
    pub group: String,
    pub member: Member,
    deadline: Instant,
}

#[derive(Debug, Default)]
struct Inner {
    /// Registered and draining targets.
    targets: HashMap<SocketAddr, Arc<Target>>,
    groups: HashMap<String, Arc<GroupStats>>,
    draining: Vec<Draining>,
}

#[derive(Debug)]
pub(crate) struct Registry {
    inner: Mutex<Inner>,
    routing_epoch: Arc<AtomicU64>,
    check_client: checker::CheckClient,
    /// Worker threads, each with its own idle connections to every target.
    workers: usize,
}

impl Registry {
    pub(crate) fn new(workers: usize) -> Self {
        Self {
            inner: Mutex::default(),
            routing_epoch: Arc::default(),
            check_client: checker::client(),
            workers: workers.max(1),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Builds the snapshot of `loaded`, reusing the state of targets and groups it keeps
    /// from `old`, and drains the targets it drops. Starts health checks of new targets.
    pub(crate) fn build(
        &self,
        loaded: &Loaded,
        old: Option<&Snapshot>,
        generation: u64,
        loaded_at_unix_ms: u64,
    ) -> Snapshot {
        let mut inner = self.lock();
        let now = Instant::now();
        let old_group =
            |name: &str| old.and_then(|s| s.groups.iter().find(|g| g.config.name == name));
        let mut kept = HashSet::new();
        let mut groups = Vec::with_capacity(loaded.config.target_groups.len());
        for (config, addresses) in loaded.config.target_groups.iter().zip(&loaded.addresses) {
            let previous = old_group(&config.name);
            let spec = Arc::new(CheckSpec::of(config));
            let mut members = Vec::with_capacity(addresses.len());
            for (target, &address) in config.targets.iter().zip(addresses) {
                kept.insert(address);
                let shared = Arc::clone(inner.targets.entry(address).or_insert_with(|| {
                    let target = Arc::new(Target::new(
                        address,
                        (*spec).clone(),
                        Arc::clone(&self.routing_epoch),
                        self.workers,
                    ));
                    checker::spawn(&target, self.check_client.clone());
                    target
                }));
                shared.check.store(Arc::clone(&spec));
                shared.update_health(|health| {
                    let was_draining = health.drain_deadline().is_some();
                    health.register_again();
                    ((), was_draining)
                });
                members.push(Member {
                    target: shared,
                    id: target.id.clone().unwrap_or_else(|| address.to_string()),
                    weight: target.weight,
                    instance_type: target.instance_type.clone(),
                    cluster: target.cluster.clone(),
                });
            }
            let select = match previous {
                Some(p) if p.config.algorithm == config.algorithm => Arc::clone(&p.select),
                _ => Arc::from(selection::build(config.algorithm)),
            };
            let stats = Arc::clone(inner.groups.entry(config.name.clone()).or_default());
            groups.push(Group::new(
                config.clone(),
                members,
                select,
                stats,
                Arc::clone(&self.routing_epoch),
            ));
        }
        inner
            .draining
            .retain(|d| !kept.contains(&d.member.target.address));
        for group in old.map_or(&[][..], |s| &s.groups[..]) {
            for member in &group.members {
                if kept.contains(&member.target.address) {
                    continue;
                }
                let deadline = now + group.config.deregistration_delay();
                member.target.update_health(|h| (h.drain(deadline), true));
                tracing::warn!(group = %group.config.name, target = %member.target.address, "draining");
                inner.draining.push(Draining {
                    group: group.config.name.clone(),
                    member: member.clone(),
                    deadline,
                });
            }
        }
        drop(inner);
        Snapshot {
            version: loaded.version.clone(),
            generation,
            loaded_at_unix_ms,
            router: Router::new(&loaded.config),
            groups,
            listeners: loaded.config.listeners.iter().map(|l| l.address).collect(),
            admin: loaded.config.admin.address,
            limits: loaded.config.limits.clone(),
            transports: loaded.transports.clone(),
            http2: loaded.config.http2.clone(),
            access_log: loaded.access_log.is_some(),
        }
    }

    /// Forgets draining targets that are idle or past their deregistration delay; their
    /// health checks stop and their pooled connections close.
    pub(crate) fn reap(&self) {
        let mut inner = self.lock();
        let now = Instant::now();
        let (gone, staying): (Vec<_>, Vec<_>) = std::mem::take(&mut inner.draining)
            .into_iter()
            .partition(|d| d.member.target.in_flight() == 0 || now >= d.deadline);
        inner.draining = staying;
        for d in gone {
            inner.targets.remove(&d.member.target.address);
            tracing::info!(group = %d.group, target = %d.member.target.address, "deregistered");
        }
    }

    /// The targets draining now.
    pub(crate) fn draining(&self) -> Vec<Draining> {
        self.lock().draining.clone()
    }

    /// Number of targets known (registered and draining).
    #[cfg(test)]
    fn known(&self) -> usize {
        self.lock().targets.len()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::config::tests::seed;
    use crate::health::State;
    use crate::target::Outcome;

    #[tokio::test(start_paused = true)]
    async fn a_target_that_stays_keeps_its_state_across_a_reload() {
        let registry = Registry::new(1);
        let loaded = seed();
        let first = registry.build(&loaded, None, 1, 0);
        first.groups[0].members[0]
            .target
            .record(Outcome::Answered(200), Duration::from_millis(3));
        let second = registry.build(&loaded, Some(&first), 2, 0);
        let target = &second.groups[0].members[0].target;
        assert!(Arc::ptr_eq(target, &first.groups[0].members[0].target));
        assert_eq!(target.counters.requests(), 1);
        assert!(Arc::ptr_eq(&first.groups[0].stats, &second.groups[0].stats));
    }

    #[tokio::test(start_paused = true)]
    async fn a_removed_target_drains_until_idle_or_the_deregistration_delay() {
        let registry = Registry::new(1);
        let loaded = seed();
        let first = registry.build(&loaded, None, 1, 0);
        let mut smaller = loaded.clone();
        smaller.config.target_groups[0].targets.truncate(1);
        smaller.addresses[0].truncate(1);
        let removed = Arc::clone(&first.groups[0].members[1].target);
        let busy = removed.start();
        let second = registry.build(&smaller, Some(&first), 2, 0);
        assert_eq!(second.groups[0].members.len(), 1);
        assert_eq!(removed.health().state(), State::Draining);
        registry.reap();
        assert_eq!(registry.draining().len(), 1, "in flight: stays");
        tokio::time::advance(Duration::from_millis(9_999)).await;
        registry.reap();
        assert_eq!(registry.draining().len(), 1);
        tokio::time::advance(Duration::from_millis(1)).await;
        registry.reap();
        assert!(registry.draining().is_empty(), "the 10 s delay is over");
        assert_eq!(registry.known(), 2);
        drop(busy);
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_removed_target_goes_at_once() {
        let registry = Registry::new(1);
        let loaded = seed();
        let first = registry.build(&loaded, None, 1, 0);
        let mut smaller = loaded.clone();
        smaller.config.target_groups[0].targets.truncate(1);
        smaller.addresses[0].truncate(1);
        registry.build(&smaller, Some(&first), 2, 0);
        registry.reap();
        assert!(registry.draining().is_empty());
        assert_eq!(registry.known(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_target_added_back_while_draining_starts_initial() {
        let registry = Registry::new(1);
        let loaded = seed();
        let first = registry.build(&loaded, None, 1, 0);
        let removed = Arc::clone(&first.groups[0].members[1].target);
        let _busy = removed.start();
        let mut smaller = loaded.clone();
        smaller.config.target_groups[0].targets.truncate(1);
        smaller.addresses[0].truncate(1);
        let second = registry.build(&smaller, Some(&first), 2, 0);
        let third = registry.build(&loaded, Some(&second), 3, 0);
        assert!(Arc::ptr_eq(&third.groups[0].members[1].target, &removed));
        assert_eq!(removed.health().state(), State::Initial);
        assert!(registry.draining().is_empty());
        assert_eq!(removed.in_flight(), 1);
    }
}
