"""The verifier's token endpoints through Flask's test client, with a real redis-server behind it.

POST /v1/verify, GET /v1/auth, the service endpoints (health, readiness, metrics, OpenAPI) and
hostile tokens over HTTP. Sessions, revocation and the admin API are in
``test_verifier_sessions.py``; what happens when Redis fails in ``test_verifier_redis.py``.
The app fixtures (``make_app``, ``client``, ``admin_keys``, ``db``) are in ``conftest.py``.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from shared.keys import load_public_keys
from tests import forge
from tests.forge import fresh, sign
from tests.integration.verifier_http import assert_problem
from tests.keypairs import KeyPair

# POST /v1/verify ---------------------------------------------------------------------------


def test_verify_answers_the_user_and_the_whole_payload(
    client: FlaskClient, key_pair: KeyPair
) -> None:
    token = fresh(key_pair, "alice", isAdmin=True, team="blue")
    response = client.post("/v1/verify", json={"token": token})
    assert response.status_code == 200
    body = response.get_json()
    assert body["userId"] == "alice"
    assert body["isAdmin"] is True
    assert body["provider"] == "jwt"
    assert body["claims"]["team"] == "blue"
    assert body["issuedAt"] == body["claims"]["iat"]
    assert body["expiresAt"] == body["claims"]["exp"]
    assert body["revocationChecked"] is True
    assert response.headers["X-Revocation-Checked"] == "true"


def test_verify_takes_the_token_from_a_bearer_header(
    client: FlaskClient, key_pair: KeyPair
) -> None:
    token = fresh(key_pair, "bob")
    response = client.post("/v1/verify", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
    assert response.get_json()["userId"] == "bob"
    assert response.get_json()["isAdmin"] is False


def test_a_seed_style_token_without_exp_or_jti_is_accepted(
    client: FlaskClient, key_pair: KeyPair
) -> None:
    token = sign({"userId": "123", "isAdmin": True, "iat": int(time.time())}, key_pair)
    body = client.post("/v1/verify", json={"token": token}).get_json()
    assert (body["userId"], body["isAdmin"], body["expiresAt"]) == ("123", True, None)


@pytest.mark.parametrize(
    ("kwargs", "status", "code"),
    [
        ({"json": {}}, 400, "request_invalid"),
        ({"json": {"token": 5}}, 400, "request_invalid"),
        ({"json": {"token": ""}}, 400, "request_invalid"),
        ({"json": ["token"]}, 400, "request_invalid"),
        ({"data": '{"token": "a", "token": "b"}', "content_type": "application/json"}, 400,
         "request_invalid"),
        ({"data": "token=abc", "content_type": "text/plain"}, 415, "unsupported_media_type"),
        ({}, 400, "request_invalid"),
        ({"json": {"token": "x" * 20_000}}, 413, "payload_too_large"),
    ],
)
def test_verify_refuses_a_bad_body(
    client: FlaskClient, kwargs: dict[str, Any], status: int, code: str
) -> None:
    assert_problem(client.post("/v1/verify", **kwargs), status, code)


def test_a_body_that_is_not_an_object_says_what_to_send(client: FlaskClient) -> None:
    response = client.post("/v1/verify", json=["token"])
    assert_problem(response, 400, "request_invalid")
    assert '{"token": "<jwt>"}' in response.get_json()["detail"]


def test_verify_refusals_are_401_with_their_code(
    client: FlaskClient, key_pair: KeyPair, other_key_pair: KeyPair
) -> None:
    now = int(time.time())
    cases = {
        "token_malformed": "not-a-token",
        "signature_invalid": fresh(other_key_pair),
        "token_expired": sign({"userId": "1", "iat": now - 999, "exp": now - 500}, key_pair),
        "token_not_yet_valid": sign({"userId": "1", "nbf": now + 999}, key_pair),
        "claim_missing": sign({"isAdmin": True}, key_pair),
        "claim_invalid": sign({"userId": "1", "isAdmin": "true"}, key_pair),
        "algorithm_not_allowed": sign({"userId": "1"}, b"an-hmac-secret-of-32-bytes-or-more",
                                      alg="HS256"),
        "key_unknown": sign({"userId": "1"}, key_pair, kid="somebody-else"),
    }
    for code, token in cases.items():
        response = client.post("/v1/verify", json={"token": token})
        assert_problem(response, 401, code)
        assert response.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'
        assert token not in response.get_data(as_text=True)


# GET /v1/auth ------------------------------------------------------------------------------


def test_forward_auth_with_a_jwt_sets_the_identity_headers(
    client: FlaskClient, key_pair: KeyPair
) -> None:
    token = fresh(key_pair, "carol|x", isAdmin=True)
    response = client.get("/v1/auth", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
    assert response.headers["X-Auth-User-Id"] == "carol_x"
    assert response.headers["X-Auth-Is-Admin"] == "true"
    assert response.headers["X-Auth-Provider"] == "jwt"
    # proxies forward the original method, and Envoy appends the original path
    other = client.post("/v1/auth/api/orders?x=1", headers={"Authorization": f"Bearer {token}"})
    assert other.status_code == 200
    assert other.headers["X-Auth-User-Id"] == "carol_x"
    # a HEAD gets the same status and headers, and no body
    head = client.head("/v1/auth", headers={"Authorization": f"Bearer {token}"})
    assert (head.status_code, head.headers["X-Auth-User-Id"], head.data) == (200, "carol_x", b"")
    assert int(head.headers["Content-Length"]) == len(response.data)


def test_forward_auth_percent_encodes_a_user_id_a_header_cannot_carry(
    client: FlaskClient, key_pair: KeyPair
) -> None:
    token = fresh(key_pair, "Zoë 王")
    response = client.get("/v1/auth", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
    assert response.headers["X-Auth-User-Id"] == "Zo%C3%AB%20%E7%8E%8B"
    assert response.headers["X-Auth-User-Id-Encoding"] == "percent"
    assert response.get_json()["userId"] == "Zoë 王"


@pytest.mark.parametrize(
    ("authorization", "code"),
    [
        (None, "token_missing"),
        ("Basic dXNlcjpwYXNz", "token_missing"),
        ("Bearer a.b.c", "token_malformed"),
        ("Bearer " + "A" * 43, "session_not_found"),
        ("Bearer not-a-session", "session_not_found"),
    ],
)
def test_forward_auth_refusals_are_401_with_a_bearer_challenge(
    client: FlaskClient, authorization: str | None, code: str
) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    response = client.get("/v1/auth", headers=headers)
    assert_problem(response, 401, code)
    # RFC 6750 3.1: no credential at all gets the bare challenge; a bad one, invalid_token
    expected = ('Bearer realm="jwt-auth"' if code == "token_missing"
                else 'Bearer error="invalid_token"')
    assert response.headers["WWW-Authenticate"] == expected
    assert "X-Auth-User-Id" not in response.headers


# service endpoints -------------------------------------------------------------------------


def test_a_made_up_method_is_refused_and_counted_as_other(client: FlaskClient) -> None:
    for path in ("/v1/auth", "/v1/verify", "/healthz"):
        response = client.open(path, method="BREW")
        assert_problem(response, 405, "method_not_allowed")
    metrics = client.get("/metrics").get_data(as_text=True)
    # a client must not be able to mint label values: only known methods, else "other"
    assert 'method="BREW"' not in metrics
    # Flask matches no rule for a method no rule has, hence "unmatched"
    for route in ("/v1/auth", "/v1/verify", "unmatched"):
        assert f'http_requests_total{{method="other",route="{route}",' in metrics, route


def test_health_readiness_metrics_and_openapi(
    make_app: Callable[..., Any], key_pair: KeyPair
) -> None:
    app = make_app()
    client = app.test_client()
    assert client.get("/healthz").status_code == 200
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.get_json()["checks"] == {"keys": True, "redis": True}
    # the keys this process trusts, by kid: how a rotation is seen reaching every verifier
    [trusted] = load_public_keys(key_pair.public_pem.encode(), source="test")
    assert ready.get_json()["keys"] == [{
        "provider": "jwt", "kid": trusted.kid, "alg": "RS256",
        "source": f"pem:{key_pair.public_path}", "trustedUntil": None}]

    client.post("/v1/verify", json={"token": fresh(key_pair)})
    client.post("/v1/verify", json={"token": "garbage"})
    metrics = client.get("/metrics").get_data(as_text=True)
    assert 'verifications_total{result="ok"}' in metrics
    assert 'verifications_total{result="token_malformed"}' in metrics
    assert 'http_requests_total{method="POST",route="/v1/verify",service="verifier"' in metrics

    document = client.get("/openapi.json").get_json()
    assert document["openapi"].startswith("3.1")
    # Flask's rules, and the routes answered on the event loop
    rules = [(rule.rule, rule.methods or set()) for rule in app.flask.url_map.iter_rules()
             if rule.endpoint != "static"]
    rules += [(route.label, route.methods) for route in app.hot_routes]
    for rule, methods in rules:
        path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule)
        assert path in document["paths"], path
        # Flask adds HEAD and OPTIONS to every route by itself
        for method in set(methods) - {"HEAD", "OPTIONS"}:
            assert method.lower() in document["paths"][path], (method, path)


def test_responses_never_carry_the_token(client: FlaskClient, key_pair: KeyPair) -> None:
    token = fresh(key_pair, "olga")
    for response in (
        client.post("/v1/verify", json={"token": token}),
        client.get("/v1/auth", headers={"Authorization": f"Bearer {token}"}),
        client.post("/v1/sessions", json={"token": token}),
    ):
        text = response.get_data(as_text=True) + json.dumps(dict(response.headers))
        assert token not in text
        assert token.split(".")[2] not in text


# hostile tokens over HTTP ------------------------------------------------------------------


def _hostile_tokens(key_pair: KeyPair, other_key_pair: KeyPair) -> dict[str, tuple[str, str]]:
    """name -> (token, expected code): what an attacker's script sends, signed byte by byte."""
    ours = forge.private_key(key_pair)
    theirs = forge.private_key(other_key_pair)
    good = {"userId": "123", "isAdmin": True}
    public_pem = key_pair.public_pem.encode()
    body = forge.sign(good, ours)
    head, payload, sig = body.split(".")
    attacker_jwk = {"kty": "RSA", "n": forge.b64u(theirs.public_key().public_numbers().n
                                                   .to_bytes(256, "big")), "e": "AQAB"}
    return {
        "alg none": (forge.unsigned({"alg": "none"}, good), "token_malformed"),
        "alg None signed": (forge.unsigned({"alg": "None"}, good, sig), "algorithm_not_allowed"),
        "HS256 with the public PEM": (forge.sign(good, public_pem, alg="HS256"),
                                      "algorithm_not_allowed"),
        "embedded attacker jwk": (
            forge.sign(good, theirs, header={"alg": "RS256", "jwk": attacker_jwk}),
            "signature_invalid",
        ),
        "crit": (forge.sign(good, ours, header={"alg": "RS256", "crit": ["exp"], "exp": 1}),
                 "token_malformed"),
        "JWE shape": (f"{head}.{payload}.{sig}.{sig}.{sig}", "token_malformed"),
        "padded base64url": (f"{head}=.{payload}.{sig}", "token_malformed"),
        "standard base64": (f"{head}.{payload}.{sig.replace('-', '+').replace('_', '/')}x",
                            "token_malformed"),
        "duplicate members": (
            forge.sign_raw(b'{"alg":"RS256"}', b'{"userId":"1","userId":"admin"}', ours),
            "token_malformed",
        ),
        "NaN": (forge.sign_raw(b'{"alg":"RS256"}', b'{"userId":"1","exp":NaN}', ours),
                "token_malformed"),
        "array payload": (forge.sign_raw(b'{"alg":"RS256"}', b'["userId"]', ours),
                          "token_malformed"),
        "isAdmin as a string": (forge.sign({"userId": "1", "isAdmin": "true"}, ours),
                                "claim_invalid"),
        "userId as a number": (forge.sign({"userId": 123}, ours), "claim_invalid"),
        "exp as a string": (forge.sign({"userId": "1", "exp": "9999999999"}, ours),
                            "claim_invalid"),
        "a 1 MB token": ("a" * 1_000_000 + ".b.c", "token_malformed"),
        "non-ASCII": (f"{head}.{payload}.{sig}é", "token_malformed"),
        "control characters": (f"{head}\x00.{payload}.{sig}", "token_malformed"),
    }


def test_hostile_tokens_get_their_401_on_every_endpoint_never_a_5xx(
    make_app: Callable[..., Flask], key_pair: KeyPair, other_key_pair: KeyPair
) -> None:
    app = make_app(max_body_bytes=2 * 1024 * 1024)
    client = app.test_client()
    for name, (token, code) in _hostile_tokens(key_pair, other_key_pair).items():
        for path in ("/v1/verify", "/v1/sessions", "/v1/revocations"):
            response = client.post(path, json={"token": token})
            assert response.status_code == 401, (name, path, response.get_json())
            assert response.get_json()["code"] == code, (name, path)
        if len(token) < 8000 and "\x00" not in token and token.isascii():
            forwarded = client.get("/v1/auth", headers={"Authorization": f"Bearer {token}"})
            assert forwarded.status_code == 401, name
            assert forwarded.get_json()["code"] == code, name


def test_small_contract_points_operators_met(client: FlaskClient) -> None:
    """/docs/ with a slash, the metrics' content type, and RFC 6750 on a missing credential."""
    moved = client.get("/docs/")
    assert (moved.status_code, moved.headers["Location"]) == (308, "../docs")
    assert moved.mimetype == "text/plain"  # as documented
    assert client.get("/docs").status_code == 200
    metrics = client.get("/metrics")
    assert metrics.headers["Content-Type"] == "text/plain; version=1.0.0; charset=utf-8"
    missing = client.get("/v1/auth")
    assert_problem(missing, 401, "token_missing")
    # no credential: the challenge alone, without an error code (RFC 6750 section 3.1)
    assert missing.headers["WWW-Authenticate"] == 'Bearer realm="jwt-auth"'
    bad = client.get("/v1/auth", headers={"Authorization": "Bearer not.a.jwt"})
    assert bad.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'
