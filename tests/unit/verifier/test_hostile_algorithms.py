"""Tokens that play one key type against another: RSA, P-256 (ES256) and Ed25519 (EdDSA).

The verifier here trusts one key of each type and allows all three algorithms, the widest a
deployment can set. Each key must verify its own algorithm only, whatever the header says; an
HMAC keyed with a public key is refused in every encoding of that key; the ECDSA signatures that
fooled other verifiers (r = s = 0, CVE-2022-21449) are refused. A high-S ES256 signature is
accepted, as RFC 7518 and other libraries accept it, and names the same token as its low-S twin
(``VerifiedToken.fingerprint``), so revoking one revokes both.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from shared.keys import public_key_from_jwk
from tests.forge import P256_ORDER, b64u, encode_json, high_s, sign, sign_raw, spki_pem, unsigned
from tests.keypairs import KeyPair
from tests.unit.verifier.hostile import CONTRACT_CODES, GOOD, NOW
from verifier.config import VerifierSettings
from verifier.errors import TokenError
from verifier.keyset import KeySet
from verifier.verification import VerificationPolicy, VerifiedToken, verify_token

ALL = ("RS256", "ES256", "EdDSA")


@pytest.fixture(scope="module")
def trusted(key_pair: KeyPair, es_key: ec.EllipticCurvePrivateKey,
            ed_key: ed25519.Ed25519PrivateKey) -> KeySet:
    pem = key_pair.public_pem.encode() + spki_pem(es_key) + spki_pem(ed_key)
    return KeySet.from_settings(VerifierSettings(public_key=pem.decode(), algorithms=ALL))


@pytest.fixture(scope="module")
def kids(trusted: KeySet) -> dict[str, str]:
    """The kid of the trusted key of each algorithm."""
    every = trusted.keys()
    return {key.alg: key.kid for key in every}


@pytest.fixture(scope="module")
def check(trusted: KeySet) -> Callable[[str], VerifiedToken]:
    policy = VerificationPolicy(algorithms=frozenset(ALL))
    return lambda token: verify_token(token, keys=trusted, policy=policy, now=NOW)


@pytest.fixture(scope="module")
def refusal(check: Callable[[str], VerifiedToken]) -> Callable[[str], str]:
    def run(token: str) -> str:
        with pytest.raises(TokenError) as caught:
            check(token)
        assert caught.value.status == 401
        assert caught.value.code in CONTRACT_CODES
        return caught.value.code

    return run


def test_each_key_verifies_its_own_algorithm(
    private: rsa.RSAPrivateKey, es_key: ec.EllipticCurvePrivateKey,
    ed_key: ed25519.Ed25519PrivateKey, kids: dict[str, str],
    check: Callable[[str], VerifiedToken],
) -> None:
    for alg, key in (("RS256", private), ("ES256", es_key), ("EdDSA", ed_key)):
        verified = check(sign(GOOD, key, alg=alg, kid=kids[alg]))
        assert (verified.user_id, verified.kid) == ("123", kids[alg])


def test_a_header_naming_another_types_algorithm_is_refused(
    private: rsa.RSAPrivateKey, es_key: ec.EllipticCurvePrivateKey,
    ed_key: ed25519.Ed25519PrivateKey, kids: dict[str, str], refusal: Callable[[str], str],
) -> None:
    attacker_ec = ec.generate_private_key(ec.SECP256R1())
    # ES256 on the RSA key's kid; RS256 (signed with the trusted RSA key) on the EC key's kid;
    # EdDSA on the EC key's kid, and ES256 on the Ed25519 key's kid
    assert refusal(sign(GOOD, attacker_ec, alg="ES256", kid=kids["RS256"])) == \
        "algorithm_not_allowed"
    assert refusal(sign(GOOD, private, alg="RS256", kid=kids["ES256"])) == \
        "algorithm_not_allowed"
    assert refusal(sign(GOOD, ed_key, alg="EdDSA", kid=kids["ES256"])) == \
        "algorithm_not_allowed"
    assert refusal(sign(GOOD, es_key, alg="ES256", kid=kids["EdDSA"])) == \
        "algorithm_not_allowed"
    # PS256 is an RSA algorithm, but not one this verifier allows
    assert refusal(sign(GOOD, private, alg="PS256", kid=kids["RS256"])) == \
        "algorithm_not_allowed"


def _public_encodings(key: ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
                      ) -> list[bytes]:
    public = key.public_key()
    pem = public.public_bytes(serialization.Encoding.PEM,
                              serialization.PublicFormat.SubjectPublicKeyInfo)
    der = public.public_bytes(serialization.Encoding.DER,
                              serialization.PublicFormat.SubjectPublicKeyInfo)
    if isinstance(public, ec.EllipticCurvePublicKey):
        raw = public.public_bytes(serialization.Encoding.X962,
                                  serialization.PublicFormat.UncompressedPoint)
        compressed = public.public_bytes(serialization.Encoding.X962,
                                         serialization.PublicFormat.CompressedPoint)
        numbers = public.public_numbers()
        jwk = {"kty": "EC", "crv": "P-256", "x": b64u(numbers.x.to_bytes(32, "big")),
               "y": b64u(numbers.y.to_bytes(32, "big"))}
        extra = [compressed, numbers.x.to_bytes(32, "big")]
    else:
        raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        jwk = {"kty": "OKP", "crv": "Ed25519", "x": b64u(raw)}
        extra = []
    return [pem, pem.strip(), der, raw, base64.b64encode(der), json.dumps(jwk).encode(),
            b64u(raw).encode(), *extra]


@pytest.mark.parametrize("hmac", ["HS256", "HS384", "HS512"])
def test_hmac_keyed_with_an_ec_or_ed25519_public_key_is_refused(
    hmac: str, es_key: ec.EllipticCurvePrivateKey, ed_key: ed25519.Ed25519PrivateKey,
    kids: dict[str, str], refusal: Callable[[str], str],
) -> None:
    for alg, key in (("ES256", es_key), ("EdDSA", ed_key)):
        for secret in _public_encodings(key):
            for kid in (kids[alg], None):
                token = sign(GOOD, secret, alg=hmac, kid=kid)
                assert refusal(token) == "algorithm_not_allowed", (alg, secret[:20])


def _with_signature(token: str, raw: bytes) -> str:
    return f"{token.rpartition('.')[0]}.{b64u(raw)}"


def test_ecdsa_signatures_of_zeros_and_of_the_order_are_refused(
    es_key: ec.EllipticCurvePrivateKey, kids: dict[str, str], refusal: Callable[[str], str],
) -> None:
    """CVE-2022-21449: r = s = 0 verified every message in Java 15-18."""
    token = sign(GOOD, es_key, alg="ES256", kid=kids["ES256"])
    good = base64.urlsafe_b64decode(token.rpartition(".")[2] + "==")
    order = P256_ORDER.to_bytes(32, "big")
    zero = bytes(32)
    for forged in (zero + zero, order + order, zero + good[32:], good[:32] + zero,
                   order + good[32:], good[:32] + order, b"\xff" * 64):
        assert refusal(_with_signature(token, forged)) == "signature_invalid", forged.hex()


def test_signatures_of_the_wrong_length_are_refused(
    es_key: ec.EllipticCurvePrivateKey, ed_key: ed25519.Ed25519PrivateKey,
    kids: dict[str, str], refusal: Callable[[str], str],
) -> None:
    from cryptography.hazmat.primitives import hashes

    es_token = sign(GOOD, es_key, alg="ES256", kid=kids["ES256"])
    signing_input = es_token.rpartition(".")[0].encode()
    # the DER form other APIs return: valid ECDSA, but not JOSE's 64-byte r||s
    der = es_key.sign(signing_input, ec.ECDSA(hashes.SHA256()))
    assert refusal(_with_signature(es_token, der)) == "signature_invalid"
    raw = base64.urlsafe_b64decode(es_token.rpartition(".")[2] + "==")
    for forged in (raw[:63], raw + b"\x00", b"\x00" + raw):
        assert refusal(_with_signature(es_token, forged)) == "signature_invalid"
    ed_token = sign(GOOD, ed_key, alg="EdDSA", kid=kids["EdDSA"])
    ed_raw = base64.urlsafe_b64decode(ed_token.rpartition(".")[2] + "==")
    for forged in (ed_raw[:63], ed_raw + b"\x00", bytes(64)):
        assert refusal(_with_signature(ed_token, forged)) == "signature_invalid"


def test_an_ed25519_signature_with_s_past_the_group_order_is_refused(
    ed_key: ed25519.Ed25519PrivateKey, kids: dict[str, str], refusal: Callable[[str], str],
) -> None:
    """RFC 8032's malleability check: S + L is the same signature in other bytes."""
    token = sign(GOOD, ed_key, alg="EdDSA", kid=kids["EdDSA"])
    raw = base64.urlsafe_b64decode(token.rpartition(".")[2] + "==")
    order = 2**252 + 27742317777372353535851937790883648493
    s = int.from_bytes(raw[32:], "little") + order
    if s < 2**256:
        assert refusal(_with_signature(token, raw[:32] + s.to_bytes(32, "little"))) == \
            "signature_invalid"


def test_a_high_s_es256_signature_is_the_same_token(
    es_key: ec.EllipticCurvePrivateKey, kids: dict[str, str],
    check: Callable[[str], VerifiedToken],
) -> None:
    low = sign(GOOD, es_key, alg="ES256", kid=kids["ES256"])  # no jti: revoked by hash
    high = high_s(low)
    assert high != low
    first, second = check(low), check(high)
    assert first.claims == second.claims
    # one name for both: a revocation of either (by hash, without a jti) covers the other
    assert first.fingerprint == second.fingerprint


def test_other_algorithms_keep_the_token_hash_as_its_fingerprint(
    private: rsa.RSAPrivateKey, ed_key: ed25519.Ed25519PrivateKey, kids: dict[str, str],
    check: Callable[[str], VerifiedToken],
) -> None:
    import hashlib

    for alg, key in (("RS256", private), ("EdDSA", ed_key)):
        token = sign(GOOD, key, alg=alg, kid=kids[alg])
        assert check(token).fingerprint == hashlib.sha256(token.encode()).hexdigest()


def test_embedded_or_linked_ec_keys_are_never_used(
    es_key: ec.EllipticCurvePrivateKey, refusal: Callable[[str], str]
) -> None:
    attacker = ec.generate_private_key(ec.SECP256R1())
    numbers = attacker.public_key().public_numbers()
    jwk = {"kty": "EC", "crv": "P-256", "x": b64u(numbers.x.to_bytes(32, "big")),
           "y": b64u(numbers.y.to_bytes(32, "big"))}
    # the key in the header is well formed: only the refusal to read it stops the attack
    assert public_key_from_jwk(jwk, source="test").alg == "ES256"
    for member in ({"jwk": jwk}, {"jku": "http://127.0.0.1:9/keys"}, {"kid": "../../keys"}):
        header = {"alg": "ES256", "typ": "JWT", **member}
        token = sign_raw(encode_json(header), encode_json(GOOD), attacker, "ES256")
        assert refusal(token) in ("signature_invalid", "key_unknown")


def test_alg_none_on_an_ec_kid_is_refused(kids: dict[str, str],
                                          refusal: Callable[[str], str]) -> None:
    for kid in (kids["ES256"], kids["EdDSA"]):
        token = unsigned({"alg": "none", "kid": kid}, GOOD, "AAAA")
        assert refusal(token) == "algorithm_not_allowed"


def test_a_token_without_kid_finds_the_one_key_of_its_algorithm(
    private: rsa.RSAPrivateKey, es_key: ec.EllipticCurvePrivateKey,
    check: Callable[[str], VerifiedToken], kids: dict[str, str],
) -> None:
    """A seed-style RS256 token has no kid: beside an ES256 key (a migration), it still finds
    the RSA key, as an ES256 token without kid finds the P-256 key."""
    assert check(sign(GOOD, private)).kid == kids["RS256"]
    assert check(sign(GOOD, es_key, alg="ES256")).kid == kids["ES256"]
