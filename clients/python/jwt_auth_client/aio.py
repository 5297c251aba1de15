"""``AsyncVerifierClient`` and ``AsyncIssuerClient``: both services' APIs for asyncio, on httpx.

The optional extra ``jwt-auth-client[async]`` (``httpx>=0.27``); importing ``jwt_auth_client``
alone never imports httpx. The methods, their arguments, the exceptions, the request ids and
the retry rules are the sync clients' (both send the same ``Call``s and run their attempts
with the same ``Attempts``); backoff waits with ``asyncio.sleep``, never blocking the loop.

One ``httpx.AsyncClient`` a client: its pool keeps up to ``max_connections`` connections
alive for reuse, so concurrent calls do not open and close a connection each. A client
belongs to the event loop that first uses it. ``await client.aclose()`` (or ``async with``)
closes the pool.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Mapping
from typing import Any, ClassVar, Self, TypeVar, Unpack

import httpx

from jwt_auth_client import _calls
from jwt_auth_client._protocol import Answer, Attempts, Call, ClientSettings, RetrySettings
from jwt_auth_client.errors import ISSUER_ERRORS, VERIFIER_ERRORS, ServiceErrors
from jwt_auth_client.models import Identity, IssuedToken, Session

__all__ = ["AsyncIssuerClient", "AsyncVerifierClient"]

T = TypeVar("T")


class AsyncClient(ClientSettings):
    """A service's API over ``httpx.AsyncClient``; the subclasses name the service and calls."""

    _errors: ClassVar[ServiceErrors[Any]]

    def __init__(
        self, base_url: str, *, max_connections: int = 100, **settings: Unpack[RetrySettings],
    ) -> None:
        super().__init__(base_url, **settings)
        self._http = httpx.AsyncClient(
            limits=httpx.Limits(max_connections=max_connections,
                                max_keepalive_connections=max_connections),
            # as the sync clients: no proxy from the environment, the system's CA certificates
            trust_env=False,
            verify=ssl.create_default_context(),
        )

    async def aclose(self) -> None:
        """Close every connection of the pool."""
        await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def _run(self, call: Call[T], request_id: str | None) -> T:
        attempts = Attempts(self, self._errors, call, request_id)
        for wait in attempts:
            if wait:
                await asyncio.sleep(wait)
            attempts.record(await self._attempt(call, attempts))
        return attempts.result()

    async def _attempt(self, call: Call[Any], attempts: Attempts[Any]) -> Answer | BaseException:
        """One attempt's answer, or the connection error that stood for it."""
        try:
            response = await self._http.request(
                call.method, self.base_url + call.path, content=call.body,
                headers=call.headers(attempts.request_id), timeout=attempts.timeout())
        except httpx.TransportError as error:  # refused, reset, timed out, closed early
            return error
        headers = {name.lower(): value for name, value in response.headers.items()}
        return Answer(response.status_code, headers, response.content)


class AsyncVerifierClient(AsyncClient):
    """``VerifierClient`` for asyncio: the same methods, awaited; the same settings.

    ``AsyncVerifierClient(base_url, max_connections=100, timeout=5.0, retries=2, backoff=0.1,
    max_backoff=2.0, retry_budget=10.0)``.
    """

    _errors = VERIFIER_ERRORS

    async def verify(self, token: str, *, request_id: str | None = None) -> Identity:
        """As ``VerifierClient.verify``."""
        return await self._run(_calls.verify(token), request_id)

    async def identify(self, credential: str, *, request_id: str | None = None) -> Identity:
        """As ``VerifierClient.identify``: a JWT or a session id."""
        return await self._run(_calls.identify(credential), request_id)

    async def login(self, token: str, *, request_id: str | None = None) -> Session:
        """As ``VerifierClient.login``."""
        return await self._run(_calls.login(token), request_id)

    async def session(self, session_id: str, *, request_id: str | None = None) -> Session:
        """As ``VerifierClient.session``."""
        return await self._run(_calls.session(session_id), request_id)

    async def logout(self, session_id: str, *, request_id: str | None = None) -> None:
        """As ``VerifierClient.logout``."""
        await self._run(_calls.logout(session_id), request_id)

    async def revoke(self, token: str, *, request_id: str | None = None) -> None:
        """As ``VerifierClient.revoke``."""
        await self._run(_calls.revoke(token), request_id)


class AsyncIssuerClient(AsyncClient):
    """``IssuerClient`` for asyncio: ``await client.issue(...)``; the same settings."""

    _errors = ISSUER_ERRORS

    def __init__(
        self, base_url: str, key: str, *, max_connections: int = 100,
        **settings: Unpack[RetrySettings],
    ) -> None:
        super().__init__(base_url, max_connections=max_connections, **settings)
        self._key = key

    async def issue(
        self, user_id: str, *, is_admin: bool = False, claims: Mapping[str, Any] | None = None,
        expires_in: int | None = None, request_id: str | None = None,
    ) -> IssuedToken:
        """As ``IssuerClient.issue``."""
        return await self._run(
            _calls.issue(self._key, user_id, is_admin=is_admin, claims=claims,
                         expires_in=expires_in),
            request_id)
