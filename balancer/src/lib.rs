//! `elb-balancer`: the HTTP load balancer (HTTP/1.1, HTTPS, HTTP/2 from clients, WebSockets),
//! as a library: the binary (`main.rs`) calls [`main`], and `elb` checks a config with
//! [`check_config`], the balancer's own validation, before it pushes one.
//!
//! `elb-balancer CONFIG` serves the config file CONFIG; once every socket is bound it prints,
//! on stdout, one line `listening on <addr>` per listener in config order, then one line
//! `admin on <addr>`, with the real ports (so port 0 can be used). Logs go to stderr
//! (`RUST_LOG` filters them; default `info`). SIGHUP reloads CONFIG; SIGUSR1 reopens the access
//! log (after a rotation); SIGTERM or SIGINT stops accepting and lets in-flight requests finish
//! within `limits.grace_ms`.
//!
//! `elb-balancer --check CONFIG` validates CONFIG, prints `ok: CONFIG (N groups, M targets,
//! version V)` and exits.
//!
//! Exit status: 0 after a drained shutdown or a valid `--check`; 1 when the grace period ran
//! out with requests in flight; 2 when the config is invalid or a socket cannot be bound.

mod access_log;
mod admin;
mod checker;
mod conditions;
mod config;
mod group;
mod health;
mod histogram;
mod latency;
mod listener;
mod memory;
mod metrics;
mod pattern;
mod pool;
mod proxy;
mod registry;
mod reload;
mod request_body;
mod retry_budget;
mod rules;
mod selection;
mod server;
mod shared;
mod snapshot;
mod target;
mod tls;
mod worker;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use tokio::sync::Semaphore;

use crate::listener::Role;
use crate::registry::Registry;
use crate::shared::{unix_ms, Shared};
use serving::Ending;

pub use config::{check_rule, check_stickiness};
pub use tls::check_pair as check_certificate;

/// How often removed targets are checked for idleness or the end of their delay.
const REAP_INTERVAL: Duration = Duration::from_millis(100);

/// The HTTP load balancer of elb: HTTPS, HTTP/2, WebSockets; path rules, target groups, health
/// checks, retries.
#[derive(Debug, Parser)]
#[command(name = "elb-balancer", version)]
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
    #[error("serving: {0}")]
    Serve(std::io::Error),
}

/// A config as [`check_config`] found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checked {
    pub groups: usize,
    pub targets: usize,
    /// `version` from the file, else a hash of its bytes.
    pub version: String,
}

/// Checks a config as the balancer would on start or reload: parses `text` (read from `path`,
/// which errors name and relative certificate paths do not depend on) and validates it, HTTPS
/// certificates and keys read and matched. The error names the file, the field and the fix.
pub fn check_config(path: &std::path::Path, text: &str) -> Result<Checked, String> {
    config::parse(path, text)
        .map(|loaded| Checked::of(&loaded))
        .map_err(|e| e.to_string())
}

impl Checked {
    fn of(loaded: &config::Loaded) -> Self {
        let groups = &loaded.config.target_groups;
        Self {
            groups: groups.len(),
            targets: groups.iter().map(|g| g.targets.len()).sum(),
            version: loaded.version.clone(),
        }
    }
}

/// The `elb-balancer` command: parses the command line, then checks or serves.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    serving::init_logging();
    let outcome = if cli.check {
        check(&cli.config)
    } else {
        serve(cli.config)
    };
    Ending::exit_code(outcome)
}

fn check(path: &std::path::Path) -> Result<Ending, StartError> {
    let checked = Checked::of(&config::load(path)?);
    println!(
        "ok: {} ({} groups, {} targets, version {})",
        path.display(),
        checked.groups,
        checked.targets,
        checked.version
    );
    Ok(Ending::Drained)
}

/// A runtime for one thread: a worker, or the main thread (worker 0, which also runs the
/// admin listener, health checks, reloads and signals).
fn runtime() -> Result<tokio::runtime::Runtime, StartError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(StartError::Runtime)
}

fn serve(path: PathBuf) -> Result<Ending, StartError> {
    let loaded = config::load(&path)?;
    let workers = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    let main = runtime()?;
    // Signal handlers, sockets and health-check tasks belong to the main thread's runtime.
    let _entered = main.enter();
    let signals = serving::Signals::install().map_err(StartError::Signals)?;
    let hangups = reload::install().map_err(StartError::Signals)?;
    let rotations = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::user_defined1())
        .map_err(StartError::Signals)?;

    let bind =
        |address| server::bind(address).map_err(|source| StartError::Bind { address, source });
    let mut sockets: Vec<Vec<_>> = (0..workers).map(|_| Vec::new()).collect();
    let mut announcements = Vec::new();
    for (index, listener) in loaded.config.listeners.iter().enumerate() {
        let first = bind(listener.address)?;
        // Port 0: the other workers bind the port the first socket got.
        let bound = first.local_addr().map_err(StartError::Announce)?;
        announcements.push(format!("listening on {bound}"));
        sockets[0].push((first, Role::Proxy(index)));
        for worker in sockets.iter_mut().skip(1) {
            worker.push((bind(bound)?, Role::Proxy(index)));
        }
    }
    let admin = bind(loaded.config.admin.address)?;
    let bound = admin.local_addr().map_err(StartError::Announce)?;
    announcements.push(format!("admin on {bound}"));
    sockets[0].push((admin, Role::Admin));

    let registry = Registry::new(workers);
    let snapshot = registry.build(&loaded, None, 1, unix_ms());
    let shared: &'static Shared = Box::leak(Box::new(Shared::new(snapshot, registry, path)));
    shared.access_log.set_path(loaded.access_log.clone());
    shared.access_log.start().map_err(StartError::Runtime)?;
    let mut out = std::io::stdout().lock();
    for line in &announcements {
        writeln!(out, "{line}").map_err(StartError::Announce)?;
    }
    out.flush().map_err(StartError::Announce)?;
    drop(out);
    tracing::info!(
        version = %shared.snapshot().version,
        workers,
        "serving {} listeners",
        loaded.config.listeners.len()
    );

    let limits = loaded.config.limits;
    raise_file_limit(limits.max_connections);
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let (trigger, stopped) = serving::flag();
    let mut sockets = sockets.into_iter();
    let own = sockets.next().unwrap_or_default();
    let mut threads = Vec::with_capacity(workers.saturating_sub(1));
    for (index, listeners) in sockets.enumerate().map(|(i, l)| (i + 1, l)) {
        let (limits, permits, stopped) = (limits.clone(), Arc::clone(&permits), stopped.clone());
        let thread = std::thread::Builder::new()
            .name(format!("worker-{index}"))
            .spawn(move || {
                worker::enter(index);
                runtime()?
                    .block_on(server::run(listeners, shared, &limits, permits, stopped))
                    .map_err(StartError::Serve)
            })
            .map_err(StartError::Runtime)?;
        threads.push(thread);
    }

    main.spawn(reload::on_sighup(shared, hangups));
    main.spawn(async move {
        let mut rotations = rotations;
        while rotations.recv().await.is_some() {
            tracing::info!("SIGUSR1: reopening the access log");
            shared.access_log.reopen();
        }
    });
    main.spawn(memory::return_freed());
    main.spawn(async move {
        let mut tick = tokio::time::interval(REAP_INTERVAL);
        loop {
            tick.tick().await;
            shared.registry.reap();
        }
    });
    let grace = limits.grace_ms;
    main.spawn(async move {
        let name = signals.recv().await;
        tracing::info!("{name}: stopping, in-flight requests get {grace} ms");
        trigger.raise();
    });
    let mut ending = main
        .block_on(server::run(own, shared, &limits, permits, stopped))
        .map_err(StartError::Serve)?;
    for thread in threads {
        // A worker that panicked aborts the process (panic = "abort"), so join errors are moot.
        if let Ok(worker) = thread.join() {
            if worker? == Ending::GraceExpired {
                ending = Ending::GraceExpired;
            }
        }
    }
    Ok(ending)
}

/// File descriptors beside the clients': listeners, health checks, target connections (bounded
/// per target by `max_requests_per_target`).
const FILES_SPARE: u64 = 1024;

/// Raises the soft limit on open files to the hard limit, as HAProxy does for its `maxconn`:
/// each client connection holds a descriptor, and a soft limit of 1024 (a common default) would
/// refuse clients far below `limits.max_connections`. Warns when even the hard limit is too
/// low.
fn raise_file_limit(max_connections: usize) {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct passed.
    let raised = unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit) == 0
        }
    };
    let needed = max_connections as u64 + FILES_SPARE;
    if !raised {
        tracing::warn!(
            "could not raise the open-file limit: {}",
            std::io::Error::last_os_error()
        );
    } else if limit.rlim_cur < needed {
        tracing::warn!(
            "open-file limit {} is below the {needed} that limits.max_connections = \
             {max_connections} may need: raise the hard limit (ulimit -Hn, LimitNOFILE=) or \
             lower max_connections",
            limit.rlim_cur
        );
    }
}
