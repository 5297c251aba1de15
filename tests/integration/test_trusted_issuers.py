"""Several trusted issuers (VERIFIER_TRUSTED_ISSUERS_FILE), through the verifier app and Redis.

Two issuers: ``staff`` (RS256, the test key pair, ``userId``/``isAdmin``) and ``partner``
(ES256, its own P-256 key, ``sub`` as the user id, ``role: "admin"`` as the admin rule, a
required ``tenant``, an audience). A token's ``iss`` picks the keys and the policy; users,
sessions, revocations and cut-offs of one issuer never touch the other's.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from shared.errors import ConfigError
from shared.keys import load_public_keys
from tests.forge import fresh, sign
from tests.integration.verifier_http import admin_headers, assert_problem
from tests.keypairs import KeyPair
from verifier.config import VerifierSettings

STAFF, PARTNER = "https://login.example.test", "partner-idp"


@pytest.fixture(scope="module")
def partner_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _pem(key: ec.EllipticCurvePrivateKey) -> str:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def _entries(key_pair: KeyPair, partner_key: ec.EllipticCurvePrivateKey) -> list[dict[str, Any]]:
    return [
        {"issuer": STAFF, "publicKeyFile": str(key_pair.public_path), "providerName": "staff"},
        {"issuer": PARTNER, "publicKey": _pem(partner_key), "providerName": "partner",
         "algorithms": ["ES256"], "audience": "orders", "userIdField": "sub",
         "isAdminField": "role", "isAdminValue": "admin",
         "requiredAttributes": {"tenant": "acme"}},
    ]


@pytest.fixture
def issuers_file(tmp_path: Path, key_pair: KeyPair,
                 partner_key: ec.EllipticCurvePrivateKey) -> Path:
    path = tmp_path / "issuers.json"
    path.write_text(json.dumps({"issuers": _entries(key_pair, partner_key)}))
    return path


@pytest.fixture
def app(make_app: Callable[..., Any], issuers_file: Path) -> Any:
    return make_app(public_key_file=None, trusted_issuers_file=str(issuers_file))


@pytest.fixture
def client(app: Any) -> Any:
    return app.test_client()


def _staff(key_pair: KeyPair, user: str = "123", **claims: Any) -> str:
    return fresh(key_pair, user, iss=STAFF, **claims)


def _partner(key: ec.EllipticCurvePrivateKey, user: str = "123", **claims: Any) -> str:
    now = int(time.time())
    payload = {"sub": user, "iss": PARTNER, "aud": "orders", "tenant": "acme", "iat": now,
               "exp": now + 600, "jti": f"p-{time.perf_counter_ns()}", **claims}
    return sign({name: value for name, value in payload.items() if value is not None}, key,
                alg="ES256")


def _verify(client: Any, token: str) -> Any:
    return client.post("/v1/verify", json={"token": token})


def test_a_tokens_iss_chooses_its_issuers_keys_and_policy(
    client: Any, key_pair: KeyPair, partner_key: ec.EllipticCurvePrivateKey
) -> None:
    staff = _verify(client, _staff(key_pair, "ann", isAdmin=True))
    assert staff.status_code == 200, staff.get_json()
    assert (staff.get_json()["userId"], staff.get_json()["provider"],
            staff.get_json()["isAdmin"]) == ("ann", "staff", True)
    partner = _verify(client, _partner(partner_key, "bob", role="admin"))
    assert partner.status_code == 200, partner.get_json()
    assert (partner.get_json()["userId"], partner.get_json()["provider"],
            partner.get_json()["isAdmin"]) == ("bob", "partner", True)
    auth = client.get("/v1/auth", headers={"Authorization": f"Bearer {_partner(partner_key)}"})
    assert auth.headers["X-Auth-Provider"] == "partner"
    # the partner's policy binds the partner's tokens only
    assert_problem(_verify(client, _partner(partner_key, tenant="other")), 401,
                   "attributes_mismatch")
    assert_problem(_verify(client, _partner(partner_key, aud="billing")), 401, "claim_invalid")
    assert _verify(client, _staff(key_pair, tenant="other")).status_code == 200


def test_a_missing_or_unknown_iss_is_issuer_unknown(
    client: Any, key_pair: KeyPair, partner_key: ec.EllipticCurvePrivateKey
) -> None:
    for token in (fresh(key_pair), fresh(key_pair, iss="https://evil.test"),
                  fresh(key_pair, iss=["a"]), _partner(partner_key, iss=None)):
        assert_problem(_verify(client, token), 401, "issuer_unknown")


def test_one_issuers_keys_never_verify_anothers_token(
    make_app: Callable[..., Any], tmp_path: Path, key_pair: KeyPair,
    partner_key: ec.EllipticCurvePrivateKey, other_key_pair: KeyPair,
) -> None:
    path = tmp_path / "three.json"
    path.write_text(json.dumps({"issuers": [
        *_entries(key_pair, partner_key),
        {"issuer": "rival", "publicKeyFile": str(other_key_pair.public_path),
         "providerName": "rival"},
    ]}))
    client = make_app(public_key_file=None, trusted_issuers_file=str(path)).test_client()
    rival_kid = load_public_keys(other_key_pair.public_pem.encode(), source="rival")[0].kid
    assert _verify(client, fresh(other_key_pair, iss="rival", kid=None)).status_code == 200
    # the rival's key, saying it is staff's: staff's keys judge it, under any kid
    assert_problem(_verify(client, sign({"userId": "m", "iss": STAFF}, other_key_pair,
                                        kid=rival_kid)), 401, "key_unknown")
    assert_problem(_verify(client, sign({"userId": "m", "iss": STAFF}, other_key_pair)), 401,
                   "signature_invalid")
    # the partner's key under staff's iss, and a staff token under the partner's iss: each
    # issuer's own algorithms and keys judge it
    assert_problem(_verify(client, sign({"userId": "m", "iss": STAFF}, partner_key,
                                        alg="ES256")), 401, "algorithm_not_allowed")
    stolen = fresh(key_pair, iss=PARTNER, sub="m", aud="orders", tenant="acme")
    assert_problem(_verify(client, stolen), 401, "algorithm_not_allowed")


def test_users_of_two_issuers_are_apart(
    client: Any, key_pair: KeyPair, partner_key: ec.EllipticCurvePrivateKey,
    admin_keys: tuple[Path, str, str],
) -> None:
    staff_token, partner_token = _staff(key_pair, "123"), _partner(partner_key, "123")
    staff_session = client.post("/v1/sessions", json={"token": staff_token}).get_json()
    partner_session = client.post("/v1/sessions", json={"token": partner_token}).get_json()
    assert (staff_session["provider"], partner_session["provider"]) == ("staff", "partner")
    admin = admin_headers(admin_keys)
    # with several issuers an admin names the provider
    assert_problem(client.delete("/v1/users/123/sessions", headers=admin), 400,
                   "request_invalid")
    assert_problem(client.get("/v1/users/123?provider=nobody", headers=admin), 400,
                   "request_invalid")
    staff_user = client.get("/v1/users/123?provider=staff", headers=admin).get_json()
    assert (staff_user["userId"], staff_user["provider"]) == ("123", "staff")
    ended = client.delete("/v1/users/123/sessions?provider=staff", headers=admin).get_json()
    assert (ended["provider"], ended["sessionsEnded"]) == ("staff", 1)
    # staff's user 123 is logged out and its tokens refused; the partner's is untouched
    assert_problem(_verify(client, staff_token), 401, "token_revoked")
    assert client.get(f"/v1/sessions/{staff_session['sessionId']}").status_code == 404
    assert _verify(client, partner_token).status_code == 200
    assert client.get(f"/v1/sessions/{partner_session['sessionId']}").status_code == 200
    assert client.get(f"/v1/sessions/{partner_session['sessionId']}").get_json() == \
        partner_session
    # and a logout of the partner's session finds the partner's index
    assert client.delete(f"/v1/sessions/{partner_session['sessionId']}").status_code == 204
    assert client.get(f"/v1/sessions/{partner_session['sessionId']}").status_code == 404


def test_revoking_by_jti_is_per_issuer(
    client: Any, key_pair: KeyPair, partner_key: ec.EllipticCurvePrivateKey,
    admin_keys: tuple[Path, str, str], audit_events: list[dict[str, object]],
) -> None:
    staff_token = _staff(key_pair, "u1", jti="shared-jti")
    partner_token = _partner(partner_key, "u1", jti="shared-jti")
    revoke = {"jti": "shared-jti", "userId": "u1", "expiresAt": time.time() + 600,
              "provider": "partner"}
    answer = client.post("/v1/revocations", json=revoke, headers=admin_headers(admin_keys))
    assert answer.status_code == 204, answer.get_json()
    assert_problem(_verify(client, partner_token), 401, "token_revoked")
    assert _verify(client, staff_token).status_code == 200
    assert audit_events[-1]["event"] == "token_revoked_by_jti"
    assert (audit_events[-1]["jti"], audit_events[-1]["provider"]) == ("shared-jti", "partner")


def test_the_file_is_read_again_when_it_changes(
    app: Any, issuers_file: Path, key_pair: KeyPair, partner_key: ec.EllipticCurvePrivateKey,
    other_key_pair: KeyPair,
) -> None:
    client = app.test_client()
    late = fresh(other_key_pair, iss="late-idp")
    assert_problem(_verify(client, late), 401, "issuer_unknown")
    entries = [*_entries(key_pair, partner_key),
               {"issuer": "late-idp", "publicKeyFile": str(other_key_pair.public_path),
                "providerName": "late"}]
    issuers_file.write_text(json.dumps({"issuers": entries}))
    app.extensions["jwt_auth.reloader"].check()
    assert _verify(client, late).get_json()["provider"] == "late"
    # a damaged file leaves the issuers as they were
    issuers_file.write_text('{"issuers": [')
    app.extensions["jwt_auth.reloader"].check()
    assert _verify(client, late).status_code == 200


def test_a_single_issuer_deployment_keeps_its_data_when_it_moves_to_the_file(
    make_app: Callable[..., Any], key_pair: KeyPair, tmp_path: Path,
    admin_keys: tuple[Path, str, str],
) -> None:
    """The entry named like VERIFIER_PROVIDER_NAME (jwt) keeps the user ids of Redis as they
    were: sessions and revocations made before the file survive it, with no migration."""
    before = make_app().test_client()
    token = fresh(key_pair, "carol", iss=STAFF)
    session = before.post("/v1/sessions", json={"token": token}).get_json()
    revoked = fresh(key_pair, "carol", iss=STAFF)
    assert before.post("/v1/revocations", json={"token": revoked}).status_code == 204
    path = tmp_path / "issuers.json"
    path.write_text(json.dumps({"issuers": [
        {"issuer": STAFF, "publicKeyFile": str(key_pair.public_path), "providerName": "jwt"},
        {"issuer": PARTNER, "publicKeyFile": str(key_pair.public_path),
         "providerName": "partner"},
    ]}))
    after = make_app(public_key_file=None, trusted_issuers_file=str(path)).test_client()
    assert after.get(f"/v1/sessions/{session['sessionId']}").status_code == 200
    assert_problem(_verify(after, revoked), 401, "token_revoked")
    assert _verify(after, token).status_code == 200


@pytest.mark.parametrize(("document", "message"), [
    ({"issuers": [{"issuer": "a", "publicKeyFile": "k.pem", "provider": "x"}]},
     "unknown member"),
    ({"issuers": [{"issuer": "a", "publicKeyFile": "k.pem", "jwksUrl": "http://x/"}]},
     "exactly one of jwksUrl, publicKey, publicKeyFile"),
    ({"issuers": [{"issuer": "a", "publicKeyFile": "k.pem"},
                  {"issuer": "b", "publicKeyFile": "k.pem"}]}, "providerName"),
    ({"issuers": [{"issuer": "a", "publicKeyFile": "k.pem", "providerName": "x"},
                  {"issuer": "b", "publicKeyFile": "k.pem", "providerName": "x"}]},
     "two entries have providerName 'x'"),
    ({"issuers": [{"issuer": "a", "publicKeyFile": "k.pem", "providerName": "a b"}]},
     "providerName"),
    ({"issuers": [{"issuer": "a", "publicKeyFile": "k.pem", "algorithms": ["HS256"]}]},
     "'HS256' is not allowed"),
    ({"issuers": []}, "at least one entry"),
    ({"issuers": [{"issuer": "a", "jwksUrl": "ftp://x"}]}, "http"),
])
def test_a_bad_file_stops_the_start_naming_what_is_wrong(
    make_app: Callable[..., Any], tmp_path: Path, key_pair: KeyPair, document: Any,
    message: str,
) -> None:
    (tmp_path / "k.pem").write_text(key_pair.public_pem)
    path = tmp_path / "issuers.json"
    path.write_text(json.dumps(document))
    with pytest.raises(ConfigError) as refused:
        make_app(public_key_file=None, trusted_issuers_file=str(path))
    assert refused.value.variable == "VERIFIER_TRUSTED_ISSUERS_FILE"
    assert message in str(refused.value)


def test_the_file_and_the_single_issuer_settings_do_not_mix(tmp_path: Path) -> None:
    for name in ("VERIFIER_PUBLIC_KEY_FILE", "VERIFIER_JWKS_URL", "VERIFIER_ISSUER"):
        with pytest.raises(ConfigError) as refused:
            VerifierSettings.from_env({"VERIFIER_TRUSTED_ISSUERS_FILE": "issuers.json",
                                       name: "http://x/"})
        assert refused.value.variable == name


def test_a_stricter_policy_read_from_the_file_binds_tokens_already_cached(
    app: Any, issuers_file: Path, key_pair: KeyPair, partner_key: ec.EllipticCurvePrivateKey,
) -> None:
    client = app.test_client()
    token = _partner(partner_key, "cid")
    assert _verify(client, token).status_code == 200  # verified, and cached
    entries = _entries(key_pair, partner_key)
    entries[1]["requiredAttributes"] = {"tenant": "acme", "plan": "gold"}
    issuers_file.write_text(json.dumps({"issuers": entries}))
    app.extensions["jwt_auth.reloader"].check()
    # the same token, the same key: judged by the new policy, not answered from the cache
    assert_problem(_verify(client, token), 401, "attributes_mismatch")
    assert _verify(client, _partner(partner_key, "cid", plan="gold")).status_code == 200


def test_a_lone_entry_without_a_name_is_refused_in_a_longer_file_on_reload_as_at_start(
    make_app: Callable[..., Any], tmp_path: Path, key_pair: KeyPair, other_key_pair: KeyPair,
) -> None:
    path = tmp_path / "issuers.json"
    lone = {"issuer": STAFF, "publicKeyFile": str(key_pair.public_path)}
    path.write_text(json.dumps({"issuers": [lone]}))
    app = make_app(public_key_file=None, trusted_issuers_file=str(path))
    client = app.test_client()
    assert _verify(client, _staff(key_pair)).get_json()["provider"] == "jwt"
    second = {"issuer": "late-idp", "publicKeyFile": str(other_key_pair.public_path),
              "providerName": "late"}
    path.write_text(json.dumps({"issuers": [lone, second]}))
    assert app.extensions["jwt_auth.reloader"].check() == 0  # refused, as a start would be
    assert_problem(_verify(client, fresh(other_key_pair, iss="late-idp")), 401, "issuer_unknown")
    assert _verify(client, _staff(key_pair)).status_code == 200


def test_a_file_change_reloads_only_the_issuers_it_changed(
    app: Any, issuers_file: Path, key_pair: KeyPair, partner_key: ec.EllipticCurvePrivateKey,
    other_key_pair: KeyPair, monkeypatch: pytest.MonkeyPatch,
) -> None:
    from verifier.keyset import KeySet

    reloaded: list[object] = []
    monkeypatch.setattr(KeySet, "reload", lambda self: reloaded.append(self))
    entries = [*_entries(key_pair, partner_key),
               {"issuer": "late-idp", "publicKeyFile": str(other_key_pair.public_path),
                "providerName": "late"}]
    issuers_file.write_text(json.dumps({"issuers": entries}))
    assert app.extensions["jwt_auth.reloader"].check() == 1
    # the new entry was read whole; the two kept ones were not touched
    assert reloaded == []
    # SIGHUP: every issuer's keys again
    app.extensions["jwt_auth.reloader"].reload_all()
    assert len(reloaded) == 3


def test_one_issuers_unreachable_jwks_leaves_the_verifier_ready_for_the_others(
    make_app: Callable[..., Any], tmp_path: Path, key_pair: KeyPair,
) -> None:
    from tests.procs import free_port

    path = tmp_path / "issuers.json"
    path.write_text(json.dumps({"issuers": [
        {"issuer": STAFF, "publicKeyFile": str(key_pair.public_path), "providerName": "staff"},
        {"issuer": PARTNER, "providerName": "partner",
         "jwksUrl": f"http://127.0.0.1:{free_port()}/.well-known/jwks.json"},
    ]}))
    client = make_app(public_key_file=None, trusted_issuers_file=str(path)).test_client()
    ready = client.get("/readyz")
    assert ready.status_code == 200, ready.get_json()
    assert ready.get_json()["status"] == "degraded"
    assert ready.get_json()["checks"] == {"keys": True, "allIssuers": False, "redis": True}
    assert _verify(client, _staff(key_pair)).status_code == 200
    partner = fresh(key_pair, iss=PARTNER)
    assert_problem(_verify(client, partner), 503, "not_ready")
