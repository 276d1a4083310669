//! `elb kill`: the kill switch. Plan, show, confirm, execute.

use std::io::{BufRead, IsTerminal, Write};

use clap::Args;

use std::time::Duration;

use crate::autoscale::{self, Memories, Memory};
use crate::cloud::spec::KillOptions;
use crate::cloud::wait::Poll;
use crate::cloud::Cloud;
use crate::config::{ProviderKind, Settings};
use crate::fleet;
use crate::output::OutputFormat;
use crate::Error;

/// Flags of `elb kill`.
#[derive(Debug, Args)]
pub struct KillArgs {
    /// Only this cluster's instances (deregistered from the ALB's target group first, when the
    /// project has an ALB); the security groups, key pair and load balancers stay.
    #[arg(long)]
    pub cluster: Option<String>,
    /// Do not ask for confirmation (required without a terminal).
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Only print what would be deleted.
    #[arg(long)]
    pub dry_run: bool,
    /// Keep the security group and the key pair; terminate instances only (EC2).
    #[arg(long)]
    pub keep_network: bool,
    /// Seconds a local agent gets to exit after SIGTERM before it is sent SIGKILL (--local).
    #[arg(long, default_value_t = 15, value_parser = clap::value_parser!(u64).range(1..))]
    pub grace: u64,
    /// Seconds to wait for termination and for the security group to be free (EC2).
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..))]
    pub timeout: u64,
    /// Milliseconds between two polls of the instances' state.
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u64).range(1..))]
    pub poll_interval_ms: u64,
}

impl KillArgs {
    /// Refuses, before any API call, to run unconfirmed without a terminal, and EC2-only flags
    /// on the local provider.
    pub fn validate(&self, provider: ProviderKind) -> Result<(), Error> {
        if let Some(cluster) = &self.cluster {
            crate::config::validate_name("--cluster", cluster)?;
            crate::balance::refuse_balancer_cluster("kill", cluster)?;
            if self.keep_network {
                return Err(Error::Usage(
                    "--cluster already keeps the network (security groups, key pair, load \
                     balancers): drop --keep-network"
                        .into(),
                ));
            }
        }
        if provider == ProviderKind::Local && self.keep_network {
            return Err(Error::Usage(
                "--keep-network is for EC2 only: local instances have no security group or key \
                 pair. Drop it"
                    .into(),
            ));
        }
        if !self.yes && !self.dry_run && !std::io::stdin().is_terminal() {
            return Err(Error::Usage(
                "refusing to delete without confirmation: stdin is not a terminal. Pass --yes to \
                 confirm (or --dry-run to only see the plan)"
                    .into(),
            ));
        }
        Ok(())
    }

    /// The kill options these flags give.
    pub(crate) fn options(&self) -> KillOptions {
        KillOptions {
            cluster: self.cluster.clone(),
            dry_run: self.dry_run,
            keep_network: self.keep_network,
            grace: Duration::from_secs(self.grace),
            wait: Poll {
                interval: Duration::from_millis(self.poll_interval_ms),
                timeout: Duration::from_secs(self.timeout),
            },
        }
    }
}

/// Asks on the terminal; anything but `y`/`yes` declines.
fn confirm(question: &str) -> bool {
    eprint!("{question} [y/N] ");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    if std::io::stdin().lock().read_line(&mut answer).is_err() {
        return false;
    }
    matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes")
}

/// Runs `elb kill`.
pub(crate) async fn run(
    cloud: &impl Cloud,
    settings: &Settings,
    args: &KillArgs,
) -> Result<(), Error> {
    let options = args.options();
    let mut plan = cloud.kill_plan(&options).await?;
    let memories = Memories::new(&settings.state);
    let loops: Vec<Memory> = memories
        .all()
        .map_err(|e| Error::Usage(e.to_string()))?
        .into_iter()
        .filter(|m| args.cluster.as_ref().is_none_or(|c| *c == m.cluster))
        .filter(autoscale::loop_runs)
        .collect();
    let mut text = plan.render_text(&settings.project, &cloud.location());
    for m in &loops {
        text.push_str(&format!(
            "\n  stop the autoscaling loop of cluster {} (pid {}) first",
            m.cluster, m.pid
        ));
    }
    match settings.output {
        OutputFormat::Json => {
            println!("{}", plan.to_json());
            eprintln!("{text}");
        }
        OutputFormat::Table | OutputFormat::Csv => println!("{text}"),
    }
    if (plan.is_empty() && loops.is_empty()) || args.dry_run {
        return Ok(());
    }
    if !args.yes && !confirm("delete all of the above?") {
        return Err(Error::Declined);
    }
    let stop_wait = Duration::from_secs(args.timeout);
    let stopped = autoscale::stop_loops(&memories, args.cluster.as_deref(), stop_wait)
        .await
        .map_err(|e| Error::Usage(e.to_string()))?;
    if !stopped.is_empty() {
        for (cluster, pid) in &stopped {
            eprintln!("stopped the autoscaling loop of cluster {cluster} (pid {pid})");
        }
        // A loop may have launched while it was being stopped.
        plan = cloud.kill_plan(&options).await?;
    }
    match &args.cluster {
        Some(cluster) => {
            let drain = Duration::from_secs(args.timeout);
            let quiet = fleet::Quiet;
            fleet::shrink(
                cloud,
                settings,
                cluster,
                plan.instances,
                &options,
                drain,
                &quiet,
            )
            .await?
        }
        None => cloud.kill(&plan, &options).await?,
    }
    match &args.cluster {
        Some(cluster) => eprintln!(
            "done: cluster {cluster} of project {} has no instance left {}",
            settings.project,
            cloud.location()
        ),
        None => eprintln!(
            "done: project {} has nothing left {}{}",
            settings.project,
            cloud.location(),
            if args.keep_network {
                " but its security group and key pair (--keep-network)"
            } else {
                ""
            }
        ),
    }
    Ok(())
}
