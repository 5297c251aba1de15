"""The two routes every app backend calls on every request, answered without Flask.

``POST /v1/verify`` and ``/v1/auth`` (forward-auth) are nearly all of the verifier's traffic,
and Flask's routing, request context and response objects cost more than the answer itself
for a cached token. This WSGI middleware answers them directly and hands every other request
to Flask. The rules are the same ones the Flask views use (``token_from_body``, the service, the
problem documents), so the two paths cannot drift: only the plumbing differs.
"""

from __future__ import annotations

import json
import logging
import time
import urllib.parse
from collections.abc import Callable, Iterable
from typing import Any

from marshmallow import EXCLUDE, Schema, ValidationError, validate

from shared.apikeys import bearer_token
from shared.claims import StrictString, first_error
from shared.errors import Problem
from shared.http import PROBLEM_MIMETYPE
from shared.metrics import HTTP_LATENCY, HTTP_REQUESTS
from shared.strictjson import StrictJSONError, loads_strict
from verifier.errors import SessionUnknown, TokenMissing
from verifier.service import Verdict, VerifierService

log = logging.getLogger(__name__)

REVOCATION_HEADER = "X-Revocation-Checked"
"""``false`` when the answer rests on the signature alone (open mode, Redis unreachable)."""

VERIFY_PATH = "/v1/verify"
AUTH_PATH = "/v1/auth"
AUTH_ROUTE_WITH_PATH = "/v1/auth/<path:forwarded_path>"  # Envoy ext_authz appends the path

StartResponse = Callable[..., Any]


class TokenRequest(Schema):
    """The body of verify, login and revoke: ``{"token": "<jwt>"}``."""

    class Meta:
        unknown = EXCLUDE

    token = StrictString(required=True, validate=validate.Length(min=1))


_TOKEN_REQUEST = TokenRequest()  # built once: a schema instance costs more than the load


def is_json(content_type: str | None) -> bool:
    """Whether a Content-Type names JSON (``application/json`` or ``application/*+json``)."""
    mimetype = (content_type or "").split(";", 1)[0].strip().lower()
    return mimetype == "application/json" or (
        mimetype.startswith("application/") and mimetype.endswith("+json")
    )


def token_from_body(body: bytes, content_type: str | None, authorization: str | None) -> str:
    """The token from ``{"token": ...}``, or from ``Authorization: Bearer`` without a body."""
    if not body:
        bearer = bearer_token(authorization)
        if bearer is None:
            raise Problem('Send {"token": "<jwt>"} as JSON, or Authorization: Bearer <jwt>.')
        return bearer
    if not is_json(content_type):
        raise Problem(
            "Send the body as JSON with Content-Type: application/json.",
            status=415,
            code="unsupported_media_type",
            title="Unsupported media type",
        )
    try:
        document = loads_strict(body)
    except StrictJSONError as exc:
        raise Problem(f"The body is not acceptable JSON: {exc}.", code="request_invalid") from None
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


class _Answer:
    __slots__ = ("body", "headers", "status")

    def __init__(self, status: int, body: bytes, headers: list[tuple[str, str]]) -> None:
        self.status = status
        self.body = body
        self.headers = headers


_REASONS = {200: "OK", 400: "BAD REQUEST", 401: "UNAUTHORIZED", 405: "METHOD NOT ALLOWED",
            413: "REQUEST ENTITY TOO LARGE", 415: "UNSUPPORTED MEDIA TYPE",
            500: "INTERNAL SERVER ERROR", 503: "SERVICE UNAVAILABLE"}

_ENCODE = json.JSONEncoder(separators=(",", ":")).encode


# the bytes Flask's views answer: jsonify ends a document with a newline, problems do not
def _json(status: int, document: dict[str, Any], headers: list[tuple[str, str]]) -> _Answer:
    body = (_ENCODE(document) + "\n").encode()
    return _Answer(status, body, [("Content-Type", "application/json"), *headers])


def _problem(problem: Problem) -> _Answer:
    body = _ENCODE(problem.to_dict()).encode()
    return _Answer(
        problem.status, body, [("Content-Type", PROBLEM_MIMETYPE), *problem.headers.items()]
    )


class HotRoutes:
    """WSGI middleware: the verify and forward-auth routes here, everything else to Flask."""

    def __init__(self, app: Callable[..., Iterable[bytes]], service: VerifierService,
                 *, max_body_bytes: int) -> None:
        self.app = app
        self.service = service
        self.max_body_bytes = max_body_bytes
        # label children resolved once per route and status: labels() takes a lock and hashes
        self._counters: dict[tuple[str, str, int], Any] = {}
        self._timers: dict[str, Any] = {}

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == VERIFY_PATH:
            route, handler = VERIFY_PATH, self._verify
        elif path == AUTH_PATH:
            route, handler = AUTH_PATH, self._forward_auth
        elif path.startswith(AUTH_PATH + "/"):
            route, handler = AUTH_ROUTE_WITH_PATH, self._forward_auth
        else:
            return self.app(environ, start_response)
        started = time.perf_counter()
        method = environ.get("REQUEST_METHOD", "GET")
        try:
            answer = handler(environ, method)
        except Problem as problem:
            answer = _problem(problem)
        except Exception:
            log.exception("unhandled error on %s", route)
            answer = _problem(Problem(
                "The server could not complete the request.", status=500,
                code="internal_error", title="Internal server error",
            ))
        body = b"" if method == "HEAD" else answer.body
        answer.headers.append(("Content-Length", str(len(answer.body))))
        start_response(f"{answer.status} {_REASONS.get(answer.status, '')}", answer.headers)
        self._count(method, route, answer.status, time.perf_counter() - started)
        return [body]

    def _count(self, method: str, route: str, status: int, seconds: float) -> None:
        key = (method, route, status)
        counter = self._counters.get(key)
        if counter is None:
            counter = self._counters.setdefault(
                key, HTTP_REQUESTS.labels("verifier", method, route, str(status))
            )
        counter.inc()
        timer = self._timers.get(route)
        if timer is None:
            timer = self._timers.setdefault(route, HTTP_LATENCY.labels("verifier", route))
        timer.observe(seconds)

    def _body(self, environ: dict[str, Any]) -> bytes:
        """The request body, refused with 413 past the limit (announced or sent)."""
        limit = self.max_body_bytes
        length = environ.get("CONTENT_LENGTH")
        too_large = Problem(
            f"The request body is larger than this service accepts ({limit} bytes).",
            status=413, code="payload_too_large", title="Request Entity Too Large",
        )
        if length:
            try:
                announced = int(length)
            except ValueError:
                raise Problem("Content-Length is not a number.") from None
            if announced > limit:
                raise too_large
        stream = environ.get("wsgi.input")
        if stream is None:
            return b""
        body: bytes = stream.read(limit + 1)
        if len(body) > limit:
            raise too_large
        return body

    def _verify(self, environ: dict[str, Any], method: str) -> _Answer:
        if method != "POST":
            return _problem(Problem(
                "Use POST.", status=405, code="method_not_allowed", title="Method Not Allowed",
                headers={"Allow": "POST"},
            ))
        token = token_from_body(
            self._body(environ), environ.get("CONTENT_TYPE"), environ.get("HTTP_AUTHORIZATION")
        )
        verdict = self.service.verify(token)
        checked = "true" if verdict.revocation_checked else "false"
        return _json(200, verified_body(verdict), [(REVOCATION_HEADER, checked)])

    def _forward_auth(self, environ: dict[str, Any], method: str) -> _Answer:
        """nginx auth_request, Traefik ForwardAuth, Envoy ext_authz: any method, any suffix."""
        del method  # a proxy asks with whatever method the client used
        credential = bearer_token(environ.get("HTTP_AUTHORIZATION"))
        if credential is None:
            raise TokenMissing("Send Authorization: Bearer <jwt or session id>.")
        checked = True
        if "." in credential:
            # a JWT always has dots; a session id never does
            verdict = self.service.verify(credential)
            token = verdict.token
            user_id, is_admin, provider = token.user_id, token.is_admin, token.provider
            checked = verdict.revocation_checked
        else:
            session = self.service.session(credential)
            if session is None:
                raise SessionUnknown("No live session has this id.")
            user_id, is_admin, provider = session["userId"], session["isAdmin"], session["provider"]
        header_id, encoded = header_safe(user_id)
        headers = [("X-Auth-User-Id", header_id)]
        if encoded:
            headers.append(("X-Auth-User-Id-Encoding", "percent"))
        headers += [
            ("X-Auth-Is-Admin", "true" if is_admin else "false"),
            ("X-Auth-Provider", provider),
            (REVOCATION_HEADER, "true" if checked else "false"),
        ]
        return _json(200, {"userId": user_id, "isAdmin": is_admin, "provider": provider,
                           "revocationChecked": checked}, headers)
