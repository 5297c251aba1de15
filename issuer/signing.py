"""Signing token payloads: the issuer's registered claims, the header, jwcrypto behind it.

The registered claims the issuer sets (``iat``, ``exp``, ``jti``, ``iss``, ``aud``, and ``sub``
when it copies the user id there) are refused in a caller's payload rather than silently
overwritten: a caller who sends ``exp`` expects it to mean something, and an error that names
the claim teaches them to use ``?expires_in`` instead, where an overwrite would hand them a token
that differs from what they asked for.
"""

from __future__ import annotations

import functools
import json
import secrets
from dataclasses import dataclass
from typing import Any

from jwcrypto import jwa, jws
from jwcrypto.common import base64url_encode
from marshmallow import ValidationError

from issuer.config import SUBJECT
from shared.claimrule import ClaimRule
from shared.claims import check_against, first_error
from shared.keys import ALGORITHMS, SigningKey

RESERVED_CLAIMS = ("iat", "exp", "jti", "iss", "aud")
"""Claims only the issuer sets; a payload carrying any of them is refused."""


def reserved_claims(subject_from: str | None) -> tuple[str, ...]:
    """The claims a payload may not set: ``sub`` too when the issuer sets it from the user id
    field ``subject_from`` (``IssuerSettings.subject_from``)."""
    return (*RESERVED_CLAIMS, SUBJECT) if subject_from else RESERVED_CLAIMS

# jwcrypto's primitive per algorithm, built once
_SIGNERS = {alg: jwa.JWA.signing_alg(alg) for alg in ALGORITHMS}

JTI_BYTES = 16  # 128 random bits, the contract's floor


def _compact(value: dict[str, Any]) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


@functools.lru_cache(maxsize=64)
def _encoded_header(alg: str, kid: str) -> str:
    """The token header of a key, encoded once: its algorithm and its id, nothing more."""
    # exactly these three members: verifiers such as the reference server need nothing else,
    # and nothing here may point a verifier at a key of the caller's choosing
    return str(base64url_encode(_compact({"alg": alg, "typ": "JWT", "kid": kid})))


class PayloadRejected(ValueError):
    """Raised when a payload cannot be signed; ``field`` names the member at fault."""

    def __init__(self, code: str, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.code = code
        self.field = field
        self.message = message


@dataclass(frozen=True)
class IssuedToken:
    """A signed token and what a caller needs to know about it without decoding it."""

    token: str
    jti: str
    kid: str
    expires_at: int | None
    claims: dict[str, Any]


DEFAULT_RULE = ClaimRule()


def check_payload(
    payload: Any, rule: ClaimRule = DEFAULT_RULE, *, reserved: tuple[str, ...] = RESERVED_CLAIMS
) -> dict[str, Any]:
    """The payload if the claim schema, for the rule's field names, accepts it and it sets none
    of the ``reserved`` claims (``reserved_claims``)."""
    if not isinstance(payload, dict):
        raise PayloadRejected("claim_invalid", "payload", "The payload must be a JSON object.")
    for name in reserved:
        if name in payload:
            raise PayloadRejected(
                "claim_reserved",
                name,
                f"'{name}' is set by the issuer and cannot be given"
                + ("; ask for a lifetime with ?expires_in" if name == "exp" else ""),
            )
    try:
        check_against(rule.schema, payload)
        claims = dict(payload)
    except ValidationError as exc:
        field, message = first_error(exc.messages)
        raise PayloadRejected("claim_invalid", field, message) from None
    try:
        _compact(claims).encode("utf-8")
    except ValueError:  # UnicodeEncodeError too: one pass over the claims names the culprit
        _refuse_unencodable(claims)
    return claims


def _refuse_unencodable(claims: dict[str, Any]) -> None:
    for name, value in claims.items():
        # JSON's \ud800 escapes decode to lone surrogates, which have no UTF-8 form: the token
        # could not be encoded, and other parsers would read such a string differently
        try:
            _compact({name: value}).encode("utf-8")
        except UnicodeEncodeError:
            raise PayloadRejected(
                "claim_invalid", name, "Must hold valid Unicode text (no lone surrogates)."
            ) from None
        except ValueError:  # allow_nan=False refuses inf, which JSON's 1e999 parses to
            raise PayloadRejected("claim_invalid", name, "Numbers must be finite.") from None


def sign_token(
    payload: Any,
    key: SigningKey,
    *,
    now: float,
    ttl: int,
    issuer: str | None,
    audience: str | None,
    subject_from: str | None = None,
) -> IssuedToken:
    """Sign ``payload`` with the issuer's claims added; ``ttl`` 0 makes a token without exp."""
    return sign_checked(
        check_payload(payload, reserved=reserved_claims(subject_from)), key, now=now, ttl=ttl,
        issuer=issuer, audience=audience, subject_from=subject_from,
    )


def sign_checked(
    claims: dict[str, Any],
    key: SigningKey,
    *,
    now: float,
    ttl: int,
    issuer: str | None,
    audience: str | None,
    subject_from: str | None = None,
) -> IssuedToken:
    """``sign_token`` for claims that ``check_payload`` has already returned (no second pass).

    ``subject_from`` names the user id field whose value becomes ``sub`` (RFC 7519 4.1.2):
    what a standard consumer (an OAuth resource server, a JWT library's ``subject`` check)
    reads as the token's user.
    """
    claims = dict(claims)
    if subject_from:
        claims[SUBJECT] = claims[subject_from]
    issued_at = int(now)
    jti = secrets.token_urlsafe(JTI_BYTES)
    claims["iat"] = issued_at
    claims["jti"] = jti
    expires_at = issued_at + ttl if ttl > 0 else None
    if expires_at is not None:
        claims["exp"] = expires_at
    if issuer:
        claims["iss"] = issuer
    if audience:
        claims["aud"] = audience
    # RFC 7515 compact serialisation over jwcrypto's primitive: jwcrypto's JWS object
    # deep-copies its header registry on every construction, which cost a quarter of the
    # signing time of a 2048-bit key here; the bytes signed and produced are the same
    signing_input = f"{_encoded_header(key.alg, key.kid)}.{base64url_encode(_compact(claims))}"
    signature = _SIGNERS[key.alg].sign(key.jwk, signing_input.encode("ascii"))
    token = f"{signing_input}.{base64url_encode(signature)}"
    return IssuedToken(token, jti, key.kid, expires_at, claims)


def check_signing_key(key: SigningKey) -> bool:
    """Whether the key still signs and its public half verifies the signature (readiness)."""
    try:
        signature = jws.JWS(b"readiness")
        signature.add_signature(key.jwk, alg=key.alg, protected={"alg": key.alg})
        compact = signature.serialize(compact=True)
        check = jws.JWS()
        check.deserialize(compact)
        check.verify(key.jwk, alg=key.alg)
    except Exception:  # noqa: BLE001 - any failure means "not ready"; the probe says so
        return False
    return True
