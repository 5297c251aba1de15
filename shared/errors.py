"""The product's exception tree.

Two families: ``StartupError`` stops a service or the CLI before it serves anything (one line,
non-zero exit), and ``Problem`` answers one HTTP request with an RFC 7807 document.
"""

from __future__ import annotations

from typing import Any


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
