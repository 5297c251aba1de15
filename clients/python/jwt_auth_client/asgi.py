"""ASGI middleware (Starlette, FastAPI): every HTTP request needs a good bearer token.

``app.add_middleware(VerifierMiddleware, client=client)`` (``admin=True``: an admin's token).
The identity is in ``request.state.identity`` (``scope["state"]["identity"]``); a refused
request never reaches the application and gets 401 (403 for a non-admin when ``admin=True``)
problem+json with ``WWW-Authenticate``. WebSocket and lifespan scopes pass through untouched.

The verifier call runs in a worker thread (``asyncio.to_thread``), so the event loop never
waits on the network. Why not an asyncio HTTP client of our own: the thread reuses the one
``VerifierClient`` the rest of the package is tested with (its retries, backoff and errors),
and each of the default executor's long-lived threads keeps its own keep-alive connection, so
connections are still reused. It needs nothing but the standard library.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any

from jwt_auth_client._web import Refusal, authenticate
from jwt_auth_client.client import VerifierClient

__all__ = ["VerifierMiddleware"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class VerifierMiddleware:
    """Wraps an ASGI application; ``exempt`` paths (exact, e.g. ``/healthz``) pass unchecked."""

    def __init__(
        self, app: ASGIApp, client: VerifierClient, *, admin: bool = False,
        realm: str = "api", exempt: Iterable[str] = (),
    ) -> None:
        self.app = app
        self.client = client
        self.admin = admin
        self.realm = realm
        self.exempt = frozenset(exempt)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path", "") in self.exempt:
            await self.app(scope, receive, send)
            return
        wanted = {b"authorization": None, b"x-request-id": None}
        for name, value in scope.get("headers", ()):
            name = name.lower()
            if name in wanted and wanted[name] is None:
                wanted[name] = value.decode("latin-1")
        outcome = await asyncio.to_thread(
            authenticate, self.client, wanted[b"authorization"], admin=self.admin,
            realm=self.realm, request_id=wanted[b"x-request-id"])
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
