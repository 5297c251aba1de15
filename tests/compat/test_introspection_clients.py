"""Our verifier's RFC 7662 endpoint, called by a client we did not write: node openid-client 6's
``tokenIntrospection`` with ``client_secret_basic``, what an OAuth resource server uses."""

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
