"""Tokens from software we did not write, accepted by the verifier over HTTP under gunicorn.

Keys come from the seed's own two openssl commands; the verifier is configured the way the seed
configures its provider (the public key pasted with literal ``\\n``).
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import jwt as pyjwt
import pytest
import requests
from cryptography.hazmat.primitives import serialization

from tests.compat.seed import SEED_PASSPHRASE, SeedKeys
from tests.procs import ServiceProcess

pytestmark = pytest.mark.compat

COMPAT = Path(__file__).resolve().parent


@pytest.fixture
def verifier(
    seed_keys: SeedKeys, redis_url: str, tmp_path: Path
) -> Iterator[ServiceProcess]:
    pasted = seed_keys.public_path.read_text().strip().replace("\n", "\\n")
    service = ServiceProcess(
        "verifier",
        {"VERIFIER_PUBLIC_KEY": pasted, "REDIS_URL": redis_url},
        tmp_path / "verifier.log",
        workers=1,
    )
    service.start()
    yield service
    service.stop()


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_the_seed_snippet_token_is_accepted(
    seed_keys: SeedKeys, verifier: ServiceProcess
) -> None:
    signed = subprocess.run(
        ["node", str(COMPAT / "sign_seed_http.js"), str(seed_keys.private_path), SEED_PASSPHRASE],
        check=True, capture_output=True, text=True, timeout=60, cwd=COMPAT,
    )
    token = signed.stdout.strip()
    response = requests.post(f"{verifier.url}/v1/verify", json={"token": token}, timeout=10)
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["userId"], body["isAdmin"], body["provider"]) == ("123", True, "jwt")
    # jsonwebtoken adds iat only: the seed's tokens never expire
    assert body["expiresAt"] is None
    assert "exp" not in body["claims"]
    assert abs(body["issuedAt"] - time.time()) < 120

    forwarded = requests.get(
        f"{verifier.url}/v1/auth", headers={"Authorization": f"Bearer {token}"}, timeout=10
    )
    assert forwarded.status_code == 200
    assert forwarded.headers["X-Auth-User-Id"] == "123"
    assert forwarded.headers["X-Auth-Is-Admin"] == "true"


def test_a_pyjwt_token_is_accepted(seed_keys: SeedKeys, verifier: ServiceProcess) -> None:
    key = serialization.load_pem_private_key(seed_keys.private_pem, SEED_PASSPHRASE.encode())
    now = int(time.time())
    token = pyjwt.encode(
        {"userId": "py|thon", "isAdmin": False, "iat": now, "exp": now + 60, "extra": [1, 2]},
        key, algorithm="RS256",
    )
    response = requests.post(f"{verifier.url}/v1/verify", json={"token": token}, timeout=10)
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["userId"], body["isAdmin"]) == ("py_thon", False)
    assert body["claims"]["extra"] == [1, 2]
    assert body["expiresAt"] == now + 60

    # and a string "true" is not admin, exactly as the reference compared it
    stringy = pyjwt.encode({"userId": "s", "isAdmin": "true"}, key, algorithm="RS256")
    refused = requests.post(f"{verifier.url}/v1/verify", json={"token": stringy}, timeout=10)
    assert refused.status_code == 401
