//! `elb report --cloudwatch DIR`: AWS's own measurements of a bench run, from CloudWatch.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use crate::cloudwatch::report::{self, Alb, RunWindow};
use crate::config::{Provider, Settings};
use crate::output::OutputFormat;
use crate::Error;

/// Flags of `elb report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// A bench's directory (its `results.json`): adds what CloudWatch measured during that run
    /// (each instance's CPUUtilization beside the agent's, CPU credits, the ALB's requests,
    /// 5XX and response times), written to DIR/cloudwatch.json and under `cloudwatch` in
    /// DIR/results.json. EC2 only.
    #[arg(long, value_name = "DIR")]
    pub cloudwatch: PathBuf,
    /// Wait up to this long for CloudWatch to publish the run's last datapoints (a minute or
    /// more after the run; every 5 minutes without detailed monitoring). 0: ask once.
    #[arg(long, default_value = "10m", value_parser = super::values::parse_duration)]
    pub wait: Duration,
    /// While waiting, ask again this often.
    #[arg(long, default_value = "20s", value_parser = super::values::parse_duration)]
    pub poll: Duration,
}

/// Runs `elb report`.
pub(crate) async fn run(settings: &Settings, args: &ReportArgs) -> Result<(), Error> {
    let results = args.cloudwatch.join("results.json");
    let text = std::fs::read_to_string(&results).map_err(|e| {
        Error::Usage(format!(
            "--cloudwatch {}: cannot read {}: {e}; give the directory `elb bench` wrote \
             (--out)",
            args.cloudwatch.display(),
            results.display()
        ))
    })?;
    let window = RunWindow::parse(&text)
        .map_err(|why| Error::Usage(format!("{}: {why}", results.display())))?;
    let Provider::Ec2 { region, aws } = &settings.provider else {
        return Err(Error::Usage(
            "CloudWatch measures EC2 instances: a --local run has no AWS figures; drop --local \
             (and ELB_PROVIDER=local) for a run on EC2"
                .into(),
        ));
    };
    if window.instances.is_empty() {
        return Err(Error::Usage(format!(
            "{}: no EC2 instance served that run (no `i-...` ids): nothing to ask CloudWatch",
            results.display()
        )));
    }
    let ec2 = crate::cloud::ec2::Ec2::new(aws, region, settings);
    let alb = match window.target {
        Some(_) => {
            let inventory = ec2.load_balancing().inventory().await?;
            Alb::of_run(&window, &inventory.load_balancers, &inventory.target_groups)
        }
        None => None,
    };
    eprintln!(
        "CloudWatch publishes EC2's figures a minute or more after the fact: waiting up to {:?} \
         for the run's last datapoints",
        args.wait
    );
    let made = report::report(&ec2, &window, alb.as_ref(), args.wait, args.poll).await?;
    let json = serde_json::to_string_pretty(&made).expect("plain data");
    let path = args.cloudwatch.join("cloudwatch.json");
    crate::state::write_atomic(&path, json.as_bytes(), 0o644)?;
    // The run's own file carries AWS's view too, under `cloudwatch` (replaced by a later
    // report of the same run).
    let mut merged: serde_json::Value =
        serde_json::from_str(&text).expect("results.json parsed above");
    if let Some(fields) = merged.as_object_mut() {
        fields.insert(
            "cloudwatch".into(),
            serde_json::to_value(&made).expect("plain data"),
        );
        let merged = serde_json::to_string_pretty(&merged).expect("plain data");
        crate::state::write_atomic(&results, merged.as_bytes(), 0o644)?;
    }
    match settings.output {
        OutputFormat::Json => println!("{json}"),
        OutputFormat::Table | OutputFormat::Csv => println!("{}", made.table()),
    }
    eprintln!(
        "wrote {} (and `cloudwatch` in {})",
        path.display(),
        results.display()
    );
    Ok(())
}
