//! Giving memory back to the system once a crowd of clients has gone.
//!
//! glibc's malloc keeps what is freed in its arenas (one per worker thread) for reuse rather
//! than returning it: measured, 10,000 clients that each sent a request at once (all of them
//! in flight together, queued for one target) and then closed their connections left the
//! balancer at 186 MiB of RSS for minutes. `malloc_trim(0)` hands the free pages of every
//! arena back (it `madvise`s them away). It walks the arenas under their locks, which a
//! request on another worker may then wait for (5-20 ms with 10,000 connections open), so it
//! runs only when it can gain something: checked every [`CHECK_INTERVAL`] with `mallinfo2` (a
//! walk of the free lists, microseconds), when the arenas hold more than [`TRIM_ABOVE`] free
//! bytes and either [`TRIM_ABOVE`] more than at the last trim or [`RETRIM_AFTER`] has passed
//! (freed memory reused and freed again is resident again). Free memory scattered in pieces
//! smaller than a page between live allocations cannot be given back: with 10,000 connections
//! still open, 100 MiB were free and RSS did not move; once they closed, it fell to 5 MiB
//! within a second.

use std::time::Duration;

/// How often the free memory held is looked at.
const CHECK_INTERVAL: Duration = Duration::from_secs(1);
/// Free bytes held in the arenas that make a trim worth its pause: a small multiple of what a
/// busy balancer churns through between two checks, far below the memory goals (16 MiB idle).
const TRIM_ABOVE: usize = 8 << 20;

/// A trim with no more free memory than the last is repeated after this long.
const RETRIM_AFTER: Duration = Duration::from_secs(30);

/// Trims the allocator when that can give memory back (see the module), for ever.
pub(crate) async fn return_freed() {
    let mut tick = tokio::time::interval(CHECK_INTERVAL);
    let mut last: Option<(usize, tokio::time::Instant)> = None;
    loop {
        tick.tick().await;
        let held = free_bytes();
        let now = tokio::time::Instant::now();
        if worth_trimming(held, last, now) {
            trim();
            tracing::debug!(
                "{} MiB free in the allocator: trimmed in {:.1} ms",
                held >> 20,
                now.elapsed().as_secs_f64() * 1000.0
            );
            last = Some((held, now));
        }
    }
}

/// Whether to trim with `held` free bytes at `now`, after the last trim (free bytes then, and
/// when).
fn worth_trimming(
    held: usize,
    last: Option<(usize, tokio::time::Instant)>,
    now: tokio::time::Instant,
) -> bool {
    held > TRIM_ABOVE
        && last.is_none_or(|(before, at)| {
            held > before + TRIM_ABOVE || now.duration_since(at) >= RETRIM_AFTER
        })
}

/// Bytes the allocator holds free (in chunks it could give back or reuse).
fn free_bytes() -> usize {
    // SAFETY: mallinfo2 only reads the allocator's statistics; it is thread-safe.
    let info = unsafe { libc::mallinfo2() };
    info.fordblks
}

/// Returns the allocator's free pages to the system.
fn trim() {
    // SAFETY: malloc_trim only releases memory that no allocation holds; it is thread-safe.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_trim_waits_for_more_free_memory_or_for_time_to_pass() {
        let t0 = tokio::time::Instant::now();
        let mib = 1 << 20;
        assert!(
            !worth_trimming(TRIM_ABOVE, None, t0),
            "too little to bother"
        );
        assert!(worth_trimming(TRIM_ABOVE + 1, None, t0));
        let last = Some((100 * mib, t0));
        let soon = t0 + CHECK_INTERVAL;
        assert!(
            !worth_trimming(100 * mib, last, soon),
            "nothing more to gain"
        );
        assert!(worth_trimming(100 * mib + TRIM_ABOVE + 1, last, soon));
        assert!(worth_trimming(100 * mib, last, t0 + RETRIM_AFTER));
        assert!(!worth_trimming(mib, last, t0 + RETRIM_AFTER));
    }

    #[test]
    fn freed_memory_is_seen_and_trimming_is_safe() {
        let blocks: Vec<Vec<u8>> = (0..64).map(|_| vec![1u8; 64 * 1024]).collect();
        let before = free_bytes();
        drop(blocks);
        assert!(free_bytes() >= before, "freed blocks are held free");
        trim();
    }
}
