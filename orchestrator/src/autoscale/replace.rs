//! Health replacement, as an EC2 Auto Scaling group does it: an instance that has looked dead
//! for `ticks` consecutive ticks is removed and a new one launched in its place.
//!
//! An instance looks dead when its agent does not answer, or when elb's balancer marks it
//! unhealthy; one that is still warming up is not judged (the Auto Scaling group's health check
//! grace period). The cloud's word that an instance is no longer running settles it.
//!
//! Replacement is bounded as Envoy bounds outlier ejection (`max_ejection_percent`, where one
//! host may always be ejected): at most `max_share` of the cluster (rounded down, and always at
//! least one) per tick. When every judged instance looks dead although the cloud says they run,
//! the fault is more likely on the watcher's side (this machine lost its network, the balancer
//! is down) than on every instance at once: nothing is replaced, and the tick says so.

use std::collections::BTreeMap;

/// How one instance looks this tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Looks {
    /// Its agent answered and the balancer (if any) does not mark it unhealthy.
    Alive,
    /// Launched less than the warm-up ago: not judged.
    Warming,
    /// The cloud says it runs, but its agent did not answer.
    Silent,
    /// Its agent answered, but elb's balancer marks it unhealthy.
    Unhealthy,
    /// The cloud says it is no longer running (stopped, terminated, its process gone).
    Gone,
}

/// What health replacement decided this tick.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Verdict {
    /// Ids to remove and replace now, with how each looked.
    pub replace: Vec<(String, Looks)>,
    /// Ids that are due but held back by the per-tick bound.
    pub held_back: usize,
    /// Every judged instance looks dead while the cloud says they run: nothing replaced.
    pub all_look_dead: bool,
}

/// Counts, per instance, the consecutive ticks it has looked dead.
#[derive(Debug, Clone)]
pub(crate) struct Watch {
    /// Ticks in a row before an instance is replaced (the CLI's `--unhealthy-ticks`).
    ticks: u32,
    /// Largest share of the cluster replaced in one tick, 0-1.
    max_share: f64,
    bad: BTreeMap<String, u32>,
}

impl Watch {
    /// A watch that replaces after `ticks` bad ticks in a row, at most `max_share` of the
    /// cluster per tick (at least one).
    pub(crate) fn new(ticks: u32, max_share: f64) -> Self {
        Self {
            ticks: ticks.max(1),
            max_share,
            bad: BTreeMap::new(),
        }
    }

    /// Takes this tick's look of every instance of the cluster and says which to replace.
    /// Instances no longer listed are forgotten.
    pub(crate) fn observe(&mut self, looks: &[(String, Looks)]) -> Verdict {
        self.bad.retain(|id, _| looks.iter().any(|(i, _)| i == id));
        for (id, look) in looks {
            match look {
                Looks::Alive | Looks::Warming => {
                    self.bad.remove(id);
                }
                Looks::Silent | Looks::Unhealthy | Looks::Gone => {
                    *self.bad.entry(id.clone()).or_default() += 1;
                }
            }
        }
        // The instances the cloud says run, and that are old enough to judge.
        let judged: Vec<&(String, Looks)> = looks
            .iter()
            .filter(|(_, l)| !matches!(l, Looks::Warming | Looks::Gone))
            .collect();
        let dead = |l: &Looks| matches!(l, Looks::Silent | Looks::Unhealthy);
        let all_look_dead = !judged.is_empty() && judged.iter().all(|(_, l)| dead(l));
        // Gone instances are the cloud's word, not a guess: they are due whatever else looks.
        let due: Vec<(String, Looks)> = looks
            .iter()
            .filter(|(id, look)| {
                let ripe = self.bad.get(id).is_some_and(|n| *n >= self.ticks);
                ripe && (*look == Looks::Gone || !all_look_dead)
            })
            .cloned()
            .collect();
        let cap = ((looks.len() as f64 * self.max_share).floor() as usize).max(1);
        // The cloud's confirmed losses first, then by id for a stable order.
        let mut due = due;
        due.sort_by_key(|(id, look)| (*look != Looks::Gone, id.clone()));
        let held_back = due.len().saturating_sub(cap);
        due.truncate(cap);
        for (id, _) in &due {
            self.bad.remove(id);
        }
        Verdict {
            replace: due,
            held_back,
            all_look_dead,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Looks::{Alive, Gone, Silent, Unhealthy, Warming};

    fn looks(items: &[(&str, Looks)]) -> Vec<(String, Looks)> {
        items.iter().map(|(i, l)| (i.to_string(), *l)).collect()
    }

    fn ids(verdict: &Verdict) -> Vec<&str> {
        verdict.replace.iter().map(|(i, _)| i.as_str()).collect()
    }

    #[test]
    fn an_instance_is_replaced_after_k_bad_ticks_in_a_row() {
        let mut watch = Watch::new(3, 0.5);
        let tick = looks(&[("a", Alive), ("b", Silent), ("c", Alive)]);
        assert!(watch.observe(&tick).replace.is_empty());
        assert!(watch.observe(&tick).replace.is_empty());
        assert_eq!(ids(&watch.observe(&tick)), ["b"]);
        // Counted again from zero after its replacement was ordered.
        assert!(watch.observe(&tick).replace.is_empty());
    }

    #[test]
    fn a_good_tick_or_warming_resets_the_count() {
        let mut watch = Watch::new(2, 0.5);
        watch.observe(&looks(&[("a", Alive), ("b", Unhealthy)]));
        watch.observe(&looks(&[("a", Alive), ("b", Alive)]));
        assert!(watch
            .observe(&looks(&[("a", Alive), ("b", Unhealthy)]))
            .replace
            .is_empty());
        watch.observe(&looks(&[("a", Alive), ("b", Warming)]));
        assert!(watch
            .observe(&looks(&[("a", Alive), ("b", Silent)]))
            .replace
            .is_empty());
    }

    #[test]
    fn no_replacement_storm_when_every_agent_is_unreachable() {
        let mut watch = Watch::new(1, 1.0);
        let verdict = watch.observe(&looks(&[("a", Silent), ("b", Silent), ("c", Warming)]));
        assert!(verdict.all_look_dead);
        assert!(verdict.replace.is_empty());
        // Unhealthy everywhere (the balancer's view of a network fault) holds back as well.
        let verdict = watch.observe(&looks(&[("a", Unhealthy), ("b", Silent)]));
        assert!(verdict.all_look_dead && verdict.replace.is_empty());
        // But a dead process that the cloud confirms is replaced even then.
        let verdict = watch.observe(&looks(&[("a", Gone), ("b", Silent)]));
        assert_eq!(ids(&verdict), ["a"]);
    }

    #[test]
    fn at_most_a_share_per_tick_but_always_one() {
        let mut watch = Watch::new(1, 0.1);
        let five = looks(&[
            ("a", Silent),
            ("b", Gone),
            ("c", Silent),
            ("d", Alive),
            ("e", Alive),
        ]);
        let verdict = watch.observe(&five);
        // 10 % of 5 rounds down to 0: one is always allowed, the confirmed loss first.
        assert_eq!(ids(&verdict), ["b"]);
        assert_eq!(verdict.held_back, 2);
        let mut half = Watch::new(1, 0.5);
        assert_eq!(ids(&half.observe(&five)), ["b", "a"]);
    }

    #[test]
    fn a_single_instance_that_died_is_replaced() {
        let mut watch = Watch::new(2, 0.1);
        watch.observe(&looks(&[("a", Gone)]));
        assert_eq!(ids(&watch.observe(&looks(&[("a", Gone)]))), ["a"]);
    }
}
