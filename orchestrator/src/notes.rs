//! Lines for people that domain modules produce along the way (`deleted key pair p-key`,
//! `balancer b-1: 4 target(s) after sync`), handed to whoever drives them instead of printed.
//! The CLI writes them to stderr (`cli/settings.rs`); a driver whose own output says it all (the autoscaler's ticks)
//! sends them to the log, where `-v` shows them.

/// Receives the lines, one at a time, in the order they happen.
pub(crate) trait Notes: Send + Sync + std::fmt::Debug {
    fn note(&self, line: &str);
}

/// Each line in the log, at info level.
#[derive(Debug)]
pub(crate) struct Log;

impl Notes for Log {
    fn note(&self, line: &str) {
        tracing::info!("{line}");
    }
}
