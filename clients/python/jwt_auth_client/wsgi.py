"""WSGI middleware: every request needs a good bearer token before the application sees it.

``app = VerifierMiddleware(app, client)`` (``admin=True``: an admin's token). The identity is
in ``environ["jwt_auth.identity"]``; a refused request never reaches the application and gets
401 (403 for a non-admin when ``admin=True``) problem+json with ``WWW-Authenticate``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from jwt_auth_client._web import Refusal, authenticate
from jwt_auth_client.client import VerifierClient

__all__ = ["ENVIRON_KEY", "VerifierMiddleware"]

ENVIRON_KEY = "jwt_auth.identity"

StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]

_REASONS = {401: "Unauthorized", 403: "Forbidden", 502: "Bad Gateway",
            503: "Service Unavailable"}


class VerifierMiddleware:
    """Wraps a WSGI application; ``exempt`` paths (exact, e.g. ``/healthz``) pass unchecked."""

    def __init__(
        self, app: WSGIApp, client: VerifierClient, *, admin: bool = False,
        realm: str = "api", exempt: Iterable[str] = (),
    ) -> None:
        self.app = app
        self.client = client
        self.admin = admin
        self.realm = realm
        self.exempt = frozenset(exempt)

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO", "") in self.exempt:
            return self.app(environ, start_response)
        outcome = authenticate(
            self.client, environ.get("HTTP_AUTHORIZATION"), admin=self.admin, realm=self.realm,
            request_id=environ.get("HTTP_X_REQUEST_ID"))
        if isinstance(outcome, Refusal):
            start_response(f"{outcome.status} {_REASONS[outcome.status]}", outcome.header_list())
            return [outcome.body]
        environ[ENVIRON_KEY] = outcome
        return self.app(environ, start_response)
