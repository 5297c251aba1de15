"""``IssuerClient``: the issuer's ``POST /v1/tokens`` over the standard library's http.client."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Unpack

from jwt_auth_client import _calls
from jwt_auth_client._protocol import RetrySettings
from jwt_auth_client._sync import SyncClient
from jwt_auth_client.errors import ISSUER_ERRORS
from jwt_auth_client.models import IssuedToken

__all__ = ["IssuedToken", "IssuerClient"]


class IssuerClient(SyncClient):
    """The issuer's API for your auth system: ``issue`` a token for a user it authenticated.

    ``IssuerClient(base_url, key, timeout=5.0, retries=2, backoff=0.1, max_backoff=2.0,
    retry_budget=10.0)``: ``key`` is this system's API key (``jwt-auth clients add``), sent as
    ``Authorization: Bearer``; it never appears in a repr or an error. The transport rules are
    ``VerifierClient``'s: one keep-alive connection a thread, retries only after a connection
    error or a 503 (never after a 429: ``RateLimited.retry_after`` says how long to wait), the
    same ``request_id`` rules, ``IssuerError`` subclasses carrying the call's id. An issue
    repeated after a connection error may sign a second token (the first is never handed out).
    """

    _errors = ISSUER_ERRORS

    def __init__(self, base_url: str, key: str, **settings: Unpack[RetrySettings]) -> None:
        super().__init__(base_url, **settings)
        self._key = key

    def issue(
        self, user_id: str, *, is_admin: bool = False, claims: Mapping[str, Any] | None = None,
        expires_in: int | None = None, request_id: str | None = None,
    ) -> IssuedToken:
        """Sign ``{"userId": user_id, "isAdmin": is_admin, **claims}`` (``POST /v1/tokens``).

        ``expires_in``: the token's lifetime in seconds instead of the issuer's
        ``ISSUER_TOKEN_TTL``. ``claims`` may not set ``userId`` or ``isAdmin`` (``ValueError``),
        nor the claims the issuer sets itself (the issuer raises ``ClaimReserved``).
        """
        return self._run(
            _calls.issue(self._key, user_id, is_admin=is_admin, claims=claims,
                         expires_in=expires_in),
            request_id)
