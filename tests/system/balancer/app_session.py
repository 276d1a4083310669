"""An application target for the stickiness tests, on Python's standard library, not ours.

    app_session.py NAME
        Serves HTTP/1.1 on a free port of 127.0.0.1 and prints `listening on PORT`. Every answer
        is 200 with the body NAME; `GET /login` also sets the application's cookie
        `session=NAME` (as a login would), the only answer that sets one. `GET /healthz` is the
        balancer's health check.
"""
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

NAME = sys.argv[1]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        body = NAME.encode()
        self.send_response(200)
        if self.path == "/login":
            self.send_header("Set-Cookie", f"session={NAME}; Path=/")
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(f"listening on {server.server_address[1]}", flush=True)
server.serve_forever()
