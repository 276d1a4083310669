//! Waiting for an agent to answer `GET /healthz` with 200. Judged by the HTTP status, never by a
//! TCP connect: a cut host times out, a stopped one refuses, a broken one answers something else.

use std::time::{Duration, Instant};

use super::report::{Failure, FailureKind};
use super::runner::{HostJob, HostProgress, Target};
use crate::http::healthz_status;
use proto::AGENT_PORT;

/// Longest single probe.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// Pause between probes.
const PROBE_INTERVAL: Duration = Duration::from_millis(50);

/// Polls `http://<address>:8000/healthz` until it answers 200, for at most `timeout`.
pub(crate) async fn wait_until_healthy(address: &str, timeout: Duration) -> Result<(), Failure> {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let last =
            match tokio::time::timeout(left.min(PROBE_TIMEOUT), healthz_status(address)).await {
                Ok(Ok(200)) => return Ok(()),
                Ok(Ok(status)) => format!("it answered HTTP {status}"),
                Ok(Err(e)) => e.to_string(),
                Err(_) => format!("no answer within {PROBE_TIMEOUT:?}"),
            };
        if Instant::now() + PROBE_INTERVAL >= deadline {
            return Err(Failure::new(
                FailureKind::NotHealthy,
                format!(
                    "GET http://{address}:{AGENT_PORT}/healthz did not answer 200 within \
                     {timeout:?}: {last}"
                ),
            ));
        }
        tokio::time::sleep(PROBE_INTERVAL).await;
    }
}

/// Only the health wait, for hosts something else installed (user data).
pub(crate) struct HealthJob {
    /// How long each agent may take.
    pub timeout: Duration,
}

impl HostJob for HealthJob {
    async fn run(&self, target: &Target, progress: &HostProgress) -> Result<(), Failure> {
        progress.step("waiting for /healthz");
        wait_until_healthy(&target.address, self.timeout).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    /// Answers every connection on 127.0.0.1:<port> with `answer`. Port 8000 is fixed, so each
    /// test uses addresses of its own in 127.0.0.0/8.
    async fn serve(addr: &str, answer: &'static str) -> tokio::task::JoinHandle<()> {
        let listener = TcpListener::bind((addr, AGENT_PORT))
            .await
            .expect("bind a test address on port 8000");
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let mut buf = [0u8; 1024];
                let _ = stream.read(&mut buf).await;
                let _ = stream.write_all(answer.as_bytes()).await;
            }
        })
    }

    #[tokio::test]
    async fn only_a_200_counts_as_healthy() {
        let ok = "127.231.1.1";
        let bad = "127.231.1.2";
        let a = serve(ok, "HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n").await;
        let b = serve(bad, "HTTP/1.1 503 Service Unavailable\r\n\r\n").await;
        assert!(wait_until_healthy(ok, Duration::from_secs(2)).await.is_ok());
        let err = wait_until_healthy(bad, Duration::from_millis(500))
            .await
            .unwrap_err();
        assert_eq!(err.kind, FailureKind::NotHealthy);
        assert!(err.message.contains("HTTP 503"), "{}", err.message);
        a.abort();
        b.abort();
    }
}
