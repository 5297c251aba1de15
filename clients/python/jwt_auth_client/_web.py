"""What the Flask, FastAPI, WSGI and ASGI integrations share: the credential and the refusals.

The caller's credential is the ``Authorization: Bearer`` value, a JWT or a session id (a value
with a dot is a JWT, the verifier's own rule), or else the session cookie (``jwt_auth_session``
unless configured otherwise), which holds a session id. A JWT is verified, a session id checked
through the verifier's forward-auth (``VerifierClient.identify``).

Every refusal is ``application/problem+json`` (RFC 7807) with ``WWW-Authenticate`` (RFC 6750):
401 without ``error`` when no credential came, 401 ``error="invalid_token"`` when the verifier
refused it, 403 ``error="insufficient_scope"`` when an admin is required. A verifier that cannot
be reached is a 503 (the credential may be good: never a 401 that would log the user out).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from jwt_auth_client._calls import is_session_id
from jwt_auth_client.client import Identity, VerifierClient
from jwt_auth_client.errors import VerifierError, VerifierUnavailable

if TYPE_CHECKING:
    from jwt_auth_client.aio import AsyncVerifierClient

PROBLEM_TYPE = "https://jwt-custom-auth.dev/problems/"
SESSION_COOKIE = "jwt_auth_session"
"""The cookie the integrations read a session id from, unless told another name."""


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


@dataclass(frozen=True)
class Incoming:
    """What an integration reads from the request it guards (raw header values, or None)."""

    authorization: str | None = None
    cookie: str | None = None
    request_id: str | None = None  # passed on, so both services log the request under one id


def incoming_from_asgi(headers: Iterable[tuple[bytes, bytes]]) -> Incoming:
    """The ``Incoming`` of an ASGI scope's headers (several Cookie headers are one list)."""
    authorization = request_id = None
    cookies: list[str] = []
    for raw_name, raw_value in headers:
        name = raw_name.lower()
        value = raw_value.decode("latin-1")
        if name == b"authorization" and authorization is None:
            authorization = value
        elif name == b"x-request-id" and request_id is None:
            request_id = value
        elif name == b"cookie":
            cookies.append(value)
    return Incoming(authorization, "; ".join(cookies) or None, request_id)


def incoming_from_wsgi(environ: Mapping[str, Any]) -> Incoming:
    return Incoming(environ.get("HTTP_AUTHORIZATION"), environ.get("HTTP_COOKIE"),
                    environ.get("HTTP_X_REQUEST_ID"))


def bearer(authorization: str | None) -> str | None:
    """The credential of ``Authorization: Bearer <credential>``, or None."""
    if not authorization:
        return None
    scheme, _, credential = authorization.strip().partition(" ")
    credential = credential.strip()
    if scheme.lower() != "bearer" or not credential:
        return None
    return credential


def cookie_value(header: str | None, name: str) -> str | None:
    """The first cookie called ``name`` in a ``Cookie`` header (quotes removed), or None.

    The first: a browser sends the cookie of the most specific path first.
    """
    if not header:
        return None
    for pair in header.split(";"):
        key, equals, value = pair.partition("=")
        if equals and key.strip() == name:
            value = value.strip()
            if len(value) >= 2 and value[0] == value[-1] == '"':
                value = value[1:-1]
            return value or None
    return None


def _challenge(realm: str, error: str | None = None) -> tuple[tuple[str, str], ...]:
    value = f'Bearer realm="{realm}"'
    if error is not None:
        value += f', error="{error}"'
    return (("WWW-Authenticate", value),)


@dataclass(frozen=True)
class Gate:
    """How an integration finds the caller's credential, and answers when it is not enough.

    ``realm`` is named in ``WWW-Authenticate``; ``cookie_name`` is the session cookie (None: no
    cookie is read, only ``Authorization``).
    """

    realm: str = "api"
    cookie_name: str | None = SESSION_COOKIE

    def credential(self, incoming: Incoming) -> str | Refusal:
        """The bearer value, else the session cookie's; or the refusal when there is none."""
        token = bearer(incoming.authorization)
        if token is not None:
            return token
        if self.cookie_name is not None:
            session_id = cookie_value(incoming.cookie, self.cookie_name)
            if session_id is not None and not is_session_id(session_id):
                # a JWT in the session cookie: the verifier would take it for a token
                return Refusal(401, "session_not_found", "Invalid token",
                               "The session cookie does not hold a session id.",
                               _challenge(self.realm, "invalid_token"))
            if session_id is not None:
                return session_id
        return self.missing()

    def missing(self) -> Refusal:
        where = "Authorization: Bearer <token or session id>"
        if self.cookie_name is not None:
            where += f", or a session id in the {self.cookie_name} cookie"
        return Refusal(401, "token_missing", "Authentication required", f"Send {where}.",
                       _challenge(self.realm))

    def refused(self, error: VerifierError) -> Refusal:
        """The answer for a verifier error raised while checking the caller's credential."""
        if isinstance(error, VerifierUnavailable):
            return Refusal(503, error.code, "Verifier unavailable",
                           "The credential could not be checked now; try again shortly.",
                           (("Retry-After", "1"),))
        if error.status >= 500 or error.status == 0:
            return Refusal(502, "verifier_error", "Verifier error",
                           "The credential could not be checked.", ())
        # a 401 (the token or session refused) or a 4xx about the token itself (too large...)
        return Refusal(401, error.code, "Invalid token", error.detail,
                       _challenge(self.realm, "invalid_token"))

    def admitted(self, identity: Identity, *, admin: bool) -> Identity | Refusal:
        if admin and not identity.is_admin:
            return Refusal(403, "admin_required", "Forbidden", "This needs an admin.",
                           _challenge(self.realm, "insufficient_scope"))
        return identity

    def authenticate(
        self, client: VerifierClient, incoming: Incoming, *, admin: bool,
    ) -> Identity | Refusal:
        """The caller's identity, or the refusal to answer instead (blocking: one call)."""
        found = self.credential(incoming)
        if isinstance(found, Refusal):
            return found
        try:
            identity = client.identify(found, request_id=incoming.request_id)
        except VerifierError as error:
            return self.refused(error)
        return self.admitted(identity, admin=admin)

    async def authenticate_async(
        self, client: VerifierClient | AsyncVerifierClient, incoming: Incoming, *, admin: bool,
    ) -> Identity | Refusal:
        """``authenticate`` without blocking the event loop: an ``AsyncVerifierClient`` is
        awaited, a ``VerifierClient`` called from a worker thread (``asyncio.to_thread``; each
        of the default executor's long-lived threads keeps its own keep-alive connection).
        """
        if isinstance(client, VerifierClient):
            return await asyncio.to_thread(self.authenticate, client, incoming, admin=admin)
        found = self.credential(incoming)
        if isinstance(found, Refusal):
            return found
        try:
            identity = await client.identify(found, request_id=incoming.request_id)
        except VerifierError as error:
            return self.refused(error)
        return self.admitted(identity, admin=admin)


@dataclass(frozen=True)
class PathRules:
    """Which paths a middleware lets through unchecked, and which need an admin.

    ``exempt``: exact paths (e.g. ``/healthz``), checked first. ``admin_paths``: prefixes by
    whole segments: ``/admin`` covers ``/admin`` and ``/admin/users``, not ``/administrator``.
    ``admin=True``: every path needs an admin.
    """

    exempt: frozenset[str]
    admin_prefixes: tuple[str, ...]

    @classmethod
    def of(cls, *, admin: bool, exempt: Iterable[str], admin_paths: Iterable[str]) -> PathRules:
        for name, paths in (("exempt", exempt), ("admin_paths", admin_paths)):
            if isinstance(paths, str):
                raise TypeError(f"{name} takes a list of paths, not the string {paths!r}")
        prefixes = ["/"] if admin else list(admin_paths)
        for prefix in prefixes:
            if not prefix.startswith("/"):
                raise ValueError(f"admin_paths: {prefix!r} does not start with /")
        return cls(frozenset(exempt), tuple(prefix.rstrip("/") for prefix in prefixes))

    def is_exempt(self, path: str) -> bool:
        return path in self.exempt

    def needs_admin(self, path: str) -> bool:
        return any(path == prefix or path.startswith(prefix + "/")
                   for prefix in self.admin_prefixes)
