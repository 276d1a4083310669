//! Which worker thread runs the current task.
//!
//! The balancer runs one single-threaded tokio runtime per core, each accepting on its own
//! SO_REUSEPORT socket of every listener: a connection, its requests and the pooled target
//! connections they use stay on one thread, with no cross-thread wake-ups or work stealing
//! on the request path (measured against one multi-threaded runtime, see docs/balancer.md).

use std::cell::Cell;

thread_local! {
    static INDEX: Cell<usize> = const { Cell::new(0) };
}

/// Marks the current thread as worker `index`.
pub(crate) fn enter(index: usize) {
    INDEX.set(index);
}

/// The current thread's worker index (0 outside the workers).
pub(crate) fn index() -> usize {
    INDEX.get()
}
