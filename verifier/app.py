"""The verifier service: token checks, sessions and revocation for app backends.

The same shape as the issuer (``issuer/app.py``): ``create_app()`` builds the service's objects
and its ``ServiceApp`` (``shared.web``): a Flask app made by ``shared.web.api.service_flask``
(problem+json, ``/healthz``, ``/readyz``, ``/metrics``, ``/openapi.json``, ``/docs``) with the
``views`` below, and ``POST /v1/verify`` and ``/v1/auth`` answered on the event loop
(``verifier.hotpath``). Every route is declared once, to the app's own ``Api``, which makes the
OpenAPI document.

gunicorn serves ``create_app()`` built once in the master before workers fork; nothing built here
holds a socket or a thread (the Redis client and the revocation mirror start lazily in each
worker).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping
from typing import Any

from flask import Response, current_app, jsonify, request
from marshmallow import Schema, ValidationError
from werkzeug.routing import BaseConverter, PathConverter

from shared.apikeys import ApiClient, ApiKeyRegistry
from shared.audit import audit
from shared.claims import USER_ID_MAX_LENGTH, USER_ID_PATTERN, first_error
from shared.config import check_environment
from shared.errors import (
    Forbidden,
    NotReady,
    RequestInvalid,
    Unauthorized,
    UnsupportedMediaType,
)
from shared.logs import configure_logging
from shared.reloading import EXTENSION as RELOADER_EXTENSION
from shared.reloading import Reloader
from shared.startup import exit_on_startup_error
from shared.statemetrics import READY, StateSampler
from shared.web.api import Api, Views, operation_id, service_flask
from shared.web.app import ServiceApp
from shared.web.hot import parse_json
from verifier.browser import CsrfRefused, check_csrf, original_url
from verifier.callers import require_admin, require_introspecting_client
from verifier.config import PREFIXES, VARIABLES, VerifierSettings
from verifier.errors import (
    FORWARD_AUTH_ONLY,
    TOKEN_ERRORS,
    LoginRateExceeded,
    SessionNotFound,
    StoreUnavailable,
    UserNotFound,
)
from verifier.hotpath import hot_routes, token_from_body
from verifier.issuers import TrustedIssuers
from verifier.keyset import check_published_rule
from verifier.metrics import VerifierGauges, declare_known_series
from verifier.schemas import (
    CurrentSession,
    Introspection,
    IntrospectionRequest,
    RevocationByJti,
    Session,
    TokenRequest,
    User,
    UserLogout,
    UserSessions,
    VerifierReady,
)
from verifier.service import VerifierService
from verifier.store import REDIS_FAILURES, Store

log = logging.getLogger(__name__)

TITLE = "jwt-custom-auth verifier"
DESCRIPTION = (
    "Verifies JSON Web Tokens with public keys only (the algorithms VERIFIER_ALGORITHMS allows, "
    "RS256 by default), and keeps sessions and revocations in Redis. Every error is "
    "application/problem+json with a stable `code`."
)
SECURITY_SCHEMES: dict[str, dict[str, Any]] = {
    "bearerJwt": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
    "session": {"type": "http", "scheme": "bearer",
                "description": "A session id from POST /v1/sessions"},
    "adminKey": {"type": "http", "scheme": "bearer",
                 "description": "An admin key from VERIFIER_ADMIN_KEYS_FILE"},
    "clientBasic": {"type": "http", "scheme": "basic",
                    "description": "name:key of VERIFIER_CLIENT_KEYS_FILE (client_secret_basic)"},
    "clientKey": {"type": "http", "scheme": "bearer",
                  "description": "A key from VERIFIER_CLIENT_KEYS_FILE (or "
                                 "VERIFIER_ADMIN_KEYS_FILE)"},
}
views = Views("verifier")

SESSION_PATH = "/v1/sessions/"
CURRENT_SESSION_PATH = "/v1/sessions/current"
_SESSION_ID = {"session_id": "a session id from POST /v1/sessions (a bearer credential)"}
_USER_ID: dict[str, str | tuple[str, dict[str, Any]]] = {"user_id": (
    "the user id as the verifier reports it (escape characters replaced)",
    # what a token's user id may be (shared.claims): nothing else can be looked up
    {"type": "string", "pattern": USER_ID_PATTERN, "minLength": 1,
     "maxLength": USER_ID_MAX_LENGTH})}
_ADMIN_ERRORS = (Unauthorized, Forbidden, RequestInvalid, StoreUnavailable)
_PROVIDER = {"provider": "the user's issuer (its providerName in "
                         "VERIFIER_TRUSTED_ISSUERS_FILE); needed when several are trusted"}


def create_app(settings: VerifierSettings | None = None) -> ServiceApp:
    """The verifier app; from the environment (a bad start: one line, exit 3) if no settings."""
    if settings is None:
        return exit_on_startup_error("verifier", lambda: _build(VerifierSettings.from_env(),
                                                              environ=os.environ))
    return _build(settings)


def _build(settings: VerifierSettings, *,
           environ: Mapping[str, str] | None = None) -> ServiceApp:
    configure_logging(settings.log_level, settings.log_format)
    if environ is not None:
        # a variable of ours that nothing reads is a typo: named now, or refused (strict)
        check_environment("verifier", environ, VARIABLES, PREFIXES, log.warning)
    issuers = TrustedIssuers.from_settings(settings)
    if settings.jwks_url:
        check_published_rule(settings.jwks_url, settings.claim_rule)
    store = Store(settings)
    prepare_store(store)
    # the app is built in the gunicorn master: no connection may be inherited by the workers
    store.close()
    admins = ApiKeyRegistry.load(settings.admin_keys_file, variable="VERIFIER_ADMIN_KEYS_FILE")
    clients = ApiKeyRegistry.load(settings.client_keys_file,
                                  variable="VERIFIER_CLIENT_KEYS_FILE")
    service = VerifierService(settings, issuers, store)

    # in open mode a verifier without Redis still answers (by signature, and says so): taking
    # every pod out of its Service over a Redis outage would defeat the mode it was given
    required = ("keys",) if settings.redis_failure_mode == "open" else ("keys", "redis")

    def ready(checks: dict[str, bool]) -> bool:
        return all(checks[name] for name in required)

    def readiness() -> tuple[bool, dict[str, Any]]:
        checks = service.readiness()
        # the kids each process trusts: how an operator sees a rotation reach every verifier
        keys = issuers.describe_keys()
        if ready(checks):
            status = "ready" if all(checks.values()) else "degraded"
            return True, {"status": status, "checks": checks, "keys": keys}
        failed = ", ".join(name for name, ok in checks.items() if not ok)
        return False, {"checks": checks, "keys": keys, "reason": f"{failed} unavailable."}

    declare_known_series([error.code for error in (*TOKEN_ERRORS, *FORWARD_AUTH_ONLY)])
    gauges = VerifierGauges(store, issuers)

    def sample_state() -> None:
        checks = service.readiness()
        READY.labels("verifier").set(1 if ready(checks) else 0)
        gauges.sample(redis_answers=checks["redis"])

    sampler = StateSampler("verifier", [sample_state])
    api = Api(TITLE, DESCRIPTION, security_schemes={**SECURITY_SCHEMES, "sessionCookie": {
        "type": "apiKey", "in": "cookie", "name": settings.browser.cookie_name,
        "description": "A session id in the cookie POST /v1/sessions?cookie=true sets "
                       "(VERIFIER_SESSION_COOKIE)"}})
    # ?provider= names one of this verifier's issuers, and must when there are several
    api.refine_query("provider", {"type": "string", "enum": [
        entry.provider for entry in issuers.entries]}, required=len(issuers.entries) > 1)
    flask = service_flask("verifier", api, readiness, ready_answer=VerifierReady,
                          max_body_bytes=settings.max_body_bytes, before_scrape=sampler.sample)
    flask.extensions["verifier"] = service
    flask.extensions["verifier.admins"] = admins
    flask.extensions["verifier.clients"] = clients
    # the PEM keys and the admin keys file are read again when they change, and on SIGHUP,
    # which also refetches the JWKS and ends the grace of withdrawn keys (shared.reloading)
    reloader = Reloader([issuers, admins, clients])
    flask.extensions[RELOADER_EXTENSION] = reloader
    flask.url_map.converters["user_id"] = UserIdConverter
    flask.url_map.converters["user_record_id"] = UserRecordIdConverter
    flask.url_map.converters["session_id"] = SessionIdConverter
    api.add_views(flask, views)
    return ServiceApp(
        "verifier", flask, api, hot_routes(api, service, admins=admins),
        max_body_bytes=settings.max_body_bytes, redact_path=redact_session_id,
        on_start=[reloader.start_in_worker, sampler.start_in_worker],
        on_stop=[sampler.stop, store.close],
    )


def prepare_store(store: Store) -> None:
    """Check Redis as the verifier starts: its key layout, its durability, the mirror.

    A Redis that does not answer yet is no reason to refuse to start (it may come up later;
    requests answer 503 meanwhile and each worker checks the layout on first contact). Keys of
    another layout are: serving would ignore their revocations (LayoutError, one line).
    """
    try:
        store.check_layout()
    except REDIS_FAILURES as exc:
        log.warning("redis at %s unreachable at start (%s); checking again on first use",
                    store.redis_settings.described(), type(exc).__name__)
        return
    for warning in store.durability_warnings():
        log.warning("%s", warning)
    if store.mirror_off_reason is not None:
        log.info("%s", store.mirror_off_reason)


class UserIdConverter(PathConverter):
    """A user id in a path, slashes and line breaks included.

    werkzeug's ``path`` stops at a line break, so ``/v1/users/a%0Ab`` found no route (404);
    the id must reach ``check_user_id``, which refuses it as what it is (400).
    """

    regex = "[^/](?s:.*?)"


class UserRecordIdConverter(UserIdConverter):
    """A user id of ``GET /v1/users/{user_id}``: any, but one that ends in ``/sessions``.

    ``/v1/users/{user_id}/sessions`` (DELETE) is another route: without this, its path also
    matched the user record's GET (for the user ``<id>/sessions``), and Flask's automatic
    OPTIONS and 405 answers advertised a GET the API description does not have there.
    """

    regex = "[^/](?s:.*?)(?<!/sessions)"


class SessionIdConverter(BaseConverter):
    """A session id in a path: any segment but ``current``.

    ``/v1/sessions/current`` (DELETE, the browser's logout) is a route of its own: without
    this, its path also matched the session lookup's GET (for a session id ``current``, which
    no session has), and Flask's automatic OPTIONS and 405 answers advertised a GET the API
    description does not have there.
    """

    regex = "(?!current$)[^/]+"


def redact_session_id(path: str) -> str:
    """A path for the access log: session ids, which are bearer credentials, never reach it."""
    if path.startswith(SESSION_PATH) and len(path) > len(SESSION_PATH) and \
            path != CURRENT_SESSION_PATH:
        return SESSION_PATH + "<redacted>"
    return path


def _token_from_request() -> str:
    return token_from_body(
        request.get_data(cache=True), request.content_type, request.headers.get("Authorization")
    )


def _service() -> VerifierService:
    service: VerifierService = current_app.extensions["verifier"]
    return service


def _admin() -> ApiClient:
    """The admin calling, or 401/403."""
    return require_admin(current_app.extensions["verifier.admins"],
                         request.headers.get("Authorization"))


def _introspecting_client() -> ApiClient:
    """The resource server calling introspection, or 401 (RFC 7662 section 2.1)."""
    return require_introspecting_client(current_app.extensions["verifier.clients"],
                                        current_app.extensions["verifier.admins"],
                                        request.headers.get("Authorization"))


@views.route("/v1/introspect", ["POST"], "Token introspection (RFC 7662)",
             description="A form body token=<jwt> (token_type_hint is accepted and ignored), from "
             "a resource server holding a key of VERIFIER_CLIENT_KEYS_FILE (or "
             "VERIFIER_ADMIN_KEYS_FILE), sent as HTTP Basic base64(name:key) (RFC 6749 "
             "client_secret_basic, what OAuth libraries send) or as Bearer <key>. Any token "
             "that is not good, an empty one included, is {\"active\": false}; a good one has "
             "sub, iss, exp, iat, jti, token_type and its identity. The revocation check and the "
             "failure modes are those of /v1/verify (503 store_unavailable in closed mode).",
             body=IntrospectionRequest, body_media_type="application/x-www-form-urlencoded",
             answer=Introspection,
             errors=(Unauthorized, RequestInvalid, StoreUnavailable, NotReady),
             security=("clientBasic", "clientKey"))
def introspect() -> Response:
    _introspecting_client()
    if request.get_data(cache=True) and request.mimetype != "application/x-www-form-urlencoded":
        raise UnsupportedMediaType(
            "Send the token as a form: Content-Type: application/x-www-form-urlencoded, "
            "token=<jwt>.")
    token = request.form.get("token")
    if token is None:
        raise RequestInvalid("token: send token=<jwt> in the form body.",
                             extra={"field": "token"})
    # an empty token is a token that is not active (RFC 7662 2.2), not a malformed request
    response = jsonify(_service().introspect(token))
    response.headers["Cache-Control"] = "no-store"  # RFC 7662 section 2.2 advice
    return response


@views.route("/v1/sessions", ["POST"],
             "Log in: verify the token, update the user record, open a session",
             description="Over VERIFIER_LOGIN_RATE logins of the user in the last minute: 429 "
             "login_rate_exceeded with Retry-After, and nothing written. At "
             "VERIFIER_MAX_SESSIONS_PER_USER live sessions, the user's oldest are ended first.",
             body=TokenRequest, body_required=False, status=201, answer=Session,
             query={"cookie": ("true: also answer Set-Cookie with the session (for the app's "
                               "backend to pass on to the browser; VERIFIER_SESSION_COOKIE)",
                               {"type": "string", "enum": ["true", "false"]})},
             answer_headers={"Set-Cookie": "with ?cookie=true: the session cookie (HttpOnly, "
                                           "SameSite=Lax, Secure, Max-Age: the session's life)"},
             errors=(*TOKEN_ERRORS, LoginRateExceeded, StoreUnavailable, NotReady),
             security=("bearerJwt", ""),
             links={
                 name: {"operationId": operation_id(method, "/v1/sessions/{session_id}"),
                        "parameters": {"session_id": "$response.body#/sessionId"}}
                 for name, method in (("GetSession", "GET"), ("Logout", "DELETE"))
             })
def login() -> tuple[Response, int]:
    session = _service().login(_token_from_request())
    answer = jsonify(session)
    if request.args.get("cookie") == "true":
        # for the app's backend to pass on to the browser after its own login
        browser = _service().settings.browser
        lifetime = int(session["expiresAt"] - time.time())
        answer.headers["Set-Cookie"] = browser.set_cookie(session["sessionId"], lifetime)
        answer.headers["Cache-Control"] = "no-store"
    return answer, 201


@views.route("/v1/sessions/current", ["GET"],
             "The browser's own session: the one its session cookie names",
             description="For a page's script, which cannot read the HttpOnly cookie: who is "
             "logged in, reached through the proxy at the site's own origin.",
             answer=CurrentSession, errors=(SessionNotFound, StoreUnavailable),
             security=("sessionCookie", ""))
def current_session() -> Response:
    browser = _service().settings.browser
    session_id = browser.session_id(request.headers.get("Cookie"))
    session = _service().session(session_id) if session_id is not None else None
    if session is None:
        raise SessionNotFound("No live session in the session cookie (none sent, or it ended).")
    # never the id: the cookie is HttpOnly so that no script of the page holds it
    session.pop("sessionId")
    answer = jsonify(session)
    answer.headers["Cache-Control"] = "no-store"
    return answer


@views.route("/v1/sessions/current", ["DELETE"],
             "Log the browser out: end the session of its cookie, and clear the cookie",
             description="Idempotent: 204 and a clearing Set-Cookie with or without a live "
             "session. Carrying only the cookie, it must come from the site itself (Origin or "
             "Sec-Fetch-Site: same-origin), else 403 csrf_refused.",
             status=204, errors=(CsrfRefused, StoreUnavailable), security=("sessionCookie", ""),
             answer_headers={"Set-Cookie": "the session cookie, cleared (Max-Age=0)"})
def logout_current() -> tuple[Response, int]:
    browser = _service().settings.browser
    session_id = browser.session_id(request.headers.get("Cookie"))
    if session_id is not None:
        check_csrf(_flask_header, request.method, _own_url())
        _service().logout(session_id)
    answer = Response(status=204)
    answer.headers["Set-Cookie"] = browser.clear_cookie()
    answer.headers["Cache-Control"] = "no-store"
    return answer, 204


def _flask_header(name: str) -> str | None:
    return request.headers.get(name)


def _own_url() -> str | None:
    """The URL this request was sent to as the browser saw it: the proxy's headers when it
    sent them, else this request's own scheme and Host."""
    return original_url(_flask_header) or request.url


@views.route("/v1/sessions/<session_id:session_id>", ["GET"], "Look up a session", answer=Session,
             errors=(SessionNotFound, StoreUnavailable), path_parameters=_SESSION_ID)
def get_session(session_id: str) -> Response:
    session = _service().session(session_id)
    if session is None:
        raise SessionNotFound("No live session has this id (it ended, expired or never was).")
    return jsonify(session)


@views.route("/v1/sessions/<session_id:session_id>", ["DELETE"], "Log out (idempotent)",
             status=204, errors=(StoreUnavailable,), path_parameters=_SESSION_ID)
def logout(session_id: str) -> tuple[str, int]:
    # idempotent: logging out of a session that already ended is a success
    _service().logout(session_id)
    return "", 204


@views.route("/v1/revocations", ["POST"],
             "Revoke a token: by holding it, or, with an admin key, by its jti",
             description="{\"token\": \"<jwt>\"} (or Authorization: Bearer <jwt>): the token "
             "must verify (holding it is the right to revoke it). An expired or too old token is "
             "already refused for good: 204 without a write. An already revoked token is "
             "written and confirmed again (a retry after a 503). With an admin key in "
             "Authorization, {\"jti\", \"userId\", \"expiresAt\", \"provider\"} revokes a "
             "token without holding it (what the issuer's admin-token audit line names); "
             "expiresAt null keeps the revocation for good; the event is audited.",
             # either shape, each with its own required members
             body={"anyOf": [TokenRequest, RevocationByJti]}, body_required=False, status=204,
             errors=(*TOKEN_ERRORS, Unauthorized, Forbidden, StoreUnavailable, NotReady),
             security=("bearerJwt", "adminKey", ""))
def revoke() -> tuple[str, int]:
    body = request.get_data(cache=True)
    document = parse_json(body, request.content_type) if body else None
    if isinstance(document, dict) and "jti" in document:
        admin = _admin()
        values = _load(RevocationByJti(), document)
        written = _service().revoke_jti(values["jti"], values["userId"], values["expiresAt"],
                                        values.get("provider"))
        audit("token_revoked_by_jti", client=admin.name, jti=values["jti"],
              userId=values["userId"], provider=values.get("provider"),
              expiresAt=values["expiresAt"], written=written)
        return "", 204
    _service().revoke(_token_from_request())
    return "", 204


def _load(schema: Schema, document: Any) -> dict[str, Any]:
    try:
        loaded: dict[str, Any] = schema.load(document)
    except ValidationError as exc:
        field, message = first_error(exc.messages)
        raise RequestInvalid(f"{field}: {message}", extra={"field": field}) from None
    return loaded


@views.route("/v1/users/<user_id:user_id>/sessions", ["DELETE"],
             "End every session of a user and refuse every token issued so far",
             answer=UserLogout, errors=_ADMIN_ERRORS, security=("adminKey",),
             path_parameters=_USER_ID, query=_PROVIDER)
def end_user_sessions(user_id: str) -> Response:
    admin = _admin()
    ended = _service().end_user_sessions(user_id, request.args.get("provider"))
    audit("user_sessions_ended", client=admin.name, userId=user_id,
          provider=ended["provider"], sessionsEnded=ended.get("sessionsEnded"))
    return jsonify(ended)


@views.route("/v1/users/<user_id:user_id>/sessions", ["GET"],
             "A user's live sessions, oldest first (each named by the hash of its id)",
             answer=UserSessions, errors=_ADMIN_ERRORS, security=("adminKey",),
             path_parameters=_USER_ID, query=_PROVIDER)
def list_user_sessions(user_id: str) -> Response:
    admin = _admin()
    listed = _service().user_sessions(user_id, request.args.get("provider"))
    audit("user_sessions_listed", client=admin.name, userId=user_id,
          provider=listed["provider"], sessions=len(listed["sessions"]))
    return jsonify(listed)


@views.route("/v1/users/<user_record_id:user_id>", ["GET"],
             "The user record as of the last login",
             answer=User, errors=(*_ADMIN_ERRORS, UserNotFound), security=("adminKey",),
             path_parameters=_USER_ID, query=_PROVIDER)
def get_user(user_id: str) -> Response:
    admin = _admin()
    record = _service().user(user_id, request.args.get("provider"))
    audit("user_looked_up", client=admin.name, userId=user_id, found=record is not None)
    if record is None:
        raise UserNotFound("No user with this id has logged in.")
    return jsonify(record)
