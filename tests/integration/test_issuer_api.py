"""The issuer through Flask's test client: every answer of the contract."""

from __future__ import annotations

import base64
import json
import logging
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import jwt as pyjwt
import pytest
from flask import Flask
from flask.testing import FlaskClient

from issuer.app import create_app
from issuer.config import IssuerSettings
from issuer.signing import RESERVED_CLAIMS
from shared.apikeys import add_client
from tests.keypairs import PASSPHRASE, KeyPair


@dataclass
class Issuer:
    app: Flask
    client: FlaskClient
    settings: IssuerSettings
    key: str
    admin_key: str
    public_pem: str

    def post(self, body: Any = None, *, key: str | None = None, query: str = "",
             **kwargs: Any) -> Any:
        headers = {"Authorization": f"Bearer {key or self.key}"}
        if body is not None:
            kwargs["json"] = body
        return self.client.post(f"/v1/tokens{query}", headers=headers, **kwargs)


def _settings(key_pair: KeyPair, clients_file: Path, **overrides: Any) -> IssuerSettings:
    settings = IssuerSettings(
        private_key_file=str(key_pair.private_path),
        key_passphrase_file=str(key_pair.passphrase_path),
        clients_file=str(clients_file),
        rate_limit=0,
    )
    return replace(settings, **overrides)


def _make(key_pair: KeyPair, tmp_path: Path, **overrides: Any) -> Issuer:
    clients_file = tmp_path / "clients.json"
    key = add_client(clients_file, "webapp", admin=False, variable="ISSUER_CLIENTS_FILE")
    admin_key = add_client(clients_file, "backoffice", admin=True, variable="ISSUER_CLIENTS_FILE")
    settings = _settings(key_pair, clients_file, **overrides)
    app = create_app(settings)
    return Issuer(app, app.test_client(), settings, key, admin_key, key_pair.public_pem)


@pytest.fixture
def issuer(key_pair: KeyPair, tmp_path: Path) -> Issuer:
    return _make(key_pair, tmp_path)


def _header(token: str) -> dict[str, Any]:
    part = token.split(".")[0]
    decoded: dict[str, Any] = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    return decoded


def _problem(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"
    body: dict[str, Any] = response.get_json()
    assert body["code"] == code
    assert body["status"] == status
    assert {"type", "title", "detail"} <= set(body)
    return body


def test_issue_returns_a_verifiable_token(issuer: Issuer) -> None:
    response = issuer.post({"userId": "123", "team": "blue"})
    assert response.status_code == 201
    assert response.headers["Cache-Control"] == "no-store"
    body = response.get_json()
    assert set(body) == {"token", "tokenType", "expiresAt", "jti", "kid"}
    assert body["tokenType"] == "Bearer"
    claims = pyjwt.decode(body["token"], issuer.public_pem, algorithms=["RS256"])
    assert claims["userId"] == "123"
    assert claims["team"] == "blue"
    assert claims["jti"] == body["jti"]
    assert claims["exp"] == body["expiresAt"] == claims["iat"] + 3600
    assert "isAdmin" not in claims
    assert _header(body["token"]) == {"alg": "RS256", "typ": "JWT", "kid": body["kid"]}


def test_admin_client_gets_admin_token_and_an_audit_line(
    issuer: Issuer, caplog: pytest.LogCaptureFixture, audit_events: list[dict[str, object]]
) -> None:
    with caplog.at_level(logging.INFO):
        response = issuer.post({"userId": "boss", "isAdmin": True}, key=issuer.admin_key)
    assert response.status_code == 201
    body = response.get_json()
    claims = pyjwt.decode(body["token"], issuer.public_pem, algorithms=["RS256"])
    assert claims["isAdmin"] is True
    assert audit_events == [{
        "event": "admin_token_issued", "client": "backoffice", "userId": "boss",
        "jti": body["jti"], "kid": body["kid"], "expiresAt": body["expiresAt"],
    }]
    assert body["token"] not in caplog.text
    assert body["token"].split(".")[2] not in caplog.text


def test_non_admin_client_cannot_mint_admin_tokens(issuer: Issuer) -> None:
    body = _problem(issuer.post({"userId": "1", "isAdmin": True}), 403, "admin_not_permitted")
    assert body["field"] == "isAdmin"
    # isAdmin: false is a plain user token, which any client may ask for
    assert issuer.post({"userId": "1", "isAdmin": False}).status_code == 201


def test_missing_key_is_401_with_www_authenticate(issuer: Issuer) -> None:
    response = issuer.client.post("/v1/tokens", json={"userId": "1"})
    _problem(response, 401, "api_key_missing")
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize("header", ["Bearer jwta_unknown", "Basic dXNlcjpwYXNz", "Bearer "])
def test_unknown_or_malformed_key_is_401(issuer: Issuer, header: str) -> None:
    response = issuer.client.post("/v1/tokens", json={"userId": "1"},
                                  headers={"Authorization": header})
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_no_clients_file_means_every_request_is_401(key_pair: KeyPair) -> None:
    settings = IssuerSettings(private_key_file=str(key_pair.private_path),
                              key_passphrase=PASSPHRASE)
    client = create_app(settings).test_client()
    response = client.post("/v1/tokens", json={"userId": "1"},
                           headers={"Authorization": "Bearer jwta_x"})
    _problem(response, 401, "api_key_invalid")


@pytest.mark.parametrize(
    ("payload", "field"),
    [({}, "userId"), ({"userId": ""}, "userId"), ({"userId": 42}, "userId"),
     ({"userId": "a\u0007b"}, "userId"), ({"userId": "1", "isAdmin": "true"}, "isAdmin"),
     ({"userId": "1", "nbf": True}, "nbf"), (["userId"], "payload")],
)
def test_schema_failures_are_422_naming_the_field(
    issuer: Issuer, payload: Any, field: str
) -> None:
    assert _problem(issuer.post(payload), 422, "claim_invalid")["field"] == field


@pytest.mark.parametrize("claim", RESERVED_CLAIMS)
def test_reserved_claims_cannot_be_set_by_the_caller(issuer: Issuer, claim: str) -> None:
    body = _problem(issuer.post({"userId": "1", claim: 1}), 422, "claim_reserved")
    assert body["field"] == claim


@pytest.mark.parametrize(
    "raw", [b'{"userId": "1", "userId": "2"}', b'{"userId": "1", "n": NaN}', b"{", b"\xff"]
)
def test_unacceptable_json_is_400(issuer: Issuer, raw: bytes) -> None:
    _problem(issuer.post(data=raw, content_type="application/json"), 400, "request_invalid")


def test_lone_surrogate_escape_is_422_not_500(issuer: Issuer) -> None:
    body = _problem(issuer.post(data=b'{"userId": "1", "name": "\\ud800"}',
                                content_type="application/json"), 422, "claim_invalid")
    assert body["field"] == "name"


def test_not_json_is_415(issuer: Issuer) -> None:
    response = issuer.post(data="userId=1", content_type="application/x-www-form-urlencoded")
    _problem(response, 415, "unsupported_media_type")


def test_body_over_the_limit_is_413(key_pair: KeyPair, tmp_path: Path) -> None:
    small = _make(key_pair, tmp_path, max_body_bytes=1024)
    assert small.post({"userId": "1", "pad": "x" * 900}).status_code == 201
    body = _problem(small.post({"userId": "1", "pad": "x" * 1100}), 413, "payload_too_large")
    assert "1024 bytes" in body["detail"]


def test_wrong_method_is_405(issuer: Issuer) -> None:
    response = issuer.client.get("/v1/tokens")
    _problem(response, 405, "method_not_allowed")
    assert "POST" in response.headers["Allow"]
    _problem(issuer.client.post("/.well-known/jwks.json"), 405, "method_not_allowed")


def test_unknown_route_is_404_problem(issuer: Issuer) -> None:
    _problem(issuer.client.get("/v2/tokens"), 404, "not_found")


def test_expires_in_within_bounds(key_pair: KeyPair, tmp_path: Path) -> None:
    issuer = _make(key_pair, tmp_path, max_token_ttl=600)
    body = issuer.post({"userId": "1"}, query="?expires_in=600").get_json()
    claims = pyjwt.decode(body["token"], issuer.public_pem, algorithms=["RS256"])
    assert claims["exp"] - claims["iat"] == 600
    assert body["expiresAt"] == claims["exp"]
    body = issuer.post({"userId": "1"}, query="?expires_in=1").get_json()
    assert body["expiresAt"] is not None


@pytest.mark.parametrize(
    "value", ["0", "601", "-5", "1.5", "abc", "", "1e3", "\u0661", "%2B5", "5x", "12345678901"]
)
def test_expires_in_out_of_bounds_is_400(key_pair: KeyPair, tmp_path: Path, value: str) -> None:
    issuer = _make(key_pair, tmp_path, max_token_ttl=600)
    body = _problem(issuer.post({"userId": "1"}, query=f"?expires_in={value}"), 400,
                    "expires_in_invalid")
    assert body["field"] == "expires_in"


def test_ttl_zero_issues_seed_style_tokens_without_exp(key_pair: KeyPair, tmp_path: Path) -> None:
    issuer = _make(key_pair, tmp_path, token_ttl=0)
    body = issuer.post({"userId": "1"}).get_json()
    assert body["expiresAt"] is None
    claims = pyjwt.decode(body["token"], issuer.public_pem, algorithms=["RS256"])
    assert set(claims) == {"userId", "sub", "iat", "jti"}
    # a caller may still ask for a bounded lifetime
    body = issuer.post({"userId": "1"}, query="?expires_in=60").get_json()
    assert body["expiresAt"] is not None


def test_iss_and_aud_when_configured(key_pair: KeyPair, tmp_path: Path) -> None:
    issuer = _make(key_pair, tmp_path, issuer="https://auth.example", audience="mobile")
    body = issuer.post({"userId": "1"}).get_json()
    claims = pyjwt.decode(body["token"], issuer.public_pem, algorithms=["RS256"],
                          audience="mobile", issuer="https://auth.example")
    assert claims["iss"] == "https://auth.example"
    assert claims["aud"] == "mobile"


def test_rate_limit_is_429_with_retry_after(key_pair: KeyPair, tmp_path: Path) -> None:
    issuer = _make(key_pair, tmp_path, rate_limit=3)
    assert [issuer.post({"userId": "1"}).status_code for _ in range(3)] == [201] * 3
    response = issuer.post({"userId": "1"})
    _problem(response, 429, "rate_limited")
    assert int(response.headers["Retry-After"]) >= 1
    # the limit is per client: another client still gets tokens
    assert issuer.post({"userId": "1"}, key=issuer.admin_key).status_code == 201


def test_jwks_lists_the_signing_key(issuer: Issuer) -> None:
    token = issuer.post({"userId": "1"}).get_json()["token"]
    response = issuer.client.get("/.well-known/jwks.json")
    assert response.status_code == 200
    [key] = response.get_json()["keys"]
    assert key["kid"] == _header(token)["kid"]
    assert (key["kty"], key["alg"], key["use"]) == ("RSA", "RS256", "sig")
    assert not {"d", "p", "q", "dp", "dq", "qi"} & set(key)
    public = pyjwt.PyJWK(key).key
    assert pyjwt.decode(token, public, algorithms=["RS256"])["userId"] == "1"


def test_public_key_is_the_pem_of_public_pem(issuer: Issuer) -> None:
    response = issuer.client.get("/v1/public-key")
    assert response.status_code == 200
    assert response.mimetype in {"application/x-pem-file", "text/plain"}
    assert response.get_data(as_text=True) == issuer.public_pem


def test_health_and_readiness(issuer: Issuer) -> None:
    assert issuer.client.get("/healthz").status_code == 200
    ready = issuer.client.get("/readyz")
    assert ready.status_code == 200
    assert ready.get_json()["status"] == "ready"


def test_openapi_documents_every_route(issuer: Issuer) -> None:
    document = issuer.client.get("/openapi.json").get_json()
    assert document["openapi"].startswith("3.1")
    routes: dict[str, set[str]] = {}
    # Flask's rules, and the routes answered on the event loop
    rules = [(rule.rule, rule.methods or set()) for rule in issuer.app.flask.url_map.iter_rules()
             if rule.endpoint != "static"]
    rules += [(route.label, route.methods) for route in issuer.app.hot_routes]
    for rule, methods in rules:
        path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule)
        routes.setdefault(path, set()).update(m.lower() for m in set(methods) - {"HEAD", "OPTIONS"})
    documented = {path: set(ops) for path, ops in document["paths"].items()}
    assert routes == documented
    post = document["paths"]["/v1/tokens"]["post"]
    assert {"201", "400", "401", "403", "413", "415", "422", "429"} <= set(post["responses"])


def test_openapi_refs_resolve_and_responses_are_described(issuer: Issuer) -> None:
    document = issuer.client.get("/openapi.json").get_json()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if ref is not None:
                target: Any = document
                for part in ref.removeprefix("#/").split("/"):
                    target = target[part]  # KeyError: a dangling reference
            for child in node.values():
                walk(child)
        elif isinstance(node, list):
            for child in node:
                walk(child)

    walk(document)
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            assert operation["responses"], (path, method)
            for status, response in operation["responses"].items():
                assert response["description"], (path, method, status)


def test_metrics_count_issued_tokens_and_refusals(issuer: Issuer) -> None:
    def value(text: str, line_start: str) -> float:
        for line in text.splitlines():
            if line.startswith(line_start + " "):
                return float(line.rsplit(" ", 1)[1])
        return 0.0

    issued = 'tokens_issued_total{admin="false",client="webapp"}'
    admin = 'tokens_issued_total{admin="true",client="backoffice"}'
    refused = 'token_refusals_total{code="admin_not_permitted"}'
    before = issuer.client.get("/metrics").get_data(as_text=True)
    issuer.post({"userId": "1"})
    issuer.post({"userId": "1"})
    issuer.post({"userId": "2", "isAdmin": True}, key=issuer.admin_key)
    issuer.post({"userId": "3", "isAdmin": True})
    after = issuer.client.get("/metrics").get_data(as_text=True)
    assert value(after, issued) - value(before, issued) == 2
    assert value(after, admin) - value(before, admin) == 1
    assert value(after, refused) - value(before, refused) == 1
    assert 'http_requests_total{method="POST",route="/v1/tokens",service="issuer"' in after


def test_no_secret_in_any_response(issuer: Issuer, key_pair: KeyPair) -> None:
    private_body = "".join(key_pair.private_pem.strip().splitlines()[1:-1])[:40]
    responses = [
        issuer.post({"userId": "1"}),
        issuer.post({"userId": "1", "isAdmin": True}),
        issuer.post({"userId": 1}),
        issuer.client.post("/v1/tokens", json={"userId": "1"},
                           headers={"Authorization": "Bearer jwta_guess"}),
        issuer.client.get("/.well-known/jwks.json"),
        issuer.client.get("/v1/public-key"),
        issuer.client.get("/openapi.json"),
        issuer.client.get("/metrics"),
        issuer.client.get("/readyz"),
    ]
    for response in responses:
        text = response.get_data(as_text=True) + str(response.headers)
        assert PASSPHRASE not in text
        assert private_body not in text
        assert issuer.key not in text
        assert issuer.admin_key not in text
        assert "Traceback" not in text


@pytest.mark.parametrize("literal", [b"1e999", b"-1e999"])
def test_numbers_overflowing_to_infinity_are_422_not_500(issuer: Issuer, literal: bytes) -> None:
    body = _problem(issuer.post(data=b'{"userId": "1", "score": ' + literal + b"}",
                                content_type="application/json"), 422, "claim_invalid")
    assert body["field"] == "score"
