"""One exception per problem ``code`` the verifier answers, all under ``VerifierError``.

The verifier's codes are a stable contract (``verifier/errors.py`` and ``docs/verifier.md``);
a code this client does not know yet is raised as ``VerifierError`` itself, with its code.
"""

from __future__ import annotations

from typing import Any


class VerifierError(Exception):
    """The verifier refused a request, or could not be reached.

    ``status`` is the HTTP status (0 when no answer came), ``code`` the problem's stable
    snake_case code, ``detail`` its human-readable explanation, ``request_id`` the id of the
    call (the verifier's ``X-Request-Id``: its log lines for the call carry it), or None.
    """

    code: str = "verifier_error"
    request_id: str | None = None

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


class VerifierUnavailable(VerifierError):
    """No usable answer after the retries: the connection failed, or the verifier said 503."""

    code = "verifier_unavailable"

    def __init__(self, detail: str, *, attempts: int = 1, **kwargs: Any) -> None:
        super().__init__(detail, **kwargs)
        self.attempts = attempts


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
    retry_after: int | None = None


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


def _subclasses(base: type[VerifierError]) -> list[type[VerifierError]]:
    found: list[type[VerifierError]] = []
    for subclass in base.__subclasses__():
        found += [subclass, *_subclasses(subclass)]
    return found


ERRORS_BY_CODE: dict[str, type[VerifierError]] = {
    error.code: error for error in _subclasses(VerifierError)
}
"""Every class above by its code, read from the classes (never listed by hand)."""


def error_for(
    status: int, code: str | None, detail: str, problem: dict[str, Any] | None = None,
    *, attempts: int = 1,
) -> VerifierError:
    """The exception for a problem answer: its code's class, or the base class with the code."""
    cls = ERRORS_BY_CODE.get(code or "")
    if cls is not None and issubclass(cls, VerifierUnavailable):
        return cls(detail, status=status, problem=problem, attempts=attempts)
    if cls is not None:
        return cls(detail, status=status, problem=problem)
    if status == 503:
        return VerifierUnavailable(
            detail, status=status, code=code or VerifierUnavailable.code, problem=problem,
            attempts=attempts,
        )
    return VerifierError(detail, status=status, code=code or f"http_{status}", problem=problem)
