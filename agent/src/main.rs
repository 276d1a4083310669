//! `elb-agent`: the per-instance HTTP agent. Answers the seed app's endpoints with this host's
//! identity and live load stats, serves `/stats`, `/metrics` and `/healthz`.
//!
//! Exit status: 0 after a graceful shutdown that drained every connection, 1 when the grace
//! period ran out first, 2 when the agent could not start.

mod cli;
mod identity;
mod imds;
mod metrics;
mod routes;
mod server;
mod state;
mod stats;
mod watchdog;

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use tokio::net::TcpListener;

use crate::cli::Cli;
use crate::identity::Identity;
use crate::server::Limits;
use crate::state::AppState;
use crate::stats::sampler::Sampler;
use serving::Ending;

/// Bound on the whole instance-metadata exchange at start.
const IMDS_TIMEOUT: Duration = Duration::from_secs(1);

/// Why the agent could not start.
#[derive(Debug, thiserror::Error)]
enum StartError {
    #[error("starting the runtime: {0}")]
    Runtime(std::io::Error),
    #[error("installing signal handlers: {0}")]
    Signals(std::io::Error),
    #[error("listening on {addr}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("announcing the address: {0}")]
    Announce(std::io::Error),
    #[error("rendering the first stats: {0}")]
    Render(#[from] serde_json::Error),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    serving::init_logging();
    let started = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(StartError::Runtime)
        .and_then(|runtime| runtime.block_on(run(cli)));
    Ending::exit_code(started)
}

async fn run(cli: Cli) -> Result<Ending, StartError> {
    let hostname = stats::hostname().unwrap_or_else(|| {
        tracing::warn!("the hostname cannot be read; reporting it as `unknown`");
        "unknown".to_string()
    });
    // An empty value (a placeholder the orchestrator had nothing for) counts as not given.
    let given = |value: Option<String>| value.filter(|v| !v.is_empty());
    let mut identity = Identity {
        hostname: hostname.clone(),
        cluster: given(cli.cluster),
        instance_id: given(cli.instance_id),
        instance_type: given(cli.instance_type),
        availability_zone: given(cli.az),
    };
    if cli.imds {
        match imds::fetch(cli.imds_endpoint, IMDS_TIMEOUT).await {
            Ok(facts) => identity = identity.completed_with(facts),
            Err(e) => tracing::warn!("instance metadata at {}: {e}", cli.imds_endpoint),
        }
    }

    // The state lives as long as the process. Leaked once, it is a `&'static` that every
    // connection and request copies, instead of an `Arc` counted up and down per request.
    let state: &'static AppState = Box::leak(Box::new(AppState::new(
        identity,
        cli.enable_debug_endpoints,
    )));
    let mut sampler = Sampler::new(hostname, cli.sample_interval, cli.latency_window);
    state.publish(&sampler.sample(&state.live))?;

    let signals = serving::Signals::install().map_err(StartError::Signals)?;
    let listener = TcpListener::bind(cli.listen)
        .await
        .map_err(|source| StartError::Bind {
            addr: cli.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(StartError::Announce)?;
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "listening on {addr}")
        .and_then(|()| stdout.flush())
        .map_err(StartError::Announce)?;
    drop(stdout);
    tracing::info!(%addr, identity = ?state.identity, "serving");

    tokio::spawn(state::keep_sampling(state, sampler));
    let limits = Limits {
        read_timeout: cli.read_timeout,
        grace: cli.grace,
    };
    let stop = async {
        let name = signals.recv().await;
        tracing::info!(
            "{name}: draining connections for at most {:?}",
            limits.grace
        );
    };
    let ending = server::run(listener, state, limits, stop).await;
    if ending == Ending::Drained {
        tracing::info!("drained, exiting");
    }
    Ok(ending)
}
