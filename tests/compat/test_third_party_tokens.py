"""Tokens made by software we did not write are verified by our pipeline, with seed-made keys."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import jwt as pyjwt
import pytest
from cryptography.hazmat.primitives import serialization

from tests.compat.seed import SEED_PASSPHRASE, SeedKeys
from verifier.config import VerifierSettings
from verifier.errors import TokenError
from verifier.keyset import KeySet
from verifier.verification import VerificationPolicy, VerifiedToken, verify_token

pytestmark = pytest.mark.compat

COMPAT = Path(__file__).resolve().parent


def seed_snippet(keys: SeedKeys, payload: dict[str, Any] | None = None) -> str:
    """Run the seed's node snippet in the key folder; its token."""
    if shutil.which("node") is None or not (COMPAT / "node_modules" / "jsonwebtoken").is_dir():
        pytest.fail("node and tests/compat/node_modules are needed (npm ci in tests/compat)")
    args = ["node", str(COMPAT / "seed_snippet.js")]
    if payload is not None:
        args.append(json.dumps(payload))
    result = subprocess.run(args, cwd=keys.directory, capture_output=True, text=True, timeout=60,
                            env={**os.environ, "SEED_PASSPHRASE": SEED_PASSPHRASE},
                            check=False)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def verify(token: str, keys: SeedKeys, now: float | None = None) -> VerifiedToken:
    # configured the way the seed configures its provider: the public key pasted with \n
    settings = VerifierSettings.from_env(
        {"VERIFIER_PUBLIC_KEY": keys.public_pem.strip().replace("\n", "\\n")}
    )
    return verify_token(
        token,
        keys=KeySet.from_settings(settings),
        policy=VerificationPolicy.from_settings(settings),
        now=time.time() if now is None else now,
    )


def test_the_seed_snippet_token_verifies(seed_keys: SeedKeys) -> None:
    token = seed_snippet(seed_keys)
    result = verify(token, seed_keys)
    assert (result.user_id, result.is_admin, result.provider) == ("123", True, "jwt")
    # jsonwebtoken adds iat only: no exp, so (as in the reference) it does not expire
    assert set(result.claims) == {"userId", "isAdmin", "iat"}
    assert result.expires_at is None
    assert result.issued_at is not None
    assert abs(result.issued_at - time.time()) < 120
    assert verify(token, seed_keys, now=time.time() + 10 * 365 * 86400).user_id == "123"


def test_the_seed_snippet_with_other_payloads(seed_keys: SeedKeys) -> None:
    token = seed_snippet(seed_keys, {"userId": "a|b|c", "isAdmin": False, "team": "blue"})
    result = verify(token, seed_keys)
    assert (result.user_id, result.is_admin, result.claims["team"]) == ("a_b_c", False, "blue")


def test_a_node_token_with_exp_in_the_past_is_expired(seed_keys: SeedKeys) -> None:
    token = seed_snippet(seed_keys, {"userId": "123", "exp": int(time.time()) - 3600})
    with pytest.raises(TokenError) as caught:
        verify(token, seed_keys)
    assert caught.value.code == "token_expired"


def test_a_node_token_with_a_string_admin_flag_is_refused(seed_keys: SeedKeys) -> None:
    token = seed_snippet(seed_keys, {"userId": "123", "isAdmin": "true"})
    with pytest.raises(TokenError) as caught:
        verify(token, seed_keys)
    assert caught.value.code == "claim_invalid"


@pytest.mark.parametrize("headers", [None, {"typ": "JWT"}])
def test_a_pyjwt_token_verifies(seed_keys: SeedKeys, headers: dict[str, str] | None) -> None:
    private = serialization.load_pem_private_key(seed_keys.private_pem, SEED_PASSPHRASE.encode())
    now = int(time.time())
    token = pyjwt.encode({"userId": "py-1", "isAdmin": False, "iat": now, "exp": now + 300},
                         private, algorithm="RS256", headers=headers)
    result = verify(token, seed_keys)
    assert (result.user_id, result.is_admin, result.expires_at) == ("py-1", False, now + 300)


def test_a_pyjwt_token_by_another_key_is_refused(seed_keys: SeedKeys) -> None:
    from cryptography.hazmat.primitives.asymmetric import rsa

    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    token = pyjwt.encode({"userId": "123"}, stranger, algorithm="RS256")
    with pytest.raises(TokenError) as caught:
        verify(token, seed_keys)
    assert caught.value.code == "signature_invalid"
