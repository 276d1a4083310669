# shellcheck shell=bash disable=SC2034  # sourced: the variables are for the including script
# Shared set-up of the wrk-based benchmarks (sourced by bench-agent.sh and bench-loadgen.sh):
# `$1` describes what runs on cpu 0 and cpu 1 when the machine has two cores. Defines
#   server_cpu / load_cpu  taskset prefixes (empty on one core), and `pinning` saying which;
#   target_dir, triple     where cargo puts the builds;
#   work, pids             a scratch directory and the background pids, both cleaned up on exit;
# and installs wrk from Debian's packages when it is missing.
if [ "$(nproc)" -ge 2 ]; then
  server_cpu=(taskset -c 0) load_cpu=(taskset -c 1) pinning=$1
else
  server_cpu=() load_cpu=() pinning="unpinned (one core)"
fi
target_dir=${CARGO_TARGET_DIR:-$root/target}
triple=x86_64-unknown-linux-gnu
work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

if ! command -v wrk >/dev/null; then
  echo "== installing wrk"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq --no-install-recommends wrk
fi
