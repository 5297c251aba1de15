"""What the services answer, as typed frozen values: ``Identity``, ``Session``, ``IssuedToken``."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Identity", "IssuedToken", "Session"]


@dataclass(frozen=True)
class Identity:
    """A good credential, as the verifier reported it.

    From a JWT (``POST /v1/verify``) with its claims; from a session id (``GET /v1/auth``, the
    verifier's forward-auth) with ``session=True`` and no claims, since a session holds none.
    """

    user_id: str
    is_admin: bool
    provider: str
    claims: dict[str, Any] = field(repr=False)
    expires_at: float | None
    issued_at: float | None = None
    revocation_checked: bool = True
    session: bool = False

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> Identity:
        """From ``POST /v1/verify``'s answer."""
        return cls(
            user_id=str(body["userId"]),
            is_admin=bool(body["isAdmin"]),
            provider=str(body["provider"]),
            claims=dict(body["claims"]),
            expires_at=body.get("expiresAt"),
            issued_at=body.get("issuedAt"),
            revocation_checked=bool(body.get("revocationChecked", True)),
        )

    @classmethod
    def from_session_check(cls, body: Mapping[str, Any]) -> Identity:
        """From ``GET /v1/auth``'s answer for a session id: no claims, no times."""
        return dataclasses.replace(cls.from_json({"claims": {}, **body}), session=True)


@dataclass(frozen=True)
class Session:
    """A server-side session (``POST /v1/sessions``, ``GET /v1/sessions/<id>``)."""

    session_id: str = field(repr=False)  # a bearer secret: kept out of logs and reprs
    user_id: str
    is_admin: bool
    provider: str
    created_at: int
    expires_at: int

    @classmethod
    def from_json(cls, body: Mapping[str, Any], session_id: str | None = None) -> Session:
        return cls(
            session_id=str(body.get("sessionId") or session_id or ""),
            user_id=str(body["userId"]),
            is_admin=bool(body["isAdmin"]),
            provider=str(body["provider"]),
            created_at=int(body["createdAt"]),
            expires_at=int(body["expiresAt"]),
        )


@dataclass(frozen=True)
class IssuedToken:
    """A token the issuer signed (``POST /v1/tokens``).

    ``expires_at`` is None for a token without ``exp`` (an issuer with ``ISSUER_TOKEN_TTL=0``).
    """

    token: str = field(repr=False)  # a bearer credential: kept out of logs and reprs
    token_type: str
    expires_at: int | None
    jti: str
    kid: str

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> IssuedToken:
        expires_at = body.get("expiresAt")
        return cls(
            token=str(body["token"]),
            token_type=str(body["tokenType"]),
            expires_at=None if expires_at is None else int(expires_at),
            jti=str(body["jti"]),
            kid=str(body["kid"]),
        )
