//! The `elb` binary: parse, dispatch, map errors to exit codes.

use std::process::ExitCode;

use clap::Parser;
use orchestrator::cli::{self, Cli};
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Without -v only elb's own warnings reach the terminal: the AWS SDK logs every step of its
    // credential chain (the instance-metadata probe with raw responses among them) at WARN, and
    // elb turns what matters of it into one error with the fix.
    let default_level = match cli.global.verbose {
        0 => "orchestrator=warn",
        1 => "orchestrator=info,warn",
        _ => "orchestrator=debug,info",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level)),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(cli::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(1))
        }
    }
}
