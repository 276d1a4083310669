#!/usr/bin/env bash
# Benchmark of elb-agent (not a test): builds the static agent (dist profile) and a bare hyper server,
# recreates the seed FastAPI app in a venv, loads each on loopback with wrk and prints req/s,
# p50/p99 latency, RSS idle and under load, the binary size, and the ratios against the goals in
# docs/design.md (>= 40x seed, >= 0.9x bare hyper, RSS <= 8 MiB idle / 16 MiB loaded, <= 3 MiB).
#
# This machine is small and noisy, so the figures are made to be compared, not admired: every
# server runs pinned to one core and wrk to another (on a machine with at least 2 cores), the
# agent, the bare hyper reference and the seed are loaded in interleaved rounds, and each figure
# is the median of its rounds. Ratios come from medians taken in the same invocation.
#
# Knobs (environment): BENCH_DURATION (5s a round), BENCH_ROUNDS (5), BENCH_CONNECTIONS (64),
# BENCH_THREADS (1). Runs as root on Debian (installs wrk with apt-get when missing). Loopback
# only. About 3 minutes.
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

# load NAME PID URL: one wrk round; appends name, req/s, p50, p99 and the peak RSS seen to results.
load() {
  local name=$1 pid=$2 url=$3 peak=0 out="$work/wrk.txt"
  "${load_cpu[@]}" wrk -t"$threads" -c"$connections" -d"$duration" --latency "$url" >"$out" &
  local wrk_pid=$!
  while kill -0 "$wrk_pid" 2>/dev/null; do
    local now; now=$(rss_kib "$pid"); [ "$now" -gt "$peak" ] && peak=$now
    sleep 0.25
  done
  wait "$wrk_pid"
  if grep -q 'Non-2xx' "$out"; then echo "$name: non-2xx answers!" >&2; cat "$out" >&2; exit 1; fi
  printf '%s\t%s\t%s\t%s\t%s\n' "$name" \
    "$(awk '/^Requests\/sec:/ {print $2}' "$out")" \
    "$(awk '$1 == "50%" {print $2}' "$out")" "$(awk '$1 == "99%" {print $2}' "$out")" \
    "$peak" >>"$work/results"
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
