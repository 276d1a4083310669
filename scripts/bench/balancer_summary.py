"""Summary of scripts/bench-balancer.sh: medians of the wrk rounds, ratios against HAProxy and
nginx, the burst, and the goals (docs/balancer.md), met or missed.

Input: a tab-separated file of rounds, `name  connections  req/s  p50  p99  requests
cpu-ticks  peak-RSS-KiB` (p50/p99 as wrk prints them, e.g. `812.00us`), and a file of
`name=KiB` idle RSS lines. Every figure is the median of its rounds; CPU per 100k requests is
the median over rounds of the process's utime+stime in the round over its requests.
"""
import argparse
import json
import os
import statistics

from summary import seconds  # wrk's latency strings, parsed as for the agent benchmark

# req/s against the faster of HAProxy and nginx, by wrk connections.
GOAL_VS_PEERS = {64: 1.05, 256: 1.05, 1024: 1.0}
PEERS = ("haproxy", "nginx")
GOAL_BURST_OPEN_MIB = 64
GOAL_BURST_AFTER_MIB = 32
GOAL_IDLE_MIB = 16
GOAL_BINARY_MIB = 6
# HTTPS against HAProxy's OpenSSL: keep-alive req/s, new handshakes per second, HTTP/2 req/s.
GOAL_HTTPS_VS_HAPROXY = 1.0
GOAL_HANDSHAKES_VS_HAPROXY = 0.9
GOAL_H2_VS_HAPROXY = 1.0
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
    parser.add_argument("--instructions",
                        help="file of `name instructions allocations` lines, per request")
    parser.add_argument("--burst", help="file of `name answers idle open after seconds` lines")
    parser.add_argument("--h2", help="file of `name req/s` lines, one per h2load round")
    parser.add_argument("--access-log", help="file of `requests= lines= written= dropped= "
                        "bytes=` of the access-logging balancer")
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
    print("against HAProxy and nginx (ratios of medians of this run):")
    levels = sorted({c for (n, c) in med if c > 1 and n == "direct"})
    for name in ("elb-rr", "elb-p2c"):
        for c in levels:
            e = med[(name, c)]
            peers = {p: med[(p, c)] for p in PEERS}
            ratios = {p: e["rps"] / m["rps"] for p, m in peers.items()}
            print(f"  {name:<8} c{c:<5} req/s " + ", ".join(
                f"{r:4.2f}x {p}" for p, r in ratios.items())
                + f"   p99 {e['p99'] * 1e3:6.2f} ms (" + ", ".join(
                f"{p} {m['p99'] * 1e3:.2f}" for p, m in peers.items())
                + ")   CPU/request " + ", ".join(
                f"{e['cpu'] / m['cpu']:4.2f}x {p}" for p, m in peers.items()))
            fastest = max(PEERS, key=lambda p: peers[p]["rps"])
            goal = GOAL_VS_PEERS.get(c)
            if goal is not None:
                goals.append((f"{name} c{c}: req/s {ratios[fastest]:.2f}x the faster peer "
                              f"({fastest}) (>= {goal})", ratios[fastest] >= goal))
            best = min(PEERS, key=lambda p: peers[p]["p99"])
            goals.append((f"{name} c{c}: p99 {e['p99'] * 1e3:.2f} ms ({best} "
                          f"{peers[best]['p99'] * 1e3:.2f} ms, no worse)",
                          e["p99"] <= peers[best]["p99"]))
            lean = min(PEERS, key=lambda p: peers[p]["cpu"])
            goals.append((f"{name} c{c}: CPU per request {e['cpu'] / peers[lean]['cpu']:.2f}x "
                          f"{lean}'s (<= 1.0)", e["cpu"] <= peers[lean]["cpu"]))
    measured = sorted({c for (n, c) in med if n == "base-rr"})
    if measured:
        for c in measured:
            e, b = med[("elb-rr", c)], med[("base-rr", c)]
            print(f"  elb-rr against the baseline binary, c{c}: req/s {e['rps'] / b['rps']:5.2f}x, "
                  f"p99 {e['p99'] * 1e3:.2f} vs {b['p99'] * 1e3:.2f} ms, "
                  f"CPU/request {e['cpu'] / b['cpu']:5.2f}x")
    for c in sorted({c for (n, c) in med if n == "elb-log"}):
        e, b = med[("elb-log", c)], med[("elb-rr", c)]
        print(f"  elb-rr with the access log against without, c{c}: req/s "
              f"{e['rps'] / b['rps']:5.2f}x, p99 {e['p99'] * 1e3:.2f} vs {b['p99'] * 1e3:.2f} ms, "
              f"CPU/request {e['cpu'] / b['cpu']:5.2f}x")
    if args.access_log:
        with open(args.access_log) as f:
            counts = dict(kv.split("=") for kv in f.read().split())
        print(f"  access log: {counts['lines']} lines for {counts['requests']} requests "
              f"({counts['dropped']} dropped, {int(counts['bytes']) / int(counts['lines'] or 1):.0f} "
              "bytes a line)")
        goals.append((f"access log: a line per request ({counts['lines']} of "
                      f"{counts['requests']}, {counts['dropped']} dropped)",
                      counts["lines"] == counts["requests"] and counts["dropped"] == "0"))
    # The idle added latency needs the c1 level (BENCH_CONNECTIONS may leave it out).
    if ("direct", 1) in med:
        direct = med[("direct", 1)]["p50"]
        added = {n: med[(n, 1)]["p50"] - direct for n in PEERS + ("elb-rr", "elb-p2c")}
        print("  added latency at c1 (p50 minus direct's "
              f"{direct * 1e6:.0f} us): "
              + ", ".join(f"{n} {a * 1e6:.0f} us" for n, a in added.items()))
        least = min(added[p] for p in PEERS)
        for n in ("elb-rr", "elb-p2c"):
            goals.append((f"{n}: idle added latency {added[n] * 1e6:.0f} us (peers " + ", ".join(
                f"{p} {added[p] * 1e6:.0f}" for p in PEERS) + " us, no worse than either)",
                added[n] <= least))
    for c in levels:
        d = med[("direct", c)]["rps"]
        print(f"  c{c}: direct (one agent) {d:.0f} req/s; " + ", ".join(
            f"{n} {med[(n, c)]['rps'] / d:.2f}x of it" for n in PEERS + ("elb-rr",)))
    idle_mib = max(int(idle[n]) for n in ("elb-rr", "elb-p2c")) / 1024
    goals.append((f"RSS idle {idle_mib:.1f} MiB (<= {GOAL_IDLE_MIB})", idle_mib <= GOAL_IDLE_MIB))
    size = os.path.getsize(args.binary) / 1048576
    goals.append((f"static binary {size:.2f} MiB (<= {GOAL_BINARY_MIB})", size <= GOAL_BINARY_MIB))

    if ("elb-https", 64) in med:
        print()
        print("HTTPS, the same certificate (ECDSA P-256) through both, c64:")
        for kind, goal in (("https", GOAL_HTTPS_VS_HAPROXY),
                           ("handshakes", GOAL_HANDSHAKES_VS_HAPROXY)):
            e, h = med[(f"elb-{kind}", 64)], med[(f"haproxy-{kind}", 64)]
            ratio = e["rps"] / h["rps"]
            what = "keep-alive req/s" if kind == "https" else "new handshakes/s"
            print(f"  {what:<16} elb {e['rps']:7.0f}, HAProxy {h['rps']:7.0f}: {ratio:.2f}x; "
                  f"p99 {e['p99'] * 1e3:.2f} vs {h['p99'] * 1e3:.2f} ms; CPU/request "
                  f"{e['cpu'] / h['cpu']:.2f}x")
            goals.append((f"HTTPS {what}: {ratio:.2f}x HAProxy's (>= {goal})", ratio >= goal))
            if kind == "https":
                goals.append((f"HTTPS p99 {e['p99'] * 1e3:.2f} ms (HAProxy "
                              f"{h['p99'] * 1e3:.2f} ms, no worse)", e["p99"] <= h["p99"]))
    if args.h2:
        h2: dict[str, list[float]] = {}
        with open(args.h2) as f:
            for line in f:
                name, rps = line.split()
                h2.setdefault(name, []).append(float(rps))
        e, h = statistics.median(h2["elb-h2"]), statistics.median(h2["haproxy-h2"])
        print(f"  HTTP/2 (h2load -c4 -m32) req/s elb {e:.0f}, HAProxy {h:.0f}: {e / h:.2f}x")
        goals.append((f"HTTP/2 req/s {e / h:.2f}x HAProxy's (>= {GOAL_H2_VS_HAPROXY})",
                      e / h >= GOAL_H2_VS_HAPROXY))

    if args.burst:
        print()
        print("the burst (clients that each open a connection and send one GET at once, "
              "connections kept open):")
        print(f"  {'run':<9} {'clients':>7} {'answered 200':>12} {'failed':>6} {'seconds':>7} "
              f"{'RSS idle':>9} {'RSS open':>9} {'RSS after close':>22}")
        with open(args.burst) as f:
            for line in f:
                name, answers, idle_kib, open_kib, after_kib, waited = line.rstrip("\n").split("\t")
                a = json.loads(answers)
                ok = a["answered"].get("200", 0)
                failed = a["clients"] - ok
                open_mib, after_mib = int(open_kib) / 1024, int(after_kib) / 1024
                print(f"  {name:<9} {a['clients']:>7} {ok:>12} {failed:>6} {a['seconds']:>7.2f} "
                      f"{int(idle_kib) / 1024:>5.1f} MiB {open_mib:>5.1f} MiB "
                      f"{after_mib:>6.1f} MiB after {waited:>2} s"
                      + ("" if failed == 0 else f"   {a['answered']} {a['failed']}"))
                if name.startswith("elb"):
                    goals.append((f"burst {name}: {failed} of {a['clients']} failed (0)", failed == 0))
                    goals.append((f"burst {name}: RSS {open_mib:.1f} MiB with the connections open "
                                  f"(<= {GOAL_BURST_OPEN_MIB})", open_mib <= GOAL_BURST_OPEN_MIB))
                    goals.append((f"burst {name}: RSS {after_mib:.1f} MiB {waited} s after they "
                                  f"closed (<= {GOAL_BURST_AFTER_MIB} within 60 s)",
                                  after_mib <= GOAL_BURST_AFTER_MIB))

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
                name, ir, _allocations = line.split()
                per[name] = float(ir)
        print("user-space instructions per request (callgrind): "
              + ", ".join(f"{n} {v:.0f}" for n, v in per.items()))
        ratio = per["elb-rr"] / per["haproxy"]
        print(f"  elb-rr {ratio:.2f}x HAProxy" + (
            f", {per['elb-rr'] / per['base-rr']:.2f}x the baseline binary" if "base-rr" in per else "")
              + (f"; with the access log {per['elb-log'] / per['elb-rr']:.2f}x without"
                 if "elb-log" in per else ""))
        goals.append((f"instructions per request {ratio:.2f}x HAProxy's (info: <= 1.0 shows the "
                      "user-space path is not the gap)", ratio <= 1.0))

    print()
    print(f"== summary (load average {args.load}; goals from docs/balancer.md)")
    for text, met in goals:
        print(f"  [{'met   ' if met else 'MISSED'}] {text}")
    for name in ("elb-rr", "elb-p2c"):
        peak = max(m["peak"] for (n, _), m in med.items() if n == name)
        print(f"  [info  ] {name} RSS peak under wrk: {peak / 1024:.1f} MiB")


if __name__ == "__main__":
    main()
