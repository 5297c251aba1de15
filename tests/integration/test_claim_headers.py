"""VERIFIER_CLAIM_HEADERS: claims as forward-auth answer headers, encoded so none can inject."""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Callable

import pytest
from flask import Flask

from shared.errors import ConfigError
from tests.forge import fresh
from tests.keypairs import KeyPair
from verifier.config import VerifierSettings

MAPPING = {"X-Auth-Roles": "roles", "X-Auth-Tenant": "tenant", "X-Auth-Level": "level",
           "X-Auth-Flags": "flags", "X-Auth-Profile": "profile"}


def _auth(app: Flask, credential: str) -> dict[str, str]:
    response = app.test_client().get("/v1/auth", headers={"Authorization": f"Bearer {credential}"})
    assert response.status_code == 200, response.get_data(as_text=True)
    return dict(response.headers)


@pytest.fixture
def app(make_app: Callable[..., Flask]) -> Flask:
    settings = VerifierSettings.from_env({"VERIFIER_PUBLIC_KEY": "unused",
                                          "VERIFIER_CLAIM_HEADERS": json.dumps(MAPPING)})
    return make_app(claim_headers=settings.claim_headers)


def test_claims_become_headers_and_a_missing_claim_none(app: Flask, key_pair: KeyPair) -> None:
    headers = _auth(app, fresh(key_pair, "ann", roles=["reader", "editor"], tenant="acme",
                               level=3, flags=True, profile={"team": "blue"}))
    assert headers["X-Auth-Roles"] == "reader,editor"
    assert headers["X-Auth-Tenant"] == "acme"
    assert headers["X-Auth-Level"] == "3"
    assert headers["X-Auth-Flags"] == "true"
    assert headers["X-Auth-Profile"] == '{"team":"blue"}'
    assert not any(name.endswith("-Encoding") for name in headers)

    bare = _auth(app, fresh(key_pair, "bob"))  # no such claims: no such headers
    assert not set(MAPPING) & set(bare)
    assert bare["X-Auth-User-Id"] == "bob"


@pytest.mark.parametrize("hostile", [
    "admin\r\nX-Auth-Is-Admin: true",
    "line\nbreak",
    "tab\tand nul\x00",
    "ünïcode",
])
def test_a_hostile_claim_is_percent_encoded_and_says_so(
    app: Flask, key_pair: KeyPair, hostile: str
) -> None:
    headers = _auth(app, fresh(key_pair, "eve", tenant=hostile, roles=["ok", hostile, "a,b"]))
    assert headers["X-Auth-Tenant-Encoding"] == "percent"
    assert urllib.parse.unquote(headers["X-Auth-Tenant"]) == hostile
    assert headers["X-Auth-Roles-Encoding"] == "percent"
    assert [urllib.parse.unquote(item) for item in headers["X-Auth-Roles"].split(",")] == [
        "ok", hostile, "a,b"]
    assert headers["X-Auth-Is-Admin"] == "false"
    for value in headers.values():
        assert value.isprintable()  # so no CR, LF or other control character


def test_a_session_id_carries_no_claim_headers(app: Flask, key_pair: KeyPair) -> None:
    token = fresh(key_pair, "sam", tenant="acme")
    session_id = app.test_client().post("/v1/sessions", json={"token": token}).get_json()[
        "sessionId"]
    headers = _auth(app, session_id)
    assert headers["X-Auth-User-Id"] == "sam"
    assert "X-Auth-Tenant" not in headers


def test_the_api_description_lists_the_configured_headers(app: Flask) -> None:
    document = app.test_client().get("/openapi.json").get_json()
    answer = document["paths"]["/v1/auth"]["get"]["responses"]["200"]
    assert "X-Auth-Roles" in answer["headers"]


@pytest.mark.parametrize(("raw", "message"), [
    ('["roles"]', "expected a JSON object"),
    ('{"X Auth": "roles"}', "not a valid header name"),
    ('{"X-Auth-User-Id": "sub"}', "set by the verifier itself"),
    ('{"Set-Cookie": "sub"}', "set by the verifier itself"),
    ('{"X-Auth-Roles-Encoding": "roles"}', "set by the verifier itself"),
    ('{"X-Roles": ""}', "non-empty string"),
    ('{"X-Roles": 5}', "non-empty string"),
    ('{"X-Roles": "roles", "x-roles": "other"}', "named twice"),
    ("{not json", "expected JSON"),
])
def test_a_bad_mapping_stops_the_verifier(raw: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as raised:
        VerifierSettings.from_env({"VERIFIER_PUBLIC_KEY": "unused",
                                   "VERIFIER_CLAIM_HEADERS": raw})
    assert raised.value.variable == "VERIFIER_CLAIM_HEADERS"
