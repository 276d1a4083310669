//! `elb dashboard`: the live page of the fleet and the balancer, until Ctrl-C.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;

use crate::config::Settings;
use crate::dashboard::{Dashboard, DashboardSpec};
use crate::Error;

/// Flags of `elb dashboard`.
#[derive(Debug, Args)]
pub struct DashboardArgs {
    /// Address to serve the page on (port 0: any free port). The page has no login: an address
    /// other than loopback shows the fleet's addresses, types and load to everyone who can
    /// reach it.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Per-agent timeout of each poll, from connect to the last byte (as `elb stats`).
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=60_000))]
    pub timeout_ms: u64,
}

impl DashboardArgs {
    /// The dashboard these flags ask for.
    pub(crate) fn spec(&self, settings: &Settings) -> DashboardSpec {
        DashboardSpec::new(
            settings,
            self.listen,
            Duration::from_millis(self.timeout_ms),
        )
    }
}

/// Starts the dashboard and prints its URL (the first line on stdout); serves until Ctrl-C.
pub async fn run(settings: Settings, args: &DashboardArgs) -> Result<(), Error> {
    let spec = args.spec(&settings);
    let project = settings.project.clone();
    let dashboard = Dashboard::start(Arc::new(settings), spec).await?;
    announce(&dashboard);
    eprintln!("dashboard of project {project}; Ctrl-C stops it");
    let _ = tokio::signal::ctrl_c().await;
    Ok(())
}

/// Prints the dashboard's URL on stdout, and on stderr what a bind beyond loopback exposes.
pub(crate) fn announce(dashboard: &Dashboard) {
    println!("dashboard: {}", dashboard.url());
    if !dashboard.is_loopback() {
        eprintln!(
            "warning: the dashboard listens beyond loopback and has no login: anyone who can \
             reach {} sees the fleet's addresses, instance types and load",
            dashboard.url()
        );
    }
}
