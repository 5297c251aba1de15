"""``POST /v1/tokens``, the issuer's traffic, answered in front of Flask (``shared.hotroutes``).

Between the RSA signature and the answer stand only the client's key check, its rate limit,
the claim schema and the encoding: Flask's per-request machinery was a quarter of the rest.
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
from issuer.schemas import PAYLOAD_DESCRIPTION, Issued
from issuer.signing import RESERVED_CLAIMS
from shared.api import Api
from shared.errors import Problem
from shared.hotroutes import (
    Answer,
    Environ,
    Route,
    json_answer,
    parse_json,
    read_body,
)


def _expires_in(environ: Environ) -> str | None:
    """The first ``expires_in`` of the query string, as Flask's ``request.args.get`` gives it."""
    query = environ.get("QUERY_STRING", "")
    if not query:
        return None
    values = urllib.parse.parse_qs(query, keep_blank_values=True).get("expires_in")
    return values[0] if values else None


def _never_waits() -> bool:
    return True


def hot_routes(api: Api, issuer: TokenIssuer, *, max_body_bytes: int) -> list[Route]:
    """The issuer's routes served in front of Flask, declared to ``api``."""

    def issue_token(environ: Environ, method: str) -> Answer:
        client = issuer.authenticate(environ.get("HTTP_AUTHORIZATION"))
        issuer.admit(client)
        try:
            payload = parse_json(read_body(environ, max_body_bytes), environ.get("CONTENT_TYPE"))
        except Problem as problem:
            # counted here: the body limit and the JSON rules decide these refusals
            TOKEN_REFUSALS.labels(problem.code).inc()
            raise
        issued = issuer.issue(client, payload, expires_in=_expires_in(environ))
        body = {
            "token": issued.token,
            "tokenType": "Bearer",
            "expiresAt": issued.expires_at,
            "jti": issued.jti,
            "kid": issued.kid,
        }
        return json_answer(201, body, [("Cache-Control", "no-store")])

    # the claim schema the issuer checks with, without the claims only the issuer sets
    payload = type(issuer.settings.claim_rule.schema)(exclude=RESERVED_CLAIMS)
    return [api.hot(
        "/v1/tokens", ["POST"], issue_token, "Sign a payload for a user",
        description=PAYLOAD_DESCRIPTION, body=payload, status=201, answer=Issued,
        answer_headers={"Cache-Control": "no-store"},
        errors=(ExpiresInInvalid, ApiKeyMissing, ApiKeyInvalid, AdminNotPermitted, ClaimInvalid,
                ClaimReserved, RateLimited),
        security=("apiKey",),
        # nothing here waits on a peer: the rate limit is shared memory, the key is loaded
        answers_at_once=_never_waits,
        query={"expires_in": (
            "lifetime in seconds instead of ISSUER_TOKEN_TTL",
            {"type": "integer", "minimum": 1, "maximum": issuer.settings.max_token_ttl},
        )},
    )]
