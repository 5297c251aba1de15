"""Our issuer, found and trusted the standard way, by software we did not write.

One issuer under gunicorn, its ``ISSUER_ISSUER`` its own URL, migrates RS256 -> ES256 -> EdDSA
with ``jwt-auth keys`` while it runs, issuing one token with each key: its JWKS then holds all
three types. Node ``openid-client`` 6 discovers it and ``jose`` 6 verifies the tokens from the
discovered ``jwks_uri``; PyJWT's ``PyJWKClient`` does the same in Python.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt as pyjwt
import pytest
import requests
from cryptography.hazmat.primitives import serialization

from issuer.keyring import read_state
from shared.apikeys import add_client
from shared.keys import ALGORITHMS, EDDSA, ES256, RS256
from tests.keypairs import PASSPHRASE
from tests.procs import ServiceProcess, free_port, run_cli, wait_until

pytestmark = pytest.mark.compat

COMPAT = Path(__file__).resolve().parent


@dataclass
class MigratedIssuer:
    url: str
    tokens: dict[str, str]  # by algorithm, each signed while its key was active
    keys_dir: Path


def _readiness_kid(url: str) -> str | None:
    try:
        answer = requests.get(f"{url}/readyz", timeout=5)
    except requests.RequestException:
        return None
    kid: str | None = answer.json().get("kid") if answer.status_code == 200 else None
    return kid


@pytest.fixture(scope="module")
def migrated_issuer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MigratedIssuer]:
    folder = tmp_path_factory.mktemp("standard-issuer")
    passphrase = folder / "passphrase.txt"
    passphrase.write_text(PASSPHRASE + "\n")
    keys_env = {"ISSUER_KEYS_DIR": str(folder / "keys"),
                "ISSUER_KEY_PASSPHRASE_FILE": str(passphrase)}
    made = run_cli("keys", "rotate", "--bits", "2048", env=keys_env)
    assert made.returncode == 0, made.stderr
    clients = folder / "clients.json"
    client_key = add_client(clients, "resource-tests", admin=False,
                            variable="ISSUER_CLIENTS_FILE")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    service = ServiceProcess("issuer", {**keys_env, "ISSUER_CLIENTS_FILE": str(clients),
                                        "ISSUER_ISSUER": url, "ISSUER_RATE_LIMIT": "0"},
                             folder / "issuer.log", workers=1, threads=2, port=port)
    service.start()
    try:
        tokens = {}
        for alg in ALGORITHMS:
            if alg != RS256:
                for step in (["rotate", "--alg", alg], ["promote", "--force"]):
                    done = run_cli("keys", *step, env=keys_env)
                    assert done.returncode == 0, done.stderr
                kid = done.stdout.split()[0]  # promote's first line: "<kid> active"
                # the running issuer reads keys.json again within a second
                wait_until(lambda kid=kid: _readiness_kid(url) == kid, timeout=15,
                           what=f"the issuer to sign with its {alg} key")
            answer = requests.post(f"{url}/v1/tokens", json={"userId": f"user-{alg}"},
                                   headers={"Authorization": f"Bearer {client_key}"}, timeout=10)
            assert answer.status_code == 201, answer.text
            tokens[alg] = answer.json()["token"]
        yield MigratedIssuer(url, tokens, folder / "keys")
    finally:
        service.stop()


def node_consumers(issuer_url: str, algorithm: str, tokens: dict[str, str],
                   tmp_path: Path) -> subprocess.CompletedProcess[str]:
    modules = COMPAT / "node_modules"
    if shutil.which("node") is None or not (modules / "openid-client").is_dir() \
            or not (modules / "jose").is_dir():
        pytest.fail("node and tests/compat/node_modules are needed (npm ci in tests/compat)")
    tokens_file = tmp_path / "tokens.json"
    tokens_file.write_text(json.dumps(tokens))
    return subprocess.run(["node", str(COMPAT / "standard_consumers.mjs"), issuer_url, algorithm,
                           str(tokens_file)], capture_output=True, text=True, timeout=60,
                          check=False)


@pytest.mark.parametrize("algorithm", ["oidc", "oauth2"])
def test_openid_client_discovers_the_issuer_and_jose_verifies_every_algorithm(
    migrated_issuer: MigratedIssuer, tmp_path: Path, algorithm: str
) -> None:
    url = migrated_issuer.url
    result = node_consumers(url, algorithm, migrated_issuer.tokens, tmp_path)
    assert result.returncode == 0, result.stderr
    answer: dict[str, Any] = json.loads(result.stdout)
    metadata = answer["metadata"]
    assert metadata["issuer"] == url
    assert metadata["jwks_uri"] == f"{url}/.well-known/jwks.json"
    # the active key's algorithm first, then the retiring keys' that still verify tokens
    assert metadata["id_token_signing_alg_values_supported"] == [EDDSA, RS256, ES256]
    assert "authorization_endpoint" not in metadata
    assert "token_endpoint" not in metadata
    for alg, verified in answer["verified"].items():
        assert "error" not in verified, (alg, verified)
        assert verified["header"]["alg"] == alg
        assert verified["payload"]["iss"] == url
        assert verified["payload"]["sub"] == verified["payload"]["userId"] == f"user-{alg}"


def test_openid_client_refuses_an_issuer_reached_under_another_url(
    migrated_issuer: MigratedIssuer, tmp_path: Path
) -> None:
    # the same server, named differently: the document's issuer is not the URL asked for
    other = migrated_issuer.url.replace("127.0.0.1", "localhost")
    result = node_consumers(other, "oidc", {}, tmp_path)
    assert result.returncode == 1
    assert "issuer does not match" in result.stderr


def test_jose_refuses_a_token_naming_another_issuer(
    migrated_issuer: MigratedIssuer, tmp_path: Path
) -> None:
    # signed by the issuer's own active key, so only the iss check can refuse it
    state = read_state(migrated_issuer.keys_dir)
    active = state.active(time.time())
    key = serialization.load_pem_private_key(
        (migrated_issuer.keys_dir / active.file).read_bytes(), PASSPHRASE.encode())
    now = int(time.time())
    elsewhere = pyjwt.encode({"userId": "u", "sub": "u", "iat": now, "exp": now + 60,
                              "iss": "https://elsewhere.example"}, key, algorithm=EDDSA,
                             headers={"kid": active.kid})
    result = node_consumers(migrated_issuer.url, "oidc", {"elsewhere": elsewhere}, tmp_path)
    assert result.returncode == 0, result.stderr
    error = json.loads(result.stdout)["verified"]["elsewhere"].get("error", "")
    assert error.startswith("ERR_JWT_CLAIM_VALIDATION_FAILED"), error
    assert '"iss"' in error


@pytest.mark.parametrize("alg", ALGORITHMS)
def test_pyjwt_jwk_client_verifies_every_algorithm(
    migrated_issuer: MigratedIssuer, alg: str
) -> None:
    url = migrated_issuer.url
    discovered = requests.get(f"{url}/.well-known/openid-configuration", timeout=10).json()
    jwks = pyjwt.PyJWKClient(discovered["jwks_uri"], cache_keys=False, timeout=10)
    token = migrated_issuer.tokens[alg]
    signing_key = jwks.get_signing_key_from_jwt(token)
    claims = pyjwt.decode(token, signing_key, algorithms=discovered[
        "id_token_signing_alg_values_supported"], issuer=discovered["issuer"],
        options={"require": ["sub", "iss", "exp", "iat"]})
    assert claims["sub"] == f"user-{alg}"
    assert pyjwt.get_unverified_header(token)["alg"] == alg
    # a key of one type never verifies a token of another
    others = [other for other in ALGORITHMS if other != alg]
    with pytest.raises(pyjwt.InvalidTokenError):
        pyjwt.decode(token, signing_key, algorithms=others)


OPENSSL_KEYS = {
    # what docs/issuer.md tells an operator who makes keys with OpenSSL instead of keygen
    "P-256 PKCS#8": (["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
                      "-aes256"], ES256),
    "Ed25519 PKCS#8": (["genpkey", "-algorithm", "ed25519", "-aes256"], EDDSA),
}


@pytest.mark.parametrize("form", sorted(OPENSSL_KEYS))
def test_openssl_curve_keys_sign_for_the_issuer(tmp_path: Path, form: str) -> None:
    if shutil.which("openssl") is None:
        pytest.fail("the openssl command is needed for the compatibility tests")
    command, alg = OPENSSL_KEYS[form]
    secret = tmp_path / "passphrase.txt"
    secret.write_text(PASSPHRASE + "\n")
    made = subprocess.run(["openssl", *command, "-pass", f"file:{secret}", "-out",
                           str(tmp_path / "private.pem")], capture_output=True, text=True,
                          timeout=60, check=False)
    assert made.returncode == 0, made.stderr
    assert (tmp_path / "private.pem").read_bytes().startswith(
        b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    env = {"ISSUER_PRIVATE_KEY_FILE": str(tmp_path / "private.pem"),
           "ISSUER_KEY_PASSPHRASE_FILE": str(secret)}
    issued = run_cli("issue", '{"userId": "7"}', env=env)
    assert issued.returncode == 0, issued.stderr
    public = subprocess.run(["openssl", "pkey", "-in", str(tmp_path / "private.pem"), "-passin",
                             f"file:{secret}", "-pubout"], capture_output=True, text=True,
                            timeout=60, check=True).stdout
    claims = pyjwt.decode(issued.stdout.strip(), public, algorithms=[alg])
    assert claims["sub"] == "7"
