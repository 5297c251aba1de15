"""Hostile tokens, part two: malformed shapes, base64url and JSON tricks, and bad claim types.

Each is refused with its exact code and only ever a TokenError (a 401). The forged tokens are
signed with the trusted key wherever they can be, so what is refused is the encoding, not the
signature. Algorithm, key and header attacks, signatures and the fuzzer are in
``test_hostile_tokens.py``; the shared fixtures in this folder's ``conftest.py``.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from shared.strictjson import StrictJSONError, loads_strict
from tests.forge import b64u, encode_json, sign, sign_raw
from tests.unit.verifier.hostile import GOOD, NOW
from verifier.verification import VerifiedToken

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
