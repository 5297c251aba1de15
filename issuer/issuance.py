"""The issuer's rules for one token request: who may ask, how often, for what, for how long.

Flask-free: the routes hand over the header, the parsed body and the raw query value; the
answers are ``Problem``s with stable codes, counted here, where each refusal is decided.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from typing import Any

from issuer.config import IssuerSettings
from issuer.errors import (
    AdminNotPermitted,
    ApiKeyInvalid,
    ApiKeyMissing,
    ClaimInvalid,
    ClaimReserved,
    ExpiresInInvalid,
    RateLimited,
)
from issuer.keyring import SigningKeys
from issuer.metrics import TOKEN_REFUSALS, TOKENS_ISSUED
from issuer.ratelimit import RateLimiter, retry_after_header
from issuer.signing import (
    IssuedToken,
    PayloadRejected,
    check_payload,
    reserved_claims,
    sign_checked,
)
from shared.apikeys import ApiClient, ApiKeyRegistry, bearer_token
from shared.audit import audit
from shared.errors import Problem
from shared.keys import SigningKey

_SECONDS = re.compile(r"[0-9]{1,10}")  # ASCII digits only: str.isdecimal accepts other scripts
def _refuse(problem: Problem) -> Problem:
    TOKEN_REFUSALS.labels(problem.code).inc()
    return problem


class TokenIssuer:
    """Everything one issuer process needs to answer POST /v1/tokens."""

    def __init__(
        self,
        settings: IssuerSettings,
        keys: SigningKeys,
        clients: ApiKeyRegistry,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.keys = keys
        self.clients = clients
        self.limiter = RateLimiter([c.name for c in clients.clients], settings.rate_limit)
        self.reserved = reserved_claims(settings.subject_from)
        self._clock = clock

    def authenticate(self, authorization: str | None) -> ApiClient:
        """The client behind an ``Authorization: Bearer`` header, or a 401 problem."""
        key = bearer_token(authorization)
        if key is None:
            raise _refuse(
                ApiKeyMissing("Send the client's API key as Authorization: Bearer <key>.")
            )
        client = self.clients.authenticate(key)
        if client is None:
            raise _refuse(ApiKeyInvalid("The API key is not known to this issuer."))
        return client

    def admit(self, client: ApiClient) -> None:
        """Count the request against the client's rate limit, or a 429 problem."""
        wait = self.limiter.acquire(client.name)
        if wait > 0:
            raise _refuse(RateLimited(
                f"Client {client.name!r} is over its limit of {self.settings.rate_limit} "
                "requests per minute.",
                headers={"Retry-After": retry_after_header(wait)},
            ))

    def lifetime(self, expires_in: str | None) -> int:
        """Seconds the token will live: the configured TTL, or a bounded ``expires_in``."""
        if expires_in is None:
            return self.settings.token_ttl
        maximum = self.settings.max_token_ttl
        text = expires_in.strip()
        if not _SECONDS.fullmatch(text) or not 1 <= int(text) <= maximum:
            raise _refuse(ExpiresInInvalid(
                f"expires_in must be a whole number of seconds from 1 to {maximum}.",
                extra={"field": "expires_in"},
            ))
        return int(text)

    def issue(self, client: ApiClient, payload: Any, *, expires_in: str | None,
              key: SigningKey | None = None) -> IssuedToken:
        """Sign the payload for this client, or a 400/403/422 problem saying why not.

        ``key`` is the active key the caller chose where to sign with (``signs_quickly``): a
        reload in between must not hand an RSA key to the event loop.
        """
        ttl = self.lifetime(expires_in)
        try:
            claims = check_payload(payload, self.settings.claim_rule, reserved=self.reserved)
        except PayloadRejected as exc:
            refusal = ClaimReserved if exc.code == ClaimReserved.code else ClaimInvalid
            raise _refuse(refusal(exc.message, extra={"field": exc.field})) from None
        rule = self.settings.claim_rule
        admin = rule.grants_admin(claims)
        if admin and not client.admin:
            raise _refuse(AdminNotPermitted(
                f"Client {client.name!r} may not issue admin tokens "
                f"({rule.is_admin_field}: {json.dumps(rule.is_admin_value)}); "
                "add it with `jwt-auth clients add NAME --admin` to allow that.",
                extra={"field": rule.is_admin_field},
            ))
        issued = sign_checked(
            claims, key or self.keys.ring.active, now=self._clock(), ttl=ttl,
            issuer=self.settings.issuer, audience=self.settings.audience,
            subject_from=self.settings.subject_from,
        )
        TOKENS_ISSUED.labels(client.name, "true" if admin else "false").inc()
        if admin:
            # who minted which admin token; the jti lets an operator revoke it, the token
            # itself never reaches a log
            audit(
                "admin_token_issued", client=client.name,
                userId=claims.get(rule.user_id_field), jti=issued.jti, kid=issued.kid,
                expiresAt=issued.expires_at,
            )
        return issued
