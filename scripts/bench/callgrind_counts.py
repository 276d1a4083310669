"""Instructions and heap allocations per request, from callgrind's output files.

Usage: callgrind_counts.py REQUESTS FILE...  (the files of one run: callgrind writes one per
dump). Prints `instructions allocations`, both per request: the user-space instructions
(callgrind's `totals:` lines, summed) and the calls to `malloc`, `calloc` and `realloc` (from the
call records, so the binary must keep its symbols). Unlike req/s, neither count moves with the
other load on the machine.
"""
import re
import sys

ALLOCATORS = {"malloc", "calloc", "realloc"}
# `fn=(12) name` names function 12 the first time; later records say only `fn=(12)`.
NAMED = re.compile(r"^c?fn=\((\d+)\)(?: (.*))?$")


def counts(path: str) -> tuple[int, int]:
    instructions = allocations = 0
    names: dict[str, str] = {}
    callee = None
    with open(path, errors="replace") as f:
        for line in f:
            if line.startswith(("fn=", "cfn=")):
                number, name = NAMED.match(line.rstrip("\n")).groups()
                if name:
                    names[number] = name
                if line.startswith("cfn="):
                    callee = names.get(number)
            elif line.startswith("calls=") and callee in ALLOCATORS:
                allocations += int(line[len("calls="):].split()[0])
            elif line.startswith("totals:"):
                instructions += int(line.split()[1])
    return instructions, allocations


def main() -> None:
    requests = int(sys.argv[1])
    if requests <= 0:
        sys.exit("no request was answered under callgrind")
    totals = [counts(path) for path in sys.argv[2:]]
    instructions = sum(i for i, _ in totals)
    allocations = sum(a for _, a in totals)
    print(f"{instructions / requests:.0f} {allocations / requests:.2f}")


if __name__ == "__main__":
    main()
