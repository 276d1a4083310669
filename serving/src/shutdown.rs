//! Graceful shutdown: the signals that start it, and how connections learn about it.

use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio::sync::watch;

/// SIGTERM and SIGINT handlers, installed before a server announces its addresses so that a
/// signal sent right after never hits the default action (immediate death).
pub struct Signals {
    terminate: Signal,
    interrupt: Signal,
}

impl Signals {
    pub fn install() -> std::io::Result<Self> {
        Ok(Self {
            terminate: signal(SignalKind::terminate())?,
            interrupt: signal(SignalKind::interrupt())?,
        })
    }

    /// Waits for the first SIGTERM or SIGINT and returns its name.
    pub async fn recv(mut self) -> &'static str {
        tokio::select! {
            _ = self.terminate.recv() => "SIGTERM",
            _ = self.interrupt.recv() => "SIGINT",
        }
    }
}

/// A connection's view of the shutdown: resolves once the server has stopped accepting.
///
/// Backed by a `watch` channel so that connections accepted at any time see the flag, not only
/// those alive when it was raised.
#[derive(Clone)]
pub struct Shutdown(watch::Receiver<bool>);

/// The server's side: raises the flag once.
pub struct Trigger(watch::Sender<bool>);

/// A new, not yet raised, shutdown flag.
pub fn flag() -> (Trigger, Shutdown) {
    let (sender, receiver) = watch::channel(false);
    (Trigger(sender), Shutdown(receiver))
}

impl Trigger {
    pub fn raise(&self) {
        self.0.send_replace(true);
    }
}

impl Shutdown {
    /// Resolves once the flag is raised (or the trigger is gone, which also means stop).
    pub async fn raised(&mut self) {
        let _ = self.0.wait_for(|raised| *raised).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn listeners_cloned_before_or_after_the_raise_see_it() {
        let (trigger, mut early) = flag();
        let mut late = early.clone();
        trigger.raise();
        early.raised().await;
        late.raised().await;
        let mut later = early.clone();
        later.raised().await;
    }
}
