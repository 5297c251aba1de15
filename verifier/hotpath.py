"""The two routes every app backend calls on every request, answered without Flask.

``POST /v1/verify`` and ``/v1/auth`` (forward-auth) are nearly all of the verifier's traffic;
``shared.hotroutes`` serves them in front of Flask. The body rules (``token_from_body``) are
the ones the Flask views for login and revocation use too.
"""

from __future__ import annotations

import urllib.parse
from typing import Any

from marshmallow import EXCLUDE, Schema, ValidationError, validate

from shared.apikeys import bearer_token
from shared.claims import StrictString, first_error
from shared.errors import Problem
from shared.hotroutes import (
    Answer,
    Environ,
    Route,
    json_answer,
    parse_json,
    read_body,
)
from shared.metrics import HTTP_METHODS
from verifier.errors import SessionUnknown, TokenMissing
from verifier.service import Verdict, VerifierService

REVOCATION_HEADER = "X-Revocation-Checked"
"""``false`` when the answer rests on the signature alone (open mode, Redis unreachable)."""

FORWARD_AUTH_METHODS = HTTP_METHODS
"""A proxy asks with the method its client used; anything else is no request of a proxy's."""


class TokenRequest(Schema):
    """The body of verify, login and revoke: ``{"token": "<jwt>"}``."""

    class Meta:
        unknown = EXCLUDE

    token = StrictString(required=True, validate=validate.Length(min=1))


_TOKEN_REQUEST = TokenRequest()  # built once: a schema instance costs more than the load


def token_from_body(body: bytes, content_type: str | None, authorization: str | None) -> str:
    """The token from ``{"token": ...}``, or from ``Authorization: Bearer`` without a body."""
    if not body:
        bearer = bearer_token(authorization)
        if bearer is None:
            raise Problem('Send {"token": "<jwt>"} as JSON, or Authorization: Bearer <jwt>.')
        return bearer
    document = parse_json(body, content_type)
    if not isinstance(document, dict):
        raise Problem('The body must be a JSON object: {"token": "<jwt>"}.')
    # what the schema accepts, checked directly; the schema runs to word the refusal
    token = document.get("token")
    if isinstance(token, str) and token:
        return token
    try:
        loaded: dict[str, Any] = _TOKEN_REQUEST.load(document)
    except ValidationError as exc:
        field, message = first_error(exc.messages)
        raise Problem(f"{field}: {message}") from None
    token = loaded["token"]
    assert isinstance(token, str)
    return token


def verified_body(verdict: Verdict) -> dict[str, Any]:
    """What ``POST /v1/verify`` answers for a good token."""
    token = verdict.token
    return {
        "userId": token.user_id,
        "isAdmin": token.is_admin,
        "provider": token.provider,
        "claims": token.claims,
        "issuedAt": token.issued_at,
        "expiresAt": token.expires_at,
        "revocationChecked": verdict.revocation_checked,
    }


def header_safe(value: str) -> tuple[str, bool]:
    """A header value for any user id: as is when printable ASCII, else percent-encoded UTF-8."""
    if value.isascii() and value.isprintable():
        return value, False
    return urllib.parse.quote(value, safe=""), True


def hot_routes(service: VerifierService, *, max_body_bytes: int) -> list[Route]:
    """The verifier's routes served in front of Flask."""

    def verify(environ: Environ, method: str) -> Answer:
        token = token_from_body(
            read_body(environ, max_body_bytes), environ.get("CONTENT_TYPE"),
            environ.get("HTTP_AUTHORIZATION"),
        )
        verdict = service.verify(token)
        checked = "true" if verdict.revocation_checked else "false"
        return json_answer(200, verified_body(verdict), [(REVOCATION_HEADER, checked)])

    def forward_auth(environ: Environ, method: str) -> Answer:
        """nginx auth_request, Traefik ForwardAuth, Envoy ext_authz (which appends the path)."""
        credential = bearer_token(environ.get("HTTP_AUTHORIZATION"))
        if credential is None:
            raise TokenMissing("Send Authorization: Bearer <jwt or session id>.")
        checked = True
        if "." in credential:
            # a JWT always has dots; a session id never does
            verdict = service.verify(credential)
            token = verdict.token
            user_id, is_admin, provider = token.user_id, token.is_admin, token.provider
            checked = verdict.revocation_checked
        else:
            session = service.session(credential)
            if session is None:
                raise SessionUnknown("No live session has this id.")
            user_id, is_admin, provider = (
                session["userId"], session["isAdmin"], session["provider"],
            )
        header_id, encoded = header_safe(user_id)
        headers = [("X-Auth-User-Id", header_id)]
        if encoded:
            headers.append(("X-Auth-User-Id-Encoding", "percent"))
        headers += [
            ("X-Auth-Is-Admin", "true" if is_admin else "false"),
            ("X-Auth-Provider", provider),
            (REVOCATION_HEADER, "true" if checked else "false"),
        ]
        return json_answer(200, {"userId": user_id, "isAdmin": is_admin, "provider": provider,
                                 "revocationChecked": checked}, headers)

    return [
        Route("/v1/verify", "/v1/verify", frozenset({"POST"}), verify),
        Route("/v1/auth", "/v1/auth", FORWARD_AUTH_METHODS, forward_auth),
        # Envoy ext_authz appends the original path
        Route("/v1/auth", "/v1/auth/<path:forwarded_path>", FORWARD_AUTH_METHODS, forward_auth,
              prefix=True),
    ]
