//! `elb-balancer`: the HTTP/1.1 load balancer.
//!
//! `elb-balancer CONFIG` serves the config file CONFIG; once every socket is bound it prints,
//! on stdout, one line `listening on <addr>` per listener in config order, then one line
//! `admin on <addr>`, with the real ports (so port 0 can be used). Logs go to stderr
//! (`RUST_LOG` filters them; default `info`). SIGHUP reloads CONFIG; SIGTERM or SIGINT stops
//! accepting and lets in-flight requests finish within `limits.grace_ms`.
//!
//! `elb-balancer --check CONFIG` validates CONFIG, prints `ok: CONFIG (N groups, M targets,
//! version V)` and exits.
//!
//! Exit status: 0 after a drained shutdown or a valid `--check`; 1 when the grace period ran
//! out with requests in flight; 2 when the config is invalid or a socket cannot be bound.

mod admin;
mod config;
mod group;
mod health;
mod latency;
mod metrics;
mod proxy;
mod registry;
mod reload;
mod rules;
mod selection;
mod server;
mod shared;
mod shutdown;
mod snapshot;
mod target;

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;

use crate::registry::Registry;
use crate::server::{Ending, Role};
use crate::shared::{unix_ms, Shared};

/// How often removed targets are checked for idleness or the end of their delay.
const REAP_INTERVAL: Duration = Duration::from_millis(100);

/// The HTTP/1.1 load balancer of elb: path rules, target groups, health checks, retries.
#[derive(Debug, Parser)]
#[command(version)]
struct Cli {
    /// Validate the config file and exit, without serving.
    #[arg(long)]
    check: bool,
    /// The config file (TOML; see docs/balancer.md).
    config: PathBuf,
}

/// Why the balancer could not start.
#[derive(Debug, thiserror::Error)]
enum StartError {
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    #[error("starting the runtime: {0}")]
    Runtime(std::io::Error),
    #[error("installing signal handlers: {0}")]
    Signals(std::io::Error),
    #[error("listening on {address}: {source}")]
    Bind {
        address: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("announcing the addresses: {0}")]
    Announce(std::io::Error),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let outcome = if cli.check {
        check(&cli.config)
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(StartError::Runtime)
            .and_then(|runtime| runtime.block_on(serve(cli.config)))
    };
    match outcome {
        Ok(Ending::Drained) => ExitCode::SUCCESS,
        Ok(Ending::GraceExpired) => {
            tracing::warn!("grace period over with requests still in flight; exiting anyway");
            ExitCode::from(1)
        }
        Err(e) => {
            tracing::error!("{e}");
            ExitCode::from(2)
        }
    }
}

fn check(path: &std::path::Path) -> Result<Ending, StartError> {
    let loaded = config::load(path)?;
    let groups = &loaded.config.target_groups;
    let targets: usize = groups.iter().map(|g| g.targets.len()).sum();
    println!(
        "ok: {} ({} groups, {targets} targets, version {})",
        path.display(),
        groups.len(),
        loaded.version
    );
    Ok(Ending::Drained)
}

async fn serve(path: PathBuf) -> Result<Ending, StartError> {
    let loaded = config::load(&path)?;
    let signals = shutdown::Signals::install().map_err(StartError::Signals)?;
    let hangups = reload::install().map_err(StartError::Signals)?;
    let bind =
        |address| server::bind(address).map_err(|source| StartError::Bind { address, source });
    let mut listeners = Vec::new();
    for listener in &loaded.config.listeners {
        listeners.push((bind(listener.address)?, Role::Proxy));
    }
    listeners.push((bind(loaded.config.admin.address)?, Role::Admin));

    let registry = Registry::new();
    // A reload compares its listeners with the configured addresses (port 0 included), not
    // with the bound ones.
    let snapshot = registry.build(&loaded, None, 1, unix_ms());
    let shared: &'static Shared = Box::leak(Box::new(Shared::new(snapshot, registry, path)));

    let mut out = std::io::stdout().lock();
    for (listener, role) in &listeners {
        let address = listener.local_addr().map_err(StartError::Announce)?;
        match role {
            Role::Proxy => writeln!(out, "listening on {address}"),
            Role::Admin => writeln!(out, "admin on {address}"),
        }
        .and_then(|()| out.flush())
        .map_err(StartError::Announce)?;
    }
    drop(out);
    tracing::info!(
        version = %shared.snapshot().version,
        "serving {} listeners",
        listeners.len() - 1
    );

    tokio::spawn(reload::on_sighup(shared, hangups));
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(REAP_INTERVAL);
        loop {
            tick.tick().await;
            shared.registry.reap();
        }
    });
    let limits = loaded.config.limits.clone();
    let stop = async move {
        let name = signals.recv().await;
        tracing::info!(
            "{name}: stopping, in-flight requests get {} ms",
            limits.grace_ms
        );
    };
    Ok(server::run(listeners, shared, &loaded.config.limits, stop).await)
}
