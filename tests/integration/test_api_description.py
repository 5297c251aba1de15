"""One shape for both services: the same operational routes, a generated OpenAPI, /docs offline."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from issuer.app import create_app as create_issuer
from issuer.config import IssuerSettings
from issuer.errors import ApiKeyInvalid, ApiKeyMissing, ClaimReserved, RateLimited
from shared.apikeys import add_client
from tests.keypairs import KeyPair
from verifier.errors import TOKEN_ERRORS, TokenError


@pytest.fixture
def issuer_app(key_pair: KeyPair, tmp_path: Path) -> Flask:
    clients = tmp_path / "clients.json"
    add_client(clients, "web", admin=False, variable="ISSUER_CLIENTS_FILE")
    return create_issuer(IssuerSettings(
        private_key_file=str(key_pair.private_path),
        key_passphrase_file=str(key_pair.passphrase_path),
        clients_file=str(clients),
    ))


@pytest.fixture(params=["issuer", "verifier"])
def app(request: pytest.FixtureRequest, issuer_app: Flask,
        make_app: Callable[..., Flask]) -> Flask:
    return issuer_app if request.param == "issuer" else make_app()


OPERATIONAL = ("/healthz", "/readyz", "/metrics", "/openapi.json", "/docs",
               "/docs/static/{name}")


def test_both_services_have_the_same_operational_routes(app: Flask) -> None:
    document: dict[str, Any] = app.test_client().get("/openapi.json").get_json()
    assert document["openapi"] == "3.1.0"
    for path in OPERATIONAL:
        assert "get" in document["paths"][path], path
    readyz = document["paths"]["/readyz"]["get"]["responses"]
    assert set(readyz) == {"200", "503"}


def test_docs_render_from_the_package_with_no_cdn(app: Flask) -> None:
    client = app.test_client()
    page = client.get("/docs")
    assert page.status_code == 200
    assert page.mimetype == "text/html"
    html = page.get_data(as_text=True)
    assert "http://" not in html
    assert "https://" not in html  # nothing from a CDN: it renders on a machine offline
    assert 'fetch("openapi.json")' in html  # relative: the page works behind a path prefix
    for asset in ("docs/static/swagger-ui-bundle.js", "docs/static/swagger-ui.css"):
        assert asset in html
        with client.get("/" + asset) as served:  # a file response: closed when read
            assert served.status_code == 200
            assert len(served.get_data()) > 10_000
    assert client.get("/docs/static/nope.js").status_code == 404


def _codes(response: dict[str, Any]) -> list[str]:
    schema = response["content"]["application/problem+json"]["schema"]
    enum: list[str] = schema["allOf"][1]["properties"]["code"]["enum"]
    return enum


def test_error_codes_come_from_the_exception_classes(
    issuer_app: Flask, make_app: Callable[..., Flask]
) -> None:
    issuer = issuer_app.test_client().get("/openapi.json").get_json()
    tokens = issuer["paths"]["/v1/tokens"]["post"]["responses"]
    assert _codes(tokens["401"]) == [ApiKeyMissing.code, ApiKeyInvalid.code]
    assert ClaimReserved.code in _codes(tokens["422"])
    assert "Retry-After" in tokens[str(RateLimited.status)]["headers"]

    verifier = make_app().test_client().get("/openapi.json").get_json()
    verify = verifier["paths"]["/v1/verify"]["post"]["responses"]
    # the contract's codes, written out here on purpose: the document is generated from the
    # classes, so a class renamed or dropped must show up as a difference
    assert set(_codes(verify["401"])) == {
        "token_malformed", "algorithm_not_allowed", "signature_invalid", "key_unknown",
        "token_expired", "token_not_yet_valid", "token_too_old", "claim_missing",
        "claim_invalid", "attributes_mismatch", "token_revoked",
        "issuer_unknown",  # several trusted issuers, and an iss none of them is
        "unauthorized",  # ?explain=true without an admin key
    }
    assert all(issubclass(error, TokenError) for error in TOKEN_ERRORS)
    assert "WWW-Authenticate" in verify["401"]["headers"]
    # every JSON body may be refused before the route's own rules: documented everywhere
    for path, method in (("/v1/verify", "post"), ("/v1/sessions", "post"),
                         ("/v1/revocations", "post")):
        responses = verifier["paths"][path][method]["responses"]
        assert {"400", "413", "415"} <= set(responses), path
    assert "RS256 by default" in verifier["info"]["description"]
    assert "cache" not in verifier["info"]["description"]


def test_the_issuers_readiness_failure_is_a_problem(
    issuer_app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    import issuer.app as issuer_module

    monkeypatch.setattr(issuer_module, "check_signing_key", lambda key: False)
    response = issuer_app.test_client().get("/readyz")
    assert response.status_code == 503
    assert response.mimetype == "application/problem+json"
    body = response.get_json()
    assert body["code"] == "not_ready"
    assert body["reason"] == "the signing key does not sign."
    assert body["keys"][0]["role"] == "active"
