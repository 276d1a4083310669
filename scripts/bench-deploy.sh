#!/usr/bin/env bash
# Deploy benchmark (root; the machine needs sshd, iproute2 and util-linux, as for scripts/test.sh):
# `elb deploy` over SSH to 1 and to 8 test hosts (network namespaces with a real sshd each, see
# tests/system/harness/test_host.rs) in interleaved rounds (BENCH_ROUNDS, default 5). Prints each
# round, the median wall times, the upload throughput, elb's and the whole machine's CPU time, and
# the 8/1 ratio against the goal (<= 1.5). Run it on an idle machine: the test hosts share its
# cores. ELB_STATIC_AGENT=<path> uses an existing static agent instead of building one.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

cargo build --workspace --bins --locked
if [ -z "${ELB_STATIC_AGENT:-}" ]; then
  RUSTFLAGS='-C target-feature=+crt-static' cargo build --profile dist --locked \
    --target x86_64-unknown-linux-gnu -p agent
  export ELB_STATIC_AGENT="$root/target/x86_64-unknown-linux-gnu/dist/elb-agent"
fi
export AWS_EC2_METADATA_DISABLED=true
cargo test --locked -p tests --test system -- --ignored --nocapture --test-threads 1 \
  deploy::bench::bench_deploy_to_1_and_8_hosts
