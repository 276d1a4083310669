#!/usr/bin/env bash
# Deploy benchmark (root; the machine needs sshd, iproute2 and util-linux, as for scripts/test.sh):
# `elb deploy` over SSH to 1 and to 8 test hosts (network namespaces with a real sshd each, see
# tests/system/harness/test_host.rs) in interleaved rounds (BENCH_ROUNDS, default 5). Prints each
# round, the median wall times, the upload throughput and the 8/1 ratio against the goal (<= 1.5).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

cargo build --workspace --bins --locked
RUSTFLAGS='-C target-feature=+crt-static' cargo build --release --locked \
  --target x86_64-unknown-linux-gnu -p agent
export ELB_STATIC_AGENT="${ELB_STATIC_AGENT:-$root/target/x86_64-unknown-linux-gnu/release/elb-agent}"
export AWS_EC2_METADATA_DISABLED=true
cargo test --locked -p tests --test system -- --ignored --nocapture --test-threads 1 \
  deploy::bench::bench_deploy_to_1_and_8_hosts
