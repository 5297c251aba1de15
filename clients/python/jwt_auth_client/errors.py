"""One exception per problem ``code`` each service answers, all under ``JwtAuthError``.

The verifier's errors are under ``VerifierError``, the issuer's under ``IssuerError``: code that
catches ``VerifierError`` around verifier calls sees only verifier errors, as it always did.
Both services' codes are a stable contract (``verifier/errors.py``, ``issuer/errors.py``,
``shared/errors.py`` and ``docs/``); a code this client does not know yet is raised as the
service's base class itself (``VerifierError`` or ``IssuerError``), with its code.

Two codes mean different things in the two services, so they are looked up per service:
``claim_invalid`` is a refused token from the verifier (401, ``ClaimInvalid``) and a refused
payload from the issuer (422, ``IssuerClaimInvalid``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic, TypeVar


class JwtAuthError(Exception):
    """A jwt-custom-auth service refused a request, or could not be reached.

    ``status`` is the HTTP status (0 when no answer came), ``code`` the problem's stable
    snake_case code, ``detail`` its human-readable explanation, ``request_id`` the id of the
    call (the service's ``X-Request-Id``: its log lines for the call carry it), or None.
    ``retry_after`` is the answer's ``Retry-After`` in seconds (429 answers), else None.
    """

    code: str = "jwt_auth_error"
    request_id: str | None = None
    retry_after: int | None = None

    def __init__(
        self, detail: str, *, status: int = 0, code: str | None = None,
        problem: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.status = status
        if code is not None:
            # an instance attribute: a code no subclass names keeps its own value
            self.code = code
        self.problem: dict[str, Any] = problem or {}

    def __str__(self) -> str:
        text = f"{self.code} ({self.status}): {self.detail}"
        return f"{text} [request_id={self.request_id}]" if self.request_id else text


class ServiceUnavailable(JwtAuthError):
    """No usable answer after the retries: the connection failed, or the service said 503.

    ``attempts`` is how many times the call was tried. The parent of ``VerifierUnavailable``
    and ``IssuerUnavailable``.
    """

    code = "service_unavailable"

    def __init__(self, detail: str, *, attempts: int = 1, **kwargs: Any) -> None:
        super().__init__(detail, **kwargs)
        self.attempts = attempts


# -- the verifier ---------------------------------------------------------------------------


class VerifierError(JwtAuthError):
    """The verifier refused a request, or could not be reached (see ``JwtAuthError``)."""

    code = "verifier_error"


class VerifierUnavailable(VerifierError, ServiceUnavailable):
    """No usable answer after the retries: the connection failed, or the verifier said 503."""

    code = "verifier_unavailable"


class StoreUnavailable(VerifierUnavailable):
    """503: the verifier needs Redis and cannot reach it."""

    code = "store_unavailable"


class NotReady(VerifierUnavailable):
    """503 from ``/readyz``: keys not loaded or Redis unreachable."""

    code = "not_ready"


class InvalidToken(VerifierError):
    """401: the token (or session id) is refused; the subclasses say why."""

    code = "token_invalid"


class TokenMalformed(InvalidToken):
    code = "token_malformed"


class AlgorithmNotAllowed(InvalidToken):
    code = "algorithm_not_allowed"


class SignatureInvalid(InvalidToken):
    code = "signature_invalid"


class KeyUnknown(InvalidToken):
    code = "key_unknown"


class TokenExpired(InvalidToken):
    code = "token_expired"


class TokenNotYetValid(InvalidToken):
    code = "token_not_yet_valid"


class TokenTooOld(InvalidToken):
    code = "token_too_old"


class ClaimMissing(InvalidToken):
    code = "claim_missing"


class ClaimInvalid(InvalidToken):
    code = "claim_invalid"


class AttributesMismatch(InvalidToken):
    code = "attributes_mismatch"


class IssuerUnknown(InvalidToken):
    """The verifier trusts several issuers and the token's ``iss`` names none of them."""

    code = "issuer_unknown"


class TokenRevoked(InvalidToken):
    code = "token_revoked"


class TokenMissing(InvalidToken):
    code = "token_missing"


class SessionNotFound(VerifierError):
    """404 (``GET /v1/sessions/<id>``) or 401 (forward-auth): no live session has this id."""

    code = "session_not_found"


class UserNotFound(VerifierError):
    code = "user_not_found"


class LoginRateExceeded(VerifierError):
    """429: the user logged in more than ``VERIFIER_LOGIN_RATE`` times in a minute.

    ``retry_after`` is the verifier's ``Retry-After``, in seconds (None if it sent none).
    """

    code = "login_rate_exceeded"


class RequestInvalid(VerifierError):
    code = "request_invalid"


class Unauthorized(VerifierError):
    """401 from an admin endpoint: no known admin key."""

    code = "unauthorized"


class Forbidden(VerifierError):
    """403 from an admin endpoint: the key is not an admin key."""

    code = "forbidden"


class NotFound(VerifierError):
    code = "not_found"


class MethodNotAllowed(VerifierError):
    code = "method_not_allowed"


class PayloadTooLarge(VerifierError):
    code = "payload_too_large"


class UnsupportedMediaType(VerifierError):
    code = "unsupported_media_type"


class InternalError(VerifierError):
    code = "internal_error"


# -- the issuer -----------------------------------------------------------------------------


class IssuerError(JwtAuthError):
    """The issuer refused a request, or could not be reached (see ``JwtAuthError``).

    The codes both services answer (``request_invalid``, ``payload_too_large``, ``not_found``,
    ``internal_error``...) come from the issuer as ``IssuerError`` itself, with that code.
    """

    code = "issuer_error"


class IssuerUnavailable(IssuerError, ServiceUnavailable):
    """No usable answer after the retries: the connection failed, or the issuer said 503."""

    code = "issuer_unavailable"


class ApiKeyMissing(IssuerError):
    """401: no API key was sent (the client was made with an empty key)."""

    code = "api_key_missing"


class ApiKeyInvalid(IssuerError):
    """401: the API key is not one of the issuer's clients' (or its rotation grace ended)."""

    code = "api_key_invalid"


class AdminNotPermitted(IssuerError):
    """403: an admin token asked for by a client added without ``--admin``."""

    code = "admin_not_permitted"


class IssuerClaimInvalid(IssuerError):
    """422: the claim schema rejects the payload (``problem["field"]`` names the member).

    Not the verifier's ``ClaimInvalid``, a refused token: the two services share the code.
    """

    code = "claim_invalid"


class ClaimReserved(IssuerError):
    """422: the payload sets a claim only the issuer sets (iat, exp, jti, iss, aud)."""

    code = "claim_reserved"


class ExpiresInInvalid(IssuerError):
    """400: ``expires_in`` is not a whole number from 1 to the issuer's ``ISSUER_MAX_TOKEN_TTL``."""

    code = "expires_in_invalid"


class RateLimited(IssuerError):
    """429: the client is over its ``ISSUER_RATE_LIMIT`` requests per minute.

    ``retry_after`` is the issuer's ``Retry-After``, in seconds (None if it sent none). A
    rate-limited call is not retried by the client: waiting is the caller's decision.
    """

    code = "rate_limited"


# -- code to class, per service ---------------------------------------------------------------

E = TypeVar("E", bound=JwtAuthError)


def _subclasses(base: type[E]) -> list[type[E]]:
    found: list[type[E]] = []
    for subclass in base.__subclasses__():
        found += [subclass, *_subclasses(subclass)]
    return found


ERRORS_BY_CODE: dict[str, type[VerifierError]] = {
    error.code: error for error in _subclasses(VerifierError)
}
"""The verifier's classes above by their code, read from the classes (never listed by hand)."""

ISSUER_ERRORS_BY_CODE: dict[str, type[IssuerError]] = {
    error.code: error for error in _subclasses(IssuerError)
}
"""The issuer's classes above by their code, read from the classes (never listed by hand)."""


@dataclass(frozen=True)
class ServiceErrors(Generic[E]):
    """How one service's problem answers become exceptions."""

    base: type[E]
    unavailable: type[E]
    by_code: dict[str, type[E]]

    def error_for(
        self, status: int, code: str | None, detail: str,
        problem: dict[str, Any] | None = None, *, attempts: int = 1,
    ) -> E:
        """The exception for a problem answer: its code's class, or the base with the code."""
        cls = self.by_code.get(code or "")
        if cls is not None:
            error = cls(detail, status=status, problem=problem)
        elif status == 503:
            error = self.unavailable(
                detail, status=status, code=code or self.unavailable.code, problem=problem)
        else:
            error = self.base(
                detail, status=status, code=code or f"http_{status}", problem=problem)
        if isinstance(error, ServiceUnavailable):
            error.attempts = attempts
        return error


VERIFIER_ERRORS = ServiceErrors(VerifierError, VerifierUnavailable, ERRORS_BY_CODE)
ISSUER_ERRORS = ServiceErrors(IssuerError, IssuerUnavailable, ISSUER_ERRORS_BY_CODE)


def error_for(
    status: int, code: str | None, detail: str, problem: dict[str, Any] | None = None,
    *, attempts: int = 1,
) -> VerifierError:
    """The verifier's exception for a problem answer (kept for callers of version 0.1)."""
    return VERIFIER_ERRORS.error_for(status, code, detail, problem, attempts=attempts)
