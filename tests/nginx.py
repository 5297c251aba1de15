"""nginx as the current user, for the tests that run docs/nginx/ in a real nginx.

``Nginx`` writes a main nginx.conf around the http block a test gives it (pid, logs and temp
folders in a folder of its own) and runs it in the foreground on a free port; ``upstreams``
names the two upstreams docs/nginx/protect-app.conf uses.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
from pathlib import Path

from tests.procs import REPO, wait_until

NGINX_DOCS = REPO / "docs" / "nginx"
PROTECT_APP = NGINX_DOCS / "protect-app.conf"


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


class Nginx:
    """nginx as this user, in the foreground, on a folder of its own (``-p``), stopped by stop().

    ``http`` is the body of the http block; the main file around it holds only what running
    outside /etc/nginx needs (pid, logs and temp folders here).
    """

    def __init__(self, root: Path, http: str, port: int) -> None:
        binary = shutil.which("nginx") or (
            "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None
        )
        if binary is None:
            raise RuntimeError("nginx is not installed; run scripts/bootstrap --for-tests "
                               "(it installs it)")
        self.binary = binary
        self.root = root
        self.port = port
        root.mkdir(parents=True, exist_ok=True)
        temp = "\n".join(f"    {kind}_temp_path {root / kind};"
                         for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
        self.conf = root / "nginx.conf"
        self.conf.write_text(
            f"pid {root / 'nginx.pid'};\n"
            f"error_log {root / 'error.log'} notice;\n"
            "worker_processes 1;\n"
            "events { worker_connections 256; }\n"
            "http {\n"
            f"    access_log {root / 'access.log'};\n"
            f"{temp}\n"
            f"{http}\n"
            "}\n"
        )
        self.process: subprocess.Popen[bytes] | None = None

    def _command(self, *extra: str) -> list[str]:
        return [self.binary, "-p", str(self.root), "-c", str(self.conf), "-e",
                str(self.root / "error.log"), *extra]

    def start(self) -> None:
        checked = subprocess.run(self._command("-t"), capture_output=True, text=True,
                                 timeout=30, check=False)
        assert checked.returncode == 0, checked.stderr
        self.process = subprocess.Popen(
            self._command("-g", "daemon off;"), stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, start_new_session=True,
        )

        def up() -> bool:
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(f"nginx exited ({self.process.returncode}):\n{self.log()}")
            return _listening(self.port)

        wait_until(up, timeout=15, what=f"nginx on port {self.port}")

    def log(self) -> str:
        path = self.root / "error.log"
        return path.read_text(errors="replace") if path.exists() else ""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            # SIGQUIT: graceful shutdown of the master and its workers
            os.killpg(self.process.pid, signal.SIGQUIT)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        self.process = None


def upstreams(verifier: str, app: str) -> str:
    """The two upstreams protect-app.conf names, at these host:port addresses."""
    return (f"    upstream jwt_auth_verifier {{ server {verifier}; }}\n"
            f"    upstream protected_app {{ server {app}; }}\n")
