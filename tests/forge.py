"""Build compact JWS tokens byte by byte, so tests can sign exactly what an attacker would send.

Libraries refuse to produce duplicate members, ``alg: none`` or HMAC over a public key; an
attacker's script does not, so the hostile tests sign raw bytes with cryptography and hmac.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

_HASHES = {"256": hashes.SHA256, "384": hashes.SHA384, "512": hashes.SHA512}


def b64u(data: bytes) -> str:
    """Canonical base64url without padding (RFC 7515 2)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def encode_json(value: Any) -> bytes:
    """Compact JSON, as issuers write it."""
    return json.dumps(value, separators=(",", ":")).encode("utf-8")


def load_private(pem: str | bytes, passphrase: str | None = None) -> rsa.RSAPrivateKey:
    """A private key from PEM text (encrypted or not)."""
    data = pem.encode() if isinstance(pem, str) else pem
    key = serialization.load_pem_private_key(
        data, password=passphrase.encode() if passphrase else None
    )
    assert isinstance(key, rsa.RSAPrivateKey)
    return key


def signature(alg: str, signing_input: bytes, key: rsa.RSAPrivateKey | bytes) -> bytes:
    """The raw signature of ``signing_input`` with ``alg`` (RS*, PS*, HS*)."""
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


def sign_raw(
    header: bytes, payload: bytes, key: rsa.RSAPrivateKey | bytes, alg: str = "RS256"
) -> str:
    """A token over exactly these header and payload bytes."""
    signing_input = f"{b64u(header)}.{b64u(payload)}".encode("ascii")
    return f"{signing_input.decode()}.{b64u(signature(alg, signing_input, key))}"


def sign(
    payload: Any,
    key: rsa.RSAPrivateKey | bytes,
    *,
    alg: str = "RS256",
    header: dict[str, Any] | None = None,
) -> str:
    """A token for a JSON payload; ``header`` replaces the default ``{"alg", "typ": "JWT"}``."""
    head = {"alg": alg, "typ": "JWT"} if header is None else header
    return sign_raw(encode_json(head), encode_json(payload), key, alg)


def unsigned(header: Any, payload: Any, signature_segment: str = "") -> str:
    """A token with any header and payload and the given third segment (no real signature)."""
    return f"{b64u(encode_json(header))}.{b64u(encode_json(payload))}.{signature_segment}"
