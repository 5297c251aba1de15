"""The one place tests make tokens: compact JWS built byte by byte with cryptography and hmac.

Libraries refuse to produce duplicate members, ``alg: none`` or HMAC over a public key; an
attacker's script does not, so tokens are signed here over raw bytes. The same functions make
ordinary tokens for every layer (``fresh`` for a token issued now, ``sign`` for any payload),
so there is one signer to trust. Tests that must prove a third-party library interoperates
(``tests/compat``) sign with that library on purpose instead.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from tests.keypairs import KeyPair

_HASHES: dict[str, Callable[[], hashes.HashAlgorithm]] = {
    "256": hashes.SHA256, "384": hashes.SHA384, "512": hashes.SHA512,
}


def b64u(data: bytes) -> str:
    """Canonical base64url without padding (RFC 7515 2)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def encode_json(value: Any) -> bytes:
    """Compact JSON, as issuers write it."""
    return json.dumps(value, separators=(",", ":")).encode("utf-8")


@functools.cache
def load_private(pem: str | bytes, passphrase: str | None = None) -> rsa.RSAPrivateKey:
    """A private key from PEM text (encrypted or not); cached, decrypting is slow."""
    data = pem.encode() if isinstance(pem, str) else pem
    key = serialization.load_pem_private_key(
        data, password=passphrase.encode() if passphrase else None
    )
    assert isinstance(key, rsa.RSAPrivateKey)
    return key


def private_key(pair: KeyPair) -> rsa.RSAPrivateKey:
    """The private key of a test key pair."""
    return load_private(pair.private_pem, pair.passphrase)


Signer = (rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey | bytes
          | KeyPair)
"""A private key (RSA, P-256, Ed25519), an HMAC secret, or a test key pair (its private key)."""

P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


def signature(alg: str, signing_input: bytes, key: Signer) -> bytes:
    """The raw signature of ``signing_input`` with ``alg`` (RS*, PS*, HS*, ES256, EdDSA).

    ES256 signatures are JOSE's r||s, in the low-S form (``high_s`` gives the other one).
    """
    if isinstance(key, KeyPair):
        key = private_key(key)
    if alg == "EdDSA":
        assert isinstance(key, ed25519.Ed25519PrivateKey)
        return key.sign(signing_input)
    if alg == "ES256":
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        r, s = decode_dss_signature(key.sign(signing_input, ec.ECDSA(hashes.SHA256())))
        s = min(s, P256_ORDER - s)
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")
    digest = _HASHES[alg[2:]]
    if alg.startswith("HS"):
        assert isinstance(key, bytes)
        return hmac.new(key, signing_input, getattr(hashlib, f"sha{alg[2:]}")).digest()
    assert isinstance(key, rsa.RSAPrivateKey)
    if alg.startswith("RS"):
        return key.sign(signing_input, padding.PKCS1v15(), digest())
    if alg.startswith("PS"):
        pss = padding.PSS(mgf=padding.MGF1(digest()), salt_length=digest().digest_size)
        return key.sign(signing_input, pss, digest())
    raise ValueError(alg)


def high_s(token: str) -> str:
    """The same ES256 token with the other valid signature, (r, n - s): its high-S twin."""
    signing_input, _, encoded = token.rpartition(".")
    raw = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
    s = int.from_bytes(raw[32:], "big")
    return f"{signing_input}.{b64u(raw[:32] + (P256_ORDER - s).to_bytes(32, 'big'))}"


def sign_raw(header: bytes, payload: bytes, key: Signer, alg: str = "RS256") -> str:
    """A token over exactly these header and payload bytes."""
    signing_input = f"{b64u(header)}.{b64u(payload)}".encode("ascii")
    return f"{signing_input.decode()}.{b64u(signature(alg, signing_input, key))}"


def sign(
    payload: Any,
    key: Signer,
    *,
    alg: str = "RS256",
    header: dict[str, Any] | None = None,
    kid: str | None = None,
) -> str:
    """A token for a JSON payload; ``header`` replaces the default ``{"alg", "typ": "JWT"}``.

    ``kid``, when given, is added to whichever header is used.
    """
    head = {"alg": alg, "typ": "JWT"} if header is None else dict(header)
    if kid is not None:
        head["kid"] = kid
    return sign_raw(encode_json(head), encode_json(payload), key, alg)


def fresh(key: Signer, user: str = "123", *, lifetime: int = 600, **claims: Any) -> str:
    """A token issued now for ``user``, valid ``lifetime`` seconds, with a unique jti.

    ``claims`` are added or override the defaults; a claim given as None is left out
    (``jti=None`` makes a token without jti).
    """
    now = int(time.time())
    payload: dict[str, Any] = {"userId": user, "iat": now, "exp": now + lifetime, **claims}
    payload.setdefault("jti", f"jti-{time.perf_counter_ns()}")
    return sign({name: value for name, value in payload.items() if value is not None}, key)


def unsigned(header: Any, payload: Any, signature_segment: str = "") -> str:
    """A token with any header and payload and the given third segment (no real signature)."""
    return f"{b64u(encode_json(header))}.{b64u(encode_json(payload))}.{signature_segment}"


def spki_pem(key: Any) -> bytes:
    """The PEM SubjectPublicKeyInfo of ``key``'s public half: what a PEM key file holds."""
    return bytes(key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
