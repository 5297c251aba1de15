"""The issuer and two verifiers as real gunicorn services sharing one real Redis."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from shared.apikeys import add_client
from tests.keypairs import PASSPHRASE, KeyPair
from tests.procs import RedisServer, ServiceProcess, issuer_env, verifier_env

pytestmark = pytest.mark.e2e


@dataclass
class Stack:
    issuer: ServiceProcess
    by_pem: ServiceProcess
    by_jwks: ServiceProcess
    client_key: str
    admin_key: str
    redis_url: str


@pytest.fixture(scope="module")
def stack(
    key_pair: KeyPair, redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    folder = tmp_path_factory.mktemp("verifier-e2e")
    clients = folder / "clients.json"
    client_key = add_client(clients, "webapp", admin=True, variable="ISSUER_CLIENTS_FILE")
    admins = folder / "verifier-admins.json"
    admin_key = add_client(admins, "ops", admin=True, variable="VERIFIER_ADMIN_KEYS_FILE")
    redis_server.emptied()
    issuer = ServiceProcess(
        "issuer",
        issuer_env(key_pair, clients, ISSUER_RATE_LIMIT="0"),
        folder / "issuer.log",
        workers=1,
    )
    by_pem = ServiceProcess(
        "verifier", verifier_env(key_pair, redis_server.url, admins), folder / "by-pem.log",
        workers=2,
    )
    started: list[ServiceProcess] = []
    try:
        for service in (issuer, by_pem):
            service.start()
            started.append(service)
        # the second verifier trusts whatever the issuer publishes
        by_jwks = ServiceProcess(
            "verifier",
            {
                **verifier_env(key_pair, redis_server.url, admins),
                "VERIFIER_PUBLIC_KEY_FILE": "",
                "VERIFIER_JWKS_URL": f"{issuer.url}/.well-known/jwks.json",
            },
            folder / "by-jwks.log",
            workers=2,
        )
        by_jwks.start()
        started.append(by_jwks)
        yield Stack(issuer, by_pem, by_jwks, client_key, admin_key, redis_server.url)
    finally:
        for service in reversed(started):
            service.stop()


@pytest.fixture
def http() -> Iterator[requests.Session]:
    with requests.Session() as session:
        yield session


def issue(http: requests.Session, stack: Stack, payload: dict[str, Any]) -> str:
    response = http.post(
        f"{stack.issuer.url}/v1/tokens", json=payload,
        headers={"Authorization": f"Bearer {stack.client_key}"}, timeout=10,
    )
    assert response.status_code == 201, response.text
    token: str = response.json()["token"]
    return token


def verify(http: requests.Session, service: ServiceProcess, token: str) -> requests.Response:
    return http.post(f"{service.url}/v1/verify", json={"token": token}, timeout=10)


def auth(http: requests.Session, service: ServiceProcess, credential: str) -> requests.Response:
    return http.get(
        f"{service.url}/v1/auth", headers={"Authorization": f"Bearer {credential}"}, timeout=10
    )


def test_issue_verify_login_forward_auth_logout_revoke(
    http: requests.Session, stack: Stack
) -> None:
    token = issue(http, stack, {"userId": "123", "isAdmin": True, "plan": "gold"})

    for service in (stack.by_pem, stack.by_jwks):
        response = verify(http, service, token)
        assert response.status_code == 200, response.text
        body = response.json()
        assert (body["userId"], body["isAdmin"], body["claims"]["plan"]) == ("123", True, "gold")
        assert body["expiresAt"] > body["issuedAt"]

    login = http.post(f"{stack.by_pem.url}/v1/sessions", json={"token": token}, timeout=10)
    assert login.status_code == 201, login.text
    session_id = login.json()["sessionId"]

    # the other verifier process knows the session: the state lives in Redis
    for credential in (token, session_id):
        forwarded = auth(http, stack.by_jwks, credential)
        assert forwarded.status_code == 200, forwarded.text
        assert forwarded.headers["X-Auth-User-Id"] == "123"
        assert forwarded.headers["X-Auth-Is-Admin"] == "true"
        assert forwarded.headers["X-Auth-Provider"] == "jwt"

    assert http.delete(f"{stack.by_jwks.url}/v1/sessions/{session_id}", timeout=10).status_code \
        == 204
    assert http.get(f"{stack.by_pem.url}/v1/sessions/{session_id}", timeout=10).status_code == 404
    refused = auth(http, stack.by_pem, session_id)
    assert refused.status_code == 401
    assert refused.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'

    # each process has seen the token (and cached it); a revocation in one reaches both
    for _ in range(3):
        assert verify(http, stack.by_jwks, token).status_code == 200
    revoked = http.post(f"{stack.by_pem.url}/v1/revocations", json={"token": token}, timeout=10)
    assert revoked.status_code == 204
    for service in (stack.by_pem, stack.by_jwks):
        for _ in range(4):  # a new connection each time: whichever worker answers
            response = requests.post(f"{service.url}/v1/verify", json={"token": token},
                                     timeout=10)
            assert (response.status_code, response.json()["code"]) == (401, "token_revoked")
        assert auth(http, service, token).status_code == 401


def test_user_wide_revocation_reaches_every_process(http: requests.Session, stack: Stack) -> None:
    token = issue(http, stack, {"userId": "alice"})
    sessions = []
    for service in (stack.by_pem, stack.by_jwks):
        assert verify(http, service, token).status_code == 200
        login = http.post(f"{service.url}/v1/sessions", json={"token": token}, timeout=10)
        sessions.append(login.json()["sessionId"])

    ended = http.delete(
        f"{stack.by_jwks.url}/v1/users/alice/sessions",
        headers={"Authorization": f"Bearer {stack.admin_key}"}, timeout=10,
    )
    assert ended.status_code == 200, ended.text
    assert ended.json()["sessionsEnded"] == 2

    for service in (stack.by_pem, stack.by_jwks):
        for _ in range(4):
            response = requests.post(f"{service.url}/v1/verify", json={"token": token},
                                     timeout=10)
            assert response.json()["code"] == "token_revoked"
        for session_id in sessions:
            assert auth(http, service, session_id).status_code == 401
    user = http.get(
        f"{stack.by_pem.url}/v1/users/alice",
        headers={"Authorization": f"Bearer {stack.admin_key}"}, timeout=10,
    )
    assert user.status_code == 200
    assert user.json()["userId"] == "alice"
    assert user.json()["tokensRevokedBefore"] == ended.json()["tokensRevokedBefore"]


def test_metrics_count_outcomes_across_workers(http: requests.Session, stack: Stack) -> None:
    token = issue(http, stack, {"userId": "m"})
    for _ in range(5):
        assert verify(http, stack.by_pem, token).status_code == 200
    assert verify(http, stack.by_pem, "garbage").status_code == 401
    text = http.get(f"{stack.by_pem.url}/metrics", timeout=10).text
    assert 'verifications_total{result="ok"}' in text
    assert 'verifications_total{result="token_malformed"}' in text
    ready = http.get(f"{stack.by_jwks.url}/readyz", timeout=10)
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"keys": True, "redis": True}


def test_logs_hold_fingerprints_never_tokens(http: requests.Session, stack: Stack) -> None:
    token = issue(http, stack, {"userId": "quiet"})
    login = http.post(f"{stack.by_pem.url}/v1/sessions", json={"token": token}, timeout=10)
    session_id = login.json()["sessionId"]
    assert http.get(f"{stack.by_pem.url}/v1/sessions/{session_id}", timeout=10).status_code == 200
    assert http.delete(f"{stack.by_pem.url}/v1/sessions/{session_id}", timeout=10).status_code \
        == 204
    http.post(f"{stack.by_pem.url}/v1/revocations", json={"token": token}, timeout=10)
    verify(http, stack.by_pem, token)
    assert '"GET /v1/sessions/<redacted>" 200' in stack.by_pem.output()
    for service in (stack.issuer, stack.by_pem, stack.by_jwks):
        output = service.output()
        assert session_id not in output
        assert token.split(".")[2] not in output
        assert "Traceback" not in output
        assert PASSPHRASE not in output
        assert stack.admin_key not in output


def test_a_bad_key_stops_the_verifier_with_one_line(key_pair: KeyPair, tmp_path: Path) -> None:
    returncode, lines = ServiceProcess(
        "verifier",
        {"VERIFIER_PUBLIC_KEY_FILE": str(tmp_path / "missing.pem")},
        tmp_path / "failing.log",
    ).expect_exit()
    assert returncode != 0
    assert len(lines) == 1, lines
    assert lines[0].startswith("jwt-auth verifier: cannot start: ")
    assert "VERIFIER_PUBLIC_KEY_FILE" in lines[0]
