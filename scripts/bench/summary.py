"""Summary of scripts/bench-agent.sh: medians of the wrk rounds, ratios and goals.

Input: a tab-separated file of rounds, `name  req/s  p50  p99  peak-RSS-KiB  cpu-us/request`
(p50/p99 as wrk prints them, e.g. `812.00us`, `1.20ms`; the server's user + system CPU time per
request answered). Prints one row per server (the median round's req/s, latencies and CPU per
request, the largest RSS seen) and the agent's ratios against the goals in docs/design.md: of
req/s, and of capacity (bare hyper's CPU per request over the agent's). A server pinned to one
core answers at most one core's worth of its CPU per request, and that figure barely moves
when other work on the machine takes the core away, where req/s does.
"""
import argparse
import os
import statistics

GOAL_VS_BARE = 0.9
GOAL_VS_SEED = 40
GOAL_IDLE_MIB = 8
GOAL_LOADED_MIB = 16
GOAL_BINARY_MIB = 3


def seconds(wrk_latency: str) -> float:
    for unit, scale in (("us", 1e-6), ("ms", 1e-3), ("s", 1.0)):
        if wrk_latency.endswith(unit):
            return float(wrk_latency[: -len(unit)]) * scale
    raise ValueError(f"unknown latency unit in {wrk_latency!r}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("results")
    parser.add_argument("--idle-kib", nargs="+", default=[], help="server=KiB before any load")
    parser.add_argument("--binary", required=True)
    args = parser.parse_args()
    idle = dict(item.split("=", 1) for item in args.idle_kib)

    rounds: dict[str, list[tuple[float, float, float, int, float]]] = {}
    with open(args.results) as f:
        for line in f:
            name, rps, p50, p99, peak, cpu = line.rstrip("\n").split("\t")
            rounds.setdefault(name, []).append(
                (float(rps), seconds(p50), seconds(p99), int(peak), float(cpu)))

    median = {}
    cpu_median = {}
    print(f"{'server':<24} {'rounds':>6} {'req/s (median)':>15} {'min..max':>19} "
          f"{'p50':>9} {'p99':>9} {'CPU/req':>9} {'RSS idle':>10} {'RSS peak':>10}")
    for name, rs in rounds.items():
        rps = sorted(r[0] for r in rs)
        median[name] = statistics.median(rps)
        p50 = statistics.median(r[1] for r in rs)
        p99 = statistics.median(r[2] for r in rs)
        peak = max(r[3] for r in rs)
        cpu_median[name] = statistics.median(r[4] for r in rs)
        server = name.split(" ")[0]
        print(f"{name:<24} {len(rs):>6} {median[name]:>15.0f} {rps[0]:>9.0f}..{rps[-1]:<9.0f} "
              f"{p50 * 1e3:>7.3f}ms {p99 * 1e3:>7.3f}ms {cpu_median[name]:>7.2f}us "
              f"{idle.get(server, '?'):>6} KiB {peak:>6} KiB")

    print()
    bare = median["bare-hyper"]
    for path in ("/", "/cluster1"):
        agent = median[f"agent {path}"]
        seed = median[f"seed-fastapi {path}"]
        capacity = cpu_median["bare-hyper"] / cpu_median[f"agent {path}"]
        print(f"agent {path:<10} {agent / bare:5.2f}x bare hyper's req/s and {capacity:4.2f}x its "
              f"capacity (goal >= {GOAL_VS_BARE})   {agent / seed:6.1f}x seed (goal >= {GOAL_VS_SEED})")
    loaded = max(max(r[3] for r in rs) for n, rs in rounds.items() if n.startswith("agent"))
    print(f"agent RSS idle {int(idle['agent']) / 1024:.1f} MiB (goal <= {GOAL_IDLE_MIB}), "
          f"under load {loaded / 1024:.1f} MiB (goal <= {GOAL_LOADED_MIB})")
    size = os.path.getsize(args.binary)
    print(f"static binary {size / 1048576:.2f} MiB (goal <= {GOAL_BINARY_MIB})")


if __name__ == "__main__":
    main()
