"""Why the issuer refuses a request; each class carries its wire code, which never changes."""

from __future__ import annotations

from typing import ClassVar

from shared.errors import Problem

REALM = 'Bearer realm="jwt-auth issuer"'


class ApiKeyMissing(Problem):
    """No ``Authorization: Bearer <client key>`` was sent."""

    status = 401
    code = "api_key_missing"
    title = "Unauthorized"
    documented_headers: ClassVar[dict[str, str]] = {"WWW-Authenticate": REALM}

    def __init__(self, detail: str) -> None:
        super().__init__(detail, headers={"WWW-Authenticate": REALM})


class ApiKeyInvalid(Problem):
    """The API key is not one of this issuer's clients' (or its grace ended)."""

    status = 401
    code = "api_key_invalid"
    title = "Unauthorized"

    def __init__(self, detail: str) -> None:
        super().__init__(detail, headers={"WWW-Authenticate": f'{REALM}, error="invalid_token"'})


class AdminNotPermitted(Problem):
    """The payload carries the admin value and the client may not mint admin tokens."""

    status = 403
    code = "admin_not_permitted"
    title = "Forbidden"


class RateLimited(Problem):
    """The client is over its ``ISSUER_RATE_LIMIT`` requests per minute."""

    status = 429
    code = "rate_limited"
    title = "Too many requests"
    documented_headers: ClassVar[dict[str, str]] = {"Retry-After": "seconds to wait"}


class ExpiresInInvalid(Problem):
    """``expires_in`` is not a whole number of seconds within ``ISSUER_MAX_TOKEN_TTL``."""

    status = 400
    code = "expires_in_invalid"
    title = "Bad request"


class ClaimInvalid(Problem):
    """A claim does not fit the claim schema (the user id, the admin flag, a time claim...)."""

    status = 422
    code = "claim_invalid"
    title = "Unprocessable payload"


class ClaimReserved(Problem):
    """The payload sets a claim only the issuer sets (iat, exp, jti, iss, aud; sub by default)."""

    status = 422
    code = "claim_reserved"
    title = "Unprocessable payload"


class KeyNotFound(Problem):
    """No published key has this kid."""

    status = 404
    code = "key_not_found"
    title = "Not found"
