"""The issuer service: signs payloads for authenticated clients over HTTP.

``create_app()`` with no settings reads the environment and stops with one line when it cannot
start (gunicorn, the CLI); tests pass explicit settings and see the exception instead.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, current_app, jsonify, url_for

from issuer.config import CLIENTS_FILE_VARIABLE, IssuerSettings
from issuer.hotpath import hot_routes
from issuer.issuance import TokenIssuer
from issuer.openapi import openapi_document
from issuer.signing import check_signing_key
from shared.apikeys import ApiKeyRegistry
from shared.hotroutes import HotRoutes
from shared.http import install_problem_handlers
from shared.keys import SigningKey, load_private_key, read_passphrase, read_pem
from shared.logs import configure_logging
from shared.metrics import install_request_metrics, metrics_response
from shared.serving import exit_on_startup_error

log = logging.getLogger(__name__)


def load_signing_key(settings: IssuerSettings) -> SigningKey:
    """Read, decrypt and check the configured private key (the slow step: once per process)."""
    pem, source = read_pem(
        file=settings.private_key_file,
        text=settings.private_key,
        file_variable="ISSUER_PRIVATE_KEY_FILE",
        text_variable="ISSUER_PRIVATE_KEY",
    )
    passphrase = read_passphrase(
        value=settings.key_passphrase,
        file=settings.key_passphrase_file,
        value_variable="ISSUER_KEY_PASSPHRASE",
        file_variable="ISSUER_KEY_PASSPHRASE_FILE",
    )
    return load_private_key(pem, passphrase, source=source)


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
    key = load_signing_key(settings)
    clients = ApiKeyRegistry.load(settings.clients_file, variable=CLIENTS_FILE_VARIABLE)
    if not clients.clients:
        log.warning("no clients configured (%s): every token request will get 401",
                    CLIENTS_FILE_VARIABLE)
    log.info("issuer ready: kid=%s bits=%d clients=%d", key.kid, key.bits, len(clients.clients))

    app = Flask(__name__)
    # werkzeug answers 413 before the body is read past this many bytes
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.json.sort_keys = False  # type: ignore[attr-defined]  # DefaultJSONProvider has it
    app.extensions["jwt_auth_issuer"] = TokenIssuer(settings, key, clients)
    install_problem_handlers(app)
    install_request_metrics(app, "issuer")
    # POST /v1/tokens is answered in front of Flask (issuer.hotpath); the rest are views here
    routes = hot_routes(app.extensions["jwt_auth_issuer"], max_body_bytes=settings.max_body_bytes)
    app.wsgi_app = HotRoutes(app.wsgi_app, "issuer", routes)  # type: ignore[method-assign]
    app.extensions["hot_routes"] = routes

    @app.get("/.well-known/jwks.json")
    def jwks() -> Response:
        response = jsonify({"keys": [_issuer().key.public_jwk()]})
        response.headers["Cache-Control"] = "public, max-age=300"
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
        return Response(_issuer().key.public_pem(), mimetype="application/x-pem-file")

    @app.get("/healthz")
    def healthz() -> Response:
        return jsonify({"status": "ok"})

    @app.get("/readyz")
    def readyz() -> tuple[Response, int]:
        issuer = _issuer()
        if check_signing_key(issuer.key):
            return jsonify({"status": "ready", "kid": issuer.key.kid}), 200
        body: dict[str, Any] = {"status": "not_ready", "reason": "the signing key does not sign"}
        return jsonify(body), 503

    @app.get("/metrics")
    def metrics() -> Response:
        return metrics_response()

    @app.get("/openapi.json")
    def openapi() -> Response:
        return jsonify(openapi_document(settings))

    return app
