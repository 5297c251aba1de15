"""``POST /v1/tokens``, the issuer's traffic, answered on the event loop (``shared.web.hot``).

The client's key check, its rate limit and the body are handled on the loop. With an RSA key
the claim rules and the signature run in the app's thread pool (an RSA-4096 signature takes
milliseconds, and ``cryptography`` lets go of the GIL while it signs, so the loop goes on
serving meanwhile); with an ES256 or EdDSA key they run on the loop (``SIGNS_QUICKLY``).
"""

from __future__ import annotations

import urllib.parse

from issuer.errors import (
    AdminNotPermitted,
    ApiKeyInvalid,
    ApiKeyMissing,
    ClaimInvalid,
    ClaimReserved,
    ExpiresInInvalid,
    RateLimited,
)
from issuer.issuance import TokenIssuer
from issuer.metrics import TOKEN_REFUSALS
from issuer.schemas import Issued, payload_description
from shared.errors import Problem
from shared.keys import EDDSA, ES256
from shared.web.api import Api
from shared.web.hot import HotRoute, Request, parse_json
from shared.web.problems import Answer, json_answer

SIGNS_QUICKLY = frozenset({ES256, EDDSA})
"""Algorithms whose signature is made on the event loop, without the hop to the thread pool.

Decided by measurement (one worker pinned to a core, wrk on the other, the same ES256 key
signing on the loop and through the pool, interleaved rounds, CPU time of the worker per token):
a P-256 or Ed25519 signature takes about 30 us, about what the hop itself costs (the executor's
future and lock, the loop's wake-up: py-spy --gil showed them at a quarter of the worker's
time). On the loop, tokens/s were the same at 16 connections and 6% higher at 64, CPU per token
the same or lower, and p99 at 16 connections 6 ms instead of 22 (a request no longer queues
behind the pool). An RSA-4096 signature takes milliseconds, mostly without the GIL: on the loop
it would stall every other connection that long, so RS256 keeps the pool.
"""


def _expires_in(query: str) -> str | None:
    """The first ``expires_in`` of the query string, as Flask's ``request.args.get`` gives it."""
    if not query:
        return None
    values = urllib.parse.parse_qs(query, keep_blank_values=True).get("expires_in")
    return values[0] if values else None


def hot_routes(api: Api, issuer: TokenIssuer) -> list[HotRoute]:
    """The issuer's routes answered on the event loop, declared to ``api``."""

    async def issue_token(request: Request) -> Answer:
        client = issuer.authenticate(request.header("authorization"))
        issuer.admit(client)
        try:
            payload = parse_json(await request.body(), request.header("content-type"))
        except Problem as problem:
            # counted here: the body limit and the JSON rules decide these refusals
            TOKEN_REFUSALS.labels(problem.code).inc()
            raise
        key = issuer.keys.ring.active
        expires_in = _expires_in(request.query)
        if key.alg in SIGNS_QUICKLY:
            issued = issuer.issue(client, payload, expires_in=expires_in, key=key)
        else:
            issued = await request.in_thread(issuer.issue, client, payload,
                                             expires_in=expires_in, key=key)
        body = {
            "token": issued.token,
            "tokenType": "Bearer",
            "expiresAt": issued.expires_at,
            "jti": issued.jti,
            "kid": issued.kid,
        }
        return json_answer(201, body, [("Cache-Control", "no-store")])

    # the claim schema the issuer checks with, without the claims only the issuer sets
    payload = type(issuer.settings.claim_rule.schema)(exclude=issuer.reserved)
    return [api.hot(
        "/v1/tokens", ["POST"], issue_token, "Sign a payload for a user",
        description=payload_description(issuer.reserved), body=payload, status=201, answer=Issued,
        answer_headers={"Cache-Control": "no-store"},
        errors=(ExpiresInInvalid, ApiKeyMissing, ApiKeyInvalid, AdminNotPermitted, ClaimInvalid,
                ClaimReserved, RateLimited),
        security=("apiKey",),
        query={"expires_in": (
            "lifetime in seconds instead of ISSUER_TOKEN_TTL",
            {"type": "integer", "minimum": 1, "maximum": issuer.settings.max_token_ttl},
        )},
    )]
