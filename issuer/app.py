"""The issuer service: signs payloads for authenticated clients over HTTP.

``create_app()`` with no settings reads the environment and stops with one line when it cannot
start (gunicorn, the CLI); tests pass explicit settings and see the exception instead.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from flask import Flask, Response, current_app, jsonify, request, url_for

from issuer.config import CLIENTS_FILE_VARIABLE, IssuerSettings
from issuer.hotpath import hot_routes
from issuer.issuance import TokenIssuer
from issuer.keyring import SigningKeys
from issuer.openapi import openapi_document
from issuer.signing import check_signing_key
from shared.apikeys import ApiKeyRegistry
from shared.errors import Problem
from shared.hotroutes import HotRoutes
from shared.http import install_problem_handlers
from shared.logs import configure_logging
from shared.metrics import install_request_metrics, metrics_response
from shared.reloading import EXTENSION as RELOADER_EXTENSION
from shared.reloading import Reloader
from shared.serving import exit_on_startup_error

log = logging.getLogger(__name__)


def create_app(settings: IssuerSettings | None = None) -> Flask:
    """The issuer's WSGI app, from explicit settings or from the environment."""
    if settings is None:
        return exit_on_startup_error("issuer", lambda: _build(IssuerSettings.from_env()))
    return _build(settings)


def _issuer() -> TokenIssuer:
    issuer: TokenIssuer = current_app.extensions["jwt_auth_issuer"]
    return issuer


def _build(settings: IssuerSettings) -> Flask:
    configure_logging(settings.log_level)
    keys = SigningKeys(settings)
    clients = ApiKeyRegistry.load(settings.clients_file, variable=CLIENTS_FILE_VARIABLE)
    if not clients.clients:
        log.warning("no clients configured (%s): every token request will get 401",
                    CLIENTS_FILE_VARIABLE)
    active = keys.ring.active
    log.info("issuer ready: kid=%s bits=%d published=%d clients=%d", active.kid, active.bits,
             len(keys.ring.published), len(clients.clients))

    app = Flask(__name__)
    # werkzeug answers 413 before the body is read past this many bytes
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.json.sort_keys = False  # type: ignore[attr-defined]  # DefaultJSONProvider has it
    app.extensions["jwt_auth_issuer"] = TokenIssuer(settings, keys, clients)
    app.extensions[RELOADER_EXTENSION] = Reloader([keys, clients])
    install_problem_handlers(app)
    install_request_metrics(app, "issuer")
    # POST /v1/tokens is answered in front of Flask (issuer.hotpath); the rest are views here
    routes = hot_routes(app.extensions["jwt_auth_issuer"], max_body_bytes=settings.max_body_bytes)
    app.wsgi_app = HotRoutes(app.wsgi_app, "issuer", routes)  # type: ignore[method-assign]
    app.extensions["hot_routes"] = routes

    @app.get("/.well-known/jwks.json")
    def jwks() -> Response:
        response = jsonify(_issuer().keys.ring.jwks(time.time()))
        # shorter than a next key's wait before promotion: every verifier and cache in between
        # has seen a key before the first token it signs (docs/deploy.md, key rotation)
        response.headers["Cache-Control"] = f"public, max-age={settings.jwks_max_age}"
        return response

    @app.get("/.well-known/jwt-auth.json")
    def configuration() -> Response:
        # what a verifier trusting this issuer must agree with; it compares at start
        response = jsonify({
            "issuer": settings.issuer,
            "audience": settings.audience,
            "jwks_uri": url_for("jwks", _external=True),
            "algorithms": ["RS256"],
            "claims": settings.claim_rule.describe(),
        })
        response.headers["Cache-Control"] = "public, max-age=300"
        return response

    @app.get("/v1/public-key")
    def public_key() -> Response:
        # the signing key by default: the seed's verifier configuration takes one PEM key;
        # ?kid= gives a next key to a PEM-configured verifier before it signs (rotation)
        ring = _issuer().keys.ring
        kid = request.args.get("kid")
        if kid is None:
            return Response(ring.active.public_pem(), mimetype="application/x-pem-file")
        pem = ring.public_pem(kid, time.time())
        if pem is None:
            raise Problem(f"No published key has kid {kid[:64]!r}.", status=404,
                          code="key_not_found", title="Not found")
        return Response(pem, mimetype="application/x-pem-file")

    @app.get("/healthz")
    def healthz() -> Response:
        return jsonify({"status": "ok"})

    @app.get("/readyz")
    def readyz() -> tuple[Response, int]:
        ring = _issuer().keys.ring
        keys = ring.describe(time.time())
        if check_signing_key(ring.active):
            return jsonify({"status": "ready", "kid": ring.active.kid, "keys": keys}), 200
        body: dict[str, Any] = {"status": "not_ready", "reason": "the signing key does not sign",
                                "keys": keys}
        return jsonify(body), 503

    @app.get("/metrics")
    def metrics() -> Response:
        return metrics_response()

    @app.get("/openapi.json")
    def openapi() -> Response:
        return jsonify(openapi_document(settings))

    return app
