"""Tokens an attacker would send: each refused with its exact code, and never anything but 401.

Every forged token here that could be signed is signed for real (with the trusted key where the
point is that the *shape* is refused, with the attacker's key where the point is the key), so a
refusal is never just a signature failure in disguise.
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
from shared.strictjson import StrictJSONError, loads_strict
from tests.forge import b64u, encode_json, private_key, sign, sign_raw, unsigned
from tests.keypairs import KeyPair
from verifier.config import VerifierSettings
from verifier.errors import TokenError
from verifier.keyset import KeySet
from verifier.verification import VerificationPolicy, VerifiedToken, verify_token

NOW = 1_800_000_000.0
CONTRACT_CODES = {
    "token_malformed", "algorithm_not_allowed", "signature_invalid", "key_unknown",
    "token_expired", "token_not_yet_valid", "token_too_old", "claim_missing", "claim_invalid",
    "attributes_mismatch", "token_revoked",
}
GOOD = {"userId": "123", "isAdmin": False}


@pytest.fixture(scope="module")
def private(key_pair: KeyPair) -> rsa.RSAPrivateKey:
    return private_key(key_pair)


@pytest.fixture(scope="module")
def attacker(other_key_pair: KeyPair) -> rsa.RSAPrivateKey:
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


# -- shapes ----------------------------------------------------------------------------------------


def test_jwe_compact_shapes(private: rsa.RSAPrivateKey, refused: Callable[[Any], str]) -> None:
    jwe_header = b64u(encode_json({"alg": "RSA-OAEP", "enc": "A256GCM"}))
    assert refused(f"{jwe_header}.AAAA.AAAA.AAAA.AAAA") == "token_malformed"
    assert refused(f"{jwe_header}..AAAA.AAAA.AAAA") == "token_malformed"
    dir_header = b64u(encode_json({"alg": "dir", "enc": "A128CBC-HS256"}))
    assert refused(f"{dir_header}..AAAA.AAAA.AAAA") == "token_malformed"
    # a valid JWS smuggled inside a five-segment shape
    assert refused(sign(GOOD, private) + ".AAAA.AAAA") == "token_malformed"


@pytest.mark.parametrize("token", ["", ".", "..", "...", "....", "a", "a.b", "a.b.c.d",
                                   "a.b.c.d.e.f", ".AAAA.AAAA", "AAAA..AAAA", "AAAA.AAAA."])
def test_wrong_segment_counts_and_empty_segments(
    token: str, refused: Callable[[Any], str]
) -> None:
    assert refused(token) == "token_malformed"


def test_json_serialization_is_refused(
    private: rsa.RSAPrivateKey, refused: Callable[[Any], str]
) -> None:
    header, payload, signature = sign(GOOD, private).split(".")
    flattened = json.dumps({"protected": header, "payload": payload, "signature": signature})
    assert refused(flattened) == "token_malformed"
    general = json.dumps({"payload": payload,
                          "signatures": [{"protected": header, "signature": signature}]})
    assert refused(general) == "token_malformed"


def test_oversized_tokens(private: rsa.RSAPrivateKey, refused: Callable[[Any], str]) -> None:
    assert refused("A" * (1024 * 1024)) == "token_malformed"
    big = sign({**GOOD, "pad": "x" * (1024 * 1024)}, private)
    assert refused(big) == "token_malformed"
    just_over = sign({**GOOD, "pad": "x" * 6000}, private)
    assert len(just_over) > 8 * 1024
    assert refused(just_over) == "token_malformed"


def test_a_token_just_under_the_cap_is_fine(
    private: rsa.RSAPrivateKey, verify: Callable[[Any], VerifiedToken]
) -> None:
    token = sign({**GOOD, "pad": "x" * 5500}, private)
    assert len(token) <= 8 * 1024
    assert verify(token).user_id == "123"


# -- base64url canonical form ----------------------------------------------------------------------


def test_padding_is_refused(private: rsa.RSAPrivateKey, refused: Callable[[Any], str]) -> None:
    header, payload, signature = sign(GOOD, private).split(".")
    assert len(signature) % 4 == 2  # 256 bytes: two padding characters in standard base64
    assert refused(f"{header}.{payload}.{signature}==") == "token_malformed"
    header_json = b'{"alg":"RS256","p":""}'  # 22 bytes: 30 characters, then "=="
    token = sign_raw(header_json, encode_json(GOOD), private)
    header, rest = token.split(".", 1)
    assert len(header) % 4 != 0
    assert refused(f"{header}{'=' * (-len(header) % 4)}.{rest}") == "token_malformed"
    assert refused(f"{header}=.{rest}") == "token_malformed"


def _token_with_both_url_characters(private: rsa.RSAPrivateKey) -> str:
    for counter in range(200):  # bounded: about 1 in 2 signatures has both characters
        token = sign({**GOOD, "n": counter}, private)
        if "-" in token.split(".")[2] and "_" in token.split(".")[2]:
            return token
    raise AssertionError("no signature with both '-' and '_' in 200 tries")


def test_standard_alphabet_characters_are_refused(
    private: rsa.RSAPrivateKey, refused: Callable[[Any], str],
    verify: Callable[[Any], VerifiedToken],
) -> None:
    token = _token_with_both_url_characters(private)
    assert verify(token).user_id == "123"
    header, payload, signature = token.split(".")
    for translated in (signature.replace("-", "+"), signature.replace("_", "/"),
                       signature.replace("-", "+").replace("_", "/")):
        # the same bytes in the other alphabet: lenient decoders would accept this spelling
        assert refused(f"{header}.{payload}.{translated}") == "token_malformed"


@pytest.mark.parametrize("where", ["leading", "trailing", "newline", "inside", "tab", "cr",
                                   "nbsp", "around-dot"])
def test_whitespace_anywhere(
    where: str, private: rsa.RSAPrivateKey, refused: Callable[[Any], str]
) -> None:
    token = sign(GOOD, private)
    header, payload, signature = token.split(".")
    variants = {
        "leading": " " + token,
        "trailing": token + "\n",
        "newline": f"{header}.{payload[:10]}\n{payload[10:]}.{signature}",
        "inside": f"{header}.{payload}.{signature[:50]} {signature[50:]}",
        "tab": f"{header}\t.{payload}.{signature}",
        "cr": f"{header}.{payload}.{signature}\r\n",
        "nbsp": f"{header}.{payload}\u00a0.{signature}",
        "around-dot": f"{header} . {payload}.{signature}",
    }
    assert refused(variants[where]) == "token_malformed"


def _set_unused_bits(segment: str) -> str:
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    unused = {2: 4, 3: 2}[len(segment) % 4]  # bits of the last character that carry nothing
    last = alphabet.index(segment[-1])
    return segment[:-1] + alphabet[last | ((1 << unused) - 1)]


@pytest.mark.parametrize("part", [0, 1, 2])
def test_non_canonical_trailing_bits(
    part: int, private: rsa.RSAPrivateKey, refused: Callable[[Any], str],
    verify: Callable[[Any], VerifiedToken],
) -> None:
    # a payload and header whose encodings end in a partial group, so unused bits exist
    for counter in range(10):
        token = sign({**GOOD, "n": "x" * counter}, private,
                     header={"alg": "RS256", "typ": "JWT", "p": "y" * counter})
        segments = token.split(".")
        if all(len(segment) % 4 in (2, 3) for segment in segments):
            break
    else:
        raise AssertionError("no token with three partial final groups")
    assert verify(token).user_id == "123"
    mutated = list(segments)
    mutated[part] = _set_unused_bits(segments[part])
    assert mutated[part] != segments[part]
    # a second spelling of the very same bytes: lenient decoders see the original token
    pad = "=" * (-len(mutated[part]) % 4)
    original_bytes = base64.urlsafe_b64decode(segments[part] + pad)
    assert base64.urlsafe_b64decode(mutated[part] + pad) == original_bytes
    assert refused(".".join(mutated)) == "token_malformed"


@pytest.mark.parametrize("segment", ["A", "AAAAA", "AAAAAAAAA"])
def test_impossible_base64_lengths(
    segment: str, private: rsa.RSAPrivateKey, refused: Callable[[Any], str]
) -> None:
    header, payload, _ = sign(GOOD, private).split(".")
    assert refused(f"{header}.{payload}.{segment}") == "token_malformed"


def test_non_ascii_characters(private: rsa.RSAPrivateKey, refused: Callable[[Any], str]) -> None:
    header, payload, signature = sign(GOOD, private).split(".")
    assert refused(f"{header}.{payload}é.{signature}") == "token_malformed"
    assert refused(f"{header}.{payload}.{signature}\u200b") == "token_malformed"
    assert refused(f"{header}\uff0e{payload}.{signature}") == "token_malformed"


# -- JSON ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("header", "payload"), [
    (b'{"alg":"none","alg":"RS256"}', b'{"userId":"123"}'),
    (b'{"alg":"RS256","kid":"a","kid":"b"}', b'{"userId":"123"}'),
    (b'{"alg":"RS256"}', b'{"userId":"alice","userId":"admin"}'),
    (b'{"alg":"RS256"}', b'{"userId":"alice","isAdmin":false,"isAdmin":true}'),
    (b'{"alg":"RS256"}', b'{"userId":"a","nested":{"x":1,"x":2}}'),
    (b'{"alg":"RS256"}', b'{"userId":"a","\\u0069sAdmin":true,"isAdmin":false}'),
])
def test_duplicate_members(
    header: bytes, payload: bytes, private: rsa.RSAPrivateKey, refused: Callable[[Any], str]
) -> None:
    assert refused(sign_raw(header, payload, private)) == "token_malformed"


@pytest.mark.parametrize("constant", [b"NaN", b"Infinity", b"-Infinity"])
def test_nan_and_infinity(
    constant: bytes, private: rsa.RSAPrivateKey, refused: Callable[[Any], str]
) -> None:
    payload = b'{"userId":"a","exp":' + constant + b"}"
    assert refused(sign_raw(b'{"alg":"RS256"}', payload, private)) == "token_malformed"
    header = b'{"alg":"RS256","x":' + constant + b"}"
    assert refused(sign_raw(header, b'{"userId":"a"}', private)) == "token_malformed"


@pytest.mark.parametrize("depth", [33, 200, 3000])
def test_deep_nesting(
    depth: int, private: rsa.RSAPrivateKey, refused: Callable[[Any], str]
) -> None:
    payload = b'{"userId":"a","x":' + b"[" * depth + b"]" * depth + b"}"
    assert refused(sign_raw(b'{"alg":"RS256"}', payload, private)) == "token_malformed"


@pytest.mark.parametrize("payload", [b"[]", b'["userId","123"]', b'"userId"', b"123", b"null",
                                     b'\xef\xbb\xbf{"userId":"a"}',
                                     b"true", b"", b"{", b'{"userId":"a"} x', b"\xff\xfe{}",
                                     b'{"userId":"\xc3"}'])
def test_non_object_or_not_json_payloads(
    payload: bytes, private: rsa.RSAPrivateKey, refused: Callable[[Any], str]
) -> None:
    token = sign_raw(b'{"alg":"RS256"}', payload, private)
    if payload == b"":
        assert token.split(".")[1] == ""
    assert refused(token) == "token_malformed"


@pytest.mark.parametrize(("header", "payload"), [
    (b'{"alg":"RS256"}', b'{"userId":"a\\ud800b"}'),
    (b'{"alg":"RS256"}', b'{"userId":"\\uDFFF"}'),
    (b'{"alg":"RS256"}', b'{"userId":"u","jti":"\\ude00\\ud83d"}'),
    (b'{"alg":"RS256"}', b'{"userId":"u","deep":[{"x":"\\udbff"}]}'),
    (b'{"alg":"RS256","kid":"\\ud800"}', b'{"userId":"u"}'),
])
def test_unpaired_surrogate_escapes(
    header: bytes, payload: bytes, private: rsa.RSAPrivateKey, refused: Callable[[Any], str]
) -> None:
    # valid UTF-8 on the wire, but a string no encoder can write back (a Redis key, a header)
    assert refused(sign_raw(header, payload, private)) == "token_malformed"


def test_a_paired_surrogate_escape_is_fine(
    private: rsa.RSAPrivateKey, verify: Callable[[Any], VerifiedToken]
) -> None:
    token = sign_raw(b'{"alg":"RS256"}', b'{"userId":"\\ud83d\\ude00 \\\\ud800"}', private)
    assert verify(token).user_id == "\U0001f600 \\ud800"


@pytest.mark.parametrize("header", [b"[]", b'"RS256"', b"null", b"{", b"\xff"])
def test_non_object_headers(
    header: bytes, private: rsa.RSAPrivateKey, refused: Callable[[Any], str]
) -> None:
    assert refused(sign_raw(header, encode_json(GOOD), private)) == "token_malformed"


# -- claims ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("claims", "code"), [
    ({"userId": 123}, "claim_invalid"),
    ({"userId": 1.5}, "claim_invalid"),
    ({"userId": True}, "claim_invalid"),
    ({"userId": ["123"]}, "claim_invalid"),
    ({"userId": {}}, "claim_invalid"),
    ({"userId": "a\u0000b"}, "claim_invalid"),
    ({"userId": "a\nb"}, "claim_invalid"),
    ({"userId": "\u007f"}, "claim_invalid"),
    ({"userId": "x" * 256}, "claim_invalid"),
    ({"userId": ""}, "claim_missing"),
    ({"userId": None}, "claim_missing"),
    ({"userId": 0}, "claim_missing"),
    ({"userId": False}, "claim_missing"),
    ({}, "claim_missing"),
    ({"userId": "u", "isAdmin": "true"}, "claim_invalid"),
    ({"userId": "u", "isAdmin": 1}, "claim_invalid"),
    ({"userId": "u", "isAdmin": None}, "claim_invalid"),
    ({"userId": "u", "exp": "123"}, "claim_invalid"),
    ({"userId": "u", "exp": True}, "claim_invalid"),
    ({"userId": "u", "exp": None}, "claim_invalid"),
    ({"userId": "u", "exp": [NOW + 60]}, "claim_invalid"),
    ({"userId": "u", "nbf": "0"}, "claim_invalid"),
    ({"userId": "u", "nbf": False}, "claim_invalid"),
    ({"userId": "u", "iat": "now"}, "claim_invalid"),
    ({"userId": "u", "iat": {}}, "claim_invalid"),
    ({"userId": "u", "iss": 5}, "claim_invalid"),
    ({"userId": "u", "sub": ["x"]}, "claim_invalid"),
    ({"userId": "u", "jti": 7}, "claim_invalid"),
    ({"userId": "u", "aud": {"a": 1}}, "claim_invalid"),
])
def test_bad_claim_types(
    claims: dict[str, Any], code: str, private: rsa.RSAPrivateKey,
    refused: Callable[[Any], str],
) -> None:
    assert refused(sign(claims, private)) == code


def test_a_user_id_of_the_maximum_length_is_fine(
    private: rsa.RSAPrivateKey, verify: Callable[[Any], VerifiedToken]
) -> None:
    assert verify(sign({"userId": "x" * 255}, private)).user_id == "x" * 255


@pytest.mark.parametrize("claim", ["exp", "nbf", "iat"])
def test_infinite_time_via_an_overflowing_number(
    claim: str, private: rsa.RSAPrivateKey, refused: Callable[[Any], str]
) -> None:
    # 1e999 is valid JSON syntax that Python reads as infinity: "never expires" must not be
    # expressible. Whichever layer refuses it first decides the code: strict JSON (malformed)
    # when shared.strictjson refuses out-of-range numbers, else the claim schema (invalid)
    try:
        loads_strict("1e999")
        expected = "claim_invalid"
    except StrictJSONError:
        expected = "token_malformed"
    for literal in (b"1e999", b"-1e999"):
        payload = b'{"userId":"u","' + claim.encode() + b'":' + literal + b"}"
        assert refused(sign_raw(b'{"alg":"RS256"}', payload, private)) == expected


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
