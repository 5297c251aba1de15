"""FastAPI: ``JwtAuth(app, client)``, then ``Depends(identity)`` or ``Depends(admin_identity)``.

A per-route rule, where the ASGI middleware guards whole paths::

    JwtAuth(app, AsyncVerifierClient(url))

    @app.get("/me")
    async def me(caller: Identity = Depends(identity)): ...

    @app.delete("/users/{user_id}")
    async def delete_user(user_id: str, caller: AdminIdentity): ...

``CurrentIdentity`` and ``AdminIdentity`` are the same two dependencies as ``Annotated`` types.
The credential is a JWT or a session id as ``Authorization: Bearer``, or a session id in the
session cookie (``jwt_auth_session``; ``cookie_name=`` names another, None reads none). A
refused request gets the integrations' problem+json answer (401, 403 for a non-admin on an
admin route, 503 when the verifier cannot be reached), with ``WWW-Authenticate``; the route
never runs. The identity is also in ``request.state.identity``.

The client: an ``AsyncVerifierClient`` (the ``async`` extra, which ``jwt-auth-client[fastapi]``
brings) is awaited; a ``VerifierClient`` is called from a worker thread. Given a URL instead,
``JwtAuth`` makes the async client when httpx is installed, else the sync one. The client is
closed at the application's shutdown (its lifespan). Importing this module imports FastAPI;
importing ``jwt_auth_client`` does not.
"""

from __future__ import annotations

import contextlib
import importlib.util
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.responses import Response

from jwt_auth_client._web import SESSION_COOKIE, Gate, Refusal, incoming_from_asgi
from jwt_auth_client.client import Identity, VerifierClient

if TYPE_CHECKING:
    from jwt_auth_client.aio import AsyncVerifierClient

__all__ = [
    "AdminIdentity",
    "AuthenticationRefused",
    "CurrentIdentity",
    "JwtAuth",
    "admin_identity",
    "identity",
]


class AuthenticationRefused(Exception):
    """Raised by the dependencies to send ``refusal`` instead of running the route."""

    def __init__(self, refusal: Refusal) -> None:
        super().__init__(refusal.detail)
        self.refusal = refusal


class JwtAuth:
    """Which verifier the dependencies ask; kept in ``app.state.jwt_auth``.

    Registers the handler that answers ``AuthenticationRefused`` with its problem document,
    and closes the client when the application shuts down.
    """

    def __init__(
        self, app: FastAPI, client: VerifierClient | AsyncVerifierClient | str, *,
        realm: str = "api", cookie_name: str | None = SESSION_COOKIE,
    ) -> None:
        self.client = _client_for(client) if isinstance(client, str) else client
        self.gate = Gate(realm, cookie_name)
        app.state.jwt_auth = self
        app.add_exception_handler(AuthenticationRefused, _refusal_answer)
        # the client is closed at the application's shutdown, on the loop that used it (an
        # async client's connections belong to that loop)
        app_lifespan = app.router.lifespan_context

        @contextlib.asynccontextmanager
        async def lifespan(lifespan_app: Any) -> AsyncIterator[Any]:
            async with app_lifespan(lifespan_app) as state:
                yield state
            await self.aclose()

        app.router.lifespan_context = lifespan

    async def authenticate(self, request: Request, *, admin: bool) -> Identity:
        """The caller's identity; ``AuthenticationRefused`` when the route must not run."""
        outcome = await self.gate.authenticate_async(
            self.client, incoming_from_asgi(request.scope.get("headers", ())), admin=admin)
        if isinstance(outcome, Refusal):
            raise AuthenticationRefused(outcome)
        request.state.identity = outcome
        return outcome

    async def aclose(self) -> None:
        """Close the client's connections."""
        if isinstance(self.client, VerifierClient):
            self.client.close()
        else:
            await self.client.aclose()


def _client_for(url: str) -> VerifierClient | AsyncVerifierClient:
    """The async client when its extra is installed, else the sync one (in worker threads)."""
    if importlib.util.find_spec("httpx") is None:
        return VerifierClient(url)
    from jwt_auth_client.aio import AsyncVerifierClient

    return AsyncVerifierClient(url)


async def _refusal_answer(request: Request, error: Exception) -> Response:
    if not isinstance(error, AuthenticationRefused):  # registered for that class alone
        raise error
    refusal = error.refusal
    return Response(refusal.body, status_code=refusal.status,
                    headers=dict(refusal.header_list()))


def _extension(request: Request) -> JwtAuth:
    extension = getattr(request.app.state, "jwt_auth", None)
    if not isinstance(extension, JwtAuth):
        raise RuntimeError("jwt_auth_client.fastapi: create JwtAuth(app, client) first")
    return extension


async def identity(request: Request) -> Identity:
    """A dependency: the caller's ``Identity``, for a good JWT or a live session."""
    return await _extension(request).authenticate(request, admin=False)


async def admin_identity(request: Request) -> Identity:
    """A dependency: the caller's ``Identity``, for an admin's good JWT or live session."""
    return await _extension(request).authenticate(request, admin=True)


CurrentIdentity = Annotated[Identity, Depends(identity)]
AdminIdentity = Annotated[Identity, Depends(admin_identity)]
