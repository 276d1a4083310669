#!/usr/bin/env bash
# Benchmark of elb-agent (not a test): builds the static agent (dist profile) and a bare hyper server,
# recreates the seed FastAPI app in a venv, loads each on loopback with wrk and prints req/s,
# p50/p99 latency, the server's CPU time per request, RSS idle and under load, the binary size,
# and the ratios against the goals in docs/design.md (>= 40x seed, >= 0.9x bare hyper, RSS <= 8
# MiB idle / 16 MiB loaded, <= 3 MiB). Against bare hyper it gives two ratios: of req/s, and of
# capacity (bare hyper's CPU per request over the agent's), which other work on the machine
# moves far less.
#
# This machine is small and noisy, so the figures are made to be compared, not admired: every
# server runs pinned to one core and wrk to another (on a machine with at least 2 cores), the
# agent, the bare hyper reference and the seed are loaded in interleaved rounds, and each figure
# is the median of its rounds. Ratios come from medians taken in the same invocation.
#
# With valgrind installed it also counts, under callgrind, the user-space instructions and heap
# allocations per request of the agent and of bare hyper (BENCH_CALLGRIND=0 skips it): unlike
# req/s, those counts do not move with the other load on the machine. They need the symbols, so
# both are built once more, unstripped, in target/symbols (a few minutes the first time).
#
# Knobs (environment): BENCH_DURATION (5s a round), BENCH_ROUNDS (5), BENCH_CONNECTIONS (64),
# BENCH_THREADS (1), BENCH_CALLGRIND (1). Runs as root on Debian (installs wrk with apt-get when
# missing). Loopback only. About 4 minutes (a few more the first time, for the copies with
# symbols).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
duration=${BENCH_DURATION:-5s}
rounds=${BENCH_ROUNDS:-5}
connections=${BENCH_CONNECTIONS:-64}
threads=${BENCH_THREADS:-1}
# shellcheck source=scripts/bench/common.sh
source "$root/scripts/bench/common.sh" "servers on cpu 0, wrk on cpu 1"

venv="$target_dir/bench-venv"
if [ ! -x "$venv/bin/uvicorn" ]; then
  echo "== creating $venv with fastapi and uvicorn"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check fastapi uvicorn
fi

echo "== building the static agent (dist profile) and the bare hyper reference (same flags)"
RUSTFLAGS='-C target-feature=+crt-static' cargo build --profile dist --target "$triple" \
  -p agent --bins --example bare_hyper
agent_bin="$target_dir/$triple/dist/elb-agent"
bare_bin="$target_dir/$triple/dist/examples/bare_hyper"

# start NAME COMMAND...: runs a server printing `listening on <addr>`, sets $addr and $pid.
start() {
  local name=$1; shift
  "$@" >"$work/$name.out" 2>"$work/$name.err" &
  pid=$!
  pids+=("$pid")
  for _ in $(seq 100); do
    addr=$(sed -n 's/^listening on //p' "$work/$name.out")
    [ -n "$addr" ] && return 0
    sleep 0.1
  done
  echo "$name did not start:" >&2; cat "$work/$name.err" >&2; exit 1
}

rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }

# cpu_ticks PID: user + system CPU time of PID so far, in clock ticks.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
ticks_per_second=$(getconf CLK_TCK)

# load NAME PID URL: one wrk round; appends name, req/s, p50, p99, the peak RSS seen and the
# server's CPU time (user + system) per request, in microseconds, to results.
load() {
  local name=$1 pid=$2 url=$3 peak=0 out="$work/wrk.txt" cpu_before
  cpu_before=$(cpu_ticks "$pid")
  "${load_cpu[@]}" wrk -t"$threads" -c"$connections" -d"$duration" --latency "$url" >"$out" &
  local wrk_pid=$!
  while kill -0 "$wrk_pid" 2>/dev/null; do
    local now; now=$(rss_kib "$pid"); [ "$now" -gt "$peak" ] && peak=$now
    sleep 0.25
  done
  wait "$wrk_pid"
  local cpu_ticks_used=$(( $(cpu_ticks "$pid") - cpu_before ))
  # A server still answering what wrk left queued (the seed takes seconds) would share cpu 0
  # with the next round's server: wait until it is idle.
  local settled=0
  for _ in $(seq 50); do
    cpu_before=$(cpu_ticks "$pid"); sleep 0.2
    if [ "$(cpu_ticks "$pid")" = "$cpu_before" ]; then settled=1; break; fi
  done
  [ "$settled" = 1 ] || echo "$name: still busy 10 s after its round" >&2
  if grep -q 'Non-2xx' "$out"; then echo "$name: non-2xx answers!" >&2; cat "$out" >&2; exit 1; fi
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$name" \
    "$(awk '/^Requests\/sec:/ {print $2}' "$out")" \
    "$(awk '$1 == "50%" {print $2}' "$out")" "$(awk '$1 == "99%" {print $2}' "$out")" \
    "$peak" "$(awk -v t="$cpu_ticks_used" -v hz="$ticks_per_second" \
      '/requests in/ {printf "%.3f", t / hz * 1e6 / $1}' "$out")" >>"$work/results"
  printf '.'
}

start agent "${server_cpu[@]}" "$agent_bin" --listen 127.0.0.1:0 --cluster cluster1
agent_addr=$addr agent_pid=$pid
body_bytes=$(curl -s "http://$agent_addr/" | wc -c)
start bare "${server_cpu[@]}" "$bare_bin" 127.0.0.1:0 "$body_bytes"
bare_addr=$addr bare_pid=$pid
seed_port=$("$venv/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
# As the seed ran it: one worker, default logging (access log on) to a file, like its nohup.
"${server_cpu[@]}" "$venv/bin/uvicorn" seed_app:app --app-dir "$root/scripts/bench" --host 127.0.0.1 \
  --port "$seed_port" >"$work/seed.out" 2>&1 &
seed_pid=$!; pids+=("$seed_pid")
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$seed_port/" >/dev/null && break; sleep 0.1; done

sleep 1.5  # let the agent take a couple of samples before measuring idle RSS
agent_idle=$(rss_kib "$agent_pid") bare_idle=$(rss_kib "$bare_pid") seed_idle=$(rss_kib "$seed_pid")
echo "== wrk -t$threads -c$connections -d$duration --latency, loopback, $pinning"
echo "   agent / body: $body_bytes bytes; bare hyper answers the same number of bytes"
printf '   %s interleaved rounds of every server ' "$rounds"
for _ in $(seq "$rounds"); do
  load "agent /" "$agent_pid" "http://$agent_addr/"
  load "agent /cluster1" "$agent_pid" "http://$agent_addr/cluster1"
  load "bare-hyper" "$bare_pid" "http://$bare_addr/"
  load "seed-fastapi /" "$seed_pid" "http://127.0.0.1:$seed_port/"
  load "seed-fastapi /cluster1" "$seed_pid" "http://127.0.0.1:$seed_port/cluster1"
done
echo

python3 "$root/scripts/bench/summary.py" "$work/results" \
  --idle-kib "agent=$agent_idle" "bare-hyper=$bare_idle" "seed-fastapi=$seed_idle" \
  --binary "$agent_bin"

if [ "${BENCH_CALLGRIND:-1}" = 1 ] && command -v valgrind >/dev/null; then
  echo "== per request under valgrind --tool=callgrind, GET /cluster1 with wrk -t1 -c8 -d10s (after 2 s of warm-up)"
  RUSTFLAGS='-C target-feature=+crt-static' CARGO_TARGET_DIR="$target_dir/symbols" cargo build -q \
    --profile dist --target "$triple" -p agent --bins --example bare_hyper \
    --config 'profile.dist.strip=false' --config 'profile.dist.package.agent.strip=false'
  symbols="$target_dir/symbols/$triple/dist"
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  callgrind_per_request agent "$port" "$symbols/elb-agent" --listen "127.0.0.1:$port" --cluster cluster1 >"$work/cg"
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  callgrind_per_request bare-hyper "$port" "$symbols/examples/bare_hyper" "127.0.0.1:$port" "$body_bytes" >>"$work/cg"
  awk '{ins[$1] = $2; alloc[$1] = $3}
    END {
      printf "%-12s %14s %12s\n", "server", "instructions", "allocations"
      for (s in ins) printf "%-12s %14d %12.2f\n", s, ins[s], alloc[s]
      printf "agent / bare hyper: %.2fx the instructions, %.2fx the allocations\n",
        ins["agent"] / ins["bare-hyper"], alloc["agent"] / alloc["bare-hyper"]
    }' "$work/cg"
fi
