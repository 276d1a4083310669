"""Summary of scripts/bench-balancer.sh: medians of the wrk rounds, ratios against HAProxy, and
the goals of DESIGN.md, met or missed.

Input: a tab-separated file of rounds, `name  connections  req/s  p50  p99  requests
cpu-ticks  peak-RSS-KiB` (p50/p99 as wrk prints them, e.g. `812.00us`), and a file of
`name=KiB` idle RSS lines. Every figure is the median of its rounds; CPU per 100k requests is
the median over rounds of the process's utime+stime in the round over its requests.
"""
import argparse
import os
import statistics

from summary import seconds  # wrk's latency strings, parsed as for the agent benchmark

GOAL_VS_HAPROXY = 1.0
GOAL_IDLE_MIB = 16
GOAL_BINARY_MIB = 4
GOAL_RELOAD_MS = 50
GOAL_SCALE_RATIO = 0.9
# With the default checks (2 s interval, 2 passes to be healthy, first check within 100 ms of
# registration), every target is healthy 2.1 s after a reload if each is checked once an interval.
GOAL_ALL_HEALTHY_S = 2.5
TICKS = os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("results")
    parser.add_argument("--idle", required=True, help="file of name=KiB lines")
    parser.add_argument("--binary", required=True)
    parser.add_argument("--load", required=True, help="load average at the end")
    parser.add_argument("--scale", nargs=5, metavar=("TARGETS", "RELOAD_ADD_MS",
                        "RELOAD_SAME_MS", "ALL_HEALTHY_S", "IDLE_KIB"))
    parser.add_argument("--instructions", help="file of `name requests instructions` lines")
    args = parser.parse_args()
    with open(args.idle) as f:
        idle = dict(line.strip().split("=", 1) for line in f if "=" in line)

    rounds: dict[tuple[str, int], list[tuple[float, float, float, float, int]]] = {}
    with open(args.results) as f:
        for line in f:
            name, c, rps, p50, p99, requests, ticks, peak = line.rstrip("\n").split("\t")
            cpu = float(ticks) / TICKS / max(int(requests), 1) * 1e5
            rounds.setdefault((name, int(c)), []).append(
                (float(rps), seconds(p50), seconds(p99), cpu, int(peak)))

    med: dict[tuple[str, int], dict[str, float]] = {}
    print(f"{'server':<14} {'conns':>5} {'rounds':>6} {'req/s':>8} {'min..max':>15} "
          f"{'p50':>9} {'p99':>9} {'CPU s/100k':>10} {'RSS peak':>10}")
    for (name, c), rs in rounds.items():
        rps = sorted(r[0] for r in rs)
        m = med[(name, c)] = {
            "rps": statistics.median(rps),
            "p50": statistics.median(r[1] for r in rs),
            "p99": statistics.median(r[2] for r in rs),
            "cpu": statistics.median(r[3] for r in rs),
            "peak": max(r[4] for r in rs),
        }
        print(f"{name:<14} {c:>5} {len(rs):>6} {m['rps']:>8.0f} {rps[0]:>7.0f}..{rps[-1]:<7.0f} "
              f"{m['p50'] * 1e3:>7.3f}ms {m['p99'] * 1e3:>7.3f}ms {m['cpu']:>10.2f} "
              f"{m['peak'] / 1024:>6.1f} MiB")
    print("RSS idle: " + ", ".join(f"{k} {int(v) / 1024:.1f} MiB" for k, v in idle.items()))

    goals: list[tuple[str, bool]] = []
    print()
    print("against HAProxy (ratios of medians of this run):")
    for name in ("elb-rr", "elb-p2c"):
        for c in (64, 256):
            e, h = med[(name, c)], med[("haproxy", c)]
            ratio = e["rps"] / h["rps"]
            print(f"  {name:<8} c{c:<4} req/s {ratio:5.2f}x   p99 {e['p99'] * 1e3:6.2f} vs "
                  f"{h['p99'] * 1e3:6.2f} ms   CPU/request {e['cpu'] / h['cpu']:5.2f}x")
            goals.append((f"{name} c{c}: req/s {ratio:.2f}x HAProxy (>= {GOAL_VS_HAPROXY})",
                          ratio >= GOAL_VS_HAPROXY))
            goals.append((f"{name} c{c}: p99 {e['p99'] * 1e3:.2f} ms (HAProxy "
                          f"{h['p99'] * 1e3:.2f} ms, no worse)", e["p99"] <= h["p99"]))
    if ("base-rr", 64) in med:
        for c in (1, 64, 256):
            e, b = med[("elb-rr", c)], med[("base-rr", c)]
            print(f"  elb-rr against the baseline binary, c{c}: req/s {e['rps'] / b['rps']:5.2f}x, "
                  f"p99 {e['p99'] * 1e3:.2f} vs {b['p99'] * 1e3:.2f} ms, "
                  f"CPU/request {e['cpu'] / b['cpu']:5.2f}x")
    direct = med[("direct", 1)]["p50"]
    added = {n: med[(n, 1)]["p50"] - direct for n in ("haproxy", "elb-rr", "elb-p2c")}
    print("  added latency at c1 (p50 minus direct's "
          f"{direct * 1e6:.0f} us): " + ", ".join(f"{n} {a * 1e6:.0f} us" for n, a in added.items()))
    for n in ("elb-rr", "elb-p2c"):
        goals.append((f"{n}: idle added latency {added[n] * 1e6:.0f} us (HAProxy "
                      f"{added['haproxy'] * 1e6:.0f} us, no worse)", added[n] <= added["haproxy"]))
    for c in (64, 256):
        d = med[("direct", c)]["rps"]
        print(f"  c{c}: direct (one agent) {d:.0f} req/s; HAProxy "
              f"{med[('haproxy', c)]['rps'] / d:.2f}x of it, elb-rr {med[('elb-rr', c)]['rps'] / d:.2f}x")
    idle_mib = max(int(idle[n]) for n in ("elb-rr", "elb-p2c")) / 1024
    goals.append((f"RSS idle {idle_mib:.1f} MiB (<= {GOAL_IDLE_MIB})", idle_mib <= GOAL_IDLE_MIB))
    size = os.path.getsize(args.binary) / 1048576
    goals.append((f"static binary {size:.2f} MiB (<= {GOAL_BINARY_MIB})", size <= GOAL_BINARY_MIB))

    if args.scale:
        n, add_ms, same_ms, healthy_s, idle_kib = args.scale
        add_ms, same_ms, healthy_s = float(add_ms), float(same_ms), float(healthy_s)
        print()
        print(f"{n} targets in one group: reload 4 -> {n} in {add_ms:.1f} ms, {n} -> {n} in "
              f"{same_ms:.1f} ms; all healthy {healthy_s:.2f} s after the reload; "
              f"RSS idle {int(idle_kib) / 1024:.1f} MiB")
        goals.append((f"reload of {n} targets {max(add_ms, same_ms):.1f} ms (<= {GOAL_RELOAD_MS})",
                      max(add_ms, same_ms) <= GOAL_RELOAD_MS))
        goals.append((f"{n} targets all healthy in {healthy_s:.2f} s (checks of all within one "
                      f"interval: <= {GOAL_ALL_HEALTHY_S})", healthy_s <= GOAL_ALL_HEALTHY_S))
        for c in (64, 256):
            ratio = med[(f"elb-rr-{n}", c)]["rps"] / med[("elb-rr-4", c)]["rps"]
            control = med[(f"haproxy-{n}", c)]["rps"] / med[("haproxy-4", c)]["rps"]
            print(f"  c{c}: req/s with {n} targets {ratio:.2f}x of 4 targets "
                  f"(HAProxy on the same agents: {control:.2f}x)")
            goals.append((f"{n} targets c{c}: req/s {ratio:.2f}x of 4 targets "
                          f"(>= {GOAL_SCALE_RATIO})", ratio >= GOAL_SCALE_RATIO))

    if args.instructions:
        print()
        per = {}
        with open(args.instructions) as f:
            for line in f:
                name, requests, ir = line.split()
                per[name] = int(ir) / max(int(requests), 1)
        print("user-space instructions per request (callgrind): "
              + ", ".join(f"{n} {v:.0f}" for n, v in per.items()))
        ratio = per["elb-rr"] / per["haproxy"]
        print(f"  elb-rr {ratio:.2f}x HAProxy" + (
            f", {per['elb-rr'] / per['base-rr']:.2f}x the baseline binary" if "base-rr" in per else ""))
        goals.append((f"instructions per request {ratio:.2f}x HAProxy's (info: <= 1.0 shows the "
                      "user-space path is not the gap)", ratio <= 1.0))

    print()
    print(f"== summary (load average {args.load}; goals from DESIGN.md)")
    for text, met in goals:
        print(f"  [{'met   ' if met else 'MISSED'}] {text}")
    peak = max(m["peak"] for (name, _), m in med.items() if name.startswith("elb"))
    print(f"  [info  ] elb RSS peak under wrk -c256: {peak / 1024:.1f} MiB "
          "(the 10k-connection goal, <= 64 MiB, is not measured here)")


if __name__ == "__main__":
    main()
