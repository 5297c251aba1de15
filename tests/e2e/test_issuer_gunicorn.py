"""The issuer as a real gunicorn service: tokens over HTTP, clean refusals to start."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt as pyjwt
import pytest
from cryptography.hazmat.primitives import serialization

from shared.apikeys import add_client
from tests.keypairs import PASSPHRASE, KeyPair
from tests.procs import ServiceProcess, issuer_env

pytestmark = pytest.mark.e2e


@dataclass
class Running:
    service: ServiceProcess
    key: str
    metrics_dir: Path


def post_token(url: str, key: str, payload: Any) -> tuple[int, dict[str, Any], dict[str, str]]:
    """POST /v1/tokens on a fresh connection; (status, body, headers)."""
    request = urllib.request.Request(
        f"{url}/v1/tokens",
        data=json.dumps(payload).encode(),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read()), dict(response.headers)
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read()), dict(error.headers)


def get_text(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:
        text: str = response.read().decode()
        return text


@pytest.fixture
def running(key_pair: KeyPair, tmp_path: Path) -> Iterator[Running]:
    clients_file = tmp_path / "clients.json"
    key = add_client(clients_file, "webapp", admin=False, variable="ISSUER_CLIENTS_FILE")
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    env = issuer_env(key_pair, clients_file, ISSUER_RATE_LIMIT="0",
               PROMETHEUS_MULTIPROC_DIR=str(metrics_dir))
    service = ServiceProcess("issuer", env, tmp_path / "issuer.log", workers=2)
    service.start()
    yield Running(service, key, metrics_dir)
    service.stop()


def test_issue_over_http_and_verify_with_the_served_public_key(running: Running) -> None:
    status, body, _ = post_token(running.service.url, running.key, {"userId": "123"})
    assert status == 201, body
    public_pem = get_text(f"{running.service.url}/v1/public-key")
    claims = pyjwt.decode(body["token"], public_pem, algorithms=["RS256"])
    assert claims["userId"] == "123"
    assert claims["jti"] == body["jti"]
    assert get_text(f"{running.service.url}/readyz")


def test_errors_over_http_are_problems_without_tracebacks(running: Running) -> None:
    status, body, headers = post_token(running.service.url, "jwta_wrong", {"userId": "1"})
    assert status == 401
    assert body["code"] == "api_key_invalid"
    assert headers["Content-Type"] == "application/problem+json"
    status, body, _ = post_token(running.service.url, running.key, {"userId": ""})
    assert (status, body["code"], body["field"]) == (422, "claim_invalid", "userId")
    output = running.service.output()
    assert "Traceback" not in output
    assert running.key not in output
    assert PASSPHRASE not in output


def _metric(text: str, line_start: str) -> float:
    for line in text.splitlines():
        if line.startswith(line_start + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_metrics_add_up_across_two_workers(running: Running) -> None:
    def writers() -> set[str]:
        # prometheus_client keeps one counter file per process that counted
        return {path.stem.rsplit("_", 1)[1] for path in running.metrics_dir.glob("counter_*.db")}

    def issue(index: int) -> int:
        return post_token(running.service.url, running.key, {"userId": str(index)})[0]

    # Fresh connections, eight at a time, until both workers have served some: the kernel
    # hands each connection to whichever worker accepts first, and one fast worker can take
    # a whole sequential run. Bounded: at most 20 bursts.
    issued = 0
    with ThreadPoolExecutor(max_workers=8) as pool:
        for _ in range(20):
            assert list(pool.map(issue, range(issued, issued + 8))) == [201] * 8
            issued += 8
            if len(writers()) >= 2:
                break
    assert len(writers()) >= 2, writers()
    post_token(running.service.url, running.key, {"userId": "1", "isAdmin": True})
    counted = {
        _metric(get_text(f"{running.service.url}/metrics"),
                'tokens_issued_total{admin="false",client="webapp"}')
        for _ in range(6)
    }
    assert counted == {float(issued)}
    text = get_text(f"{running.service.url}/metrics")
    assert _metric(text, 'token_refusals_total{code="admin_not_permitted"}') == 1.0


def test_rate_limit_is_shared_by_the_workers(key_pair: KeyPair, tmp_path: Path) -> None:
    clients_file = tmp_path / "clients.json"
    key = add_client(clients_file, "webapp", admin=False, variable="ISSUER_CLIENTS_FILE")
    service = ServiceProcess(
        "issuer", issuer_env(key_pair, clients_file, ISSUER_RATE_LIMIT="5"),
        tmp_path / "issuer.log", workers=2,
    )
    service.start()
    try:
        statuses = [post_token(service.url, key, {"userId": "1"}) for _ in range(12)]
    finally:
        service.stop()
    codes = [status for status, _, _ in statuses]
    # 5 per minute for the whole service, not 5 per worker
    assert codes.count(201) == 5
    assert codes.count(429) == 7
    assert all(int(headers["Retry-After"]) >= 1 for status, _, headers in statuses
               if status == 429)


def _start_failure(tmp_path: Path, env: dict[str, str]) -> tuple[int, list[str]]:
    return ServiceProcess("issuer", env, tmp_path / "failing.log", workers=2).expect_exit()


def _unencrypted_copy(key_pair: KeyPair, tmp_path: Path) -> Path:
    key = serialization.load_pem_private_key(key_pair.private_pem.encode(), PASSPHRASE.encode())
    path = tmp_path / "plain.pem"
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    return path


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("wrong passphrase", "ISSUER_PRIVATE_KEY_FILE: the passphrase does not decrypt"),
        ("missing passphrase", "no passphrase is configured"),
        ("unneeded passphrase", "the private key is not encrypted"),
        ("missing key file", "ISSUER_PRIVATE_KEY_FILE: no file at"),
        ("bad variable", "ISSUER_TOKEN_TTL: expected a whole number"),
        ("missing clients file", "ISSUER_CLIENTS_FILE: no file at"),
        ("public key as private", "this is a public key"),
    ],
)
def test_startup_failure_is_one_line_and_non_zero_exit(
    key_pair: KeyPair, tmp_path: Path, case: str, expected: str
) -> None:
    private = str(key_pair.private_path)
    env = {
        "wrong passphrase": {"ISSUER_PRIVATE_KEY_FILE": private,
                             "ISSUER_KEY_PASSPHRASE": "not the passphrase"},
        "missing passphrase": {"ISSUER_PRIVATE_KEY_FILE": private},
        "unneeded passphrase": {"ISSUER_PRIVATE_KEY_FILE": str(_unencrypted_copy(key_pair,
                                                                                 tmp_path)),
                                "ISSUER_KEY_PASSPHRASE": "anything"},
        "missing key file": {"ISSUER_PRIVATE_KEY_FILE": str(tmp_path / "nope.pem")},
        "bad variable": {"ISSUER_PRIVATE_KEY_FILE": private,
                         "ISSUER_KEY_PASSPHRASE": PASSPHRASE, "ISSUER_TOKEN_TTL": "an hour"},
        "missing clients file": {"ISSUER_PRIVATE_KEY_FILE": private,
                                 "ISSUER_KEY_PASSPHRASE": PASSPHRASE,
                                 "ISSUER_CLIENTS_FILE": str(tmp_path / "absent.json")},
        "public key as private": {"ISSUER_PRIVATE_KEY_FILE": str(key_pair.public_path)},
    }[case]
    returncode, lines = _start_failure(tmp_path, env)
    assert returncode != 0
    assert len(lines) == 1, lines
    assert lines[0].startswith("jwt-auth issuer: cannot start: ")
    assert expected in lines[0]
    assert PASSPHRASE not in lines[0]
    assert "not the passphrase" not in lines[0]
