"""Fixtures for the verifier's unit tests: the trusted and the attacker's keys, and a verifier.

``verify`` and ``refused`` run the whole pipeline (``verify_token``) at ``hostile.NOW`` against
the trusted public key; ``refused`` also checks that only a 401 TokenError with a documented code
comes out. A test module that defines a fixture of the same name uses its own.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.forge import private_key
from tests.keypairs import KeyPair
from tests.unit.verifier.hostile import CONTRACT_CODES, NOW
from verifier.config import VerifierSettings
from verifier.errors import TokenError
from verifier.keyset import KeySet
from verifier.verification import VerificationPolicy, VerifiedToken, verify_token


@pytest.fixture(scope="module")
def private(key_pair: KeyPair) -> rsa.RSAPrivateKey:
    """The trusted private key (the one ``keys`` holds the public half of)."""
    return private_key(key_pair)


@pytest.fixture(scope="module")
def attacker(other_key_pair: KeyPair) -> rsa.RSAPrivateKey:
    """A private key nobody trusts."""
    return private_key(other_key_pair)


@pytest.fixture(scope="module")
def keys(key_pair: KeyPair) -> KeySet:
    return KeySet.from_settings(VerifierSettings(public_key=key_pair.public_pem))


@pytest.fixture(scope="module")
def verify(keys: KeySet, key_pair: KeyPair) -> Callable[[Any], VerifiedToken]:
    policy = VerificationPolicy.from_settings(VerifierSettings(public_key=key_pair.public_pem))

    def run(token: Any) -> VerifiedToken:
        return verify_token(token, keys=keys, policy=policy, now=NOW)

    return run


@pytest.fixture(scope="module")
def refused(verify: Callable[[Any], VerifiedToken]) -> Callable[[Any], str]:
    """Verify a token that must fail; return its code (only a TokenError may come out)."""

    def run(token: Any) -> str:
        # pytest.raises fails the test on success and lets any other exception through
        with pytest.raises(TokenError) as caught:
            verify(token)
        error = caught.value
        assert error.status == 401
        assert error.code in CONTRACT_CODES
        assert error.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'
        return error.code

    return run
