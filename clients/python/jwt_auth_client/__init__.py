"""Client for the jwt-custom-auth verifier: ``VerifierClient`` and its typed errors.

Standard library only. The integrations are separate modules, imported only when used:
``jwt_auth_client.flask`` (Flask), ``jwt_auth_client.wsgi`` and ``jwt_auth_client.asgi``
(Starlette, FastAPI, any ASGI application).
"""

from __future__ import annotations

from jwt_auth_client.client import Identity, Session, VerifierClient
from jwt_auth_client.errors import (
    ERRORS_BY_CODE,
    AlgorithmNotAllowed,
    AttributesMismatch,
    ClaimInvalid,
    ClaimMissing,
    Forbidden,
    InternalError,
    InvalidToken,
    KeyUnknown,
    LoginRateExceeded,
    MethodNotAllowed,
    NotFound,
    NotReady,
    PayloadTooLarge,
    RequestInvalid,
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

__all__ = [
    "ERRORS_BY_CODE",
    "AlgorithmNotAllowed",
    "AttributesMismatch",
    "ClaimInvalid",
    "ClaimMissing",
    "Forbidden",
    "Identity",
    "InternalError",
    "InvalidToken",
    "KeyUnknown",
    "LoginRateExceeded",
    "MethodNotAllowed",
    "NotFound",
    "NotReady",
    "PayloadTooLarge",
    "RequestInvalid",
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
]
