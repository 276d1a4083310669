//! The retry budget: retries may add at most a percent of the group's requests, plus a small
//! floor per second, so that retries cannot multiply an outage (linkerd's and Finagle's
//! retry budgets; Envoy's `retry_budget`).
//!
//! Each request deposits `budget_percent / 100` of a token, each second deposits
//! `min_per_sec` tokens, a retry takes one. The bank holds at most [`BANK_SECONDS`] seconds of
//! the floor, so a long quiet spell does not save up a storm.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// Seconds of the floor the bank can hold (and at least [`MIN_BANK`] retries).
const BANK_SECONDS: u64 = 10;
const MIN_BANK: u64 = 10;
/// Tokens are counted in hundredths of a retry, so that percents add up exactly.
const RETRY: u64 = 100;

#[derive(Debug)]
pub(crate) struct RetryBudget(Mutex<Bank>);

#[derive(Debug)]
struct Bank {
    /// Hundredths of a retry.
    tokens: u64,
    /// Up to when the floor has been paid in.
    refilled: Instant,
}

impl Default for RetryBudget {
    /// A bank holding one second of the floor, so that a group can retry from its first
    /// request on.
    fn default() -> Self {
        let now = Instant::now();
        Self(Mutex::new(Bank {
            tokens: 0,
            refilled: now.checked_sub(Duration::from_secs(1)).unwrap_or(now),
        }))
    }
}

impl RetryBudget {
    /// A request arrived.
    pub(crate) fn deposit(&self, budget_percent: u32, min_per_sec: u32) {
        let mut bank = self.lock();
        bank.refill(min_per_sec);
        bank.tokens = (bank.tokens + u64::from(budget_percent)).min(cap(min_per_sec));
    }

    /// Takes a token for a retry; `false` when the budget is spent.
    pub(crate) fn withdraw(&self, min_per_sec: u32) -> bool {
        let mut bank = self.lock();
        bank.refill(min_per_sec);
        match bank.tokens.checked_sub(RETRY) {
            Some(left) => {
                bank.tokens = left;
                true
            }
            None => false,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Bank> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn cap(min_per_sec: u32) -> u64 {
    (u64::from(min_per_sec) * BANK_SECONDS).max(MIN_BANK) * RETRY
}

impl Bank {
    /// Pays in the floor for the whole milliseconds since the last refill.
    fn refill(&mut self, min_per_sec: u32) {
        let elapsed_ms = self
            .refilled
            .elapsed()
            .as_millis()
            .min(u128::from(u32::MAX)) as u64;
        if elapsed_ms == 0 {
            return;
        }
        self.refilled += Duration::from_millis(elapsed_ms);
        // min_per_sec retries a second = min_per_sec x RETRY / 1000 hundredths a millisecond.
        let earned = u64::from(min_per_sec) * RETRY * elapsed_ms / 1000;
        self.tokens = (self.tokens + earned).min(cap(min_per_sec));
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn retries_are_held_to_the_percent_of_requests() {
        let budget = RetryBudget::default();
        for _ in 0..1000 {
            budget.deposit(20, 0);
        }
        // 1000 requests x 20 % = 200 tokens, but the bank holds at most 10 with no floor.
        let allowed = (0..1000).filter(|_| budget.withdraw(0)).count();
        assert_eq!(allowed, 10);
        let mut allowed = 0;
        for _ in 0..100 {
            budget.deposit(20, 0);
            allowed += usize::from(budget.withdraw(0));
        }
        assert_eq!(allowed, 20);
    }

    #[tokio::test(start_paused = true)]
    async fn the_floor_allows_a_few_retries_per_second_without_traffic() {
        let budget = RetryBudget::default();
        assert_eq!(
            (0..10).filter(|_| budget.withdraw(3)).count(),
            3,
            "one second banked"
        );
        assert!(!budget.withdraw(3));
        tokio::time::advance(Duration::from_secs(1)).await;
        let allowed = (0..10).filter(|_| budget.withdraw(3)).count();
        assert_eq!(allowed, 3);
    }

    #[tokio::test(start_paused = true)]
    async fn a_quiet_spell_banks_at_most_ten_seconds_of_floor() {
        let budget = RetryBudget::default();
        tokio::time::advance(Duration::from_secs(3600)).await;
        let allowed = (0..1000).filter(|_| budget.withdraw(2)).count();
        assert_eq!(allowed, 20);
    }
}
