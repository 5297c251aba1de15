"""What the Flask, WSGI and ASGI integrations share: the bearer token and the refusals.

Every refusal is ``application/problem+json`` (RFC 7807) with ``WWW-Authenticate`` (RFC 6750):
401 without ``error`` when no token came, 401 ``error="invalid_token"`` when the verifier
refused it, 403 ``error="insufficient_scope"`` when an admin is required. A verifier that cannot
be reached is a 503 (the token may be good: never a 401 that would log the user out).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from jwt_auth_client.client import Identity, VerifierClient
from jwt_auth_client.errors import VerifierError, VerifierUnavailable

PROBLEM_TYPE = "https://jwt-custom-auth.dev/problems/"


@dataclass(frozen=True)
class Refusal:
    """An answer an integration sends instead of calling the application."""

    status: int
    code: str
    title: str
    detail: str
    headers: tuple[tuple[str, str], ...]

    @property
    def body(self) -> bytes:
        return json.dumps({
            "type": PROBLEM_TYPE + self.code.replace("_", "-"),
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
            "code": self.code,
        }).encode("utf-8")

    def header_list(self) -> list[tuple[str, str]]:
        """Every header of the answer, with its Content-Type and Content-Length."""
        return [
            ("Content-Type", "application/problem+json"),
            ("Content-Length", str(len(self.body))),
            ("Cache-Control", "no-store"),
            *self.headers,
        ]


def bearer(authorization: str | None) -> str | None:
    """The credential of ``Authorization: Bearer <credential>``, or None."""
    if not authorization:
        return None
    scheme, _, credential = authorization.strip().partition(" ")
    credential = credential.strip()
    if scheme.lower() != "bearer" or not credential:
        return None
    return credential


def _challenge(realm: str, error: str | None = None) -> tuple[tuple[str, str], ...]:
    value = f'Bearer realm="{realm}"'
    if error is not None:
        value += f', error="{error}"'
    return (("WWW-Authenticate", value),)


def missing(realm: str) -> Refusal:
    return Refusal(401, "token_missing", "Authentication required",
                   "Send a token as Authorization: Bearer <token>.", _challenge(realm))


def refused(error: VerifierError, realm: str) -> Refusal:
    """The answer for a verifier error raised while checking the caller's token."""
    if isinstance(error, VerifierUnavailable):
        return Refusal(503, error.code, "Verifier unavailable",
                       "The token could not be checked now; try again shortly.",
                       (("Retry-After", "1"),))
    if error.status >= 500 or error.status == 0:
        return Refusal(502, "verifier_error", "Verifier error",
                       "The token could not be checked.", ())
    # a 401 (the token refused) or a 4xx about the token itself (too large, not a string)
    return Refusal(401, error.code, "Invalid token", error.detail,
                   _challenge(realm, "invalid_token"))


def not_admin(realm: str) -> Refusal:
    return Refusal(403, "admin_required", "Forbidden", "This needs an admin token.",
                   _challenge(realm, "insufficient_scope"))


def authenticate(
    client: VerifierClient, authorization: str | None, *, admin: bool, realm: str,
    request_id: str | None = None,
) -> Identity | Refusal:
    """The caller's identity, or the refusal to answer instead (blocking: one verifier call).

    ``request_id``: the incoming request's ``X-Request-Id``, passed on to the verifier so both
    services log the request under one id.
    """
    token = bearer(authorization)
    if token is None:
        return missing(realm)
    try:
        identity = client.verify(token, request_id=request_id)
    except VerifierError as error:
        return refused(error, realm)
    if admin and not identity.is_admin:
        return not_admin(realm)
    return identity
