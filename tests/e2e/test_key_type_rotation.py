"""RS256 -> ES256 -> EdDSA without downtime, as docs/issuer.md's runbook says to do it.

A real issuer (``ISSUER_KEYS_DIR``) and real verifiers trusting its JWKS run under gunicorn; the
keys change through the real ``jwt-auth keys`` commands. Verifiers that allow the new algorithm
(``VERIFIER_ALGORITHMS``) keep accepting the old RS256 tokens and accept the new ones; one left
at the default (RS256) shows why the runbook allows the algorithm first.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import jwt as pyjwt
import pytest
import requests

from issuer.keycommands import PUBLISH_SLACK
from shared.apikeys import add_client
from shared.reloading import POLL_SECONDS
from tests.procs import RedisServer, ServiceProcess, free_port, run_cli, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

JWKS_MAX_AGE = 1  # ISSUER_JWKS_MAX_AGE: a next key waits this long before its promotion


@dataclass
class Deployment:
    issuer: ServiceProcess
    verifiers: dict[str, ServiceProcess]  # by VERIFIER_ALGORITHMS
    keys_env: dict[str, str]
    client_key: str

    def keys(self, *args: str) -> str:
        done = run_cli("keys", *args, env=self.keys_env)
        assert done.returncode == 0, done.stderr
        return done.stdout

    def issue(self) -> str:
        answer = requests.post(f"{self.issuer.url}/v1/tokens", json={"userId": "42"},
                               headers={"Authorization": f"Bearer {self.client_key}"}, timeout=10)
        assert answer.status_code == 201, answer.text
        token: str = answer.json()["token"]
        return token

    def verify(self, algorithms: str, token: str) -> tuple[int, str | None]:
        answer = requests.post(f"{self.verifiers[algorithms].url}/v1/verify",
                               json={"token": token}, timeout=10)
        return answer.status_code, answer.json().get("code")

    def published_algorithms(self) -> list[str]:
        keys = requests.get(f"{self.issuer.url}/.well-known/jwks.json", timeout=5).json()["keys"]
        return [key["alg"] for key in keys]

    def rotate_to(self, alg: str) -> None:
        """The runbook: rotate, wait for every JWKS cache, promote, until every worker signs."""
        self.keys("rotate", "--alg", alg)
        wait_until(lambda: alg in self.published_algorithms(), timeout=10,
                   what=f"the issuer to publish its {alg} key")
        # what `keys promote` insists on: the JWKS cache lifetime, and PUBLISH_SLACK for every
        # issuer worker (each reads keys.json again within a second) to publish the key
        time.sleep(JWKS_MAX_AGE + PUBLISH_SLACK)
        self.keys("promote")
        promoted_at = time.monotonic()  # keys.json is written by now
        wait_until(lambda: pyjwt.get_unverified_header(self.issue())["alg"] == alg, timeout=10,
                   what=f"the issuer to sign {alg}")
        # the other worker too
        time.sleep(max(0.0, promoted_at + POLL_SECONDS + 1 - time.monotonic()))


@pytest.fixture
def deployment(redis_server: RedisServer, tmp_path: Path) -> Iterator[Deployment]:
    if redis_server.process is None or redis_server.process.poll() is not None:
        redis_server.start()
    passphrase = tmp_path / "passphrase.txt"
    passphrase.write_text("migration passphrase\n")
    keys_env = {"ISSUER_KEYS_DIR": str(tmp_path / "keys"),
                "ISSUER_KEY_PASSPHRASE_FILE": str(passphrase),
                "ISSUER_JWKS_MAX_AGE": str(JWKS_MAX_AGE)}
    assert run_cli("keys", "rotate", "--bits", "2048", env=keys_env).returncode == 0
    clients = tmp_path / "clients.json"
    client_key = add_client(clients, "login", admin=False, variable="ISSUER_CLIENTS_FILE")
    port = free_port()
    issuer = ServiceProcess("issuer", {
        **keys_env, "ISSUER_CLIENTS_FILE": str(clients), "ISSUER_RATE_LIMIT": "0",
        "ISSUER_ISSUER": f"http://127.0.0.1:{port}",
    }, tmp_path / "issuer.log", workers=2, threads=2, port=port)
    issuer.start()
    verifiers = {
        algorithms: ServiceProcess("verifier", {
            "VERIFIER_JWKS_URL": f"{issuer.url}/.well-known/jwks.json",
            "VERIFIER_ALGORITHMS": algorithms,
            "VERIFIER_ISSUER": issuer.url,
            "REDIS_URL": redis_server.url,
        }, tmp_path / f"verifier-{algorithms}.log", workers=1, threads=2)
        for algorithms in ("RS256", "RS256,ES256", "RS256,ES256,EdDSA")
    }
    started = [issuer]
    try:
        for verifier in verifiers.values():
            verifier.start()
            started.append(verifier)
        yield Deployment(issuer, verifiers, keys_env, client_key)
    finally:
        for service in reversed(started):
            service.stop()


def test_rs256_to_es256_to_eddsa_without_refusing_a_valid_token(
    deployment: Deployment
) -> None:
    rs256 = deployment.issue()
    assert pyjwt.get_unverified_header(rs256)["alg"] == "RS256"
    for algorithms in deployment.verifiers:
        assert deployment.verify(algorithms, rs256) == (200, None)

    deployment.rotate_to("ES256")
    es256 = deployment.issue()
    assert pyjwt.get_unverified_header(es256)["alg"] == "ES256"
    # verifiers that allow ES256 take both; the old RS256 token still verifies everywhere
    for algorithms in ("RS256,ES256", "RS256,ES256,EdDSA"):
        assert deployment.verify(algorithms, rs256) == (200, None)
        assert deployment.verify(algorithms, es256) == (200, None)
    assert deployment.verify("RS256", rs256) == (200, None)
    # a verifier nobody told refuses the new tokens: the step the runbook puts first
    assert deployment.verify("RS256", es256) == (401, "algorithm_not_allowed")

    deployment.rotate_to("EdDSA")
    eddsa = deployment.issue()
    assert pyjwt.get_unverified_header(eddsa)["alg"] == "EdDSA"
    assert deployment.published_algorithms() == ["EdDSA", "RS256", "ES256"]
    for token in (rs256, es256, eddsa):
        assert deployment.verify("RS256,ES256,EdDSA", token) == (200, None)
    assert deployment.verify("RS256,ES256", eddsa) == (401, "algorithm_not_allowed")
