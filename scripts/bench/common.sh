# shellcheck shell=bash disable=SC2034  # sourced: the variables are for the including script
# Shared set-up of the wrk-based benchmarks (sourced by bench-agent.sh and bench-loadgen.sh):
# `$1` describes what runs on cpu 0 and cpu 1 when the machine has two cores. Defines
#   server_cpu / load_cpu  taskset prefixes (empty on one core), and `pinning` saying which;
#   target_dir, triple     where cargo puts the builds;
#   work, pids             a scratch directory and the background pids, both cleaned up on exit;
#   callgrind_per_request  counts a server's instructions and allocations per request;
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

# callgrind_per_request NAME PORT COMMAND...: runs COMMAND (serving GET /cluster1 on
# 127.0.0.1:PORT) under valgrind's callgrind on the server cpu, warms it with 2 s of wrk -t1
# -c8, counts 10 s more,
# and prints `NAME instructions allocations`, both per request (allocations need the binary's
# symbols). Loopback only.
callgrind_per_request() {
  local name=$1 port=$2; shift 2
  "${server_cpu[@]}" valgrind --tool=callgrind --instr-atstart=no \
    --callgrind-out-file="$work/cg-$name" "$@" >"$work/cg-$name.out" 2>"$work/cg-$name.err" &
  local vpid=$!; pids+=("$vpid")
  for _ in $(seq 300); do curl -sf "http://127.0.0.1:$port/cluster1" >/dev/null && break; sleep 0.1; done
  "${load_cpu[@]}" wrk -t1 -c8 -d2s "http://127.0.0.1:$port/cluster1" >/dev/null
  callgrind_control -i on "$vpid" >/dev/null 2>&1
  "${load_cpu[@]}" wrk -t1 -c8 -d10s "http://127.0.0.1:$port/cluster1" >"$work/cg-wrk.txt"
  callgrind_control -i off "$vpid" >/dev/null 2>&1
  callgrind_control -d "$vpid" >/dev/null 2>&1
  kill "$vpid"; wait "$vpid" 2>/dev/null || true
  echo "$name $(python3 "$root/scripts/bench/callgrind_counts.py" \
    "$(awk '/requests in/ {print $1}' "$work/cg-wrk.txt")" "$work/cg-$name"*)"
}
