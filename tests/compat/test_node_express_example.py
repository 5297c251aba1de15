"""The express example (examples/node) run by node against a real verifier.

The reference system's users were node shops: their app backends should be able to take
``examples/node/app.js``, protected by the node package jwt-auth-client (clients/node, a
``file:`` dependency there), as it is. A verifier under gunicorn on the session's Redis, the
example app under node pointing at it, and requests to the app as a browser sends them.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from tests.forge import fresh
from tests.keypairs import KeyPair
from tests.procs import (
    REPO,
    ServiceProcess,
    free_port,
    service_environment,
    stop_process,
    wait_until,
)

pytestmark = pytest.mark.compat

EXAMPLE = REPO / "examples" / "node"


class NodeApp:
    """``node examples/node/app.js`` on a free port, its output in a log file."""

    def __init__(self, verifier_url: str, log_path: Path) -> None:
        self.port = free_port()
        self.verifier_url = verifier_url
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self._log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            ["node", "app.js"],
            cwd=EXAMPLE,
            env=service_environment(
                {"PORT": str(self.port), "HOST": "127.0.0.1", "VERIFIER_URL": self.verifier_url}
            ),
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_until(self._listening, timeout=20, what=f"the example app on {self.url}")
        except TimeoutError:
            self.stop()
            raise AssertionError(f"the example app did not start:\n{self.output()}") from None

    def _listening(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            raise AssertionError(f"the example app exited early:\n{self.output()}")
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                return True
        except OSError:
            return False

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.process is None:
            return
        stop_process(self.process)
        self._log.close()
        self.process = None


@dataclass
class Example:
    verifier: ServiceProcess
    app: NodeApp

    def get(self, path: str, token: str | None = None,
            request_id: str | None = None) -> requests.Response:
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        if request_id is not None:
            headers["X-Request-Id"] = request_id
        return requests.get(f"{self.app.url}{path}", headers=headers, timeout=10)


@pytest.fixture
def example(key_pair: KeyPair, redis_url: str, tmp_path: Path) -> Iterator[Example]:
    modules = EXAMPLE / "node_modules"
    if shutil.which("node") is None or not all(
            (modules / name).is_dir() for name in ("express", "jwt-auth-client")):
        pytest.fail("node and examples/node/node_modules are needed "
                    "(scripts/bootstrap --for-tests, or npm ci in examples/node)")
    verifier = ServiceProcess(
        "verifier",
        {"VERIFIER_PUBLIC_KEY_FILE": str(key_pair.public_path), "REDIS_URL": redis_url},
        tmp_path / "verifier.log",
        workers=1,
    )
    app = NodeApp(verifier.url, tmp_path / "app.log")
    verifier.start()
    try:
        app.start()
        yield Example(verifier, app)
    finally:
        app.stop()
        verifier.stop()


def assert_refused(response: requests.Response, code: str) -> None:
    assert response.status_code == 401, response.text
    assert response.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'
    assert response.headers["Content-Type"].startswith("application/problem+json")
    assert response.json()["code"] == code


def test_a_good_token_reaches_the_route_with_the_identity(
    example: Example, key_pair: KeyPair
) -> None:
    response = example.get("/me", fresh(key_pair, "123", isAdmin=False, plan="gold"))
    assert response.status_code == 200, response.text
    identity = response.json()
    assert set(identity) == {"userId", "isAdmin", "provider", "claims", "issuedAt", "expiresAt",
                             "revocationChecked"}
    assert (identity["userId"], identity["isAdmin"], identity["provider"]) == ("123", False, "jwt")
    assert identity["claims"]["plan"] == "gold"
    assert identity["expiresAt"] == identity["claims"]["exp"]
    assert identity["revocationChecked"] is True

    admin = example.get("/admin", fresh(key_pair, "boss", isAdmin=True))
    assert admin.status_code == 200, admin.text
    assert admin.json() == {"admin": "boss"}


def test_refused_tokens_answer_401_with_the_verifiers_code(
    example: Example, key_pair: KeyPair, other_key_pair: KeyPair
) -> None:
    now = int(time.time())
    expired = fresh(key_pair, "123", iat=now - 7200, lifetime=-3600)
    assert_refused(example.get("/me", expired), "token_expired")
    assert_refused(example.get("/me", fresh(other_key_pair, "123")), "signature_invalid")
    assert_refused(example.get("/admin", fresh(other_key_pair, "boss", isAdmin=True)),
                   "signature_invalid")

    token = fresh(key_pair, "123")
    assert example.get("/me", token).status_code == 200
    revoked = requests.post(f"{example.verifier.url}/v1/revocations", json={"token": token},
                            timeout=10)
    assert revoked.status_code == 204, revoked.text
    assert_refused(example.get("/me", token), "token_revoked")

    missing = example.get("/me")
    assert missing.status_code == 401
    assert missing.headers["WWW-Authenticate"] == "Bearer"
    assert missing.json()["code"] == "token_missing"


def test_a_non_admin_on_an_admin_route_gets_403(example: Example, key_pair: KeyPair) -> None:
    token = fresh(key_pair, "123", isAdmin=False)
    response = example.get("/admin", token)
    assert response.status_code == 403, response.text
    assert response.headers["Content-Type"].startswith("application/problem+json")
    assert response.headers["WWW-Authenticate"] == 'Bearer error="insufficient_scope"'
    assert response.json()["code"] == "admin_required"
    assert example.get("/me", token).status_code == 200


def test_the_apps_request_id_is_the_verifiers(example: Example, key_pair: KeyPair) -> None:
    """The app's X-Request-Id reaches the verifier: its access line carries the same id."""
    good, refused = "example-good-1", "example-refused-1"
    assert example.get("/me", fresh(key_pair, "123"), request_id=good).status_code == 200
    response = example.get("/me", fresh(key_pair, "123", lifetime=-3600), request_id=refused)
    assert response.status_code == 401
    assert response.headers["X-Request-Id"] == refused

    def logged(request_id: str, status: int) -> bool:
        return any(line.startswith('127.0.0.1 "POST /v1/verify" ') and f'" {status} ' in line
                   and line.endswith(f" request_id={request_id}")
                   for line in example.verifier.output().splitlines())

    # gunicorn writes the access line just after its answer
    wait_until(lambda: logged(good, 200) and logged(refused, 401), timeout=10,
               what="the verifier's access lines under the app's request ids")


def test_a_stopped_verifier_answers_503_with_retry_after(
    example: Example, key_pair: KeyPair
) -> None:
    token = fresh(key_pair, "123")
    assert example.get("/me", token).status_code == 200
    example.verifier.stop()
    for path in ("/me", "/admin"):
        started = time.monotonic()
        response = example.get(path, token)
        assert time.monotonic() - started < 5
        assert response.status_code == 503, response.text
        assert response.headers["Content-Type"].startswith("application/problem+json")
        assert int(response.headers["Retry-After"]) > 0
        assert response.json()["code"] == "verifier_unavailable"
    # the app itself stays up
    assert example.app.process is not None
    assert example.app.process.poll() is None

