//! Cheap uniform draws for the randomised algorithms: SplitMix64, one state per thread.
//!
//! Selection needs speed and seeded tests, nothing cryptographic.

use std::cell::Cell;

/// A SplitMix64 generator.
#[derive(Debug, Clone)]
pub(crate) struct Rng(u64);

impl Rng {
    #[cfg(test)]
    pub(crate) fn seeded(seed: u64) -> Self {
        Self(seed)
    }

    /// 64 uniform bits.
    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub(crate) fn below(&mut self, n: usize) -> usize {
        // Multiply-shift (Lemire): unbiased enough for n far below 2^64.
        ((u128::from(self.next_u64()) * n as u128) >> 64) as usize
    }

    /// Uniform in `[0, 1)`.
    pub(crate) fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

thread_local! {
    static STATE: Cell<u64> = Cell::new(seed());
}

/// A seed that differs between threads and runs.
fn seed() -> u64 {
    let marker = 0u8;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    nanos ^ (std::ptr::addr_of!(marker) as u64).rotate_left(32)
}

/// Runs `f` with this thread's generator.
pub(crate) fn with_rng<R>(f: impl FnOnce(&mut Rng) -> R) -> R {
    STATE.with(|state| {
        let mut rng = Rng(state.get());
        let result = f(&mut rng);
        state.set(rng.0);
        result
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_stay_in_range_and_cover_it() {
        let mut rng = Rng::seeded(3);
        let mut seen = [false; 5];
        for _ in 0..1000 {
            seen[rng.below(5)] = true;
            let u = rng.unit();
            assert!((0.0..1.0).contains(&u));
        }
        assert!(seen.iter().all(|&s| s));
    }

    #[test]
    fn a_seed_gives_the_same_sequence() {
        let (mut a, mut b) = (Rng::seeded(9), Rng::seeded(9));
        assert_eq!(
            (0..8).map(|_| a.below(100)).collect::<Vec<_>>(),
            (0..8).map(|_| b.below(100)).collect::<Vec<_>>()
        );
    }
}
