"""ASGI middleware (Starlette, FastAPI): an HTTP request needs a good credential.

``app.add_middleware(VerifierMiddleware, client=client)``. The credential is a JWT or a
session id as ``Authorization: Bearer``, or a session id in the session cookie
(``jwt_auth_session``; ``cookie_name=`` names another, None reads none). The identity is in
``request.state.identity`` (``scope["state"]["identity"]``); a refused request never reaches the
application and gets 401 (403 for a non-admin on an admin path) problem+json with
``WWW-Authenticate``. WebSocket and lifespan scopes pass through untouched.

Which paths need what: ``exempt=["/healthz"]`` (exact paths) pass unchecked;
``admin_paths=["/admin"]`` (prefixes by whole segments) need an admin; ``admin=True`` makes
every path need one.

The event loop never waits on the network: an ``AsyncVerifierClient`` (the ``async`` extra) is
awaited; a ``VerifierClient`` is called from a worker thread (``asyncio.to_thread``), where each
of the default executor's long-lived threads keeps its own keep-alive connection.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import TYPE_CHECKING, Any

from jwt_auth_client._web import SESSION_COOKIE, Gate, PathRules, Refusal, incoming_from_asgi
from jwt_auth_client.client import VerifierClient

if TYPE_CHECKING:
    from jwt_auth_client.aio import AsyncVerifierClient

__all__ = ["VerifierMiddleware"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class VerifierMiddleware:
    """Wraps an ASGI application (see the module's documentation for the arguments)."""

    def __init__(
        self, app: ASGIApp, client: VerifierClient | AsyncVerifierClient, *,
        admin: bool = False, realm: str = "api", exempt: Iterable[str] = (),
        admin_paths: Iterable[str] = (), cookie_name: str | None = SESSION_COOKIE,
    ) -> None:
        self.app = app
        self.client = client
        self.gate = Gate(realm, cookie_name)
        self.paths = PathRules.of(admin=admin, exempt=exempt, admin_paths=admin_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or self.paths.is_exempt(path):
            await self.app(scope, receive, send)
            return
        outcome = await self.gate.authenticate_async(
            self.client, incoming_from_asgi(scope.get("headers", ())),
            admin=self.paths.needs_admin(path))
        if isinstance(outcome, Refusal):
            await send({
                "type": "http.response.start",
                "status": outcome.status,
                "headers": [(name.lower().encode("latin-1"), value.encode("latin-1"))
                            for name, value in outcome.header_list()],
            })
            await send({"type": "http.response.body", "body": outcome.body})
            return
        scope.setdefault("state", {})["identity"] = outcome
        await self.app(scope, receive, send)
