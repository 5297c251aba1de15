"""The issuer against software we did not write: the openssl CLI, node jsonwebtoken, PyJWT."""

from __future__ import annotations

import json
import shutil
import subprocess
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt as pyjwt
import pytest

from shared.apikeys import add_client
from shared.errors import PassphraseWrong
from shared.keys import load_private_key, load_public_keys
from tests.compat.seed import SeedKeys
from tests.procs import JWT_AUTH, REPO, ServiceProcess

pytestmark = pytest.mark.compat

COMPAT = Path(__file__).resolve().parent


@pytest.fixture(scope="session")
def openssl_keys(seed_keys: SeedKeys, seed_keys_traditional: SeedKeys) -> dict[str, SeedKeys]:
    return {"pkcs8": seed_keys, "traditional": seed_keys_traditional}


def node(script: str, *args: str) -> subprocess.CompletedProcess[str]:
    if shutil.which("node") is None or not (COMPAT / "node_modules" / "jsonwebtoken").is_dir():
        pytest.fail("node and tests/compat/node_modules are needed (npm ci in tests/compat)")
    return subprocess.run(["node", str(COMPAT / script), *args], capture_output=True, text=True,
                          timeout=60, check=False)


def node_verify(token: str, public_path: Path, tmp_path: Path) -> dict[str, Any]:
    token_file = tmp_path / "token.txt"
    token_file.write_text(token)
    result = node("verify.js", str(token_file), str(public_path))
    assert result.returncode == 0, result.stderr
    verified: dict[str, Any] = json.loads(result.stdout)
    return verified


@pytest.mark.parametrize(
    ("form", "marker"),
    [("pkcs8", b"BEGIN ENCRYPTED PRIVATE KEY"), ("traditional", b"DEK-Info: DES-EDE3-CBC")],
)
def test_seed_openssl_keys_load_with_the_passphrase(
    openssl_keys: dict[str, SeedKeys], form: str, marker: bytes
) -> None:
    keys = openssl_keys[form]
    pem = keys.private_path.read_bytes()
    assert marker in pem
    signing = load_private_key(pem, keys.passphrase.encode(), source="private.pem")
    [public] = load_public_keys(keys.public_path.read_bytes(), source="public.pem")
    assert signing.bits == 4096
    assert signing.kid == public.kid
    with pytest.raises(PassphraseWrong, match="passphrase does not decrypt"):
        load_private_key(pem, b"not the passphrase", source="private.pem")


@dataclass
class RunningIssuer:
    url: str
    key: str
    public_path: Path


@pytest.fixture(scope="module")
def running_issuer(
    openssl_keys: dict[str, SeedKeys], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningIssuer]:
    """Our issuer under gunicorn, signing with the seed's openssl key (the older PEM form)."""
    keys = openssl_keys["traditional"]
    directory = tmp_path_factory.mktemp("issuer")
    clients_file = directory / "clients.json"
    key = add_client(clients_file, "authserver", admin=True, variable="ISSUER_CLIENTS_FILE")
    env = {
        "ISSUER_PRIVATE_KEY_FILE": str(keys.private_path),
        "ISSUER_PRIVATE_KEY": "",
        "ISSUER_KEY_PASSPHRASE_FILE": str(keys.passphrase_path),
        "ISSUER_KEY_PASSPHRASE": "",
        "ISSUER_CLIENTS_FILE": str(clients_file),
        "ISSUER_TOKEN_TTL": "",
        "ISSUER_ISSUER": "https://auth.example",
        "ISSUER_AUDIENCE": "",
        "ISSUER_RATE_LIMIT": "0",
        "PROMETHEUS_MULTIPROC_DIR": "",
    }
    service = ServiceProcess("issuer", env, directory / "issuer.log", workers=2)
    service.start()
    yield RunningIssuer(service.url, key, keys.public_path)
    service.stop()


def _issue(issuer: RunningIssuer, payload: dict[str, Any]) -> dict[str, Any]:
    request = urllib.request.Request(
        f"{issuer.url}/v1/tokens", data=json.dumps(payload).encode(), method="POST",
        headers={"Authorization": f"Bearer {issuer.key}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 201
        body: dict[str, Any] = json.loads(response.read())
        return body


def test_issued_token_verifies_with_node_jsonwebtoken(
    running_issuer: RunningIssuer, tmp_path: Path
) -> None:
    payload = {"userId": "123", "isAdmin": True, "plan": "gold"}
    body = _issue(running_issuer, payload)
    verified = node_verify(body["token"], running_issuer.public_path, tmp_path)
    claims = verified["payload"]
    assert {k: claims[k] for k in payload} == payload
    assert claims["jti"] == body["jti"]
    assert claims["exp"] == body["expiresAt"]
    assert claims["iss"] == "https://auth.example"
    assert verified["header"] == {"alg": "RS256", "typ": "JWT", "kid": body["kid"]}


def test_issued_token_verifies_with_pyjwt(running_issuer: RunningIssuer) -> None:
    body = _issue(running_issuer, {"userId": "456"})
    claims = pyjwt.decode(body["token"], running_issuer.public_path.read_text(),
                          algorithms=["RS256"], issuer="https://auth.example")
    assert claims["userId"] == "456"
    assert "isAdmin" not in claims


def test_served_public_key_is_what_node_verifies_with(
    running_issuer: RunningIssuer, tmp_path: Path
) -> None:
    with urllib.request.urlopen(f"{running_issuer.url}/v1/public-key", timeout=10) as response:
        served = tmp_path / "served.pem"
        served.write_bytes(response.read())
    body = _issue(running_issuer, {"userId": "789"})
    assert node_verify(body["token"], served, tmp_path)["payload"]["userId"] == "789"


def test_node_refuses_our_token_under_another_key(
    running_issuer: RunningIssuer, openssl_keys: dict[str, SeedKeys], tmp_path: Path
) -> None:
    body = _issue(running_issuer, {"userId": "1"})
    token_file = tmp_path / "token.txt"
    token_file.write_text(body["token"])
    result = node("verify.js", str(token_file), str(openssl_keys["pkcs8"].public_path))
    assert result.returncode == 1
    assert "invalid signature" in result.stderr


def test_seed_node_snippet_signs_with_a_keygen_key(tmp_path: Path) -> None:
    passphrase = tmp_path / "passphrase.txt"
    passphrase.write_text("keygen passphrase\n")
    made = subprocess.run(
        [*JWT_AUTH, "keygen", "--out", str(tmp_path), "--bits", "2048",
         "--passphrase-file", str(passphrase)],
        cwd=REPO, capture_output=True, text=True, timeout=120, check=False,
    )
    assert made.returncode == 0, made.stderr
    signed = node("seed_sign.js", str(tmp_path / "private.pem"), str(passphrase))
    assert signed.returncode == 0, signed.stderr
    token = signed.stdout.strip()
    claims = pyjwt.decode(token, (tmp_path / "public.pem").read_text(), algorithms=["RS256"])
    assert claims["userId"] == "123"
    assert claims["isAdmin"] is True
    assert "exp" not in claims  # jwt.sign adds iat only: the seed's tokens never expire
    assert node_verify(token, tmp_path / "public.pem", tmp_path)["payload"]["userId"] == "123"
