"""The container healthcheck: exit 0 only for a 200 answer, one line otherwise."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator

import pytest

from jwt_auth.healthcheck import check, main
from tests.procs import free_port


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200 if self.path == "/healthz" else 503)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        """Quiet: the test reads exit codes, not logs."""


@pytest.fixture
def server() -> Iterator[str]:
    httpd = http.server.HTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()
    thread.join(timeout=5)


def test_healthy_only_on_200(server: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([f"{server}/healthz"]) == 0
    assert main([f"{server}/readyz"]) == 1
    assert "HTTP 503" in capsys.readouterr().err


def test_nothing_listening_is_unhealthy() -> None:
    problem = check(f"http://127.0.0.1:{free_port()}/healthz", timeout=2)
    assert problem is not None


def test_url_from_the_environment(server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JWT_AUTH_HEALTHCHECK_URL", f"{server}/healthz")
    assert main([]) == 0
    monkeypatch.setenv("JWT_AUTH_HEALTHCHECK_URL", "file:///etc/passwd")
    assert main([]) == 1
