//! The drain: every connection task holds an [`Open`]; a stopping server waits until all are
//! gone, for at most its grace period.

use std::future::Future;
use std::time::Duration;

use tokio::sync::mpsc;

/// How a server's drain ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// Every connection finished within the grace period.
    Drained,
    /// The grace period ran out with connections still open.
    GraceExpired,
}

impl Ending {
    /// The servers' exit status: 0 after a drained shutdown, 1 when the grace period ran out
    /// (logged), 2 when the server could not start (the error logged).
    pub fn exit_code<E: std::fmt::Display>(outcome: Result<Ending, E>) -> std::process::ExitCode {
        match outcome {
            Ok(Ending::Drained) => std::process::ExitCode::SUCCESS,
            Ok(Ending::GraceExpired) => {
                tracing::warn!("grace period over with requests still in flight; exiting anyway");
                std::process::ExitCode::from(1)
            }
            Err(e) => {
                tracing::error!("{e}");
                std::process::ExitCode::from(2)
            }
        }
    }
}

/// The open connections of one server.
pub struct Drain {
    open: mpsc::Sender<()>,
    closed: mpsc::Receiver<()>,
}

/// One open connection, counted until dropped.
#[derive(Clone)]
pub struct Open {
    _counted: mpsc::Sender<()>,
}

impl Default for Drain {
    fn default() -> Self {
        Self::new()
    }
}

impl Drain {
    pub fn new() -> Self {
        // Nothing is ever sent: `recv` returns `None` once every sender is gone.
        let (open, closed) = mpsc::channel(1);
        Self { open, closed }
    }

    /// Counts a connection open until the returned token is dropped.
    pub fn open(&self) -> Open {
        Open {
            _counted: self.open.clone(),
        }
    }

    /// Waits until every [`Open`] is dropped and then `also` is done (what else must finish
    /// before the server may exit), for at most `grace`.
    pub async fn wait(self, grace: Duration, also: impl Future<Output = ()>) -> Ending {
        let Self { open, mut closed } = self;
        drop(open);
        let drained = async {
            closed.recv().await;
            also.await;
        };
        match tokio::time::timeout(grace, drained).await {
            Ok(()) => Ending::Drained,
            Err(_) => Ending::GraceExpired,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_drain_waits_for_open_connections_for_at_most_the_grace_period() {
        let drain = Drain::new();
        let open = drain.open();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(3)).await;
            drop(open);
        });
        let started = tokio::time::Instant::now();
        assert_eq!(
            drain.wait(Duration::from_secs(10), async {}).await,
            Ending::Drained
        );
        assert_eq!(started.elapsed(), Duration::from_secs(3));

        let drain = Drain::new();
        let _stuck = drain.open();
        assert_eq!(
            drain.wait(Duration::from_secs(10), async {}).await,
            Ending::GraceExpired
        );
        assert_eq!(
            Drain::new()
                .wait(Duration::from_secs(1), std::future::pending())
                .await,
            Ending::GraceExpired,
            "what else must finish counts too"
        );
    }
}
