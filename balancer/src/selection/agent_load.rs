//! Agent load: weighted random by the spare capacity each agent reports from inside its
//! instance, which no outside balancer can see.
//!
//! The health checker reads the agent's `/stats` (`health_check.stats_path`) on every check
//! and keeps `cpu.busy_percent`. A target's weight is
//! `config weight x spare / (1 + in flight)`, where `spare = 1 - busy_percent / 100`, at least
//! [`MIN_SPARE`] so that a saturated target still gets a trickle (and so a fresh measurement),
//! and in flight is this balancer's live count, which reacts between checks (one interval,
//! default 2 s). A target whose agent has not reported yet counts as [`UNKNOWN_SPARE`].

use super::{weighted, Rng, Select};
use crate::target::Member;

/// Spare share of a fully busy target.
const MIN_SPARE: f64 = 0.02;
/// Spare share assumed before the first report.
const UNKNOWN_SPARE: f64 = 0.5;

#[derive(Debug, Default)]
pub(crate) struct AgentLoad;

fn weight(member: &Member) -> f64 {
    let target = &member.target;
    let spare = target
        .agent_load()
        .map_or(UNKNOWN_SPARE, |load| 1.0 - load.busy_percent / 100.0)
        .clamp(MIN_SPARE, 1.0);
    f64::from(member.weight) * spare / (1 + target.in_flight()) as f64
}

impl Select for AgentLoad {
    fn pick(&self, members: &[Member], candidates: &[usize], rng: &mut Rng) -> usize {
        weighted(candidates, rng, |c| weight(&members[c]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::selection::tests::{members, shares};
    use crate::target::AgentLoad as Load;

    fn report(member: &Member, busy_percent: f64) {
        member.target.set_agent_load(Some(Load { busy_percent }));
    }

    #[test]
    fn the_idle_agent_gets_most_requests() {
        let members = members(2, &[]);
        report(&members[0], 95.0);
        report(&members[1], 5.0);
        let counts = shares(&AgentLoad, &members, 10_000);
        assert!(counts[1] > counts[0] * 10, "{counts:?}");
    }

    #[test]
    fn a_saturated_agent_still_gets_a_trickle() {
        let members = members(2, &[]);
        report(&members[0], 100.0);
        report(&members[1], 0.0);
        let counts = shares(&AgentLoad, &members, 10_000);
        assert!(counts[0] > 0, "{counts:?}");
    }

    #[test]
    fn local_in_flight_requests_lower_the_weight_between_reports() {
        let members = members(2, &[]);
        report(&members[0], 10.0);
        report(&members[1], 10.0);
        let _queue: Vec<_> = (0..9).map(|_| members[0].target.start()).collect();
        let counts = shares(&AgentLoad, &members, 10_000);
        assert!(counts[1] > counts[0] * 5, "{counts:?}");
    }
}
