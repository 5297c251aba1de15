"""Our verifier's RFC 7662 endpoint, called by clients we did not write, with
``client_secret_basic`` as an OAuth resource server sends it: node openid-client 6's
``tokenIntrospection``, and authlib's ``OAuth2Session.introspect_token`` (Python)."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from authlib.integrations.requests_client import OAuth2Session

from shared.apikeys import add_client
from tests.forge import fresh
from tests.keypairs import KeyPair
from tests.procs import RedisServer, ServiceProcess, verifier_env

pytestmark = pytest.mark.compat

COMPAT = Path(__file__).resolve().parent


@dataclass
class Introspection:
    verifier: ServiceProcess
    client_key: str


@pytest.fixture(scope="module")
def introspection(key_pair: KeyPair, redis_server: RedisServer,
                  tmp_path_factory: pytest.TempPathFactory) -> Iterator[Introspection]:
    folder = tmp_path_factory.mktemp("introspection-clients")
    admins, clients = folder / "admins.json", folder / "clients.json"
    admins.write_text('{"clients": []}')
    client_key = add_client(clients, "orders-api", admin=False,
                            variable="VERIFIER_CLIENT_KEYS_FILE")
    if redis_server.process is None or redis_server.process.poll() is not None:
        redis_server.start()
    verifier = ServiceProcess("verifier", verifier_env(
        key_pair, redis_server.url, admins, VERIFIER_CLIENT_KEYS_FILE=str(clients)),
        folder / "verifier.log", workers=1, threads=2)
    verifier.start()
    try:
        yield Introspection(verifier, client_key)
    finally:
        verifier.stop()


def introspect(introspection: Introspection, tokens: dict[str, str], tmp_path: Path, *,
               secret: str | None = None) -> dict[str, Any]:
    if shutil.which("node") is None or not (COMPAT / "node_modules" / "openid-client").is_dir():
        pytest.fail("node and tests/compat/node_modules are needed (npm ci in tests/compat)")
    tokens_file = tmp_path / "tokens.json"
    tokens_file.write_text(json.dumps(tokens))
    result = subprocess.run(
        ["node", str(COMPAT / "introspect.mjs"), f"{introspection.verifier.url}/v1/introspect",
         "orders-api", secret or introspection.client_key, str(tokens_file)],
        capture_output=True, text=True, timeout=60, check=False, cwd=COMPAT)
    assert result.returncode == 0, result.stderr
    answers: dict[str, Any] = json.loads(result.stdout)
    return answers


def test_openid_client_introspects_good_revoked_and_forged_tokens(
    introspection: Introspection, key_pair: KeyPair, other_key_pair: KeyPair, tmp_path: Path
) -> None:
    good, revoked = fresh(key_pair, "ivy", isAdmin=True), fresh(key_pair, "ivy")
    assert requests.post(f"{introspection.verifier.url}/v1/revocations",
                         json={"token": revoked}, timeout=10).status_code == 204
    answers = introspect(introspection, {
        "good": good, "revoked": revoked, "forged": fresh(other_key_pair, "ivy"),
        "garbage": "not-a-token"}, tmp_path)
    assert answers["good"]["active"] is True
    assert (answers["good"]["sub"], answers["good"]["userId"]) == ("ivy", "ivy")
    assert answers["good"]["isAdmin"] is True
    assert answers["good"]["token_type"] == "Bearer"
    for name in ("revoked", "forged", "garbage"):
        assert answers[name] == {"active": False}, name


def test_a_wrong_secret_is_refused_as_the_client_sees_it(
    introspection: Introspection, key_pair: KeyPair, tmp_path: Path
) -> None:
    answers = introspect(introspection, {"good": fresh(key_pair)}, tmp_path,
                         secret="jwta_not-the-key")
    assert answers["good"]["status"] == 401, answers
    assert "active" not in answers["good"]


def _authlib(introspection: Introspection, secret: str) -> OAuth2Session:
    return OAuth2Session(client_id="orders-api", client_secret=secret,
                         token_endpoint_auth_method="client_secret_basic")


def test_authlib_introspects_good_revoked_expired_and_empty_tokens(
    introspection: Introspection, key_pair: KeyPair
) -> None:
    url = f"{introspection.verifier.url}/v1/introspect"
    good, revoked = fresh(key_pair, "ada"), fresh(key_pair, "ada")
    assert requests.post(f"{introspection.verifier.url}/v1/revocations",
                         json={"token": revoked}, timeout=10).status_code == 204
    expired = fresh(key_pair, "ada", iat=1_000_000_000, exp=1_000_003_600)
    with _authlib(introspection, introspection.client_key) as session:
        answer = session.introspect_token(url, token=good, timeout=10)
        assert answer.status_code == 200
        body = answer.json()
        assert (body["active"], body["sub"], body["token_type"]) == (True, "ada", "Bearer")
        assert (body["userId"], body["isAdmin"]) == ("ada", False)
        for token in (revoked, expired, "", "not-a-token"):
            answer = session.introspect_token(url, token=token, timeout=10)
            assert (answer.status_code, answer.json()) == (200, {"active": False}), token
    # authlib sent the credentials as Basic: a wrong secret is the client's 401, not an answer
    with _authlib(introspection, "jwta_not-the-key") as session:
        refused = session.introspect_token(url, token=good, timeout=10)
    assert refused.status_code == 401
    assert refused.headers["WWW-Authenticate"].startswith("Basic")
