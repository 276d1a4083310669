//! Locating the workspace binaries that the tests run as real processes.

use std::path::PathBuf;

/// Path of a binary built by `cargo build --workspace` in the same profile as this test binary.
///
/// The test executable lives in `target/<profile>/deps/`, the binaries one level up. Panics
/// with the command to run when the binary is missing, so a missing build is never a silent skip.
pub fn bin_path(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary knows its own path");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("test binary sits in target/<profile>/deps");
    let path = profile_dir.join(name);
    assert!(
        path.is_file(),
        "{} is missing: run `cargo build --workspace --bins` (scripts/test.sh does) before the tests",
        path.display()
    );
    path
}

/// The static (dist profile) build of `name`: `$<env>`, else the workspace's dist target path
/// (`scripts/test.sh` builds the agent and the balancer there in one cargo run).
fn static_build(env: &str, name: &str) -> PathBuf {
    std::env::var_os(env).map_or_else(
        || {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../target/x86_64-unknown-linux-gnu/dist")
                .join(name)
        },
        PathBuf::from,
    )
}

/// The static release agent: `$ELB_STATIC_AGENT`, else the workspace's dist target path.
pub fn static_agent() -> PathBuf {
    static_build("ELB_STATIC_AGENT", "elb-agent")
}

/// The static release balancer: `$ELB_STATIC_BALANCER`, else the workspace's release target
/// path.
pub fn static_balancer() -> PathBuf {
    static_build("ELB_STATIC_BALANCER", "elb-balancer")
}
