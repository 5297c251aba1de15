"""Redis faults for real: redis-server killed under load, restarted, killed with -9 after a write.

The verifiers run under gunicorn and are never restarted: recovery must happen by itself.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.forge import fresh, sign
from tests.keypairs import KeyPair
from tests.procs import RedisServer, ServiceProcess, verifier_env, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of this test's own (AOF, appendfsync always), free to be killed."""
    server = RedisServer(tmp_path / "redis-data")
    server.start()
    yield server
    server.stop()


def _verifier(
    key_pair: KeyPair, server: RedisServer, tmp_path: Path, mode: str
) -> ServiceProcess:
    admins = tmp_path / "no-admins.json"
    admins.write_text('{"clients": []}')
    return ServiceProcess(
        "verifier",
        verifier_env(key_pair, server.url, admins, VERIFIER_REDIS_FAILURE_MODE=mode,
                     VERIFIER_REDIS_TIMEOUT_MS="200"),
        tmp_path / f"verifier-{mode}.log",
        workers=2,
        threads=4,
    )


@pytest.fixture
def verifiers(
    key_pair: KeyPair, own_redis: RedisServer, tmp_path: Path
) -> Iterator[dict[str, ServiceProcess]]:
    services = {mode: _verifier(key_pair, own_redis, tmp_path, mode) for mode in ("closed", "open")}
    started = []
    try:
        for service in services.values():
            service.start()
            started.append(service)
        yield services
    finally:
        for service in started:
            service.stop()


def _hammer(url: str, token: str, stop: threading.Event, seen: list[tuple[int, Any]]) -> None:
    """POST /v1/verify until told to stop, recording (status, body); new connection each time."""
    deadline = time.monotonic() + 60
    while not stop.is_set() and time.monotonic() < deadline:
        response = requests.post(f"{url}/v1/verify", json={"token": token}, timeout=10)
        seen.append((response.status_code, response.json()))


def _under_load_while_redis_dies(
    service: ServiceProcess, server: RedisServer, token: str
) -> tuple[list[tuple[int, Any]], list[tuple[int, Any]]]:
    """Requests before and after redis-server is killed mid-run (kill -9)."""
    before: list[tuple[int, Any]] = []
    after: list[tuple[int, Any]] = []
    stop = threading.Event()
    workers = [
        threading.Thread(target=_hammer, args=(service.url, token, stop, before))
        for _ in range(3)
    ]
    for worker in workers:
        worker.start()
    try:
        wait_until(lambda: len(before) >= 30, timeout=30, what="load before the kill")
        server.kill()
        stop.set()
        for worker in workers:
            worker.join(timeout=30)
        stop.clear()
        workers = [
            threading.Thread(target=_hammer, args=(service.url, token, stop, after))
            for _ in range(3)
        ]
        for worker in workers:
            worker.start()
        wait_until(lambda: len(after) >= 30, timeout=30, what="load after the kill")
    finally:
        stop.set()
        for worker in workers:
            worker.join(timeout=30)
    return before, after


def test_closed_mode_answers_503_while_redis_is_dead_and_recovers(
    verifiers: dict[str, ServiceProcess], own_redis: RedisServer, key_pair: KeyPair
) -> None:
    service = verifiers["closed"]
    token = fresh(key_pair, "closed-user")
    before, after = _under_load_while_redis_dies(service, own_redis, token)

    assert {status for status, _ in before} <= {200, 503}
    assert any(status == 200 for status, _ in before)
    # once Redis is gone every answer is a clean 503, never another 5xx, never an unchecked 200
    assert {status for status, _ in after} == {503}
    assert {body["code"] for _, body in after} == {"store_unavailable"}
    readiness = requests.get(f"{service.url}/readyz", timeout=10)
    assert readiness.status_code == 503

    own_redis.start()
    wait_until(
        lambda: requests.post(f"{service.url}/v1/verify", json={"token": token},
                              timeout=10).status_code == 200,
        timeout=15, what="the closed-mode verifier to recover without a restart",
    )
    # every worker recovers, not just one: new connections land on either (each worker's
    # breaker lets one probe through every 50 ms, so the others follow within moments)
    def every_worker_answers() -> bool:
        return all(
            requests.post(f"{service.url}/v1/verify", json={"token": token},
                          timeout=10).status_code == 200
            for _ in range(20)
        )

    wait_until(every_worker_answers, timeout=10, what="every worker to use Redis again")
    assert requests.get(f"{service.url}/readyz", timeout=10).status_code == 200
    assert "Traceback" not in service.output()


def test_open_mode_answers_by_signature_and_says_so_then_recovers(
    verifiers: dict[str, ServiceProcess], own_redis: RedisServer, key_pair: KeyPair
) -> None:
    service = verifiers["open"]
    token = fresh(key_pair, "open-user", isAdmin=True)
    before, after = _under_load_while_redis_dies(service, own_redis, token)

    assert {status for status, _ in before + after} == {200}
    assert all(body["revocationChecked"] is True for _, body in before[:10])
    assert all(body["revocationChecked"] is False for _, body in after)
    assert all(body["userId"] == "open-user" and body["isAdmin"] for _, body in after)
    forwarded = requests.get(
        f"{service.url}/v1/auth", headers={"Authorization": f"Bearer {token}"}, timeout=10
    )
    assert forwarded.status_code == 200
    assert forwarded.headers["X-Revocation-Checked"] == "false"
    # what cannot work without Redis still refuses
    login = requests.post(f"{service.url}/v1/sessions", json={"token": token}, timeout=10)
    assert (login.status_code, login.json()["code"]) == (503, "store_unavailable")
    # it still serves, so it stays in its load balancer: ready, and saying what it lacks
    readiness = requests.get(f"{service.url}/readyz", timeout=10)
    assert readiness.status_code == 200
    assert readiness.json()["status"] == "degraded"
    assert readiness.json()["checks"] == {"keys": True, "redis": False}

    own_redis.start()

    def checked_everywhere() -> bool:
        answers = [
            requests.post(f"{service.url}/v1/verify", json={"token": token}, timeout=10).json()
            for _ in range(6)
        ]
        return all(answer.get("revocationChecked") is True for answer in answers)

    wait_until(checked_everywhere, timeout=15, what="revocation checks to resume")
    assert "Traceback" not in service.output()


def test_an_acknowledged_revocation_survives_kill_9(
    verifiers: dict[str, ServiceProcess], own_redis: RedisServer, key_pair: KeyPair
) -> None:
    service = verifiers["closed"]
    url = service.url
    tokens = [fresh(key_pair, f"durable-{index}") for index in range(3)]
    seed_style = sign({"userId": "durable-seed", "isAdmin": True}, key_pair)
    for token in [*tokens, seed_style]:
        assert requests.post(f"{url}/v1/verify", json={"token": token}, timeout=10).status_code \
            == 200
        revoked = requests.post(f"{url}/v1/revocations", json={"token": token}, timeout=10)
        assert revoked.status_code == 204
    # the 204 was sent after Redis acknowledged the write: kill it before it could do anything else
    own_redis.kill()
    own_redis.start()  # same port, same data directory: the AOF is replayed

    def answered() -> bool:
        response = requests.post(f"{url}/v1/verify", json={"token": tokens[0]}, timeout=10)
        return response.status_code != 503

    wait_until(answered, timeout=15, what="the verifier to reach the restarted Redis")
    for token in [*tokens, seed_style]:
        for _ in range(3):
            response = requests.post(f"{url}/v1/verify", json={"token": token}, timeout=10)
            assert (response.status_code, response.json()["code"]) == (401, "token_revoked")
