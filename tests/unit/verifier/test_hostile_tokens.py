"""Tokens an attacker would send: each refused with its exact code, and never anything but 401.

Every forged token here that could be signed is signed for real (with the trusted key where the
point is that the *shape* is refused, with the attacker's key where the point is the key), so a
refusal is never just a signature failure in disguise. This part: algorithms, keys named or
embedded by the token, header members, signatures, and a fuzzer; malformed shapes, base64url,
JSON and claim types are in ``test_hostile_encoding.py``.
"""

from __future__ import annotations

import base64
import datetime
import http.server
import json
import random
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from shared.keys import public_jwk
from tests.forge import b64u, encode_json, sign, sign_raw, unsigned
from tests.keypairs import KeyPair
from tests.unit.verifier.hostile import CONTRACT_CODES, GOOD, NOW
from verifier.errors import TokenError
from verifier.verification import VerifiedToken


def test_the_baseline_token_is_accepted(
    private: rsa.RSAPrivateKey, verify: Callable[[Any], VerifiedToken]
) -> None:
    # every hostile variant below starts from this, so its refusal is the variant's doing
    assert verify(sign(GOOD, private)).user_id == "123"


# -- alg none and HMAC -----------------------------------------------------------------------------

NONE_SPELLINGS = ["none", "None", "NONE", "nOnE"]


@pytest.mark.parametrize("alg", NONE_SPELLINGS)
def test_alg_none_with_a_signature_segment(
    alg: str, private: rsa.RSAPrivateKey, refused: Callable[[Any], str]
) -> None:
    real_signature = sign(GOOD, private).split(".")[2]
    for third in ("AAAA", real_signature):
        assert refused(unsigned({"alg": alg, "typ": "JWT"}, GOOD, third)) == "algorithm_not_allowed"


@pytest.mark.parametrize("alg", NONE_SPELLINGS)
def test_alg_none_without_a_signature_segment(alg: str, refused: Callable[[Any], str]) -> None:
    # structure is checked first: an empty (or absent) signature is malformed before any header
    # is read, so even a verifier configured with "none" could never see these
    token = unsigned({"alg": alg, "typ": "JWT"}, GOOD, "")
    assert refused(token) == "token_malformed"
    assert refused(token[:-1]) == "token_malformed"


def _public_forms(key_pair: KeyPair) -> dict[str, bytes]:
    pem = key_pair.public_pem.encode()
    public = serialization.load_pem_public_key(pem)
    der = public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    pkcs1 = public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.PKCS1)
    from jwcrypto import jwk as jwcrypto_jwk  # only to write the public JWK an attacker would

    members = public_jwk(jwcrypto_jwk.JWK.from_pem(pem))
    return {
        "pem": pem,
        "pem-stripped": pem.strip(),
        "pkcs1-pem": pkcs1,
        "der": der,
        "jwk-json": json.dumps(members).encode(),
        "jwk-json-compact": json.dumps(members, separators=(",", ":")).encode(),
    }


@pytest.mark.parametrize("alg", ["HS256", "HS384", "HS512"])
def test_hmac_signed_with_the_public_key_as_secret(
    alg: str, key_pair: KeyPair, refused: Callable[[Any], str]
) -> None:
    for form, secret in _public_forms(key_pair).items():
        token = sign(GOOD, secret, alg=alg)
        assert refused(token) == "algorithm_not_allowed", form
        kid_token = sign(GOOD, secret, alg=alg, header={"alg": alg, "kid": "x"})
        assert refused(kid_token) == "algorithm_not_allowed", form


@pytest.mark.parametrize("alg", ["rs256", "RS256 ", " RS256", "RS-256", "ES256", "EdDSA",
                                 "RSA-OAEP", "dir", "", "HS256\u0000"])
def test_other_alg_spellings(
    alg: str, private: rsa.RSAPrivateKey, refused: Callable[[Any], str]
) -> None:
    token = sign(GOOD, private, header={"alg": alg})
    assert refused(token) == "algorithm_not_allowed"


@pytest.mark.parametrize("header", [{}, {"alg": None}, {"alg": 256}, {"alg": ["RS256"]},
                                    {"typ": "JWT"}])
def test_alg_missing_or_not_a_string(
    header: dict[str, Any], private: rsa.RSAPrivateKey, refused: Callable[[Any], str]
) -> None:
    assert refused(sign_raw(encode_json(header), encode_json(GOOD), private)) == "token_malformed"


# -- keys named or embedded by the token -----------------------------------------------------------


def _attacker_jwk(attacker: rsa.RSAPrivateKey) -> dict[str, Any]:
    from jwcrypto import jwk as jwcrypto_jwk

    pem = attacker.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return public_jwk(jwcrypto_jwk.JWK.from_pem(pem))


def test_embedded_attacker_jwk_is_never_used(
    attacker: rsa.RSAPrivateKey, refused: Callable[[Any], str]
) -> None:
    members = _attacker_jwk(attacker)
    # a valid signature by the attacker's key, which the header carries (CVE-2018-0114 shape)
    token = sign({**GOOD, "isAdmin": True}, attacker, header={"alg": "RS256", "jwk": members})
    assert refused(token) == "signature_invalid"
    # and with the attacker's kid the key is simply unknown
    with_kid = {"alg": "RS256", "jwk": members, "kid": members["kid"]}
    assert refused(sign(GOOD, attacker, header=with_kid)) == "key_unknown"


class _CountingHandler(http.server.BaseHTTPRequestHandler):
    requests: list[str]
    body = b"{}"

    def do_GET(self) -> None:
        self.requests.append(self.path)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def attacker_server(attacker: rsa.RSAPrivateKey) -> Iterator[tuple[str, list[str]]]:
    """An attacker's web server offering its key as a JWKS; records every request it gets."""
    seen: list[str] = []
    handler = type("Handler", (_CountingHandler,), {
        "requests": seen, "body": json.dumps({"keys": [_attacker_jwk(attacker)]}).encode(),
    })
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", seen
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


@pytest.mark.parametrize("member", ["jku", "x5u"])
def test_linked_keys_are_never_fetched(
    member: str, attacker: rsa.RSAPrivateKey, refused: Callable[[Any], str],
    attacker_server: tuple[str, list[str]],
) -> None:
    url, seen = attacker_server
    token = sign(GOOD, attacker, header={"alg": "RS256", member: f"{url}/jwks.json"})
    assert refused(token) == "signature_invalid"
    assert seen == []


def test_embedded_certificate_chain_is_never_used(
    attacker: rsa.RSAPrivateKey, refused: Callable[[Any], str]
) -> None:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "auth.example")])
    start = datetime.datetime(2020, 1, 1, tzinfo=datetime.UTC)
    certificate = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(attacker.public_key()).serial_number(1)
        .not_valid_before(start).not_valid_after(start + datetime.timedelta(days=36500))
        .sign(attacker, hashes.SHA256())
    )
    chain = [base64.b64encode(certificate.public_bytes(serialization.Encoding.DER)).decode()]
    header = {"alg": "RS256", "x5c": chain, "x5t#S256": "x"}
    assert refused(sign(GOOD, attacker, header=header)) == "signature_invalid"


def test_key_members_are_ignored_not_refused_on_a_trusted_token(
    private: rsa.RSAPrivateKey, attacker: rsa.RSAPrivateKey,
    verify: Callable[[Any], VerifiedToken],
) -> None:
    # the decision documented in docs/verification.md: these members are ignored, so issuers
    # that add x5c or jku for other consumers still interoperate; only configured keys verify
    header = {"alg": "RS256", "jwk": _attacker_jwk(attacker), "jku": "http://127.0.0.1:9/x",
              "x5u": "http://127.0.0.1:9/y", "x5c": ["AAAA"]}
    assert verify(sign(GOOD, private, header=header)).user_id == "123"


def test_untrusted_key(attacker: rsa.RSAPrivateKey, refused: Callable[[Any], str]) -> None:
    assert refused(sign(GOOD, attacker)) == "signature_invalid"


@pytest.mark.parametrize("kid", ["unknown", "a" * 5000, "../../etc/passwd", ""])
def test_unknown_kid(
    kid: str, private: rsa.RSAPrivateKey, refused: Callable[[Any], str]
) -> None:
    assert refused(sign(GOOD, private, header={"alg": "RS256", "kid": kid})) == "key_unknown"


@pytest.mark.parametrize("kid", [5, None, ["k"], {"k": 1}, True])
def test_kid_not_a_string(
    kid: Any, private: rsa.RSAPrivateKey, refused: Callable[[Any], str]
) -> None:
    assert refused(sign(GOOD, private, header={"alg": "RS256", "kid": kid})) == "token_malformed"


# -- header members that change processing ---------------------------------------------------------


@pytest.mark.parametrize("header", [
    {"alg": "RS256", "crit": ["exp"], "exp": 1},
    {"alg": "RS256", "crit": []},
    {"alg": "RS256", "b64": False, "crit": ["b64"]},
    {"alg": "RS256", "b64": True},
    {"alg": "RS256", "zip": "DEF"},
    {"alg": "RS256", "enc": "A256GCM"},
])
def test_processing_members_are_refused(
    header: dict[str, Any], private: rsa.RSAPrivateKey, refused: Callable[[Any], str]
) -> None:
    assert refused(sign(GOOD, private, header=header)) == "token_malformed"


def test_header_nested_beyond_a_flat_object(
    private: rsa.RSAPrivateKey, refused: Callable[[Any], str]
) -> None:
    header = {"alg": "RS256", "x": [[[[["deep"]]]]]}
    assert refused(sign(GOOD, private, header=header)) == "token_malformed"


# -- signatures ------------------------------------------------------------------------------------


def test_tampered_payload_and_swapped_parts(
    private: rsa.RSAPrivateKey, refused: Callable[[Any], str]
) -> None:
    header, _, signature = sign(GOOD, private).split(".")
    admin_payload = b64u(encode_json({**GOOD, "isAdmin": True}))
    assert refused(f"{header}.{admin_payload}.{signature}") == "signature_invalid"
    other = sign({"userId": "456"}, private).split(".")
    assert refused(f"{header}.{other[1]}.{signature}") == "signature_invalid"
    # a signature a few bytes short or long
    raw = base64.urlsafe_b64decode(other[2] + "==")
    assert refused(f"{other[0]}.{other[1]}.{b64u(raw[:-3])}") == "signature_invalid"
    assert refused(f"{other[0]}.{other[1]}.{b64u(raw + bytes(3))}") == "signature_invalid"


def test_every_single_bit_flip_of_the_signature(
    private: rsa.RSAPrivateKey, refused: Callable[[Any], str]
) -> None:
    header, payload, signature = sign(GOOD, private).split(".")
    raw = bytearray(base64.urlsafe_b64decode(signature + "=="))
    for position in range(0, len(raw), 17):  # a spread of bytes, bounded
        flipped = bytearray(raw)
        flipped[position] ^= 0x01
        assert refused(f"{header}.{payload}.{b64u(bytes(flipped))}") == "signature_invalid"


# -- fuzz: nothing but TokenError or success -------------------------------------------------------

_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
_EXTRA = "=+/. \n\t\x00é{}\"\\\u2028"


def _mutate(token: str, rng: random.Random, private: rsa.RSAPrivateKey) -> str:
    operation = rng.randrange(9)
    position = rng.randrange(len(token) + 1)
    if operation == 0:  # replace a character
        return token[:position] + rng.choice(_ALPHABET + _EXTRA) + token[position + 1:]
    if operation == 1:  # insert one
        return token[:position] + rng.choice(_ALPHABET + _EXTRA) + token[position:]
    if operation == 2:  # delete a run
        return token[:position] + token[position + rng.randrange(1, 8):]
    if operation == 3:  # truncate
        return token[:position]
    if operation == 4:  # shuffle or repeat segments
        segments = token.split(".")
        rng.shuffle(segments)
        return ".".join(segments[: rng.randrange(1, 6)] + segments[: rng.randrange(0, 3)])
    if operation == 5:  # a random header member, re-encoded (signature now stale)
        parts = token.split(".")
        if len(parts) < 3:
            return token
        header, payload, signature = parts[:3]
        try:
            decoded = json.loads(base64.urlsafe_b64decode(header + "=="))
        except ValueError:  # an earlier mutation broke the header: nothing to edit
            return token
        if not isinstance(decoded, dict):
            return token
        decoded[rng.choice(["alg", "kid", "typ", "crit", "jwk", "zip", "b64", "enc"])] = (
            rng.choice([None, 0, "none", "HS256", "RS256", [], {}, True, "JWT", "x" * 300])
        )
        return f"{b64u(encode_json(decoded))}.{payload}.{signature}"
    if operation == 6:  # a random claim value, correctly signed: fuzzes the claim layer
        claims: dict[str, Any] = dict(GOOD)
        for _ in range(rng.randrange(1, 4)):
            claims[rng.choice(["userId", "isAdmin", "exp", "nbf", "iat", "aud", "iss", "jti"])] = (
                rng.choice([None, 0, -1, 1e308, NOW, NOW * 2, "", "u", "a|b", True, False, [],
                            {}, [1], "x" * 300, "\u0000", 2**70])
            )
        return sign(claims, private)
    if operation == 7:  # a random byte string as one decoded segment
        segments = token.split(".")
        index = rng.randrange(len(segments))
        segments[index] = b64u(rng.randbytes(rng.randrange(0, 40)))
        return ".".join(segments)
    return token.upper() if rng.random() < 0.5 else token.lower()


def test_fuzzed_mutations_raise_only_token_errors(
    private: rsa.RSAPrivateKey, verify: Callable[[Any], VerifiedToken]
) -> None:
    rng = random.Random(20261128)  # noqa: S311 - a seeded, reproducible fuzzer, not a secret
    base = sign({**GOOD, "iat": NOW, "jti": "fuzz"}, private)
    outcomes: dict[str, int] = {}
    for _ in range(3000):
        token = base
        for _ in range(rng.randrange(1, 4)):
            token = _mutate(token, rng, private)
        try:
            verify(token)
            code = "ok"
        except TokenError as exc:  # anything else propagates and fails the test
            code = exc.code
        assert code in {*CONTRACT_CODES, "ok"}
        outcomes[code] = outcomes.get(code, 0) + 1
    # the fuzzer reached past the structure checks into every later stage
    for code in ("token_malformed", "algorithm_not_allowed", "signature_invalid", "claim_invalid",
                 "claim_missing", "ok"):
        assert outcomes.get(code, 0) > 0, (code, outcomes)
