"""Why the verifier refuses a request; each error carries its wire code.

Every ``TokenError`` answers 401 with ``WWW-Authenticate: Bearer error="invalid_token"``; the
codes are the contract's and clients branch on them, so they never change.
"""

from __future__ import annotations

from typing import ClassVar

from shared.errors import Problem


class TokenError(Problem):
    """Raised when a token (or session id) is not acceptable; subclasses say why."""

    status = 401
    code = "token_invalid"
    title = "Invalid token"
    documented_headers: ClassVar[dict[str, str]] = {
        "WWW-Authenticate": 'Bearer error="invalid_token"'
    }

    def __init__(self, detail: str) -> None:
        super().__init__(
            detail, headers={"WWW-Authenticate": 'Bearer error="invalid_token"'}
        )


class TokenMalformed(TokenError):
    """Raised when the token is not a compact JWS we are willing to parse."""

    code = "token_malformed"


class AlgorithmNotAllowed(TokenError):
    """Raised when the header's ``alg`` is not in the allowlist (``none`` and HMAC never are)."""

    code = "algorithm_not_allowed"


class IssuerUnknown(TokenError):
    """Raised when several issuers are trusted and the token's ``iss`` names none of them."""

    code = "issuer_unknown"


class SignatureInvalid(TokenError):
    """Raised when the signature does not verify with the selected trusted key."""

    code = "signature_invalid"


class KeyUnknown(TokenError):
    """Raised when the header's ``kid`` names no configured key."""

    code = "key_unknown"


class TokenExpired(TokenError):
    """Raised when ``exp`` is in the past beyond the leeway."""

    code = "token_expired"


class TokenNotYetValid(TokenError):
    """Raised when ``nbf`` (or ``iat``) is in the future beyond the leeway."""

    code = "token_not_yet_valid"


class TokenTooOld(TokenError):
    """Raised when a token without ``exp`` was issued longer ago than VERIFIER_MAX_TOKEN_AGE."""

    code = "token_too_old"


class ClaimMissing(TokenError):
    """Raised when a required claim (the user id, ``exp`` when required, ``iat``...) is absent."""

    code = "claim_missing"


class ClaimInvalid(TokenError):
    """Raised when a claim has the wrong type or value (schema, audience, issuer)."""

    code = "claim_invalid"


class AttributesMismatch(TokenError):
    """Raised when a VERIFIER_REQUIRED_ATTRIBUTES value differs from the payload's."""

    code = "attributes_mismatch"


class TokenRevoked(TokenError):
    """Raised when the token, or every token of its user up to a cut-off, was revoked."""

    code = "token_revoked"


class TokenMissing(TokenError):
    """Raised when forward-auth gets no ``Authorization: Bearer`` credential at all."""

    code = "token_missing"
    # RFC 6750 section 3.1: a request with no credential gets the challenge without an error
    # code (it did nothing wrong; it must authenticate)
    documented_headers: ClassVar[dict[str, str]] = {"WWW-Authenticate": 'Bearer realm="jwt-auth"'}

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.headers = {"WWW-Authenticate": 'Bearer realm="jwt-auth"'}


class SessionUnknown(TokenError):
    """Raised when forward-auth gets a session id that names no live session (401, not 404)."""

    code = "session_not_found"


class StoreUnavailable(Problem):
    """Raised when Redis is needed, unreachable, and the failure mode is ``closed``."""

    status = 503
    code = "store_unavailable"
    title = "Session store unavailable"


class LoginRateExceeded(Problem):
    """Raised when a user logged in VERIFIER_LOGIN_RATE times in the last minute already."""

    status = 429
    code = "login_rate_exceeded"
    title = "Too many logins"
    documented_headers: ClassVar[dict[str, str]] = {
        "Retry-After": "whole seconds until the user's oldest login of the last minute leaves it"
    }

    def __init__(self, detail: str, retry_after: int) -> None:
        super().__init__(detail, headers={"Retry-After": str(retry_after)})
        self.retry_after = retry_after


class SessionNotFound(Problem):
    """Raised when a session id names no live session."""

    status = 404
    code = "session_not_found"
    title = "Session not found"


class UserNotFound(Problem):
    """No user with this id has logged in."""

    status = 404
    code = "user_not_found"
    title = "User not found"


def _token_errors(base: type[TokenError]) -> list[type[TokenError]]:
    found: list[type[TokenError]] = []
    for subclass in base.__subclasses__():
        found += [subclass, *_token_errors(subclass)]
    return found


FORWARD_AUTH_ONLY: tuple[type[Problem], ...] = (TokenMissing, SessionUnknown)

TOKEN_ERRORS: tuple[type[Problem], ...] = tuple(
    error for error in _token_errors(TokenError) if error not in FORWARD_AUTH_ONLY
)
"""Why a token in a body is refused (401), read from the classes above: never listed by hand."""
