"""sign_token: the header, the issuer's claims, and reserved claims refused."""

from __future__ import annotations

import base64
import json
from typing import Any

import jwt as pyjwt
import pytest

from issuer.signing import (
    RESERVED_CLAIMS,
    PayloadRejected,
    check_signing_key,
    reserved_claims,
    sign_token,
)
from shared.keys import EDDSA, ES256, SigningKey, load_private_key
from tests.keypairs import PASSPHRASE, KeyPair

NOW = 1_700_000_000.7


@pytest.fixture(scope="module")
def signing_key(key_pair: KeyPair) -> SigningKey:
    return load_private_key(key_pair.private_pem.encode(), PASSPHRASE.encode(), source="test")


def _segment(token: str, index: int) -> dict[str, Any]:
    part = token.split(".")[index]
    decoded: dict[str, Any] = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    return decoded


def test_header_is_exactly_alg_typ_kid(signing_key: SigningKey) -> None:
    issued = sign_token({"userId": "1"}, signing_key, now=NOW, ttl=60, issuer=None, audience=None)
    assert _segment(issued.token, 0) == {"alg": "RS256", "typ": "JWT", "kid": signing_key.kid}
    assert issued.kid == signing_key.kid


def test_claims_and_signature_verify_with_pyjwt(signing_key: SigningKey, key_pair: KeyPair) -> None:
    payload = {"userId": "123", "isAdmin": True, "team": "blue"}
    issued = sign_token(payload, signing_key, now=NOW, ttl=600, issuer="https://auth.example",
                        audience="app")
    claims = pyjwt.decode(
        issued.token, key_pair.public_pem, algorithms=["RS256"], audience="app",
        issuer="https://auth.example", options={"verify_exp": False},
    )
    assert claims == {
        **payload, "iat": 1_700_000_000, "exp": 1_700_000_600, "jti": issued.jti,
        "iss": "https://auth.example", "aud": "app",
    }
    assert issued.expires_at == 1_700_000_600
    assert payload == {"userId": "123", "isAdmin": True, "team": "blue"}  # caller's dict untouched


def test_ttl_zero_makes_a_seed_style_token_without_exp(signing_key: SigningKey) -> None:
    issued = sign_token({"userId": "1"}, signing_key, now=NOW, ttl=0, issuer=None, audience=None)
    claims = _segment(issued.token, 1)
    assert "exp" not in claims
    assert issued.expires_at is None
    assert set(claims) == {"userId", "iat", "jti"}


def test_jti_is_random_with_at_least_128_bits(signing_key: SigningKey) -> None:
    jtis = {
        sign_token({"userId": "1"}, signing_key, now=NOW, ttl=60, issuer=None, audience=None).jti
        for _ in range(20)
    }
    assert len(jtis) == 20
    for jti in jtis:
        assert len(base64.urlsafe_b64decode(jti + "=" * (-len(jti) % 4))) * 8 >= 128


@pytest.mark.parametrize("claim", RESERVED_CLAIMS)
def test_reserved_claims_are_refused_by_name(signing_key: SigningKey, claim: str) -> None:
    with pytest.raises(PayloadRejected) as caught:
        sign_token({"userId": "1", claim: "x"}, signing_key, now=NOW, ttl=60, issuer=None,
                   audience=None)
    assert caught.value.code == "claim_reserved"
    assert caught.value.field == claim


def test_schema_failures_name_the_field(signing_key: SigningKey) -> None:
    with pytest.raises(PayloadRejected) as caught:
        sign_token({"userId": "1", "isAdmin": "true"}, signing_key, now=NOW, ttl=60, issuer=None,
                   audience=None)
    assert (caught.value.code, caught.value.field) == ("claim_invalid", "isAdmin")


def test_unicode_claims_survive(signing_key: SigningKey, key_pair: KeyPair) -> None:
    issued = sign_token({"userId": "zoë", "city": "Zürich"}, signing_key, now=NOW, ttl=0,
                        issuer=None, audience=None)
    claims = pyjwt.decode(issued.token, key_pair.public_pem, algorithms=["RS256"])
    assert claims["userId"] == "zoë"
    assert claims["city"] == "Zürich"


def test_signing_key_check(signing_key: SigningKey) -> None:
    assert check_signing_key(signing_key) is True


@pytest.mark.parametrize(
    "payload", [{"userId": "\ud800"}, {"userId": "1", "note": {"deep": ["\udfff"]}}]
)
def test_lone_surrogates_are_refused_naming_the_member(
    signing_key: SigningKey, payload: dict[str, Any]
) -> None:
    with pytest.raises(PayloadRejected) as caught:
        sign_token(payload, signing_key, now=NOW, ttl=60, issuer=None, audience=None)
    assert caught.value.code == "claim_invalid"
    assert caught.value.field in payload


def test_non_finite_numbers_are_refused(signing_key: SigningKey) -> None:
    with pytest.raises(PayloadRejected) as caught:
        sign_token({"userId": "1", "score": float("inf")}, signing_key, now=NOW, ttl=60,
                   issuer=None, audience=None)
    assert (caught.value.code, caught.value.field) == ("claim_invalid", "score")


def test_subject_from_copies_the_user_id_into_sub(signing_key: SigningKey) -> None:
    issued = sign_token({"userId": "u-1", "team": "blue"}, signing_key, now=NOW, ttl=60,
                        issuer=None, audience=None, subject_from="userId")
    assert _segment(issued.token, 1)["sub"] == "u-1"
    assert issued.claims["sub"] == "u-1"
    with pytest.raises(PayloadRejected) as caught:
        sign_token({"userId": "u-1", "sub": "u-1"}, signing_key, now=NOW, ttl=60, issuer=None,
                   audience=None, subject_from="userId")
    assert (caught.value.code, caught.value.field) == ("claim_reserved", "sub")


def test_sub_is_reserved_only_while_the_issuer_sets_it() -> None:
    assert reserved_claims(None) == RESERVED_CLAIMS
    assert reserved_claims("userId") == (*RESERVED_CLAIMS, "sub")


@pytest.mark.parametrize("alg", [ES256, EDDSA])
def test_curve_keys_sign_their_own_algorithm(alg: str, es256_key_pair: KeyPair,
                                             eddsa_key_pair: KeyPair) -> None:
    pair = es256_key_pair if alg == ES256 else eddsa_key_pair
    key = load_private_key(pair.private_pem.encode(), PASSPHRASE.encode(), source="test")
    issued = sign_token({"userId": "1"}, key, now=NOW, ttl=0, issuer=None, audience=None)
    assert _segment(issued.token, 0) == {"alg": alg, "typ": "JWT", "kid": key.kid}
    assert pyjwt.decode(issued.token, pair.public_pem, algorithms=[alg])["userId"] == "1"
    # 64 bytes: r || s for ES256 (RFC 7518 3.4), the Ed25519 signature for EdDSA
    signature = issued.token.split(".")[2]
    assert len(base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4))) == 64
    assert check_signing_key(key) is True
