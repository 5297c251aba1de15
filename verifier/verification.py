"""The token validation pipeline: pure functions, an injected clock, no Flask and no Redis.

Order matters and is part of the contract (docs/verification.md):

1. structure, before any library sees the token: size, ASCII, three canonical base64url
   segments, strict JSON objects for header and payload (``token_malformed``);
2. header: ``alg`` in the allowlist (``algorithm_not_allowed``), no ``crit``/``b64``/``zip``/
   ``enc``, ``typ`` JWT or absent (``token_malformed``), ``kid`` selects a configured key
   (``key_unknown``); ``jwk``/``jku``/``x5u``/``x5c`` are ignored, never fetched or trusted;
3. signature with jwcrypto, the algorithm pinned to the allowed header ``alg`` and the key chosen
   in 2 (``signature_invalid``);
4. claims through the shared schema (``claim_missing``/``claim_invalid``);
5. time with the injected ``now`` and the leeway (``token_expired``, ``token_not_yet_valid``,
   ``token_too_old``), then audience and issuer;
6. the reference provider's options: required attributes (``attributes_mismatch``), escape
   characters, the admin flag, the provider name.

Any exception that is not a ``TokenError`` is turned into one: nothing a caller sends can make
verification raise anything else.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Protocol

from jwcrypto.jwa import JWA
from marshmallow import Schema, ValidationError

from shared.claimrule import json_equal
from shared.claims import check_against, claims_schema, first_error
from shared.digest import sha256_hex
from shared.keys import VerificationKey, verifies
from shared.logs import token_fingerprint
from shared.strictjson import MAX_DEPTH, StrictJSONError, loads_strict
from verifier.config import ALLOWED_ALGORITHMS, VerifierSettings
from verifier.errors import (
    AlgorithmNotAllowed,
    AttributesMismatch,
    ClaimInvalid,
    ClaimMissing,
    SignatureInvalid,
    TokenError,
    TokenExpired,
    TokenMalformed,
    TokenNotYetValid,
    TokenTooOld,
)
from verifier.keyset import FetchNeeded, KeysNotLoaded

log = logging.getLogger(__name__)

MAX_TOKEN_BYTES = 8 * 1024
"""Tokens longer than this are refused before any parsing (a real one is well under 2 KiB)."""

HEADER_MAX_DEPTH = 4
"""A JOSE header is flat; deeper nesting is only ever an attack on the parser."""

# header members that change how the token must be processed: we implement none of them, so a
# token carrying one cannot be processed the way its issuer meant and is refused (RFC 7515 4.1.11)
_REFUSED_HEADER_MEMBERS = ("crit", "b64", "zip", "enc")

_BASE64URL = re.compile(r"[A-Za-z0-9_-]+")
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")

_MISSING: Any = object()


@dataclass(frozen=True)
class VerificationPolicy:
    """Everything verify_token decides with, precomputed once from the settings."""

    algorithms: frozenset[str] = frozenset({"RS256"})
    user_id_field: str = "userId"
    is_admin_field: str = "isAdmin"
    is_admin_value: Any = True
    required_attributes: Mapping[str, Any] = field(
        default_factory=lambda: MappingProxyType({})
    )
    provider_name: str = "jwt"
    escape_characters: tuple[str, ...] = ("|",)
    leeway: float = 30
    require_exp: bool = False
    max_token_age: float = 0
    audience: frozenset[str] | None = None
    issuer: str | None = None
    # derived once: the shared claim schema for these field names
    schema: Schema = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        unknown = self.algorithms - set(ALLOWED_ALGORITHMS)
        if unknown or not self.algorithms:
            raise ValueError(f"algorithms must be among {ALLOWED_ALGORITHMS}, got {unknown}")
        schema = claims_schema(
            self.user_id_field,
            self.is_admin_field,
            is_admin_is_boolean=self.is_admin_is_boolean,
        )
        object.__setattr__(self, "schema", schema)

    @classmethod
    def from_settings(cls, settings: VerifierSettings) -> VerificationPolicy:
        """The policy the verifier's configuration describes."""
        return cls(
            algorithms=frozenset(settings.algorithms),
            user_id_field=settings.user_id_field,
            is_admin_field=settings.is_admin_field,
            is_admin_value=settings.is_admin_value,
            required_attributes=MappingProxyType(dict(settings.required_attributes)),
            provider_name=settings.provider_name,
            escape_characters=tuple(settings.escape_characters),
            leeway=settings.leeway,
            require_exp=settings.require_exp,
            max_token_age=settings.max_token_age,
            audience=frozenset({settings.audience}) if settings.audience else None,
            issuer=settings.issuer,
        )

    @property
    def is_admin_is_boolean(self) -> bool:
        """Whether the admin field must be a JSON boolean (it must when the admin value is one)."""
        return isinstance(self.is_admin_value, bool)


@dataclass(frozen=True)
class VerifiedToken:
    """What a good token says, after every check passed.

    ``fingerprint`` identifies the token whatever its signature's encoding: the SHA-256 of the
    token, with an ES256 signature first brought to its low-S form (``canonical_signature``).
    A token without ``jti`` is revoked by it.
    """

    user_id: str
    is_admin: bool
    provider: str
    claims: dict[str, Any]
    issued_at: float | None
    expires_at: float | None
    jti: str | None
    kid: str
    fingerprint: str


@dataclass(frozen=True)
class _Parsed:
    header: dict[str, Any]
    payload: dict[str, Any]
    signing_input: bytes
    signature: bytes


_BASE64URL_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
_TO_STANDARD_ALPHABET = bytes.maketrans(b"-_", b"+/")  # bytes.translate: a C table lookup
# in a final group of 2 (3) characters the last one carries 4 (2) bits that encode nothing
_UNUSED_BITS_MASK = {2: 0b1111, 3: 0b11}


def _b64decode(segment: str, what: str) -> bytes:
    if not _BASE64URL.fullmatch(segment):
        raise TokenMalformed(
            f"the {what} is not base64url (padding, '+', '/', whitespace or other characters)"
        )
    remainder = len(segment) % 4
    if remainder == 1:
        raise TokenMalformed(f"the {what} has an impossible base64url length")
    # the same bytes must have exactly one spelling (RFC 4648 3.5): unused trailing bits set to
    # 1 give a second token for the same signature, which would slip past revocation by hash
    if remainder and _BASE64URL_ALPHABET.index(segment[-1]) & _UNUSED_BITS_MASK[remainder]:
        raise TokenMalformed(f"the {what} is not canonical base64url (non-zero trailing bits)")
    try:
        standard = segment.encode("ascii").translate(_TO_STANDARD_ALPHABET)
        return binascii.a2b_base64(standard + b"=" * (-remainder % 4), strict_mode=True)
    except (binascii.Error, ValueError):
        raise TokenMalformed(f"the {what} is not base64url") from None


def _json_object(data: bytes, what: str, max_depth: int) -> dict[str, Any]:
    try:
        value = loads_strict(data, max_depth=max_depth)
    except StrictJSONError as exc:
        raise TokenMalformed(f"the {what} is not strict JSON: {exc}") from None
    if not isinstance(value, dict):
        raise TokenMalformed(f"the {what} must be a JSON object")
    # UTF-8 cannot carry a lone surrogate, but a \ud800 escape can: Python then holds a string
    # that fails to encode later (a Redis key, a response header), so refuse it here (I-JSON,
    # RFC 7493 2.1); the scan runs only when such an escape may be present
    if b"\\u" in data and _SURROGATE_ESCAPE.search(data):
        try:
            json.dumps(value, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            raise TokenMalformed(f"the {what} holds an unpaired surrogate escape") from None
    return value


def _parse(token: Any) -> _Parsed:
    """Structure checks and strict decoding; no library beyond base64 and json sees the token."""
    if not isinstance(token, str):
        raise TokenMalformed("the token must be a string")
    if len(token) > MAX_TOKEN_BYTES:
        raise TokenMalformed(f"the token is longer than {MAX_TOKEN_BYTES} bytes")
    if not token.isascii():
        raise TokenMalformed("the token holds non-ASCII characters")
    segments = token.split(".")
    if len(segments) == 5:
        raise TokenMalformed("encrypted tokens (JWE) are not accepted; send a signed JWT")
    if len(segments) != 3:
        raise TokenMalformed("a JWT has exactly three dot-separated segments")
    names = ("header", "payload", "signature")
    for name, segment in zip(names, segments, strict=True):
        if not segment:
            raise TokenMalformed(f"the {name} segment is empty")
    header_bytes = _b64decode(segments[0], "header")
    payload_bytes = _b64decode(segments[1], "payload")
    signature = _b64decode(segments[2], "signature")
    header = _json_object(header_bytes, "header", HEADER_MAX_DEPTH)
    payload = _json_object(payload_bytes, "payload", MAX_DEPTH)
    return _Parsed(
        header=header,
        payload=payload,
        signing_input=f"{segments[0]}.{segments[1]}".encode("ascii"),
        signature=signature,
    )


def _check_header(header: dict[str, Any], policy: VerificationPolicy) -> tuple[str, str | None]:
    alg = header.get("alg")
    if not isinstance(alg, str):
        raise TokenMalformed("the header has no alg string")
    # exact, case-sensitive membership: "none", "None", "NONE" and every HS* are simply absent
    if alg not in policy.algorithms:
        raise AlgorithmNotAllowed(
            f"alg {alg[:32]!r} is not allowed; accepted: {', '.join(sorted(policy.algorithms))}"
        )
    for member in _REFUSED_HEADER_MEMBERS:
        if member in header:
            raise TokenMalformed(f"the header member {member!r} is not supported")
    typ = header.get("typ", _MISSING)
    if typ is not _MISSING and (
        not isinstance(typ, str) or typ.lower() not in ("jwt", "application/jwt")
    ):
        raise TokenMalformed("the header typ must be JWT when present")
    kid = header.get("kid", _MISSING)
    if kid is _MISSING:
        kid = None
    elif not isinstance(kid, str):
        raise TokenMalformed("the header kid must be a string when present")
    # jwk, jku, x5u, x5c (and x5t) are deliberately not read: the key comes from configuration
    # only, so an embedded or linked key can never be used; a token signed by such a key fails
    # the signature check against our keys like any other forgery
    return alg, kid


# jwcrypto's signing algorithms, made once: they are stateless, and only the ones our allowlist
# can ever name exist here, so no header can reach an HMAC or "none" implementation
_ENGINES = {name: JWA.signing_alg(name) for name in ALLOWED_ALGORITHMS}


def key_verifies(key: VerificationKey, alg: str) -> bool:
    """Whether ``key`` may verify ``alg`` (``shared.keys.verifies``)."""
    return verifies(key.alg, alg)


# ES256 and EdDSA signatures are 64 bytes exactly (r||s of P-256; R||S of Ed25519)
_SIGNATURE_LENGTHS = {"ES256": 64, "EdDSA": 64}


def _verify_signature(parsed: _Parsed, alg: str, key: VerificationKey) -> None:
    if not key_verifies(key, alg):
        raise AlgorithmNotAllowed(
            f"alg {alg!r} names a key ({key.kid[:16]}...) that verifies "
            f"{'RS and PS algorithms' if key.alg == 'RS256' else key.alg} only")
    length = _SIGNATURE_LENGTHS.get(alg)
    if length is not None and len(parsed.signature) != length:
        raise SignatureInvalid(f"an {alg} signature is {length} bytes")
    try:
        # jwcrypto's signature step alone (what JWSCore.verify runs), the algorithm pinned to the
        # allowed header alg and the key to the configured one; the structure, header and JSON
        # checks that jwt.JWT(strict_serialization=True) would add are done above, more
        # strictly, and skipping its re-parsing makes the whole pipeline about 1.5x as fast as
        # jwt.JWT (bench/verify_pipeline.py)
        _ENGINES[alg].verify(key.jwk, parsed.signing_input, parsed.signature)
    except Exception:  # noqa: BLE001 - any failure to verify is a bad signature
        raise SignatureInvalid("the signature does not verify with the trusted key") from None


def _is_js_falsy(value: Any) -> bool:
    # the reference provider tested `!payload[userIdFieldName]`: JavaScript falsiness
    if value is None or value is False or value == "":
        return True
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value == 0 or (isinstance(value, float) and math.isnan(value))
    return False


def _check_claims(payload: dict[str, Any], policy: VerificationPolicy) -> None:
    user_id = payload.get(policy.user_id_field, _MISSING)
    if user_id is _MISSING or _is_js_falsy(user_id):
        # the reference provider's message, word for word, for clients that match on it
        raise ClaimMissing(
            "The payload is missing or it doesn't contain the field "
            f"{policy.user_id_field}"
        )
    try:
        check_against(policy.schema, payload)
    except ValidationError as exc:
        name, message = first_error(exc.messages)
        raise ClaimInvalid(f"{name}: {message}") from None


def _check_time(payload: dict[str, Any], policy: VerificationPolicy, now: float) -> None:
    leeway = policy.leeway
    exp = payload.get("exp")
    nbf = payload.get("nbf")
    iat = payload.get("iat")
    if exp is not None and now >= exp + leeway:
        raise TokenExpired("the token has expired")
    if nbf is not None and now + leeway < nbf:
        raise TokenNotYetValid("the token is not valid yet (nbf)")
    if iat is not None and iat > now + leeway:
        raise TokenNotYetValid("the token was issued in the future (iat)")
    if exp is None:
        if policy.require_exp:
            raise ClaimMissing("the token has no exp and VERIFIER_REQUIRE_EXP is set")
        if policy.max_token_age > 0:
            if iat is None:
                raise ClaimMissing(
                    "the token has neither exp nor iat and VERIFIER_MAX_TOKEN_AGE is set"
                )
            if now - iat > policy.max_token_age + leeway:
                raise TokenTooOld("the token was issued longer ago than VERIFIER_MAX_TOKEN_AGE")


def _check_registered(payload: dict[str, Any], policy: VerificationPolicy) -> None:
    if policy.audience is not None:
        aud = payload.get("aud", _MISSING)
        if aud is _MISSING:
            raise ClaimMissing("the token has no aud and VERIFIER_AUDIENCE is set")
        audiences = [aud] if isinstance(aud, str) else aud
        if not any(item in policy.audience for item in audiences):
            raise ClaimInvalid("the token's aud does not include this verifier's audience")
    if policy.issuer is not None:
        iss = payload.get("iss", _MISSING)
        if iss is _MISSING:
            raise ClaimMissing("the token has no iss and VERIFIER_ISSUER is set")
        if iss != policy.issuer:
            raise ClaimInvalid("the token's iss is not the configured issuer")


def _check_attributes(payload: dict[str, Any], policy: VerificationPolicy) -> None:
    for name, expected in policy.required_attributes.items():
        if not json_equal(payload.get(name, _MISSING), expected):
            raise AttributesMismatch(f"the required attribute {name!r} does not match")


def _escape(user_id: str, characters: tuple[str, ...]) -> str:
    # every occurrence: the reference replaced only the first, so "a|b|c" became "a_b|c"
    for character in characters:
        user_id = user_id.replace(character, "_")
    return user_id


@dataclass(frozen=True)
class Step:
    """One step of the pipeline as ``--explain`` shows it: never a signature, key or secret."""

    name: str
    outcome: str  # "passed", "failed" or "not run"
    rule: str
    values: dict[str, Any] = field(default_factory=dict)
    code: str | None = None  # the refusal's code, when it failed
    detail: str | None = None

    def as_json(self) -> dict[str, Any]:
        answer: dict[str, Any] = {"step": self.name, "outcome": self.outcome, "rule": self.rule,
                                  "values": self.values}
        if self.code is not None:
            answer.update(code=self.code, detail=self.detail)
        return answer


STEPS = (
    ("structure", "three non-empty base64url segments (canonical), strict JSON objects, at most "
                  f"{MAX_TOKEN_BYTES} bytes"),
    ("issuer", "with VERIFIER_TRUSTED_ISSUERS_FILE, iss names a trusted issuer, whose keys and "
               "policy the next steps use"),
    ("header", "alg among VERIFIER_ALGORITHMS; typ JWT when present; no crit, zip, b64"),
    ("key", "the configured key the kid names (the only key when there is no kid)"),
    ("signature", "verifies with that key and the header's alg"),
    ("claims", "the user id field present and valid; isAdmin a boolean; time claims numbers"),
    ("time", "exp, nbf and iat against now with VERIFIER_LEEWAY; VERIFIER_REQUIRE_EXP and "
             "VERIFIER_MAX_TOKEN_AGE"),
    ("audience and issuer", "aud includes VERIFIER_AUDIENCE, iss equals VERIFIER_ISSUER, "
                            "when set"),
    ("attributes", "each VERIFIER_REQUIRED_ATTRIBUTES member equals the payload's exactly"),
)
RULES = dict(STEPS)


class Trace:
    """What each step saw, recorded by the one pipeline when asked to (``explain``)."""

    def __init__(self) -> None:
        self.steps: list[Step] = []

    # values come as one dict: a claim name may be anything, "name" included
    def passed(self, name: str, values: dict[str, Any]) -> None:
        self.steps.append(Step(name, "passed", RULES.get(name, ""), values))

    def failed(self, name: str, error: TokenError, values: dict[str, Any]) -> None:
        self.steps.append(Step(name, "failed", RULES.get(name, ""), values, error.code,
                               error.detail))

    def add(self, step: Step) -> None:
        self.steps.append(step)

    def not_run(self, names: tuple[str, ...]) -> None:
        self.steps += [Step(name, "not run", RULES.get(name, "")) for name in names]

    def as_json(self) -> list[dict[str, Any]]:
        return [step.as_json() for step in self.steps]


def _seen(payload: dict[str, Any], names: tuple[str, ...]) -> dict[str, Any]:
    return {name: payload.get(name) for name in names if name in payload}


class KeySource(Protocol):
    """Where the pipeline finds a token's key: a ``KeySet``, or its ``in_memory()`` view."""

    def select(self, kid: str | None, alg: str | None = None) -> VerificationKey:
        """The key ``kid`` names (without one, the only key for ``alg``); raises KeyUnknown (or
        FetchNeeded, from memory only)."""
        ...


class Trust(Protocol):
    """Which keys and policy judge a token, from its ``iss`` (``verifier.issuers``)."""

    def choose(self, iss: Any) -> tuple[KeySource, VerificationPolicy]:
        """The keys and the policy; raises IssuerUnknown when ``iss`` names no trusted issuer."""
        ...


@dataclass(frozen=True)
class OneIssuer:
    """The same keys and policy for every token."""

    keys: KeySource
    policy: VerificationPolicy

    def choose(self, iss: Any) -> tuple[KeySource, VerificationPolicy]:
        return self.keys, self.policy


def _verify(token: str, trust: Trust, now: float, trace: Trace | None = None) -> VerifiedToken:
    step = "structure"
    parsed: _Parsed | None = None
    policy: VerificationPolicy | None = None
    try:
        parsed = _parse(token)
        if trace is not None:
            trace.passed(step, {"bytes": len(token), "header_members": sorted(parsed.header),
                                "payload_members": sorted(parsed.payload)})
        step = "issuer"
        keys, policy = trust.choose(parsed.payload.get("iss"))
        if trace is not None:
            trace.passed(step, {"iss": parsed.payload.get("iss"), "provider": policy.provider_name})
        step = "header"
        alg, kid = _check_header(parsed.header, policy)
        if trace is not None:
            trace.passed(step, {"alg": alg, "kid": kid, "typ": parsed.header.get("typ"),
                                "allowed": sorted(policy.algorithms)})
        step = "key"
        key = keys.select(kid, alg)
        if trace is not None:
            trace.passed(step, {"kid": key.kid})
        step = "signature"
        _verify_signature(parsed, alg, key)
        if trace is not None:
            trace.passed(step, {"alg": alg, "kid": key.kid})
        payload = parsed.payload
        step = "claims"
        _check_claims(payload, policy)
        if trace is not None:
            trace.passed(step, _seen(payload, (policy.user_id_field, policy.is_admin_field)))
        step = "time"
        _check_time(payload, policy, now)
        if trace is not None:
            trace.passed(step, {"now": now, "leeway": policy.leeway,
                                **_seen(payload, ("exp", "nbf", "iat"))})
        step = "audience and issuer"
        _check_registered(payload, policy)
        if trace is not None:
            trace.passed(step, {"audience": sorted(policy.audience) if policy.audience else None,
                                "issuer": policy.issuer, **_seen(payload, ("aud", "iss"))})
        step = "attributes"
        _check_attributes(payload, policy)
        if trace is not None:
            trace.passed(step, {"required": dict(policy.required_attributes),
                                "in the token": _seen(payload, tuple(policy.required_attributes))})
    except TokenError as exc:
        if trace is not None:
            _record_failure(trace, step, exc, parsed, policy, now)
        raise
    is_admin = json_equal(payload.get(policy.is_admin_field, _MISSING), policy.is_admin_value)
    iat = payload.get("iat")
    exp = payload.get("exp")
    jti = payload.get("jti")
    return VerifiedToken(
        user_id=_escape(payload[policy.user_id_field], policy.escape_characters),
        is_admin=is_admin,
        provider=policy.provider_name,
        claims=payload,
        issued_at=iat,
        expires_at=exp,
        jti=jti,
        kid=key.kid,
        fingerprint=token_fingerprint_of(token, alg, parsed),
    )


# the order of P-256's group: (r, s) and (r, n - s) are both valid ECDSA signatures of the
# same message (RFC 7518 and every library accept either), so an ES256 token has two encodings
_P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


def canonical_signature(alg: str, signature: bytes) -> bytes:
    """The signature in the one form that names the token: ES256's low-S form, else as is."""
    if alg != "ES256" or len(signature) != 64:
        return signature
    s = int.from_bytes(signature[32:], "big")
    if s <= _P256_ORDER // 2:
        return signature
    return signature[:32] + (_P256_ORDER - s).to_bytes(32, "big")


def token_fingerprint_of(token: str, alg: str, parsed: _Parsed) -> str:
    """The SHA-256 of the token as ``canonical_signature`` writes it (``VerifiedToken``)."""
    canonical = canonical_signature(alg, parsed.signature)
    if canonical is parsed.signature:
        return sha256_hex(token)
    signing_input = parsed.signing_input.decode("ascii")
    return sha256_hex(f"{signing_input}.{_b64encode(canonical)}")


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _record_failure(
    trace: Trace, step: str, error: TokenError, parsed: _Parsed | None,
    policy: VerificationPolicy | None, now: float,
) -> None:
    """The failed step with what decided it (from the token as parsed, when it got that far),
    then the steps that did not run."""
    values: dict[str, Any] = {}
    if parsed is not None and step == "issuer":
        values = {"iss": parsed.payload.get("iss")}
    elif parsed is not None and policy is not None:
        payload = parsed.payload
        if step == "header":
            values = {"alg": parsed.header.get("alg"), "allowed": sorted(policy.algorithms)}
        elif step in ("key", "signature"):
            values = {"alg": parsed.header.get("alg"), "kid": parsed.header.get("kid")}
        elif step == "claims":
            values = _seen(payload, (policy.user_id_field, policy.is_admin_field))
        elif step == "time":
            values = {"now": now, "leeway": policy.leeway, **_seen(payload, ("exp", "nbf", "iat"))}
        elif step == "audience and issuer":
            values = {"audience": sorted(policy.audience) if policy.audience else None,
                      "issuer": policy.issuer, **_seen(payload, ("aud", "iss"))}
        elif step == "attributes":
            values = {"required": dict(policy.required_attributes),
                      "in the token": _seen(payload, tuple(policy.required_attributes))}
    trace.failed(step, error, values)
    names = [name for name, _ in STEPS]
    trace.not_run(tuple(names[names.index(step) + 1:]))


def verify_token(
    token: str, *, now: float, keys: KeySource | None = None,
    policy: VerificationPolicy | None = None, trust: Trust | None = None,
    trace: Trace | None = None,
) -> VerifiedToken:
    """Verify a compact JWS and its claims at time ``now``; raises only TokenError subclasses
    (and FetchNeeded, from keys that may not be fetched: ``KeySet.in_memory``; KeysNotLoaded,
    when the chosen issuer has no key yet).

    The keys and policy are ``trust``'s choice for the token's ``iss`` (several issuers), or
    ``keys`` and ``policy`` for every token. With ``trace``, each step records what it saw
    (``jwt-auth verify --explain``, ``POST /v1/verify?explain=true``): the same pipeline, only
    observed.
    """
    if trust is None:
        if keys is None or policy is None:
            raise TypeError("verify_token needs trust, or keys and policy")
        trust = OneIssuer(keys, policy)
    try:
        return _verify(token, trust, now, trace)
    except (TokenError, FetchNeeded, KeysNotLoaded):
        raise
    except Exception as exc:  # noqa: BLE001 - the contract: no input yields anything but a 401
        log.warning(
            "unexpected %s while verifying token %s; refused as malformed",
            type(exc).__name__,
            token_fingerprint(token) if isinstance(token, str) else "-",
        )
        raise TokenMalformed("the token could not be processed") from None
