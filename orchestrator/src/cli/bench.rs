//! `elb bench`: the load experiment, cluster by cluster.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use crate::bench::loadgen::Load;
use crate::bench::{self, Plan};
use crate::cli::GlobalArgs;
use crate::cloud;
use crate::config::Settings;
use crate::http::Endpoint;
use crate::output::OutputFormat;
use crate::stats::Agent;
use crate::Error;

/// Flags of `elb bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Requests sent to each cluster.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=100_000_000))]
    pub requests: u64,
    /// Connections per cluster, each with one request in flight.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub concurrency: u64,
    /// Clusters to load, comma-separated (default: every cluster of the project).
    #[arg(long, value_delimiter = ',')]
    pub cluster: Vec<String>,
    /// Send every request to this URL (`http://host:port`, e.g. a load balancer) instead of
    /// to the instances; the path `/<cluster>` is appended.
    #[arg(long, value_name = "URL")]
    pub target: Option<String>,
    /// With --target: do not look up the project's instances (no cloud call, no agent
    /// snapshots), e.g. to load a single agent.
    #[arg(long, requires = "target")]
    pub no_fleet: bool,
    /// Directory for results.json, results.csv and the plots (default:
    /// ./elb-bench-<UTC time>).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Longest wait for one answer; slower requests count as errors.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub timeout_ms: u64,
}

/// Runs `elb bench`.
pub async fn run(global: &GlobalArgs, args: &BenchArgs) -> Result<(), Error> {
    for cluster in &args.cluster {
        super::validate_name("--cluster", cluster)?;
    }
    if args.no_fleet && args.cluster.is_empty() {
        return Err(Error::Usage(
            "--no-fleet needs --cluster <name>[,<name>...]: without the fleet, elb cannot know \
             which clusters exist"
                .into(),
        ));
    }
    let target = match &args.target {
        Some(url) => Some((url.clone(), Endpoint::from_url(url).await?)),
        None => None,
    };
    let (output, agents) = if args.no_fleet {
        (global.output, Vec::new())
    } else {
        let settings = Settings::load(global).await?;
        let instances = cloud::fleet(&settings, None).await?;
        let agents = instances.iter().map(Agent::of).filter(Agent::running);
        (settings.output, agents.collect())
    };
    let template = Load {
        endpoints: Vec::new(),
        path: String::new(),
        requests: args.requests,
        concurrency: args.concurrency as usize,
        timeout: Duration::from_millis(args.timeout_ms),
    };
    let plan = Plan::new(&agents, &args.cluster, target, &template)?;
    let results = plan.run().await;

    let dir = args.out.clone().unwrap_or_else(|| {
        PathBuf::from(format!(
            "elb-bench-{}",
            utc_stamp(results.started_at_unix_ms / 1000)
        ))
    });
    let written = bench::write(&results, &dir)?;
    match output {
        OutputFormat::Table => {
            for cluster in &results.clusters {
                println!("{}\n", cluster.table());
            }
        }
        OutputFormat::Json => println!("{}", results.json()),
        OutputFormat::Csv => print!("{}", results.csv()),
    }
    eprintln!("wrote {} files to {}", written.len(), dir.display());
    for cluster in &results.clusters {
        if cluster
            .agents_counted
            .is_some_and(|n| n != cluster.requests)
        {
            eprintln!(
                "warning: {}: the agents counted {} requests to {}, {} were sent (see the table)",
                cluster.cluster,
                cluster.agents_counted.unwrap_or(0),
                cluster.path,
                cluster.requests
            );
        }
    }
    Ok(())
}

/// `YYYYmmddTHHMMSSZ` for seconds since the epoch (UTC, proleptic Gregorian calendar).
pub(crate) fn utc_stamp(unix_secs: u64) -> String {
    let (days, secs) = ((unix_secs / 86_400) as i64, unix_secs % 86_400);
    // Howard Hinnant's days-to-civil algorithm.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}{month:02}{day:02}T{:02}{:02}{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_directory_name_is_the_utc_time() {
        assert_eq!(utc_stamp(0), "19700101T000000Z");
        assert_eq!(utc_stamp(1_764_080_519), "20251125T142159Z");
        assert_eq!(utc_stamp(951_782_400), "20000229T000000Z");
    }
}
