"""The fault matrix, HTTP side (docs/deploy.md, "Failure modes"): what clients do wrong.

Skewed clocks, oversized headers, clients that go away mid-request: one verifier under
gunicorn answers them all, and must keep answering afterwards with no traceback in its log and
no worker replaced. The assertions are on "4xx, and the service still answers", not on exact
bodies or statuses a different gunicorn worker class could word differently.
"""

from __future__ import annotations

import json
import re
import socket
import struct
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.forge import fresh, sign
from tests.keypairs import KeyPair
from tests.procs import RedisServer, ServiceProcess, verifier_env, wait_until

pytestmark = [pytest.mark.e2e]

LEEWAY = 30
"""VERIFIER_LEEWAY's default (docs/verifier.md), set explicitly below so the test says it."""

PROBLEMS = "https://jwt-custom-auth.dev/problems/"


@pytest.fixture(scope="module")
def verifier(
    key_pair: KeyPair, redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServiceProcess]:
    folder = tmp_path_factory.mktemp("fault-matrix-http")
    admins = folder / "no-admins.json"
    admins.write_text('{"clients": []}')
    if redis_server.process is None or redis_server.process.poll() is not None:
        redis_server.start()  # an earlier test may have killed the session's Redis
    service = ServiceProcess(
        "verifier",
        verifier_env(key_pair, redis_server.url, admins, VERIFIER_LEEWAY=str(LEEWAY)),
        Path(folder) / "verifier.log", workers=2, threads=4,
    )
    service.start()
    # healthy once one worker answers: both must have booted before _still_serving counts them
    wait_until(lambda: len(re.findall(r"Booting worker", service.output())) >= 2, timeout=30,
               what="both workers to boot")
    yield service
    service.stop()


def _still_serving(service: ServiceProcess, key_pair: KeyPair) -> None:
    """The service answers a good token on fresh connections (so on both workers, likely),
    logged no traceback, and its master started no worker after the first two."""
    for _ in range(6):
        answer = requests.post(f"{service.url}/v1/verify",
                               json={"token": fresh(key_pair, "after")}, timeout=10)
        assert answer.status_code == 200
    log = service.output()
    assert "Traceback" not in log, log
    assert "WORKER TIMEOUT" not in log, log
    assert len(re.findall(r"Booting worker", log)) == 2, log  # the first two, no others


# 7. Clocks skewed past the leeway --------------------------------------------------------------


def _token(key_pair: KeyPair, **offsets: int) -> str:
    now = int(time.time())
    claims: dict[str, Any] = {"userId": "skewed", "iat": now, "exp": now + 600}
    claims.update({name: now + offset for name, offset in offsets.items()})
    return sign(claims, key_pair)


@pytest.mark.parametrize(
    ("offsets", "code"),
    [
        ({"iat": 4 * LEEWAY}, "token_not_yet_valid"),
        ({"nbf": 4 * LEEWAY}, "token_not_yet_valid"),
        ({"iat": -20 * LEEWAY, "exp": -4 * LEEWAY}, "token_expired"),
    ],
    ids=["iat-in-the-future", "nbf-in-the-future", "exp-in-the-past"],
)
def test_a_clock_skewed_past_the_leeway_is_refused_with_its_problem(
    verifier: ServiceProcess, key_pair: KeyPair, offsets: dict[str, int], code: str
) -> None:
    answer = requests.post(f"{verifier.url}/v1/verify",
                           json={"token": _token(key_pair, **offsets)}, timeout=10)
    assert answer.status_code == 401
    assert answer.headers["Content-Type"].startswith("application/problem+json")
    problem = answer.json()
    assert problem["code"] == code
    assert problem["type"] == PROBLEMS + code.replace("_", "-")
    assert answer.headers["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize(
    "offsets",
    [
        {"iat": LEEWAY // 3},
        {"nbf": LEEWAY // 3},
        {"iat": -20 * LEEWAY, "exp": -LEEWAY // 3},
    ],
    ids=["iat-in-the-future", "nbf-in-the-future", "exp-in-the-past"],
)
def test_a_clock_skewed_within_the_leeway_is_accepted(
    verifier: ServiceProcess, key_pair: KeyPair, offsets: dict[str, int]
) -> None:
    answer = requests.post(f"{verifier.url}/v1/verify",
                           json={"token": _token(key_pair, **offsets)}, timeout=10)
    assert answer.status_code == 200, answer.text
    assert answer.json()["userId"] == "skewed"


# 8. Oversized headers --------------------------------------------------------------------------


def _status_of(port: int, request: bytes) -> int:
    """Send raw bytes; the status of the answer (the connection may close right after)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(request)
        received = b""
        while b"\r\n" not in received:
            chunk = conn.recv(4096)
            if not chunk:
                break
            received += chunk
    match = re.match(rb"HTTP/1\.[01] (\d{3}) ", received)
    assert match, f"no HTTP status line in {received[:200]!r}"
    return int(match.group(1))


def _request(headers: list[str]) -> bytes:
    lines = ["GET /healthz HTTP/1.1", "Host: 127.0.0.1", *headers, "Connection: close", "", ""]
    return "\r\n".join(lines).encode()


@pytest.mark.parametrize(
    "headers",
    [
        [f"X-Big: {'a' * 10 * 1024}"],
        [f"X-Many-{index}: {index}" for index in range(200)],
    ],
    ids=["one-10-KB-header-line", "200-headers"],
)
def test_oversized_headers_get_a_4xx_and_the_service_keeps_answering(
    verifier: ServiceProcess, key_pair: KeyPair, headers: list[str]
) -> None:
    assert _status_of(verifier.port, _request(["X-Small: 1"])) == 200  # the raw path works
    status = _status_of(verifier.port, _request(headers))
    assert 400 <= status < 500
    _still_serving(verifier, key_pair)


# 9. Clients that go away -----------------------------------------------------------------------


def test_a_client_gone_mid_body_costs_no_traceback_and_no_worker(
    verifier: ServiceProcess, key_pair: KeyPair
) -> None:
    """Headers announce 1000 bytes of body, 10 arrive, then the client closes."""
    head = (
        b"POST /v1/verify HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Content-Length: 1000\r\n\r\n"
    )
    for _ in range(10):
        with socket.create_connection(("127.0.0.1", verifier.port), timeout=10) as conn:
            conn.sendall(head + b'{"token": ')
    time.sleep(0.5)  # let the workers read the end of those connections before looking
    _still_serving(verifier, key_pair)


@pytest.mark.parametrize("reset", [False, True], ids=["closed", "reset"])
def test_a_client_gone_before_the_answer_costs_no_traceback_and_no_worker(
    verifier: ServiceProcess, key_pair: KeyPair, reset: bool
) -> None:
    """A whole request, then the client closes (or resets) before reading the answer."""
    body = json.dumps({"token": fresh(key_pair, "gone")}).encode()
    request = (
        "POST /v1/verify HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    for _ in range(10):
        conn = socket.create_connection(("127.0.0.1", verifier.port), timeout=10)
        if reset:  # SO_LINGER 0: close sends RST, and the server's write fails
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        conn.sendall(request)
        conn.close()
    time.sleep(0.5)
    _still_serving(verifier, key_pair)
