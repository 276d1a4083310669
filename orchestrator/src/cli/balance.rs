//! `elb balance up|sync|status|down`: elb's own balancer in front of the fleet.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand};
use proto::balancer_config::Algorithm;

use super::alb::RoutingArgs;
use crate::balance::{self, BalanceSpec};
use crate::config::Settings;
use crate::Error;

/// Flags of `elb balance`.
#[derive(Debug, Args)]
pub struct BalanceArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: BalanceCommand,
}

/// The `balance` subcommands.
#[derive(Debug, Subcommand)]
pub enum BalanceCommand {
    /// Start the balancer in front of the fleet, or reconfigure the one that runs.
    Up(UpArgs),
    /// Push the fleet's current instances to the balancer (launch and kill do it too).
    Sync,
    /// Each group and target: state and why, in flight, latency estimate, requests, errors.
    Status(StatusArgs),
    /// Stop the balancer (in-flight requests finish) and remove it.
    Down,
}

/// Flags of `elb balance up`.
#[derive(Debug, Args)]
pub struct UpArgs {
    /// How each group picks a target.
    #[arg(long, default_value = "round_robin", value_parser = super::values::algorithm_parser())]
    pub algorithm: Algorithm,
    /// The path rules and the default (`all` names a group of every instance).
    #[command(flatten)]
    pub routing: RoutingArgs,
    /// The client listener's port.
    #[arg(long, default_value_t = 80)]
    pub port: u16,
    /// Milliseconds between two health checks of a target (timeout: half of it, at most 1 s).
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u64).range(10..=300_000))]
    pub health_interval_ms: u64,
    /// The elb-balancer executable (default: beside `elb`, or `$ELB_BALANCER`).
    #[arg(long)]
    pub balancer: Option<PathBuf>,
    /// Seconds to wait until every target is healthy (0: do not wait).
    #[arg(long, default_value_t = 30)]
    pub wait: u64,
}

/// Flags of `elb balance status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Redraw every this many seconds, like `top` (Ctrl-C stops).
    #[arg(long, value_name = "SECS")]
    pub watch: Option<f64>,
}

impl UpArgs {
    /// The spec these flags give, checked before anything is loaded.
    pub(crate) fn spec(&self) -> Result<BalanceSpec, Error> {
        if self.port == 0 {
            return Err(Error::Usage(
                "--port 0: the balancer needs a fixed port clients can be told; pick one, e.g. \
                 --port 8080"
                    .into(),
            ));
        }
        let mut routing = self.routing.routing()?;
        if self.routing.rules.is_empty() && routing.default == balance::ALL {
            // `--default all` alone: one mixed group, no path rules.
            routing.rules.clear();
        }
        let spec = BalanceSpec {
            routing,
            algorithm: self.algorithm,
            port: self.port,
            health_interval_ms: self.health_interval_ms,
        };
        spec.check()?;
        Ok(spec)
    }
}

/// Runs `elb balance ...`.
pub(crate) async fn run(settings: &Settings, args: &BalanceArgs) -> Result<(), Error> {
    match &args.command {
        BalanceCommand::Up(up) => {
            let spec = up.spec()?;
            let balancer = balance::up(settings, &spec, up.balancer.as_deref()).await?;
            if up.wait > 0 {
                let status = balance::wait_healthy(&balancer, Duration::from_secs(up.wait)).await?;
                println!("{}", balance::render_status(&status, settings.output));
            }
            eprintln!("clients: {}", balancer.url());
            Ok(())
        }
        BalanceCommand::Sync => match balance::sync(settings, &[]).await? {
            true => Ok(()),
            false => Err(Error::Usage(format!(
                "project {} has no balancer to sync: `elb --local balance up` starts one",
                settings.project
            ))),
        },
        BalanceCommand::Status(status) => loop {
            let now = balance::status(settings).await?;
            if status.watch.is_some() {
                print!("\x1b[2J\x1b[H");
            }
            println!("{}", balance::render_status(&now, settings.output));
            match status.watch {
                Some(secs) if secs > 0.0 => {
                    tokio::time::sleep(Duration::from_secs_f64(secs)).await;
                }
                _ => return Ok(()),
            }
        },
        BalanceCommand::Down => {
            if balance::down(settings).await? {
                eprintln!("done: the balancer of project {} is gone", settings.project);
            } else {
                eprintln!("project {} has no balancer", settings.project);
            }
            Ok(())
        }
    }
}
