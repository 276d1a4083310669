//! Which failed attempts are tried again, and after how long.
//!
//! The AWS SDKs' "standard" retry mode, which elb used before it spoke the APIs itself:
//! throttling codes, transient codes, HTTP 500/502/503/504 and answers that never came are
//! retried; anything else is final. Backoff is "full jitter" (a random wait between zero and
//! `min(cap, base * 2^attempt)`), after the SDKs' `standard` strategy and the AWS Architecture
//! Blog's "Exponential Backoff and Jitter". elb's parameters: 8 attempts, base 200 ms, cap 5 s,
//! so a throttling burst of about half a minute is outlasted. The SDKs' retry token bucket is not
//! modelled: elb makes a few calls a second at most.

use std::time::Duration;

use super::error::AwsError;

/// Error codes AWS uses for throttling (from the SDKs' `THROTTLING_ERRORS`).
const THROTTLING: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottledException",
    "TooManyRequestsException",
    "ProvisionedThroughputExceededException",
    "TransactionInProgressException",
    "RequestLimitExceeded",
    "BandwidthLimitExceeded",
    "LimitExceededException",
    "RequestThrottled",
    "SlowDown",
    "PriorRequestNotComplete",
    "EC2ThrottledException",
];

/// Error codes of failures on AWS's side that pass (the SDKs' `TRANSIENT_ERRORS`).
const TRANSIENT: &[&str] = &[
    "RequestTimeout",
    "RequestTimeoutException",
    "InternalError",
    "InternalFailure",
    "ServiceUnavailable",
];

/// How often and how long to retry.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    /// Attempts in all, the first included.
    pub attempts: u32,
    /// The backoff's base.
    pub base: Duration,
    /// The longest wait between two attempts.
    pub cap: Duration,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            attempts: 8,
            base: Duration::from_millis(200),
            cap: Duration::from_secs(5),
        }
    }
}

impl Policy {
    /// The longest wait before attempt `attempt + 1` (`attempt` counts from 0): the bound the
    /// jitter draws under.
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let factor = 1u32.checked_shl(attempt.min(30)).unwrap_or(u32::MAX);
        self.base.saturating_mul(factor).min(self.cap)
    }

    /// The wait before attempt `attempt + 1`: uniform in `[0, ceiling]`.
    pub fn backoff(&self, attempt: u32) -> Duration {
        self.ceiling(attempt).mul_f64(rand::random::<f64>())
    }
}

/// Whether a failed attempt is worth another.
pub fn retryable(err: &AwsError) -> bool {
    match err {
        AwsError::Transport(_) => true,
        AwsError::Service { status, code, .. } => {
            THROTTLING.contains(&code.as_str())
                || TRANSIENT.contains(&code.as_str())
                || matches!(status, 500 | 502 | 503 | 504)
        }
        AwsError::Malformed(_) | AwsError::Credentials(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(status: u16, code: &str) -> AwsError {
        AwsError::Service {
            status,
            code: code.into(),
            message: String::new(),
        }
    }

    #[test]
    fn throttling_transient_and_lost_answers_are_retried_client_errors_are_not() {
        assert!(retryable(&service(503, "RequestLimitExceeded")));
        assert!(retryable(&service(400, "Throttling")));
        assert!(retryable(&service(500, "InternalError")));
        assert!(retryable(&service(502, "Whatever")));
        assert!(retryable(&AwsError::Transport("connection reset".into())));
        assert!(!retryable(&service(400, "InvalidInstanceID.NotFound")));
        assert!(!retryable(&service(403, "UnauthorizedOperation")));
        assert!(!retryable(&AwsError::Malformed("x".into())));
    }

    #[test]
    fn the_ceiling_doubles_from_the_base_up_to_the_cap() {
        let p = Policy::default();
        let ceilings: Vec<u64> = (0..7).map(|a| p.ceiling(a).as_millis() as u64).collect();
        assert_eq!(ceilings, [200, 400, 800, 1600, 3200, 5000, 5000]);
        assert_eq!(p.ceiling(u32::MAX), p.cap);
        for attempt in 0..10 {
            assert!(p.backoff(attempt) <= p.ceiling(attempt));
        }
    }
}
