"""The issuer service: signs payloads for authenticated clients over HTTP.

The same shape as the verifier (``verifier/app.py``): ``create_app()`` builds the service's
objects and its ``ServiceApp`` (``shared.web``): a Flask app made by
``shared.web.api.service_flask`` (problem+json, ``/healthz``, ``/readyz``, ``/metrics``,
``/openapi.json``, ``/docs``) with the ``views`` below, and ``POST /v1/tokens`` answered on the
event loop (``issuer.hotpath``). Every route is declared once, to the app's own ``Api``, which
makes the OpenAPI document.

``create_app()`` with no settings reads the environment and stops with one line when it cannot
start (gunicorn, the CLI); tests pass explicit settings and see the exception instead.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping
from typing import Any

from flask import Response, current_app, jsonify, request, url_for

from issuer.config import CLIENTS_FILE_VARIABLE, PREFIXES, VARIABLES, IssuerSettings
from issuer.errors import KeyNotFound
from issuer.hotpath import hot_routes
from issuer.issuance import TokenIssuer
from issuer.keyring import SigningKeys
from issuer.metrics import KeyGauges
from issuer.schemas import Configuration, Discovery, IssuerReady, Jwks
from issuer.signing import check_signing_key
from shared.apikeys import ApiKeyRegistry
from shared.config import check_environment
from shared.errors import NotFound
from shared.logs import configure_logging
from shared.reloading import EXTENSION as RELOADER_EXTENSION
from shared.reloading import Reloader
from shared.startup import exit_on_startup_error
from shared.statemetrics import READY, StateSampler
from shared.web.api import Api, Views, service_flask
from shared.web.app import ServiceApp

log = logging.getLogger(__name__)

TITLE = "jwt-custom-auth issuer"
DESCRIPTION = (
    "Signs JSON Web Tokens (RS256, ES256 or EdDSA, the algorithm of its signing key) for the "
    "callers of an existing authentication system. Every error is application/problem+json "
    "with a stable `code`."
)
SECURITY_SCHEMES: dict[str, dict[str, Any]] = {
    "apiKey": {"type": "http", "scheme": "bearer",
               "description": "A client API key made by `jwt-auth clients add`."},
}
views = Views("issuer")


def create_app(settings: IssuerSettings | None = None) -> ServiceApp:
    """The issuer's ASGI app, from explicit settings or from the environment."""
    if settings is None:
        return exit_on_startup_error("issuer", lambda: _build(IssuerSettings.from_env(),
                                                              environ=os.environ))
    return _build(settings)


def _build(settings: IssuerSettings, *,
           environ: Mapping[str, str] | None = None) -> ServiceApp:
    configure_logging(settings.log_level, settings.log_format)
    if environ is not None:
        # a variable of ours that nothing reads is a typo: named now, or refused (strict)
        check_environment("issuer", environ, VARIABLES, PREFIXES, log.warning)
    keys = SigningKeys(settings)
    clients = ApiKeyRegistry.load(settings.clients_file, variable=CLIENTS_FILE_VARIABLE)
    if not clients.clients:
        log.warning("no clients configured (%s): every token request will get 401",
                    CLIENTS_FILE_VARIABLE)
    active = keys.ring.active
    log.info("issuer ready: kid=%s alg=%s bits=%d published=%d clients=%d", active.kid,
             active.alg, active.bits, len(keys.ring.published), len(clients.clients))
    issuer = TokenIssuer(settings, keys, clients)

    def readiness() -> tuple[bool, dict[str, Any]]:
        ring = keys.ring
        report: dict[str, Any] = {"kid": ring.active.kid, "keys": ring.describe(time.time())}
        if check_signing_key(ring.active):
            return True, report
        return False, {**report, "reason": "the signing key does not sign."}

    key_gauges = KeyGauges()

    def sample_state() -> None:
        READY.labels("issuer").set(1 if readiness()[0] else 0)
        key_gauges.sample(keys.ring)

    sampler = StateSampler("issuer", [sample_state])
    api = Api(TITLE, DESCRIPTION, security_schemes=SECURITY_SCHEMES)
    flask = service_flask("issuer", api, readiness, ready_answer=IssuerReady,
                          max_body_bytes=settings.max_body_bytes, before_scrape=sampler.sample)
    flask.extensions["jwt_auth_issuer"] = issuer
    reloader = Reloader([keys, clients])
    flask.extensions[RELOADER_EXTENSION] = reloader
    api.add_views(flask, views)
    return ServiceApp("issuer", flask, api, hot_routes(api, issuer),
                      max_body_bytes=settings.max_body_bytes,
                      on_start=[reloader.start_in_worker, sampler.start_in_worker],
                      on_stop=[sampler.stop])


def _issuer() -> TokenIssuer:
    issuer: TokenIssuer = current_app.extensions["jwt_auth_issuer"]
    return issuer


@views.route("/.well-known/jwks.json", ["GET"], "The published keys (RFC 7517)",
             answer=Jwks, answer_headers={"Cache-Control": "public, max-age=ISSUER_JWKS_MAX_AGE"})
def jwks() -> Response:
    issuer = _issuer()
    response = jsonify(issuer.keys.ring.jwks(time.time()))
    # shorter than a next key's wait before promotion: every verifier and cache in between
    # has seen a key before the first token it signs (docs/deploy.md, key rotation)
    response.headers["Cache-Control"] = f"public, max-age={issuer.settings.jwks_max_age}"
    return response


def _jwks_uri(settings: IssuerSettings) -> str:
    """Where the JWKS is: under the issuer URL when ``ISSUER_ISSUER`` is one (what clients were
    told to trust, not a Host header a proxy or a caller chose), else as this request reached
    it."""
    if settings.issuer_url:
        return settings.issuer_url.rstrip("/") + "/.well-known/jwks.json"
    return url_for("issuer.jwks", _external=True)


@views.route("/.well-known/jwt-auth.json", ["GET"],
             "The issuer's claim rule, which a verifier compares with its own",
             answer=Configuration)
def configuration() -> Response:
    issuer = _issuer()
    settings = issuer.settings
    response = jsonify({
        "issuer": settings.issuer,
        "audience": settings.audience,
        "jwks_uri": _jwks_uri(settings),
        "algorithms": issuer.keys.ring.algorithms(time.time()),
        "claims": settings.claim_rule.describe(),
    })
    response.headers["Cache-Control"] = "public, max-age=300"
    return response


_DISCOVERY = {
    "answer": Discovery, "errors": (NotFound,),
    "answer_headers": {"Cache-Control": "public, max-age=ISSUER_JWKS_MAX_AGE"},
    "description": "Served only when ISSUER_ISSUER is an http(s) URL (404 otherwise). Names no "
                   "authorization or token endpoint: this issuer has neither.",
}


@views.route("/.well-known/openid-configuration", ["GET"],
             "OpenID Provider metadata (OpenID Connect Discovery 1.0)", **_DISCOVERY)
def openid_configuration() -> Response:
    return _discovery_answer()


@views.route("/.well-known/oauth-authorization-server", ["GET"],
             "Authorization server metadata (RFC 8414)", **_DISCOVERY)
def oauth_authorization_server() -> Response:
    return _discovery_answer()


def _discovery_answer() -> Response:
    """One document for both names: what OIDC Discovery and RFC 8414 define for an issuer that
    only signs tokens and publishes its keys, and nothing about endpoints it does not have."""
    issuer = _issuer()
    settings = issuer.settings
    url = settings.issuer_url
    if url is None:
        # an issuer identifier that is not a URL cannot be discovered: no client could compare
        # the document's issuer with the URL it fetched it from
        raise NotFound("No discovery document: ISSUER_ISSUER is not an http(s) URL.")
    rule = settings.claim_rule
    registered = ["sub"] if settings.tokens_name_their_user_in_sub else []
    registered += ["iss", *(["aud"] if settings.audience else []), "iat", "exp", "jti"]
    document: dict[str, Any] = {
        "issuer": url,
        "jwks_uri": _jwks_uri(settings),
        # the one signing-algorithm member that is about the tokens themselves: RFC 8414's own
        # *_signing_alg_values_supported members are about client authentication at endpoints
        # this issuer does not have
        "id_token_signing_alg_values_supported": issuer.keys.ring.algorithms(time.time()),
    }
    if settings.tokens_name_their_user_in_sub:
        # every client gets the same sub for a user: OIDC's "public" subject type
        document["subject_types_supported"] = ["public"]
    document["claims_supported"] = list(dict.fromkeys(
        [*registered, rule.user_id_field, rule.is_admin_field]))
    document["service_documentation"] = url.rstrip("/") + "/docs"
    response = jsonify(document)
    # the algorithms change with the published keys: cached no longer than the JWKS, so a
    # client that restricts itself to them knows a next key's algorithm before it signs
    response.headers["Cache-Control"] = f"public, max-age={settings.jwks_max_age}"
    return response


@views.route("/v1/public-key", ["GET"],
             "The active public key, or any published one by kid, as PEM (SPKI)",
             media_type="application/x-pem-file", errors=(KeyNotFound,),
             query={"kid": "a published key (next, retiring) instead of the active one"})
def public_key() -> Response:
    # the signing key by default: the seed's verifier configuration takes one PEM key;
    # ?kid= gives a next key to a PEM-configured verifier before it signs (rotation)
    ring = _issuer().keys.ring
    kid = request.args.get("kid")
    if kid is None:
        return Response(ring.active.public_pem(), mimetype="application/x-pem-file")
    pem = ring.public_pem(kid, time.time())
    if pem is None:
        raise KeyNotFound(f"No published key has kid {kid[:64]!r}.")
    return Response(pem, mimetype="application/x-pem-file")
