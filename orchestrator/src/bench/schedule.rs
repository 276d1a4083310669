//! The open-loop load's schedule: when each request is due. A closed-loop client (one request
//! per connection at a time, as `wrk` and `ab` send) slows down with the server it measures, so
//! a stall delays the requests that would have waited behind it and their wait is never
//! counted (coordinated omission). An open-loop client sends at a rate set in advance and, as
//! `wrk2` does, measures each request's latency from when it was *due*, not from when a free
//! connection got to send it.
//!
//! A schedule is a list of steps, each a rate held for a duration (`--profile
//! 200:30s,1500:60s,200:60s`), or one rate for a number of requests (`--rate R --requests N`).

use std::time::Duration;

/// One step of a schedule: `rate` requests per second for `duration`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Step {
    pub(crate) rate: f64,
    pub(crate) duration: Duration,
}

impl Step {
    /// Requests this step sends: `rate x duration`, rounded.
    fn requests(&self) -> u64 {
        (self.rate * self.duration.as_secs_f64()).round() as u64
    }
}

/// When each request of an open-loop run is due, from the run's start.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Schedule {
    steps: Vec<Step>,
}

impl Schedule {
    /// The schedule of `steps`, in order.
    pub(crate) fn new(steps: Vec<Step>) -> Self {
        Self { steps }
    }

    /// `requests` at a constant `rate` per second.
    pub(crate) fn constant(rate: f64, requests: u64) -> Self {
        Self {
            steps: vec![Step {
                rate,
                duration: Duration::from_secs_f64(requests as f64 / rate),
            }],
        }
    }

    /// A `--profile`: comma-separated `RATE:DURATION` steps, e.g. `200:30s,1500:60s,200:60s`
    /// (durations as `--interval` takes them: `30s`, `500ms`, `2m`, or bare seconds).
    pub(crate) fn parse(
        text: &str,
        duration: impl Fn(&str) -> Result<Duration, String>,
    ) -> Result<Self, String> {
        let mut steps = Vec::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (rate, span) = part.split_once(':').ok_or_else(|| {
                format!("`{part}` is not a step: write RATE:DURATION, e.g. 200:30s")
            })?;
            let rate: f64 = rate
                .trim()
                .parse()
                .ok()
                .filter(|r: &f64| r.is_finite() && *r > 0.0)
                .ok_or_else(|| {
                    format!("`{rate}` in `{part}` is not a rate above 0 (requests per second)")
                })?;
            let duration = duration(span.trim())?;
            if duration.is_zero() {
                return Err(format!(
                    "`{part}` lasts no time: give it a duration such as 30s"
                ));
            }
            steps.push(Step { rate, duration });
        }
        if steps.is_empty() {
            return Err("the profile is empty: write steps such as 200:30s,1500:60s".into());
        }
        Ok(Self { steps })
    }

    /// Requests the whole schedule sends.
    pub(crate) fn requests(&self) -> u64 {
        self.steps.iter().map(Step::requests).sum()
    }

    /// When request `n` (from 0) is due, from the run's start; past the last request, the
    /// schedule's end.
    pub(crate) fn due(&self, mut n: u64) -> Duration {
        let mut start = Duration::ZERO;
        for step in &self.steps {
            let count = step.requests();
            if n < count {
                return start + Duration::from_secs_f64(n as f64 / step.rate);
            }
            n -= count;
            start += step.duration;
        }
        start
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(text: &str) -> Result<Duration, String> {
        text.trim_end_matches('s')
            .parse::<f64>()
            .map(Duration::from_secs_f64)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn each_step_sends_its_rate_for_its_duration() {
        let s = Schedule::parse("10:2s, 100:1s", secs).unwrap();
        assert_eq!(s.requests(), 120);
        assert_eq!(s.due(0), Duration::ZERO);
        assert_eq!(s.due(5), Duration::from_millis(500));
        assert_eq!(s.due(20), Duration::from_secs(2), "the second step begins");
        assert_eq!(s.due(70), Duration::from_millis(2500));
        assert_eq!(s.due(500), Duration::from_secs(3), "past the end");
        let c = Schedule::constant(200.0, 1000);
        assert_eq!(c.requests(), 1000);
        assert_eq!(c.due(999), Duration::from_secs_f64(999.0 / 200.0));
    }

    #[test]
    fn a_bad_profile_says_how_to_write_one() {
        assert!(Schedule::parse("200", secs)
            .unwrap_err()
            .contains("RATE:DURATION"));
        assert!(Schedule::parse("0:5s", secs)
            .unwrap_err()
            .contains("rate above 0"));
        assert!(Schedule::parse("5:0s", secs)
            .unwrap_err()
            .contains("lasts no time"));
        assert!(Schedule::parse("", secs).unwrap_err().contains("empty"));
    }
}
