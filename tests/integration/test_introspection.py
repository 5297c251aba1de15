"""POST /v1/introspect (RFC 7662): protected by a key, inactive for any bad token."""

from __future__ import annotations

import base64
import time
import urllib.parse
from collections.abc import Callable
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from shared.apikeys import add_client
from tests.forge import fresh, sign
from tests.integration.verifier_http import assert_problem
from tests.keypairs import KeyPair
from tests.procs import RedisServer


@pytest.fixture
def client_key(tmp_path: Path) -> tuple[Path, str]:
    path = tmp_path / "verifier-clients.json"
    return path, add_client(path, "orders-api", admin=False, variable="VERIFIER_CLIENT_KEYS_FILE")


@pytest.fixture
def app(make_app: Callable[..., Flask], client_key: tuple[Path, str]) -> Flask:
    return make_app(client_keys_file=str(client_key[0]))


def _introspect(client: FlaskClient, key: str | None, token: str, **form: str) -> dict[str, str]:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    response = client.post("/v1/introspect", data={"token": token, **form}, headers=headers)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.headers["Cache-Control"] == "no-store"
    body: dict[str, str] = response.get_json()
    return body


def test_a_good_token_is_active_with_its_identity_and_claims(
    app: Flask, client_key: tuple[Path, str], key_pair: KeyPair
) -> None:
    now = int(time.time())
    token = sign({"userId": "ann", "isAdmin": True, "iat": now, "exp": now + 600,
                  "jti": "j-1", "iss": "corp-auth", "aud": ["orders"]}, key_pair)
    answer = _introspect(app.test_client(), client_key[1], token, token_type_hint="access_token")
    assert answer == {
        "active": True, "sub": "ann", "username": "ann", "userId": "ann", "isAdmin": True,
        "provider": "jwt", "token_type": "Bearer", "exp": now + 600, "iat": now, "jti": "j-1",
        "iss": "corp-auth", "aud": ["orders"], "revocationChecked": True,
    }


def test_any_token_that_is_not_good_is_only_inactive(
    app: Flask, client_key: tuple[Path, str], key_pair: KeyPair, other_key_pair: KeyPair
) -> None:
    client = app.test_client()
    now = int(time.time())
    revoked = fresh(key_pair, "bob")
    assert client.post("/v1/revocations", json={"token": revoked}).status_code == 204
    for token in (
        "not a jwt",
        fresh(other_key_pair, "bob"),  # another key's signature
        sign({"userId": "bob", "iat": now - 900, "exp": now - 600}, key_pair),  # expired
        revoked,
        "",  # empty: not active, rather than a malformed request (RFC 7662 2.2)
    ):
        assert _introspect(client, client_key[1], token) == {"active": False}


def test_admin_keys_are_accepted_and_anything_else_is_401(
    app: Flask, client_key: tuple[Path, str], admin_keys: tuple[Path, str, str],
    key_pair: KeyPair,
) -> None:
    client = app.test_client()
    token = fresh(key_pair, "cy")
    assert _introspect(client, admin_keys[1], token)["active"] is True
    assert _introspect(client, admin_keys[2], token)["active"] is True  # any key of that file
    for headers in ({}, {"Authorization": "Bearer jwta_wrong"},
                    {"Authorization": f"Bearer {token}"}):
        refused = client.post("/v1/introspect", data={"token": token}, headers=headers)
        assert_problem(refused, 401, "unauthorized")
        # RFC 6749's client authentication: Basic first, Bearer keys too
        assert refused.headers["WWW-Authenticate"].startswith("Basic")
        assert "Bearer" in refused.headers["WWW-Authenticate"]


def _basic(name: str, key: str) -> dict[str, str]:
    """RFC 6749 2.3.1: name and key form-urlencoded, then base64 (client_secret_basic)."""
    credentials = f"{urllib.parse.quote_plus(name)}:{urllib.parse.quote_plus(key)}"
    return {"Authorization": "Basic " + base64.b64encode(credentials.encode()).decode()}


def test_rfc_6749_clients_authenticate_with_basic_name_and_key(
    app: Flask, client_key: tuple[Path, str], key_pair: KeyPair, other_key_pair: KeyPair,
) -> None:
    client = app.test_client()
    token = sign({"userId": "dan", "sub": "user-7", "iat": int(time.time()), "jti": "j-7",
                  "exp": int(time.time()) + 60, "iss": "corp-auth"}, key_pair)
    answer = client.post("/v1/introspect", data={"token": token},
                         headers=_basic("orders-api", client_key[1]))
    assert answer.status_code == 200, answer.get_json()
    body = answer.get_json()
    # the members an RFC 7662 client reads: the token's own sub when it has one
    assert {key: body[key] for key in ("active", "sub", "iss", "jti", "token_type")} == {
        "active": True, "sub": "user-7", "iss": "corp-auth", "jti": "j-7",
        "token_type": "Bearer"}
    assert {"exp", "iat"} <= set(body)
    inactive = client.post("/v1/introspect", data={"token": fresh(other_key_pair)},
                           headers=_basic("orders-api", client_key[1]))
    assert inactive.get_json() == {"active": False}
    for headers in (_basic("someone-else", client_key[1]), _basic("orders-api", "jwta_wrong"),
                    {"Authorization": "Basic not-base64!"},
                    {"Authorization": "Basic " + base64.b64encode(b"no-colon").decode()}):
        assert_problem(client.post("/v1/introspect", data={"token": token}, headers=headers),
                       401, "unauthorized")


def test_the_body_is_a_form_with_a_token(
    app: Flask, client_key: tuple[Path, str], key_pair: KeyPair
) -> None:
    client = app.test_client()
    auth = {"Authorization": f"Bearer {client_key[1]}"}
    assert_problem(client.post("/v1/introspect", data={}, headers=auth), 400, "request_invalid")
    assert_problem(client.post("/v1/introspect", json={"token": fresh(key_pair)}, headers=auth),
                   415, "unsupported_media_type")


def test_closed_mode_answers_503_when_redis_is_down(
    app: Flask, client_key: tuple[Path, str], key_pair: KeyPair, redis_server: RedisServer
) -> None:
    client = app.test_client()
    redis_server.kill()
    response = client.post("/v1/introspect", data={"token": fresh(key_pair, "dee")},
                           headers={"Authorization": f"Bearer {client_key[1]}"})
    assert_problem(response, 503, "store_unavailable")
