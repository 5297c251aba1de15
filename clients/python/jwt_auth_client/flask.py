"""Flask: ``JwtAuth(app, client)``, then ``@require_token`` or ``@require_admin`` on a view.

The caller's credential is a JWT or a session id as ``Authorization: Bearer``, or a session id
in the session cookie (``jwt_auth_session``; ``cookie_name=`` names another, None reads none).
The view finds the caller in ``g.identity`` (an ``Identity``; ``session=True`` for a session).
A request without a credential, or whose credential the verifier refuses, gets 401
problem+json with ``WWW-Authenticate``; ``@require_admin`` answers 403 to a good credential
that is not an admin's. Importing this module imports Flask; importing ``jwt_auth_client``
does not.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import ParamSpec

from flask import Flask, Response, current_app, g, request
from flask.typing import ResponseReturnValue

from jwt_auth_client._web import SESSION_COOKIE, Gate, Incoming, Refusal
from jwt_auth_client.client import Identity, VerifierClient

__all__ = ["JwtAuth", "require_admin", "require_token"]

P = ParamSpec("P")
View = Callable[P, ResponseReturnValue]
EXTENSION = "jwt_auth_client"


class JwtAuth:
    """The extension: which verifier to ask, the realm of ``WWW-Authenticate``, the cookie.

    Without a client, ``init_app`` builds one from ``app.config["JWT_AUTH_VERIFIER_URL"]``.
    """

    def __init__(
        self, app: Flask | None = None, client: VerifierClient | None = None, *,
        realm: str = "api", cookie_name: str | None = SESSION_COOKIE,
    ) -> None:
        self.client = client
        self.gate = Gate(realm, cookie_name)
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        if self.client is None:
            self.client = VerifierClient(app.config["JWT_AUTH_VERIFIER_URL"])
        app.extensions[EXTENSION] = self

    def authenticate(self, *, admin: bool) -> Identity | Response:
        """The caller's identity, or the refusal to send (for the decorators and own checks)."""
        if self.client is None:
            raise RuntimeError("JwtAuth has no client: call init_app(app) first")
        headers = request.headers
        outcome = self.gate.authenticate(
            self.client,
            Incoming(headers.get("Authorization"), headers.get("Cookie"),
                     headers.get("X-Request-Id")),
            admin=admin)
        if isinstance(outcome, Refusal):
            return Response(outcome.body, status=outcome.status, headers=outcome.header_list())
        return outcome


def _extension() -> JwtAuth:
    extension = current_app.extensions.get(EXTENSION)
    if not isinstance(extension, JwtAuth):
        raise RuntimeError("jwt_auth_client.flask: create JwtAuth(app, client) first")
    return extension


def _guard(view: View[P], *, admin: bool) -> View[P]:
    @functools.wraps(view)
    def guarded(*args: P.args, **kwargs: P.kwargs) -> ResponseReturnValue:
        outcome = _extension().authenticate(admin=admin)
        if isinstance(outcome, Response):
            return outcome
        g.identity = outcome
        return view(*args, **kwargs)

    return guarded


def require_token(view: View[P]) -> View[P]:
    """The view runs only for a good JWT or live session; ``g.identity`` is its ``Identity``."""
    return _guard(view, admin=False)


def require_admin(view: View[P]) -> View[P]:
    """The view runs only for an admin's good JWT or live session (403 for anyone else's)."""
    return _guard(view, admin=True)
