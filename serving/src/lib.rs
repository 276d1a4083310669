//! The scaffolding elb's two servers (`elb-agent`, `elb-balancer`) share: their logging, the
//! stop signals, the shutdown flag every connection watches, and the drain that waits for open
//! connections for at most a grace period.

use std::io::IsTerminal;

pub mod drain;
pub mod shutdown;

pub use drain::{Drain, Ending, Open};
pub use shutdown::{flag, Shutdown, Signals, Trigger};

/// Logs to stderr (colours only on a terminal), filtered by `RUST_LOG`, `info` without it.
pub fn init_logging() {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
}
