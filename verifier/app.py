"""The verifier's HTTP service: thin views over ``verifier.service``.

``POST /v1/verify`` and ``/v1/auth`` are answered by ``verifier.hotpath`` in front of Flask;
every other route is a Flask view here.

gunicorn serves ``create_app()`` built once in the master before workers fork; nothing built here
holds a socket or a thread (the Redis client and the revocation mirror start lazily in each
worker).
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, Flask, Response, current_app, jsonify, request

from shared.apikeys import ApiClient, ApiKeyRegistry, bearer_token
from shared.audit import audit
from shared.errors import Problem
from shared.hotroutes import HotRoutes
from shared.http import PROBLEM_MIMETYPE, install_problem_handlers
from shared.logs import configure_logging
from shared.metrics import install_request_metrics, metrics_response
from shared.reloading import EXTENSION as RELOADER_EXTENSION
from shared.reloading import Reloader
from shared.serving import exit_on_startup_error
from verifier.config import VerifierSettings
from verifier.errors import SessionNotFound
from verifier.hotpath import hot_routes, token_from_body
from verifier.keyset import KeySet, check_published_rule
from verifier.openapi import openapi_document
from verifier.service import VerifierService
from verifier.store import Store
from verifier.verification import VerificationPolicy

views = Blueprint("verifier", __name__)

log = logging.getLogger(__name__)


def create_app(settings: VerifierSettings | None = None) -> Flask:
    """The verifier app; from the environment (a bad start: one line, exit 3) if no settings."""
    if settings is None:
        return exit_on_startup_error("verifier", lambda: _build(VerifierSettings.from_env()))
    return _build(settings)


def _build(settings: VerifierSettings) -> Flask:
    configure_logging(settings.log_level)
    keyset = KeySet.from_settings(settings)
    if settings.jwks_url:
        check_published_rule(settings.jwks_url, settings.claim_rule)
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
    # the PEM keys and the admin keys file are read again when they change, and on SIGHUP,
    # which also refetches the JWKS and ends the grace of withdrawn keys (shared.reloading)
    app.extensions[RELOADER_EXTENSION] = Reloader([keyset, admins])
    install_problem_handlers(app)
    install_request_metrics(app, "verifier")
    app.register_blueprint(views)
    routes = hot_routes(app.extensions["verifier"], max_body_bytes=settings.max_body_bytes)
    app.extensions["hot_routes"] = routes
    hot = HotRoutes(app.wsgi_app, "verifier", routes)
    app.wsgi_app = _RedactSessionIds(hot)  # type: ignore[method-assign]
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


def _token_from_request() -> str:
    return token_from_body(
        request.get_data(cache=True), request.content_type, request.headers.get("Authorization")
    )


def _service() -> VerifierService:
    service: VerifierService = current_app.extensions["verifier"]
    return service


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
    admin = _admin()
    ended = _service().end_user_sessions(user_id)
    audit("user_sessions_ended", client=admin.name, userId=user_id,
          sessionsEnded=ended.get("sessionsEnded"))
    return jsonify(ended)


@views.get("/v1/users/<path:user_id>")
def get_user(user_id: str) -> Response:
    admin = _admin()
    record = _service().user(user_id)
    audit("user_looked_up", client=admin.name, userId=user_id, found=record is not None)
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
