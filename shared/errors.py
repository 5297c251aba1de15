"""The product's exception tree.

Two families: ``StartupError`` stops a service or the CLI before it serves anything (one line,
non-zero exit), and ``Problem`` answers one HTTP request with an RFC 7807 document.
"""

from __future__ import annotations

from typing import Any, ClassVar


class StartupError(Exception):
    """Raised when configuration or a key makes it impossible to start; the message is one line."""


class ConfigError(StartupError):
    """Raised when an environment variable or option has a value we cannot use."""

    def __init__(self, variable: str, message: str) -> None:
        self.variable = variable
        super().__init__(f"{variable}: {message}")


class KeyLoadError(StartupError):
    """Raised when a key cannot be read or used; subclasses say why."""


class KeyFileMissing(KeyLoadError):
    """Raised when the configured key file does not exist or cannot be read."""


class KeyInvalid(KeyLoadError):
    """Raised when the PEM data is not an RSA key of the expected kind."""


class KeyTooSmall(KeyLoadError):
    """Raised when an RSA key is shorter than 2048 bits."""


class PassphraseMissing(KeyLoadError):
    """Raised when the private key is encrypted and no passphrase was configured."""


class PassphraseWrong(KeyLoadError):
    """Raised when the passphrase does not decrypt the private key."""


class PassphraseUnneeded(KeyLoadError):
    """Raised when a passphrase is configured but the private key is not encrypted."""


class Problem(Exception):
    """Raised to answer the current request with an RFC 7807 problem document.

    ``code`` is the stable snake_case identifier clients branch on; ``detail`` is for humans and
    must never contain a secret, a key or a whole token.
    """

    status: int = 400
    code: str = "request_invalid"
    title: str = "Bad request"
    # headers every instance of the class sends, documented in the API description
    documented_headers: ClassVar[dict[str, str]] = {}

    def __init__(
        self,
        detail: str,
        *,
        status: int | None = None,
        code: str | None = None,
        title: str | None = None,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        if status is not None:
            self.status = status
        if code is not None:
            self.code = code
        if title is not None:
            self.title = title
        self.headers = headers or {}
        self.extra = extra or {}

    def to_dict(self) -> dict[str, Any]:
        """The problem document's members."""
        return {
            "type": f"https://jwt-custom-auth.dev/problems/{self.code.replace('_', '-')}",
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
            "code": self.code,
            **self.extra,
        }


# the problems any route of either service may answer; each service adds its own tree


class RequestInvalid(Problem):
    """Raised when the request cannot be read: not the JSON, the field or the value expected."""

    status = 400
    code = "request_invalid"
    title = "Bad request"


class Unauthorized(Problem):
    """Raised when an API key is needed and none, or an unknown one, was sent."""

    status = 401
    code = "unauthorized"
    title = "Unauthorized"
    documented_headers: ClassVar[dict[str, str]] = {"WWW-Authenticate": "Bearer realm=..."}


class Forbidden(Problem):
    """Raised when the API key is known but lacks the permission the route needs."""

    status = 403
    code = "forbidden"
    title = "Forbidden"


class NotFound(Problem):
    """Raised when no route has this path."""

    status = 404
    code = "not_found"
    title = "Not found"


class MethodNotAllowed(Problem):
    """Raised when the route exists but not for this method (``Allow`` lists those it takes)."""

    status = 405
    code = "method_not_allowed"
    title = "Method not allowed"
    documented_headers: ClassVar[dict[str, str]] = {"Allow": "the methods the route takes"}


class PayloadTooLarge(Problem):
    """Raised when the body is larger than the service accepts (``*_MAX_BODY_BYTES``)."""

    status = 413
    code = "payload_too_large"
    title = "Request entity too large"


class UnsupportedMediaType(Problem):
    """Raised when a body is sent with another Content-Type than JSON."""

    status = 415
    code = "unsupported_media_type"
    title = "Unsupported media type"


class NotReady(Problem):
    """Raised by the readiness probe while a dependency is missing."""

    status = 503
    code = "not_ready"
    title = "Not ready"


class InternalError(Problem):
    """Raised for what should never happen; the log has the traceback, the client nothing."""

    status = 500
    code = "internal_error"
    title = "Internal server error"
