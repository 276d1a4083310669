//! The read timeout: a per-connection watchdog that closes a connection whose client has not
//! sent a request head within `--read-timeout`, idle keep-alive time included.
//!
//! hyper's own `header_read_timeout` arms (allocates, registers, drops) a timer for every
//! request. The watchdog instead keeps one timer per connection and re-arms it at most once per
//! timeout period: requests only write a word ([`Activity`]) that the watchdog reads when its
//! timer fires. The clock starts when the connection opens and again when an answer is ready,
//! and stops while a request is being answered, however long that takes (a slow `/sleep` is
//! never cut).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

/// [`Activity::waiting_since`] while a request is being answered.
const BUSY: u64 = u64::MAX;

/// What one connection is doing, as its requests report it.
///
/// Written by the connection's service and read by its watchdog, both polled by the connection's
/// own task, so the atomics are never contended; they are atomics only so that the connection
/// future stays `Send`.
pub(crate) struct Activity {
    /// When the connection opened; the origin of [`Self::waiting_since`].
    opened: Instant,
    /// Nanoseconds after `opened` since which the connection has waited for a request head, or
    /// [`BUSY`].
    waiting_since: AtomicU64,
}

impl Activity {
    /// A connection that opened now and is waiting for its first request head.
    pub(crate) fn new() -> Self {
        Self {
            opened: Instant::now(),
            waiting_since: AtomicU64::new(0),
        }
    }

    /// A request head has arrived: the clock stops until [`Self::waiting_from`].
    pub(crate) fn busy(&self) {
        self.waiting_since.store(BUSY, Relaxed);
    }

    /// The answer was ready at `at`: from then on the client has the timeout to send the next
    /// request head.
    pub(crate) fn waiting_from(&self, at: Instant) {
        let nanos = at.saturating_duration_since(self.opened).as_nanos();
        self.waiting_since
            .store(u64::try_from(nanos).unwrap_or(BUSY - 1), Relaxed);
    }

    /// Since when (after `opened`) the connection has waited for a head; `None` while busy.
    fn waiting_since(&self) -> Option<Duration> {
        match self.waiting_since.load(Relaxed) {
            BUSY => None,
            nanos => Some(Duration::from_nanos(nanos)),
        }
    }
}

/// What the watchdog does when its timer fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    /// The client let the timeout pass without sending a request head.
    Close,
    /// Look again at this time (after the connection opened).
    CheckAt(Duration),
}

/// The watchdog's decision at `now`, all times counted from the connection's opening.
fn verdict(waiting_since: Option<Duration>, now: Duration, timeout: Duration) -> Verdict {
    match waiting_since {
        // A request in progress may take any time; its end restarts the clock.
        None => Verdict::CheckAt(now.saturating_add(timeout)),
        Some(since) if now >= since.saturating_add(timeout) => Verdict::Close,
        Some(since) => Verdict::CheckAt(since.saturating_add(timeout)),
    }
}

/// Resolves once the connection of `activity` has waited `timeout` for a request head; the
/// caller then drops (closes) the connection. Never resolves while a request is in progress.
pub(crate) async fn expired(activity: &Activity, timeout: Duration) {
    // A deadline past what `Instant` can hold (an absurd timeout) is never reached.
    let deadline = |at: Duration| activity.opened.checked_add(at).map(Into::into);
    let Some(first) = deadline(timeout) else {
        return std::future::pending().await;
    };
    let timer = tokio::time::sleep_until(first);
    tokio::pin!(timer);
    loop {
        timer.as_mut().await;
        let now = Instant::now().saturating_duration_since(activity.opened);
        match verdict(activity.waiting_since(), now, timeout) {
            Verdict::Close => return,
            Verdict::CheckAt(at) => match deadline(at) {
                Some(at) => timer.as_mut().reset(at),
                None => return std::future::pending().await,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIMEOUT: Duration = Duration::from_secs(10);

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn a_client_silent_for_the_whole_timeout_is_closed() {
        assert_eq!(verdict(Some(secs(0)), secs(10), TIMEOUT), Verdict::Close);
        assert_eq!(verdict(Some(secs(5)), secs(16), TIMEOUT), Verdict::Close);
    }

    #[test]
    fn a_client_still_within_its_timeout_gets_the_rest_of_it() {
        assert_eq!(
            verdict(Some(secs(5)), secs(10), TIMEOUT),
            Verdict::CheckAt(secs(15))
        );
    }

    #[test]
    fn an_absurd_timeout_saturates_instead_of_overflowing() {
        assert_eq!(
            verdict(Some(secs(5)), secs(6), Duration::MAX),
            Verdict::CheckAt(Duration::MAX)
        );
        assert_eq!(
            verdict(None, secs(6), Duration::MAX),
            Verdict::CheckAt(Duration::MAX)
        );
    }

    #[test]
    fn a_request_in_progress_is_never_cut() {
        assert_eq!(
            verdict(None, secs(100), TIMEOUT),
            Verdict::CheckAt(secs(110))
        );
    }

    #[test]
    fn activity_reports_busy_and_the_instant_an_answer_was_ready() {
        let activity = Activity::new();
        assert_eq!(activity.waiting_since(), Some(Duration::ZERO));
        activity.busy();
        assert_eq!(activity.waiting_since(), None);
        activity.waiting_from(activity.opened + secs(3));
        assert_eq!(activity.waiting_since(), Some(secs(3)));
    }

    #[tokio::test]
    async fn the_watchdog_fires_one_timeout_after_the_last_answer_and_never_during_a_request() {
        let timeout = Duration::from_millis(50);
        let activity = Activity::new();
        activity.busy();
        let watched = expired(&activity, timeout);
        tokio::pin!(watched);
        // A request lasting several periods is not cut.
        tokio::select! {
            () = watched.as_mut() => panic!("cut a request in progress"),
            () = tokio::time::sleep(timeout * 4) => {}
        }
        let answered = Instant::now();
        activity.waiting_from(answered);
        watched.await;
        let waited = answered.elapsed();
        assert!(waited >= timeout && waited < timeout * 4, "{waited:?}");
    }
}
