"""Revocation stays immediate across processes while each verifier answers from its mirror.

Two verifier services (two gunicorn masters, two workers each) share one Redis and are kept
busy by background clients. A token is verified through one service (so its worker has it
cached), revoked through the other, and verified again through the first right after the
acknowledgement: it must be refused every time, also while Redis keeps dropping every client's
connection, the invalidation channel included.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
import requests

from shared.apikeys import add_client
from tests.forge import sign
from tests.keypairs import KeyPair
from tests.procs import RedisServer, ServiceProcess

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ROUNDS = 300
LOAD_SECONDS_MAX = 120.0  # the background clients stop by themselves even if a test hangs


@dataclass
class Pair:
    revoker: ServiceProcess
    checker: ServiceProcess
    admin_key: str
    redis_url: str


@pytest.fixture(scope="module")
def pair(
    key_pair: KeyPair, redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Pair]:
    folder = tmp_path_factory.mktemp("consistency")
    admins = folder / "admins.json"
    admin_key = add_client(admins, "ops", admin=True, variable="VERIFIER_ADMIN_KEYS_FILE")
    redis_server.emptied()
    env = {
        "VERIFIER_PUBLIC_KEY_FILE": str(key_pair.public_path),
        "REDIS_URL": redis_server.url,
        "VERIFIER_ADMIN_KEYS_FILE": str(admins),
    }
    services = [
        ServiceProcess("verifier", env, folder / f"{name}.log", workers=2)
        for name in ("revoker", "checker")
    ]
    started: list[ServiceProcess] = []
    try:
        for service in services:
            service.start()
            started.append(service)
        yield Pair(services[0], services[1], admin_key, redis_server.url)
    finally:
        for service in started:
            service.stop()


class Load:
    """Keep-alive clients verifying a token against both services until stopped."""

    def __init__(self, urls: list[str], token: str, clients_per_url: int = 3) -> None:
        self.stop = threading.Event()
        self.failures: list[str] = []
        self.answered = 0
        self.unavailable = 0  # 503 store_unavailable: allowed only while Redis drops clients
        self._threads = [
            threading.Thread(target=self._run, args=(url, token), daemon=True)
            for url in urls for _ in range(clients_per_url)
        ]

    def _run(self, url: str, token: str) -> None:
        deadline = time.monotonic() + LOAD_SECONDS_MAX
        with requests.Session() as http:
            while not self.stop.is_set() and time.monotonic() < deadline:
                try:
                    response = http.post(f"{url}/v1/verify", json={"token": token}, timeout=10)
                except requests.RequestException as exc:
                    self.failures.append(type(exc).__name__)
                    continue
                if response.status_code == 503:
                    self.unavailable += 1
                elif response.status_code != 200:
                    self.failures.append(f"{response.status_code} {response.text[:200]}")
                self.answered += 1

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self._threads:
            thread.join(timeout=15)


def _tokens(key_pair: KeyPair, prefix: str, count: int) -> list[str]:
    now = int(time.time())
    return [
        sign({"userId": f"{prefix}-{n}", "iat": now - 5, "exp": now + 600,
              "jti": f"{prefix}-{n}-{time.perf_counter_ns()}"}, key_pair)
        for n in range(count)
    ]


def _verify(http: requests.Session, service: ServiceProcess, token: str) -> requests.Response:
    return http.post(f"{service.url}/v1/verify", json={"token": token}, timeout=10)


def _refused_as_revoked(response: requests.Response) -> bool:
    return response.status_code == 401 and response.json()["code"] == "token_revoked"


def test_a_revocation_acknowledged_by_one_process_is_refused_by_another_at_once(
    pair: Pair, key_pair: KeyPair
) -> None:
    tokens = _tokens(key_pair, "rev", ROUNDS + 1)
    accepted_after_revocation: list[int] = []
    with Load([pair.revoker.url, pair.checker.url], tokens[-1]) as load, \
            requests.Session() as checker, requests.Session() as revoker:
        for n, token in enumerate(tokens[:ROUNDS]):
            assert _verify(checker, pair.checker, token).status_code == 200
            assert _verify(checker, pair.checker, token).status_code == 200  # now cached
            revoked = revoker.post(f"{pair.revoker.url}/v1/revocations", json={"token": token},
                                   timeout=10)
            assert revoked.status_code == 204, revoked.text
            if not _refused_as_revoked(_verify(checker, pair.checker, token)):
                accepted_after_revocation.append(n)
    assert accepted_after_revocation == []
    assert (load.failures, load.unavailable) == ([], 0)
    assert load.answered > ROUNDS  # the services really were under load meanwhile


def test_a_user_wide_logout_by_one_process_is_refused_by_another_at_once(
    pair: Pair, key_pair: KeyPair
) -> None:
    tokens = _tokens(key_pair, "cut", 100)
    admin = {"Authorization": f"Bearer {pair.admin_key}"}
    accepted: list[int] = []
    with Load([pair.revoker.url, pair.checker.url], tokens[-1]) as load, \
            requests.Session() as http:
        for n, token in enumerate(tokens[:-1]):
            assert _verify(http, pair.checker, token).status_code == 200
            ended = http.delete(f"{pair.revoker.url}/v1/users/cut-{n}/sessions", headers=admin,
                                timeout=10)
            assert ended.status_code == 200, ended.text
            if not _refused_as_revoked(_verify(http, pair.checker, token)):
                accepted.append(n)
    assert accepted == []
    assert (load.failures, load.unavailable) == ([], 0)


def test_revocations_hold_while_redis_keeps_dropping_every_connection(
    pair: Pair, key_pair: KeyPair
) -> None:
    """Each round cuts every client's connection, the invalidation channels included: the
    checker must notice before it answers, and read Redis instead of its mirror."""
    tokens = _tokens(key_pair, "drop", 41)
    db = redis.Redis.from_url(pair.redis_url, socket_timeout=5)
    accepted: list[int] = []
    with Load([pair.revoker.url, pair.checker.url], tokens[-1]) as load, \
            requests.Session() as http:
        for n, token in enumerate(tokens[:-1]):
            assert _verify(http, pair.checker, token).status_code == 200
            assert db.client_kill_filter(_type="normal", skipme=True) >= 1
            revoked = http.post(f"{pair.revoker.url}/v1/revocations", json={"token": token},
                                timeout=10)
            assert revoked.status_code == 204, revoked.text
            if not _refused_as_revoked(_verify(http, pair.checker, token)):
                accepted.append(n)
    db.close()
    assert accepted == []
    # a dropped connection may cost a request a 503, never a wrong answer
    assert load.failures == []


def test_every_worker_serves_from_its_mirror_once_in_sync(pair: Pair) -> None:
    for service in (pair.revoker, pair.checker):
        log = Path(service.log_path).read_text(errors="replace")
        assert log.count("revocation mirror in sync") >= 2, log[-2000:]
