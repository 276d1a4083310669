#!/usr/bin/env python3
"""A burst of clients (not a test; used by scripts/bench-balancer.sh).

`burst.py HOST:PORT PATH CLIENTS HOLD_SECONDS`: CLIENTS clients each open a connection and send
one keep-alive `GET PATH` at once, read the answer, and keep their connections open. Once every
client has its answer (or has failed, or 60 s have passed), prints one JSON line:
`{"clients": N, "answered": {"200": n, ...}, "failed": {"connect": n, "reset": n, "timeout":
n}, "seconds": s}`, then holds every connection open for HOLD_SECONDS (so the proxy's memory can
be read with them open), closes them all and prints `closed`.

Loopback only: HOST must be a 127.0.0.0/8 address.
"""

import asyncio
import ipaddress
import json
import resource
import sys
import time

DEADLINE = 60.0


async def one(host, port, request, answered, failed, held):
    try:
        reader, writer = await asyncio.open_connection(host, port)
    except OSError:
        failed["connect"] += 1
        return
    held.append(writer)
    try:
        writer.write(request)
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        status = head.split(b" ", 2)[1].decode()
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        await reader.readexactly(length)
        answered[status] = answered.get(status, 0) + 1
    except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, IndexError):
        failed["reset"] += 1


async def main():
    address, path, clients, hold = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
    host, _, port = address.rpartition(":")
    if not ipaddress.ip_address(host).is_loopback:
        sys.exit(f"{host} is not a loopback address")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    request = f"GET {path} HTTP/1.1\r\nHost: {address}\r\n\r\n".encode()
    answered, failed, held = {}, {"connect": 0, "reset": 0, "timeout": 0}, []
    started = time.monotonic()
    tasks = [
        asyncio.ensure_future(one(host, int(port), request, answered, failed, held))
        for _ in range(clients)
    ]
    done, pending = await asyncio.wait(tasks, timeout=DEADLINE)
    for task in pending:
        task.cancel()
    failed["timeout"] = len(pending)
    seconds = time.monotonic() - started
    print(json.dumps({"clients": clients, "answered": answered, "failed": failed,
                      "seconds": round(seconds, 3)}), flush=True)
    await asyncio.sleep(hold)
    for writer in held:
        writer.close()
    print("closed", flush=True)


if __name__ == "__main__":
    asyncio.run(main())
