#!/usr/bin/env bash
# Benchmark of the `elb bench` load generator (not a test): loads one release elb-agent on
# loopback with wrk and with `elb bench --target`, and prints req/s and p50/p99 of both and the
# ratio against the goal in docs/design.md (elb bench >= 0.8x wrk's req/s against the same agent).
#
# Same method as scripts/bench-agent.sh: the agent runs pinned to one core and the load
# generator (wrk or elb) to the other, the two generators run in interleaved rounds, and each
# figure is the median of its rounds. Both keep BENCH_CONNECTIONS connections with one request
# in flight each, on GET /cluster1. wrk runs for a duration and elb sends a request count:
# BENCH_REQUESTS is chosen to last several seconds, like wrk's BENCH_DURATION.
#
# Knobs (environment): BENCH_DURATION (5s a wrk round), BENCH_REQUESTS (500000 an elb round),
# BENCH_ROUNDS (5), BENCH_CONNECTIONS (50). Runs as root on Debian (installs wrk with apt-get
# when missing). Loopback only. About 2 minutes after the build.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
duration=${BENCH_DURATION:-5s}
requests=${BENCH_REQUESTS:-500000}
rounds=${BENCH_ROUNDS:-5}
connections=${BENCH_CONNECTIONS:-50}
# shellcheck source=scripts/bench/common.sh
source "$root/scripts/bench/common.sh" "agent on cpu 0, load generator on cpu 1"

echo "== building the static agent (dist profile) and the release elb"
RUSTFLAGS='-C target-feature=+crt-static' cargo build --profile dist --target "$triple" -p agent --bins
cargo build --release -p orchestrator --bin elb
agent_bin="$target_dir/$triple/dist/elb-agent"
elb_bin="$target_dir/release/elb"

"${server_cpu[@]}" "$agent_bin" --listen 127.0.0.1:0 --cluster cluster1 \
  --instance-id i-0bench >"$work/agent.out" 2>"$work/agent.err" &
pids+=("$!")
addr=
for _ in $(seq 100); do
  addr=$(sed -n 's/^listening on //p' "$work/agent.out")
  [ -n "$addr" ] && break
  sleep 0.1
done
[ -n "$addr" ] || { echo "the agent did not start:" >&2; cat "$work/agent.err" >&2; exit 1; }

# Each round appends `generator  req/s  p50-seconds  p99-seconds` to $work/results.
wrk_round() {
  local out="$work/wrk.txt"
  "${load_cpu[@]}" wrk -t1 -c"$connections" -d"$duration" --latency "http://$addr/cluster1" >"$out"
  if grep -q 'Non-2xx' "$out"; then echo "wrk: non-2xx answers!" >&2; cat "$out" >&2; exit 1; fi
  python3 - "$out" >>"$work/results" <<'PY'
import sys
text = open(sys.argv[1]).read().split("\n")
def seconds(v):
    for unit, scale in (("us", 1e-6), ("ms", 1e-3), ("s", 1.0)):
        if v.endswith(unit):
            return float(v[: -len(unit)]) * scale
    raise ValueError(v)
rps = next(l.split()[1] for l in text if l.startswith("Requests/sec:"))
pct = {l.split()[0]: seconds(l.split()[1]) for l in text if l.strip().startswith(("50%", "99%"))}
print(f"wrk\t{rps}\t{pct['50%']}\t{pct['99%']}")
PY
  printf '.'
}

elb_round() {
  local out="$work/elb-out"
  rm -rf "$out"
  "${load_cpu[@]}" "$elb_bin" --output json bench --target "http://$addr" --no-fleet \
    --cluster cluster1 --requests "$requests" --concurrency "$connections" --out "$out" \
    >"$work/elb.json" 2>"$work/elb.err" || { cat "$work/elb.err" >&2; exit 1; }
  python3 - "$work/elb.json" >>"$work/results" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))["clusters"][0]
if c["errors"]:
    sys.exit(f"elb bench: {c['errors']} errors: {c['error_reasons']} {c['statuses']}")
l = c["latency_ms"]
print(f"elb bench\t{c['requests_per_sec']}\t{l['p50'] / 1e3}\t{l['p99'] / 1e3}")
PY
  printf '.'
}

echo "== GET http://$addr/cluster1, $connections connections, $pinning"
echo "   wrk -t1 -d$duration rounds vs elb bench --requests $requests rounds"
printf '   %s interleaved rounds of each ' "$rounds"
for _ in $(seq "$rounds"); do
  wrk_round
  elb_round
done
echo

python3 - "$work/results" <<'PY'
import statistics, sys
GOAL = 0.8
rounds = {}
for line in open(sys.argv[1]):
    name, rps, p50, p99 = line.rstrip("\n").split("\t")
    rounds.setdefault(name, []).append((float(rps), float(p50), float(p99)))
median = {}
print(f"{'generator':<10} {'rounds':>6} {'req/s (median)':>15} {'min..max':>19} {'p50':>9} {'p99':>9}")
for name, rs in rounds.items():
    rps = sorted(r[0] for r in rs)
    median[name] = statistics.median(rps)
    p50 = statistics.median(r[1] for r in rs)
    p99 = statistics.median(r[2] for r in rs)
    print(f"{name:<10} {len(rs):>6} {median[name]:>15.0f} {rps[0]:>9.0f}..{rps[-1]:<9.0f} "
          f"{p50 * 1e3:>7.3f}ms {p99 * 1e3:>7.3f}ms")
ratio = median["elb bench"] / median["wrk"]
print(f"\nelb bench / wrk = {ratio:.2f}x (goal >= {GOAL}): {'met' if ratio >= GOAL else 'NOT met'}")
PY
