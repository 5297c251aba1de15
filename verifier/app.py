"""The verifier's HTTP service: thin views over ``verifier.service``.

gunicorn serves ``create_app()`` built once in the master before workers fork; nothing built here
holds a socket or a thread (the Redis client is made lazily in each worker).
"""

from __future__ import annotations

import logging
import urllib.parse
from typing import Any

from flask import Blueprint, Flask, Response, current_app, jsonify, request
from marshmallow import EXCLUDE, Schema, ValidationError, validate

from shared.apikeys import ApiClient, ApiKeyRegistry, bearer_token
from shared.claims import StrictString, first_error
from shared.errors import Problem
from shared.http import PROBLEM_MIMETYPE, install_problem_handlers, json_body
from shared.logs import configure_logging
from shared.metrics import install_request_metrics, metrics_response
from shared.serving import exit_on_startup_error
from verifier.config import VerifierSettings
from verifier.errors import SessionNotFound, SessionUnknown, TokenMissing
from verifier.keyset import KeySet
from verifier.openapi import openapi_document
from verifier.service import Verdict, VerifierService
from verifier.store import Store
from verifier.verification import VerificationPolicy

REVOCATION_HEADER = "X-Revocation-Checked"
"""``false`` when the answer rests on the signature alone (open mode, Redis unreachable)."""

views = Blueprint("verifier", __name__)


class TokenRequest(Schema):
    """The body of verify, login and revoke: ``{"token": "<jwt>"}``."""

    class Meta:
        unknown = EXCLUDE

    token = StrictString(required=True, validate=validate.Length(min=1))


log = logging.getLogger(__name__)

_TOKEN_REQUEST = TokenRequest()  # built once: a schema instance costs more than the load


def create_app(settings: VerifierSettings | None = None) -> Flask:
    """The verifier app; from the environment (a bad start: one line, exit 3) if no settings."""
    if settings is None:
        return exit_on_startup_error("verifier", lambda: _build(VerifierSettings.from_env()))
    return _build(settings)


def _build(settings: VerifierSettings) -> Flask:
    configure_logging(settings.log_level)
    keyset = KeySet.from_settings(settings)
    policy = VerificationPolicy.from_settings(settings)
    store = Store(settings)
    warning = store.durability_warning()
    if warning:
        log.warning("%s", warning)
    # the app is built in the gunicorn master: no connection may be inherited by the workers
    store.close()
    admins = ApiKeyRegistry.load(settings.admin_keys_file, variable="VERIFIER_ADMIN_KEYS_FILE")
    app = Flask("verifier")
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.json.sort_keys = False  # type: ignore[attr-defined]  # DefaultJSONProvider has it
    app.extensions["verifier"] = VerifierService(settings, keyset, policy, store)
    app.extensions["verifier.admins"] = admins
    install_problem_handlers(app)
    install_request_metrics(app, "verifier")
    app.register_blueprint(views)
    app.wsgi_app = _RedactSessionIds(app.wsgi_app)  # type: ignore[method-assign]
    return app


class _RedactSessionIds:
    """Keeps session ids, which are bearer credentials, out of gunicorn's access log.

    gunicorn writes the access line after the response, from this same WSGI environ; the path
    is rewritten only once the app has answered.
    """

    def __init__(self, wsgi_app: Any) -> None:
        self.wsgi_app = wsgi_app

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        try:
            return self.wsgi_app(environ, start_response)
        finally:
            path = environ.get("PATH_INFO", "")
            if path.startswith(SESSION_PATH) and len(path) > len(SESSION_PATH):
                environ["PATH_INFO"] = SESSION_PATH + "<redacted>"
                environ["RAW_URI"] = SESSION_PATH + "<redacted>"


SESSION_PATH = "/v1/sessions/"


def _service() -> VerifierService:
    service: VerifierService = current_app.extensions["verifier"]
    return service


def _token_from_request() -> str:
    """The token from ``{"token": ...}``, or from ``Authorization: Bearer`` without a body."""
    if not request.get_data(cache=True):
        bearer = bearer_token(request.headers.get("Authorization"))
        if bearer is None:
            raise Problem('Send {"token": "<jwt>"} as JSON, or Authorization: Bearer <jwt>.')
        return bearer
    body = json_body(request)
    if not isinstance(body, dict):
        raise Problem('The body must be a JSON object: {"token": "<jwt>"}.')
    try:
        loaded: dict[str, Any] = _TOKEN_REQUEST.load(body)
    except ValidationError as exc:
        field, message = first_error(exc.messages)
        raise Problem(f"{field}: {message}") from None
    token: str = loaded["token"]
    return token


def _verified(verdict: Verdict) -> dict[str, Any]:
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


def _admin() -> ApiClient:
    """The admin calling, or 401/403."""
    registry: ApiKeyRegistry = current_app.extensions["verifier.admins"]
    client = registry.authenticate(bearer_token(request.headers.get("Authorization")))
    if client is None:
        raise Problem(
            "Send an admin API key from VERIFIER_ADMIN_KEYS_FILE as Authorization: Bearer <key>.",
            status=401,
            code="unauthorized",
            title="Unauthorized",
            headers={"WWW-Authenticate": 'Bearer realm="jwt-auth-verifier-admin"'},
        )
    if not client.admin:
        raise Problem(
            f"The key of {client.name!r} is not an admin key.",
            status=403,
            code="forbidden",
            title="Forbidden",
        )
    return client


def _header_safe(value: str) -> tuple[str, bool]:
    """A header value for any user id: as is when printable ASCII, else percent-encoded UTF-8."""
    if value.isascii() and value.isprintable():
        return value, False
    return urllib.parse.quote(value, safe=""), True


@views.post("/v1/verify")
def verify() -> Response:
    verdict = _service().verify(_token_from_request())
    response = jsonify(_verified(verdict))
    response.headers[REVOCATION_HEADER] = "true" if verdict.revocation_checked else "false"
    return response


_ANY_METHOD = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


@views.route("/v1/auth", methods=_ANY_METHOD)
@views.route("/v1/auth/<path:forwarded_path>", methods=_ANY_METHOD)
def forward_auth(forwarded_path: str = "") -> Response:
    """nginx auth_request, Traefik ForwardAuth, Envoy ext_authz (which appends the path)."""
    del forwarded_path
    credential = bearer_token(request.headers.get("Authorization"))
    if credential is None:
        raise TokenMissing("Send Authorization: Bearer <jwt or session id>.")
    service = _service()
    checked = True
    if "." in credential:
        # a JWT always has dots; a session id never does
        verdict = service.verify(credential)
        user_id, is_admin, provider = (
            verdict.token.user_id, verdict.token.is_admin, verdict.token.provider,
        )
        checked = verdict.revocation_checked
    else:
        session = service.session(credential)
        if session is None:
            raise SessionUnknown("No live session has this id.")
        user_id, is_admin, provider = session["userId"], session["isAdmin"], session["provider"]
    header_id, encoded = _header_safe(user_id)
    response = jsonify({"userId": user_id, "isAdmin": is_admin, "provider": provider,
                        "revocationChecked": checked})
    response.headers["X-Auth-User-Id"] = header_id
    if encoded:
        response.headers["X-Auth-User-Id-Encoding"] = "percent"
    response.headers["X-Auth-Is-Admin"] = "true" if is_admin else "false"
    response.headers["X-Auth-Provider"] = provider
    response.headers[REVOCATION_HEADER] = "true" if checked else "false"
    return response


@views.post("/v1/sessions")
def login() -> tuple[Response, int]:
    session = _service().login(_token_from_request())
    return jsonify(session), 201


@views.get("/v1/sessions/<session_id>")
def get_session(session_id: str) -> Response:
    session = _service().session(session_id)
    if session is None:
        raise SessionNotFound("No live session has this id (it ended, expired or never was).")
    return jsonify(session)


@views.delete("/v1/sessions/<session_id>")
def logout(session_id: str) -> tuple[str, int]:
    # idempotent: logging out of a session that already ended is a success
    _service().logout(session_id)
    return "", 204


@views.post("/v1/revocations")
def revoke() -> tuple[str, int]:
    _service().revoke(_token_from_request())
    return "", 204


@views.delete("/v1/users/<path:user_id>/sessions")
def end_user_sessions(user_id: str) -> Response:
    _admin()
    return jsonify(_service().end_user_sessions(user_id))


@views.get("/v1/users/<path:user_id>")
def get_user(user_id: str) -> Response:
    _admin()
    record = _service().user(user_id)
    if record is None:
        raise Problem(
            "No user with this id has logged in.", status=404, code="user_not_found",
            title="User not found",
        )
    return jsonify(record)


@views.get("/healthz")
def healthz() -> Response:
    return jsonify({"status": "ok"})


@views.get("/readyz")
def readyz() -> Response:
    checks = _service().readiness()
    if all(checks.values()):
        return jsonify({"status": "ready", "checks": checks})
    problem = Problem(
        "Not ready: " + ", ".join(name for name, ok in checks.items() if not ok) + " unavailable.",
        status=503,
        code="not_ready",
        title="Not ready",
        extra={"checks": checks},
    )
    response = jsonify(problem.to_dict())
    response.status_code = 503
    response.mimetype = PROBLEM_MIMETYPE
    return response


@views.get("/metrics")
def metrics() -> Response:
    return metrics_response()


@views.get("/openapi.json")
def openapi() -> Response:
    return jsonify(openapi_document())
