"""WSGI middleware: a request needs a good credential before the application sees it.

``app = VerifierMiddleware(app, client)``. The credential is a JWT or a session id as
``Authorization: Bearer``, or a session id in the session cookie (``jwt_auth_session``;
``cookie_name=`` names another, None reads none). The identity is in
``environ["jwt_auth.identity"]``; a refused request never reaches the application and gets 401
(403 for a non-admin on an admin path) problem+json with ``WWW-Authenticate``.

Which paths need what: ``exempt=["/healthz"]`` (exact paths) pass unchecked;
``admin_paths=["/admin"]`` (prefixes by whole segments) need an admin; ``admin=True`` makes
every path need one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from jwt_auth_client._web import SESSION_COOKIE, Gate, PathRules, Refusal, incoming_from_wsgi
from jwt_auth_client.client import VerifierClient

__all__ = ["ENVIRON_KEY", "VerifierMiddleware"]

ENVIRON_KEY = "jwt_auth.identity"

StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]

_REASONS = {401: "Unauthorized", 403: "Forbidden", 502: "Bad Gateway",
            503: "Service Unavailable"}


class VerifierMiddleware:
    """Wraps a WSGI application (see the module's documentation for the arguments)."""

    def __init__(
        self, app: WSGIApp, client: VerifierClient, *, admin: bool = False,
        realm: str = "api", exempt: Iterable[str] = (), admin_paths: Iterable[str] = (),
        cookie_name: str | None = SESSION_COOKIE,
    ) -> None:
        self.app = app
        self.client = client
        self.gate = Gate(realm, cookie_name)
        self.paths = PathRules.of(admin=admin, exempt=exempt, admin_paths=admin_paths)

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if self.paths.is_exempt(path):
            return self.app(environ, start_response)
        outcome = self.gate.authenticate(
            self.client, incoming_from_wsgi(environ), admin=self.paths.needs_admin(path))
        if isinstance(outcome, Refusal):
            start_response(f"{outcome.status} {_REASONS[outcome.status]}", outcome.header_list())
            return [outcome.body]
        environ[ENVIRON_KEY] = outcome
        return self.app(environ, start_response)
