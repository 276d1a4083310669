"""WebSocket ends for the balancer's tests, on the `websockets` library (PyPI), not ours.

    websocket.py serve
        An echo target on 127.0.0.1: prints `listening on PORT`, answers plain `GET /healthz`
        with 200 (the balancer's health check), echoes every message, and closes the
        connection itself (code 1000, reason `bye`) when it receives `close`.

    websocket.py client URL SCENARIO
        Connects to URL and prints one line per step; exits 0 when the scenario went as it
        should. Scenarios:
          echo N    send N messages, check each echo, close from the client side
          close     send `close`, expect the target's close (1000, `bye`)
          hold      check one echo, print `open`, then wait and print `closed CODE` when the
                    connection ends (a killed target or a stopping balancer ends it)
"""
import asyncio
import http
import sys

import websockets
from websockets.asyncio.client import connect
from websockets.asyncio.server import serve


async def echo(connection):
    try:
        async for message in connection:
            if message == "close":
                await connection.close(1000, "bye")
                return
            await connection.send(message)
    except websockets.ConnectionClosed:
        pass  # cut without a close frame: some tests stop the balancer on purpose


def health(connection, request):
    if request.path == "/healthz":
        return connection.respond(http.HTTPStatus.OK, "ok\n")
    return None


async def run_server():
    async with serve(echo, "127.0.0.1", 0, process_request=health) as server:
        port = server.sockets[0].getsockname()[1]
        print(f"listening on {port}", flush=True)
        await asyncio.Future()


async def run_client(url, scenario, argument):
    async with connect(url, open_timeout=10, close_timeout=5) as ws:
        if scenario == "echo":
            for i in range(int(argument)):
                await ws.send(f"message {i}")
                answer = await asyncio.wait_for(ws.recv(), 10)
                if answer != f"message {i}":
                    sys.exit(f"echo {i}: got {answer!r}")
            print(f"echoed {argument}", flush=True)
            await ws.close()
            print(f"closed {ws.close_code}", flush=True)
        elif scenario == "close":
            await ws.send("close")
            try:
                await asyncio.wait_for(ws.recv(), 10)
                sys.exit("the target did not close")
            except websockets.ConnectionClosedOK as e:
                print(f"closed by target {e.rcvd.code} {e.rcvd.reason}", flush=True)
        elif scenario == "hold":
            await ws.send("ping")
            if await asyncio.wait_for(ws.recv(), 10) != "ping":
                sys.exit("no echo")
            print("open", flush=True)
            try:
                await ws.recv()
                sys.exit("a message came where none was sent")
            except websockets.ConnectionClosed as e:
                code = e.rcvd.code if e.rcvd else "none"
                print(f"closed {code}", flush=True)
        else:
            sys.exit(f"unknown scenario {scenario}")


def main():
    if sys.argv[1] == "serve":
        asyncio.run(run_server())
    else:
        asyncio.run(run_client(sys.argv[2], sys.argv[3], sys.argv[4] if len(sys.argv) > 4 else None))


if __name__ == "__main__":
    main()
