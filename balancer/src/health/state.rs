//! A target's health: ALB's states, flipped by active checks only after their thresholds, and
//! the passive ejection laid over them.

use std::time::Duration;

use tokio::time::Instant;

pub(crate) use proto::TargetState as State;

/// Why a target is in its state, with ALB's reason codes where ALB has one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reason {
    /// `initial`, no check done yet.
    RegistrationInProgress,
    /// `initial`, checks under way but not yet `healthy_threshold` passes in a row.
    InitialHealthChecking,
    /// The last check passed.
    Passed,
    /// The last check answered a status the matcher refuses.
    ResponseCodeMismatch,
    /// The last check did not answer within its timeout.
    Timeout,
    /// The last check could not connect or the connection failed.
    FailedHealthChecks,
    /// Removed from the config: draining.
    DeregistrationInProgress,
    /// Passive ejection after consecutive failures of live requests.
    OutlierEjected,
}

impl Reason {
    /// ALB's reason code (ours for ejection, which ALB lacks), shown in `/status`.
    pub(crate) fn code(self) -> &'static str {
        match self {
            Self::RegistrationInProgress => "Elb.RegistrationInProgress",
            Self::InitialHealthChecking => "Elb.InitialHealthChecking",
            Self::Passed => "Target.HealthCheckPassed",
            Self::ResponseCodeMismatch => "Target.ResponseCodeMismatch",
            Self::Timeout => "Target.Timeout",
            Self::FailedHealthChecks => "Target.FailedHealthChecks",
            Self::DeregistrationInProgress => "Target.DeregistrationInProgress",
            Self::OutlierEjected => "Elb.OutlierEjected",
        }
    }
}

/// Result of one active check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Check {
    Pass,
    Fail(Reason),
}

/// The health of one target. Kept behind the target's mutex; every method is cheap.
#[derive(Debug, Clone)]
pub(crate) struct Health {
    state: State,
    reason: Reason,
    passes: u32,
    failures: u32,
    /// Set while ejected; the ejection ends at the first passing check at or after this time.
    ejected_until: Option<Instant>,
    /// Ejections in a row, as of `back_since` (see [`Health::times_ejected`]).
    times_ejected: u32,
    /// When the last ejection ended.
    back_since: Option<Instant>,
    /// When `draining` ends at the latest.
    drain_deadline: Option<Instant>,
    /// When the target last became healthy (for slow start).
    healthy_since: Option<Instant>,
}

impl Default for Health {
    fn default() -> Self {
        Self {
            state: State::Initial,
            reason: Reason::RegistrationInProgress,
            passes: 0,
            failures: 0,
            ejected_until: None,
            times_ejected: 0,
            back_since: None,
            drain_deadline: None,
            healthy_since: None,
        }
    }
}

impl Health {
    pub(crate) fn state(&self) -> State {
        self.state
    }

    /// The reason shown with the state; an ejection overrides the check's reason.
    pub(crate) fn reason(&self) -> Reason {
        if self.ejected_until.is_some() && self.state != State::Draining {
            Reason::OutlierEjected
        } else {
            self.reason
        }
    }

    /// The reason the last checks gave, whatever an ejection says.
    pub(crate) fn check_reason(&self) -> Reason {
        self.reason
    }

    pub(crate) fn ejected(&self) -> bool {
        self.ejected_until.is_some()
    }

    /// Ejections in a row at `now`: each ejection adds one, and each `base` the target then
    /// spends back in rotation takes one off (Envoy's decay of the ejection multiplier), so a
    /// target that failed once a week does not get a week-long ejection.
    pub(crate) fn times_ejected(&self, base: Duration, now: Instant) -> u32 {
        match self.back_since {
            Some(since) if self.ejected_until.is_none() && !base.is_zero() => {
                let periods = now.duration_since(since).as_nanos() / base.as_nanos();
                self.times_ejected
                    .saturating_sub(u32::try_from(periods).unwrap_or(u32::MAX))
            }
            _ => self.times_ejected,
        }
    }

    /// Whether new requests may go to the target while the group has healthy targets.
    pub(crate) fn routable(&self) -> bool {
        self.state == State::Healthy && self.ejected_until.is_none()
    }

    /// Records a check; returns whether anything a router sees changed (state or ejection).
    pub(crate) fn observe(
        &mut self,
        check: Check,
        healthy_threshold: u32,
        unhealthy_threshold: u32,
        now: Instant,
    ) -> bool {
        if self.state == State::Draining {
            return false;
        }
        let before = (self.state, self.ejected_until.is_some());
        match check {
            Check::Pass => {
                self.passes = self.passes.saturating_add(1);
                self.failures = 0;
                if self.passes >= healthy_threshold {
                    if self.state != State::Healthy {
                        self.healthy_since = Some(now);
                    }
                    self.state = State::Healthy;
                    self.reason = Reason::Passed;
                } else if self.state == State::Initial {
                    self.reason = Reason::InitialHealthChecking;
                }
                if self.ejected_until.is_some_and(|until| now >= until) {
                    self.ejected_until = None;
                    self.back_since = Some(now);
                }
            }
            Check::Fail(reason) => {
                self.failures = self.failures.saturating_add(1);
                self.passes = 0;
                if self.failures >= unhealthy_threshold {
                    self.state = State::Unhealthy;
                    self.reason = reason;
                } else if self.state == State::Initial {
                    self.reason = Reason::InitialHealthChecking;
                }
            }
        }
        before != (self.state, self.ejected_until.is_some())
    }

    /// Ejects the target for `base` x its ejections in a row (this one included), at most
    /// `max`; returns for how long.
    pub(crate) fn eject(&mut self, base: Duration, max: Duration, now: Instant) -> Duration {
        self.times_ejected = self.times_ejected(base, now).saturating_add(1);
        self.back_since = None;
        let time = base.saturating_mul(self.times_ejected).min(max);
        self.ejected_until = Some(now + time);
        time
    }

    /// The target was removed from the config: it takes no new requests, and goes away once
    /// idle or at `deadline`.
    pub(crate) fn drain(&mut self, deadline: Instant) {
        self.state = State::Draining;
        self.reason = Reason::DeregistrationInProgress;
        self.drain_deadline = Some(deadline);
    }

    /// When the target last became healthy, if it is.
    pub(crate) fn healthy_since(&self) -> Option<Instant> {
        (self.state == State::Healthy)
            .then_some(self.healthy_since)
            .flatten()
    }

    pub(crate) fn drain_deadline(&self) -> Option<Instant> {
        self.drain_deadline
    }

    /// The target was added back while draining: it starts again as `initial`, ejections
    /// forgotten.
    pub(crate) fn register_again(&mut self) {
        if self.state == State::Draining {
            *self = Self::default();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(health: &mut Health, checks: &[Check]) {
        let now = Instant::now();
        for &check in checks {
            health.observe(check, 2, 3, now);
        }
    }

    const FAIL: Check = Check::Fail(Reason::Timeout);

    #[test]
    fn a_new_target_is_initial_and_not_routable() {
        let h = Health::default();
        assert_eq!(h.state(), State::Initial);
        assert_eq!(h.reason(), Reason::RegistrationInProgress);
        assert!(!h.routable());
    }

    #[test]
    fn healthy_after_healthy_threshold_passes_in_a_row() {
        let mut h = Health::default();
        run(&mut h, &[Check::Pass]);
        assert_eq!(
            (h.state(), h.reason()),
            (State::Initial, Reason::InitialHealthChecking)
        );
        run(&mut h, &[Check::Pass]);
        assert_eq!(h.state(), State::Healthy);
        assert!(h.routable());
    }

    #[test]
    fn unhealthy_only_after_unhealthy_threshold_failures_in_a_row() {
        let mut h = Health::default();
        run(
            &mut h,
            &[
                Check::Pass,
                Check::Pass,
                FAIL,
                FAIL,
                Check::Pass,
                FAIL,
                FAIL,
            ],
        );
        assert_eq!(h.state(), State::Healthy);
        run(&mut h, &[FAIL]);
        assert_eq!((h.state(), h.reason()), (State::Unhealthy, Reason::Timeout));
    }

    #[test]
    fn an_unhealthy_target_needs_the_healthy_threshold_to_come_back() {
        let mut h = Health::default();
        run(&mut h, &[FAIL, FAIL, FAIL, Check::Pass]);
        assert_eq!(h.state(), State::Unhealthy);
        run(&mut h, &[Check::Pass]);
        assert_eq!(h.state(), State::Healthy);
    }

    #[test]
    fn the_observation_says_when_routing_changes() {
        let mut h = Health::default();
        let now = Instant::now();
        assert!(!h.observe(Check::Pass, 2, 2, now));
        assert!(h.observe(Check::Pass, 2, 2, now));
        assert!(!h.observe(Check::Pass, 2, 2, now));
    }

    #[test]
    fn ejection_lasts_base_times_ejections_and_ends_at_a_pass_after_it() {
        let mut h = Health::default();
        let t0 = Instant::now();
        run(&mut h, &[Check::Pass, Check::Pass]);
        let base = Duration::from_secs(30);
        let max = Duration::from_secs(300);
        assert_eq!(h.eject(base, max, t0), base);
        assert!(!h.routable());
        assert_eq!(h.reason(), Reason::OutlierEjected);
        h.observe(Check::Pass, 2, 2, t0 + Duration::from_secs(29));
        assert!(h.ejected());
        let back = t0 + Duration::from_secs(30);
        assert!(h.observe(Check::Pass, 2, 2, back));
        assert!(h.routable());
        assert_eq!(h.eject(base, max, back), base * 2);
    }

    #[test]
    fn ejections_in_a_row_decay_by_one_per_base_back_in_rotation_and_never_exceed_the_max() {
        let mut h = Health::default();
        run(&mut h, &[Check::Pass, Check::Pass]);
        let base = Duration::from_secs(30);
        let max = Duration::from_secs(100);
        let mut now = Instant::now();
        // Ejected three times in a row: 30, 60, 90 s.
        for n in 1..=3 {
            assert_eq!(h.eject(base, max, now), base * n);
            now += base * n;
            h.observe(Check::Pass, 2, 2, now);
            assert!(!h.ejected());
        }
        assert_eq!(h.times_ejected(base, now), 3);
        // 65 s back in rotation take two off: the next ejection is the second in a row.
        now += Duration::from_secs(65);
        assert_eq!(h.times_ejected(base, now), 1);
        assert_eq!(h.eject(base, max, now), base * 2);
        now += base * 2;
        h.observe(Check::Pass, 2, 2, now);
        // Ejected again at once, twice: the fourth would be 120 s, capped at 100.
        assert_eq!(h.eject(base, max, now), base * 3);
        now += base * 3;
        h.observe(Check::Pass, 2, 2, now);
        assert_eq!(h.eject(base, max, now), max);
        // A long healthy spell forgets them all.
        now += max;
        h.observe(Check::Pass, 2, 2, now);
        now += Duration::from_secs(3600);
        assert_eq!(h.times_ejected(base, now), 0);
        assert_eq!(h.eject(base, max, now), base);
    }

    #[test]
    fn a_draining_target_ignores_checks_and_comes_back_initial_when_registered_again() {
        let mut h = Health::default();
        run(&mut h, &[Check::Pass, Check::Pass]);
        h.drain(Instant::now());
        run(&mut h, &[Check::Pass, FAIL, FAIL, FAIL]);
        assert_eq!(h.state(), State::Draining);
        assert_eq!(h.reason(), Reason::DeregistrationInProgress);
        h.register_again();
        assert_eq!(h.state(), State::Initial);
    }
}
