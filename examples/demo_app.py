"""The compose demo's protected app: it answers every request with the X-Auth-* headers nginx
passed it, as JSON, so `docker compose --profile demo up` shows what an app behind forward-auth
receives. Standard library only; not for production.

    python examples/demo_app.py --bind 0.0.0.0:8000

GET /healthz answers 200 without any header (the compose healthcheck; nginx never sends it
here unchecked, it protects every path).
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType


class Handler(BaseHTTPRequestHandler):
    server_version = "jwt-auth-demo-app"

    def _answer(self) -> None:
        body: dict[str, object]
        if self.path == "/healthz":
            body = {"status": "ok"}
        else:
            body = {
                "message": "Hello from the protected demo app",
                "method": self.command,
                "path": self.path,
                # what the proxy vouches for; an app trusts these only behind that proxy
                "headers": {name: value for name, value in self.headers.items()
                            if name.lower().startswith("x-auth-")},
            }
        data = (json.dumps(body, indent=2) + "\n").encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _answer

    def log_message(self, format: str, *args: object) -> None:
        sys.stderr.write(f"demo-app: {self.address_string()} {format % args}\n")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="The compose demo's protected app")
    parser.add_argument("--bind", default="127.0.0.1:8000", help="HOST:PORT to listen on")
    args = parser.parse_args(argv)
    host, _, port = args.bind.rpartition(":")
    server = ThreadingHTTPServer((host, int(port)), Handler)

    def stop(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    sys.stderr.write(f"demo-app: listening on {args.bind}\n")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
