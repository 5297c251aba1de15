"""API keys change under running services: added, rotated and removed with no restart.

Real gunicorn processes (two workers each, so both workers must pick the change up) and the
real ``jwt-auth clients`` commands, as an operator runs them.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests

from shared.apikeys import add_client
from tests.keypairs import KeyPair
from tests.procs import (
    CLI_CWD,
    JWT_AUTH,
    RedisServer,
    ServiceProcess,
    issuer_env,
    service_environment,
)

pytestmark = [pytest.mark.e2e]

RELOAD_WAIT = 5.0  # the services look once a second; this bounds every wait below


def clients(*args: str) -> str:
    """``jwt-auth clients ARGS``; its stdout (the new key, for add and rotate)."""
    result = subprocess.run([*JWT_AUTH, "clients", *args], env=service_environment({}),
                            cwd=CLI_CWD, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


WORKERS = 2


def reloads(service: ServiceProcess) -> int:
    """How many times a worker logged reloading the API keys."""
    return service.output().count("shared.reloading: reloaded the API keys")


def eventually(
    check: Callable[[], bool], what: str, service: ServiceProcess, changes: int
) -> None:
    deadline = time.monotonic() + RELOAD_WAIT
    while time.monotonic() < deadline:
        # every worker logged each change (requests alone may all reach one of them), and the
        # answers say the change is in force
        if reloads(service) >= WORKERS * changes and all(check() for _ in range(6)):
            return
        time.sleep(0.1)
    raise AssertionError(f"no restart, but {what} did not happen within {RELOAD_WAIT} s")


@pytest.fixture
def issuer(key_pair: KeyPair, tmp_path: Path) -> Iterator[tuple[ServiceProcess, Path]]:
    clients_file = tmp_path / "clients.json"
    add_client(clients_file, "first", admin=False, variable="ISSUER_CLIENTS_FILE")
    service = ServiceProcess("issuer", issuer_env(key_pair, clients_file), tmp_path / "issuer.log",
                             workers=WORKERS, threads=2)
    service.start()
    yield service, clients_file
    service.stop()


def test_an_issuer_client_is_added_rotated_and_removed_without_a_restart(
    issuer: tuple[ServiceProcess, Path],
) -> None:
    service, clients_file = issuer
    pid = service.process.pid if service.process else None

    def status(key: str) -> int:
        return requests.post(f"{service.url}/v1/tokens", json={"userId": "1"},
                             headers={"Authorization": f"Bearer {key}"}, timeout=5).status_code

    web = clients("add", "web", "--file", str(clients_file))
    eventually(lambda: status(web) == 201, "a new client's key being accepted", service, 1)

    rotated = clients("rotate", "web", "--grace", "30", "--file", str(clients_file))
    eventually(lambda: status(rotated) == 201, "the rotated key being accepted", service, 2)
    assert status(web) == 201  # the old key, within its grace

    once_more = clients("rotate", "web", "--grace", "0", "--file", str(clients_file))
    eventually(lambda: status(rotated) == 401 and status(once_more) == 201,
               "a key rotated with --grace 0 being refused", service, 3)

    clients("remove", "web", "--file", str(clients_file))
    eventually(lambda: status(once_more) == 401, "a removed client being refused", service, 4)
    assert service.process is not None
    assert service.process.pid == pid
    assert service.process.poll() is None


def test_a_damaged_clients_file_keeps_the_clients_the_issuer_had(
    issuer: tuple[ServiceProcess, Path],
) -> None:
    service, clients_file = issuer
    web = clients("add", "web", "--file", str(clients_file))

    def status(key: str) -> int:
        return requests.post(f"{service.url}/v1/tokens", json={"userId": "1"},
                             headers={"Authorization": f"Bearer {key}"}, timeout=5).status_code

    eventually(lambda: status(web) == 201, "a new client's key being accepted", service, 1)
    good = clients_file.read_text()
    clients_file.write_text(good[: len(good) // 2])  # an editor saving half a file
    time.sleep(2.5)
    assert all(status(web) == 201 for _ in range(6))
    assert "kept the API keys" in service.output()
    clients_file.write_text(good)


def test_a_verifier_admin_key_rotates_without_a_restart(
    key_pair: KeyPair, redis_server: RedisServer, tmp_path: Path
) -> None:
    if redis_server.process is None or redis_server.process.poll() is not None:
        redis_server.start()
    admins = tmp_path / "admins.json"
    old = add_client(admins, "ops", admin=True, variable="VERIFIER_ADMIN_KEYS_FILE")
    service = ServiceProcess("verifier", {
        "VERIFIER_PUBLIC_KEY_FILE": str(key_pair.public_path),
        "REDIS_URL": redis_server.url,
        "VERIFIER_ADMIN_KEYS_FILE": str(admins),
    }, tmp_path / "verifier.log", workers=WORKERS, threads=2)
    service.start()
    try:
        def status(key: str) -> int:
            return requests.get(f"{service.url}/v1/users/nobody",
                                headers={"Authorization": f"Bearer {key}"}, timeout=5).status_code

        assert status(old) == 404  # authenticated: the user just does not exist
        new = clients("rotate", "ops", "--grace", "0", "--file", str(admins))
        eventually(lambda: status(new) == 404 and status(old) == 401,
                   "the verifier taking the rotated admin key", service, 1)
    finally:
        service.stop()
