"""One admin rule: a customised mapping holds end to end, and a mismatch is shouted at start.

The issuer runs in-process behind a real HTTP server (werkzeug) so the verifier reads its JWKS
and its published rule over the network, as it does in production.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from a2wsgi import ASGIMiddleware
from werkzeug.serving import make_server

from issuer.app import create_app as create_issuer
from issuer.config import IssuerSettings
from shared.apikeys import add_client
from shared.claimrule import ClaimRule, json_equal
from tests.keypairs import KeyPair
from verifier.app import create_app as create_verifier
from verifier.config import VerifierSettings

ADMIN_VALUES: list[Any] = ["superuser", 1, True, None, ["ops", 1], {"level": 9}, 0.5]


@dataclass
class LiveIssuer:
    url: str
    client_key: str
    admin_key: str
    rule: ClaimRule
    test_client: Any


@pytest.fixture
def live_issuer(
    request: pytest.FixtureRequest, key_pair: KeyPair, tmp_path: Path
) -> Iterator[LiveIssuer]:
    rule: ClaimRule = getattr(request, "param", ClaimRule("sub", "role", "superuser"))
    clients = tmp_path / "clients.json"
    client_key = add_client(clients, "webapp", admin=False, variable="ISSUER_CLIENTS_FILE")
    admin_key = add_client(clients, "backoffice", admin=True, variable="ISSUER_CLIENTS_FILE")
    app = create_issuer(IssuerSettings(
        private_key_file=str(key_pair.private_path),
        key_passphrase_file=str(key_pair.passphrase_path),
        clients_file=str(clients), rate_limit=0, claim_rule=rule,
    ))
    # the issuer's ASGI app behind a WSGI server in a thread: a live JWKS for the verifier
    server = make_server("127.0.0.1", 0, ASGIMiddleware(app), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield LiveIssuer(f"http://127.0.0.1:{server.server_port}", client_key, admin_key, rule,
                         app.test_client())
    finally:
        server.shutdown()
        thread.join(timeout=5)


def _issue(issuer: LiveIssuer, payload: Any, key: str) -> Any:
    return issuer.test_client.post(
        "/v1/tokens", json=payload, headers={"Authorization": f"Bearer {key}"}
    )


def _verifier(issuer: LiveIssuer, redis_url: str, rule: ClaimRule) -> Any:
    return create_verifier(VerifierSettings(
        jwks_url=f"{issuer.url}/.well-known/jwks.json", redis_url=redis_url,
        user_id_field=rule.user_id_field, is_admin_field=rule.is_admin_field,
        is_admin_value=rule.is_admin_value,
    ))


def test_the_issuer_publishes_its_rule(live_issuer: LiveIssuer) -> None:
    response = live_issuer.test_client.get("/.well-known/jwt-auth.json")
    assert response.status_code == 200
    body = response.get_json()
    assert body["claims"] == {"userIdField": "sub", "isAdminField": "role",
                              "isAdminValue": "superuser"}
    assert body["jwks_uri"].endswith("/.well-known/jwks.json")
    assert "max-age" in response.headers["Cache-Control"]


@pytest.mark.parametrize(
    "live_issuer", [ClaimRule("sub", "role", value) for value in ADMIN_VALUES], indirect=True,
)
def test_a_non_admin_client_cannot_mint_the_admin_value(live_issuer: LiveIssuer) -> None:
    value = live_issuer.rule.is_admin_value
    refused = _issue(live_issuer, {"sub": "mallory", "role": value}, live_issuer.client_key)
    assert refused.status_code == 403, refused.get_data(as_text=True)
    assert refused.get_json()["code"] == "admin_not_permitted"
    assert refused.get_json()["field"] == "role"
    # values that merely look like it are ordinary claims any client may ask for (when the
    # admin value is a boolean, the field must be one: anything else is refused as invalid)
    expected = 422 if live_issuer.rule.is_admin_is_boolean else 201
    for other in (str(value), [value], {"role": value}, "Superuser", 7):
        if json_equal(other, value):
            continue
        response = _issue(live_issuer, {"sub": "mallory", "role": other}, live_issuer.client_key)
        assert response.status_code == expected, (other, response.get_data(as_text=True))
    if live_issuer.rule.is_admin_is_boolean:
        plain = _issue(live_issuer, {"sub": "mallory", "role": not value},
                       live_issuer.client_key)
        assert plain.status_code == 201
    granted = _issue(live_issuer, {"sub": "boss", "role": value}, live_issuer.admin_key)
    assert granted.status_code == 201


def test_the_customised_rule_holds_end_to_end(
    live_issuer: LiveIssuer, redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO):
        verifier = _verifier(live_issuer, redis_url, live_issuer.rule)
    try:
        assert "ADMIN RULE MISMATCH" not in caplog.text
        assert "admin rule matches" in caplog.text
        client = verifier.test_client()
        user = _issue(live_issuer, {"sub": "alice", "role": "reader"}, live_issuer.client_key)
        admin = _issue(live_issuer, {"sub": "boss", "role": "superuser"}, live_issuer.admin_key)
        # the issuer's schema follows the rule: the user id lives in "sub" now
        missing = _issue(live_issuer, {"userId": "alice"}, live_issuer.client_key)
        assert missing.status_code == 422
        assert missing.get_json()["field"] == "sub"
        for response, user_id, is_admin in ((user, "alice", False), (admin, "boss", True)):
            token = response.get_json()["token"]
            answer = client.post("/v1/verify", json={"token": token})
            assert answer.status_code == 200, answer.get_data(as_text=True)
            assert answer.get_json()["userId"] == user_id
            assert answer.get_json()["isAdmin"] is is_admin
    finally:
        verifier.extensions["verifier"].store.close()


def test_a_verifier_with_another_rule_warns_loudly_at_start(
    live_issuer: LiveIssuer, redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO):
        verifier = _verifier(live_issuer, redis_url, ClaimRule("sub", "isAdmin", True))
    verifier.extensions["verifier"].store.close()
    warnings = [r for r in caplog.records if "ADMIN RULE MISMATCH" in r.getMessage()]
    assert len(warnings) == 1
    assert warnings[0].levelno == logging.WARNING
    message = warnings[0].getMessage()
    assert 'isAdminField is "role" there, "isAdmin" here' in message
    assert 'isAdminValue is "superuser" there, true here' in message
    assert "JWT_IS_ADMIN_FIELD" in message
