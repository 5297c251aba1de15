"""Clients for the jwt-custom-auth services, and their typed errors.

``VerifierClient`` and ``IssuerClient`` need nothing but the standard library.
``AsyncVerifierClient`` and ``AsyncIssuerClient`` need the ``async`` extra (httpx); they are
importable from here, and httpx is imported only when one of them is first used. The
integrations are separate modules, imported only when used: ``jwt_auth_client.flask``,
``jwt_auth_client.fastapi``, ``jwt_auth_client.wsgi`` and ``jwt_auth_client.asgi``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from jwt_auth_client._version import __version__
from jwt_auth_client.client import VerifierClient
from jwt_auth_client.errors import (
    ERRORS_BY_CODE,
    ISSUER_ERRORS_BY_CODE,
    AdminNotPermitted,
    AlgorithmNotAllowed,
    ApiKeyInvalid,
    ApiKeyMissing,
    AttributesMismatch,
    ClaimInvalid,
    ClaimMissing,
    ClaimReserved,
    ExpiresInInvalid,
    Forbidden,
    InternalError,
    InvalidToken,
    IssuerClaimInvalid,
    IssuerError,
    IssuerUnavailable,
    IssuerUnknown,
    JwtAuthError,
    KeyUnknown,
    LoginRateExceeded,
    MethodNotAllowed,
    NotFound,
    NotReady,
    PayloadTooLarge,
    RateLimited,
    RequestInvalid,
    ServiceUnavailable,
    SessionNotFound,
    SignatureInvalid,
    StoreUnavailable,
    TokenExpired,
    TokenMalformed,
    TokenMissing,
    TokenNotYetValid,
    TokenRevoked,
    TokenTooOld,
    Unauthorized,
    UnsupportedMediaType,
    UserNotFound,
    VerifierError,
    VerifierUnavailable,
)
from jwt_auth_client.issuer import IssuerClient
from jwt_auth_client.models import Identity, IssuedToken, Session

if TYPE_CHECKING:
    # "as": re-exported for type checkers; at run time __getattr__ below imports them
    from jwt_auth_client.aio import AsyncIssuerClient as AsyncIssuerClient
    from jwt_auth_client.aio import AsyncVerifierClient as AsyncVerifierClient

# not the async clients: "from jwt_auth_client import *" must work without httpx
__all__ = [
    "ERRORS_BY_CODE",
    "ISSUER_ERRORS_BY_CODE",
    "AdminNotPermitted",
    "AlgorithmNotAllowed",
    "ApiKeyInvalid",
    "ApiKeyMissing",
    "AttributesMismatch",
    "ClaimInvalid",
    "ClaimMissing",
    "ClaimReserved",
    "ExpiresInInvalid",
    "Forbidden",
    "Identity",
    "InternalError",
    "InvalidToken",
    "IssuedToken",
    "IssuerClaimInvalid",
    "IssuerClient",
    "IssuerError",
    "IssuerUnavailable",
    "IssuerUnknown",
    "JwtAuthError",
    "KeyUnknown",
    "LoginRateExceeded",
    "MethodNotAllowed",
    "NotFound",
    "NotReady",
    "PayloadTooLarge",
    "RateLimited",
    "RequestInvalid",
    "ServiceUnavailable",
    "Session",
    "SessionNotFound",
    "SignatureInvalid",
    "StoreUnavailable",
    "TokenExpired",
    "TokenMalformed",
    "TokenMissing",
    "TokenNotYetValid",
    "TokenRevoked",
    "TokenTooOld",
    "Unauthorized",
    "UnsupportedMediaType",
    "UserNotFound",
    "VerifierClient",
    "VerifierError",
    "VerifierUnavailable",
    "__version__",
]

_ASYNC = ("AsyncIssuerClient", "AsyncVerifierClient")


def __getattr__(name: str) -> Any:
    """The async clients, imported on first use: only they need httpx."""
    if name in _ASYNC:
        from jwt_auth_client import aio

        return getattr(aio, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
