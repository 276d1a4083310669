//! Runs one job per host, at most `parallel` at once, with a progress line per host; one host's
//! failure never stops the others.

use std::future::Future;
use std::io::IsTerminal;
use std::sync::Arc;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::report::{DeployReport, Failure, FailureKind, HostResult};
use crate::agent_binary::Arch;

/// A host to deploy to and what its agent is told about it.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    /// How the host is shown to the user.
    pub label: String,
    /// Address (IP or name) for SSH and the agent's port.
    pub address: String,
    /// The cluster name.
    pub cluster: String,
    /// EC2 instance id, empty if not an instance.
    pub instance_id: String,
    /// EC2 instance type, empty if not an instance.
    pub instance_type: String,
    /// Availability zone, empty if not known.
    pub az: String,
    /// The architecture if known beforehand (from the instance type), else learnt on the host.
    pub arch: Option<Arch>,
}

/// What is done to each host.
pub(crate) trait HostJob: Send + Sync + 'static {
    /// Does the work for `target`, reporting steps to `progress`.
    fn run(
        &self,
        target: &Target,
        progress: &HostProgress,
    ) -> impl Future<Output = Result<(), Failure>> + Send;
}

/// The progress line of one host: a spinner on a terminal, else one stderr line per step.
pub(crate) struct HostProgress {
    label: String,
    bar: Option<ProgressBar>,
    started: Instant,
}

impl HostProgress {
    /// Shows that the host is now doing `step`.
    pub(crate) fn step(&self, step: &str) {
        match &self.bar {
            Some(bar) => bar.set_message(step.to_owned()),
            None => eprintln!(
                "{}: {step} (+{:.2}s)",
                self.label,
                self.started.elapsed().as_secs_f64()
            ),
        }
    }

    fn finish(&self, outcome: &Result<(), Failure>, elapsed: Duration) {
        let text = match outcome {
            Ok(()) => format!("ok in {:.1}s", elapsed.as_secs_f64()),
            Err(f) => format!("{} after {:.1}s", f.kind.as_str(), elapsed.as_secs_f64()),
        };
        match &self.bar {
            Some(bar) => bar.finish_with_message(text),
            None => eprintln!("{}: {text}", self.label),
        }
    }
}

/// Runs `job` on every target, `parallel` at a time, and collects the outcomes in target order.
pub(crate) async fn run<J: HostJob>(
    targets: Vec<Arc<Target>>,
    parallel: usize,
    job: Arc<J>,
) -> DeployReport {
    let started = Instant::now();
    let multi = std::io::stderr()
        .is_terminal()
        .then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()));
    let style = ProgressStyle::with_template("{spinner} {prefix:30} {elapsed:>4} {wide_msg}").ok();
    let permits = Arc::new(Semaphore::new(parallel.max(1)));
    let mut tasks = JoinSet::new();
    for (index, target) in targets.iter().enumerate() {
        let bar = multi.as_ref().map(|multi| {
            let bar = multi.add(ProgressBar::new_spinner());
            if let Some(style) = &style {
                bar.set_style(style.clone());
            }
            bar.set_prefix(target.label.clone());
            bar.set_message("queued");
            bar.enable_steady_tick(Duration::from_millis(150));
            bar
        });
        let mut progress = HostProgress {
            label: target.label.clone(),
            bar,
            started,
        };
        let (target, job, permits) = (target.clone(), job.clone(), permits.clone());
        tasks.spawn(async move {
            let _permit = permits.acquire_owned().await;
            let began = Instant::now();
            progress.started = began;
            let outcome = job.run(&target, &progress).await;
            let elapsed = began.elapsed();
            progress.finish(&outcome, elapsed);
            (index, outcome, elapsed)
        });
    }
    let mut outcomes: Vec<Option<(Result<(), Failure>, Duration)>> = vec![None; targets.len()];
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok((index, outcome, elapsed)) => outcomes[index] = Some((outcome, elapsed)),
            Err(e) => tracing::error!("a deploy task ended abnormally: {e}"),
        }
    }
    let hosts = targets
        .iter()
        .zip(outcomes)
        .map(|(target, outcome)| {
            let (outcome, elapsed) = outcome.unwrap_or_else(|| {
                let lost = Failure::new(FailureKind::InstallFailed, "the deploy task panicked");
                (Err(lost), started.elapsed())
            });
            HostResult {
                host: target.label.clone(),
                outcome,
                elapsed,
            }
        })
        .collect();
    DeployReport {
        hosts,
        elapsed: started.elapsed(),
    }
}
