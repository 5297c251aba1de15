"""Every verifier endpoint through Flask's test client, with a real redis-server behind it."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient

from shared.apikeys import add_client
from tests import forge
from tests.forge import fresh, sign
from tests.keypairs import KeyPair
from tests.procs import RedisServer, wait_until
from verifier.app import create_app
from verifier.config import VerifierSettings
from verifier.store import REVOCATION_MARGIN

PREFIX = "jwtauth:"


@pytest.fixture
def admin_keys(tmp_path: Path) -> tuple[Path, str, str]:
    """A keys file with one admin key and one key without the admin permission."""
    path = tmp_path / "verifier-admins.json"
    admin = add_client(path, "ops", admin=True, variable="VERIFIER_ADMIN_KEYS_FILE")
    plain = add_client(path, "reader", admin=False, variable="VERIFIER_ADMIN_KEYS_FILE")
    return path, admin, plain


@pytest.fixture
def make_app(
    key_pair: KeyPair, redis_url: str, admin_keys: tuple[Path, str, str]
) -> Iterator[Callable[..., Flask]]:
    built: list[Flask] = []

    def build(**overrides: Any) -> Flask:
        settings = VerifierSettings(
            public_key_file=str(key_pair.public_path),
            redis_url=redis_url,
            admin_keys_file=str(admin_keys[0]),
            **overrides,
        )
        built.append(create_app(settings))
        return built[-1]

    yield build
    for app in built:  # each app's revocation mirror has a thread and a connection
        app.extensions["verifier"].store.close()


@pytest.fixture
def client(make_app: Callable[..., Flask]) -> FlaskClient:
    return make_app().test_client()


@pytest.fixture
def db(redis_url: str) -> redis.Redis:
    return redis.Redis.from_url(redis_url)


def admin_headers(admin_keys: tuple[Path, str, str]) -> dict[str, str]:
    return {"Authorization": f"Bearer {admin_keys[1]}"}


def assert_problem(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"
    body: dict[str, Any] = response.get_json()
    assert body["code"] == code, body
    assert {"type", "title", "status", "detail"} <= body.keys()
    return body


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
def test_forward_auth_refusals_are_401_invalid_token(
    client: FlaskClient, authorization: str | None, code: str
) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    response = client.get("/v1/auth", headers=headers)
    assert_problem(response, 401, code)
    assert response.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'
    assert "X-Auth-User-Id" not in response.headers


# sessions ----------------------------------------------------------------------------------


def test_login_lookup_forward_auth_and_logout(
    client: FlaskClient, key_pair: KeyPair, db: redis.Redis
) -> None:
    response = client.post("/v1/sessions", json={"token": fresh(key_pair, "dave", isAdmin=True)})
    assert response.status_code == 201
    session = response.get_json()
    session_id = session["sessionId"]
    assert len(session_id) >= 22  # >= 128 bits in base64url
    assert (session["userId"], session["isAdmin"], session["provider"]) == ("dave", True, "jwt")
    assert 0 < session["expiresAt"] - time.time() <= 30 * 24 * 3600
    # stored hashed and bounded: the id itself appears in no key
    keys = [key.decode() for key in db.keys("*")]
    assert not any(session_id in key for key in keys)
    session_keys = [key for key in keys if key.startswith(PREFIX + "session:")]
    assert len(session_keys) == 1
    assert 0 < db.ttl(session_keys[0]) <= 30 * 24 * 3600

    looked_up = client.get(f"/v1/sessions/{session_id}")
    assert looked_up.status_code == 200
    assert looked_up.get_json()["userId"] == "dave"
    auth = client.get("/v1/auth", headers={"Authorization": f"Bearer {session_id}"})
    assert auth.status_code == 200
    assert (auth.headers["X-Auth-User-Id"], auth.headers["X-Auth-Is-Admin"]) == ("dave", "true")

    assert client.delete(f"/v1/sessions/{session_id}").status_code == 204
    assert_problem(client.get(f"/v1/sessions/{session_id}"), 404, "session_not_found")
    assert_problem(
        client.get("/v1/auth", headers={"Authorization": f"Bearer {session_id}"}),
        401, "session_not_found",
    )
    # logging out again is still a success
    assert client.delete(f"/v1/sessions/{session_id}").status_code == 204
    assert db.smembers(PREFIX + "user-sessions:dave") == set()


def test_login_refuses_a_bad_token(client: FlaskClient, other_key_pair: KeyPair) -> None:
    assert_problem(
        client.post("/v1/sessions", json={"token": fresh(other_key_pair)}), 401,
        "signature_invalid",
    )
    assert_problem(client.post("/v1/sessions", json={"tok": "x"}), 400, "request_invalid")


def test_each_login_recomputes_is_admin(
    client: FlaskClient, key_pair: KeyPair, admin_keys: tuple[Path, str, str]
) -> None:
    headers = admin_headers(admin_keys)
    assert client.post("/v1/sessions", json={"token": fresh(key_pair, "erin")}).status_code == 201
    first = client.get("/v1/users/erin", headers=headers).get_json()
    assert first["isAdmin"] is False

    promoted = client.post("/v1/sessions", json={"token": fresh(key_pair, "erin", isAdmin=True)})
    assert promoted.get_json()["isAdmin"] is True
    second = client.get("/v1/users/erin", headers=headers).get_json()
    assert second["isAdmin"] is True
    assert second["createdAt"] == first["createdAt"]
    assert second["lastLoginAt"] >= first["lastLoginAt"]

    demoted = client.post("/v1/sessions", json={"token": fresh(key_pair, "erin", isAdmin=False)})
    assert demoted.get_json()["isAdmin"] is False
    assert client.get("/v1/users/erin", headers=headers).get_json()["isAdmin"] is False


# revocation --------------------------------------------------------------------------------


def test_a_revoked_token_is_refused_even_after_it_was_cached(
    make_app: Callable[..., Flask], key_pair: KeyPair, db: redis.Redis
) -> None:
    # two apps stand for two verifier processes sharing one Redis, each with its own LRU
    first, second = make_app().test_client(), make_app().test_client()
    token = fresh(key_pair, "frank")
    for client in (first, first, second, second):
        assert client.post("/v1/verify", json={"token": token}).status_code == 200

    assert second.post("/v1/revocations", json={"token": token}).status_code == 204
    for client in (first, second):
        assert_problem(client.post("/v1/verify", json={"token": token}), 401, "token_revoked")
        assert_problem(
            client.get("/v1/auth", headers={"Authorization": f"Bearer {token}"}), 401,
            "token_revoked",
        )
    # revoking again, or revoking an expired token, has nothing left to do
    assert first.post("/v1/revocations", json={"token": token}).status_code == 204
    assert_problem(
        first.post("/v1/sessions", json={"token": token}), 401, "token_revoked"
    )


def test_a_revocation_lives_until_the_token_would_expire(
    client: FlaskClient, key_pair: KeyPair, db: redis.Redis
) -> None:
    now = int(time.time())
    token = sign({"userId": "gina", "iat": now, "exp": now + 600, "jti": "j-1"}, key_pair)
    assert client.post("/v1/revocations", json={"token": token}).status_code == 204
    ttl = db.ttl(PREFIX + "revoked:jti:j-1")
    assert 600 < ttl <= 600 + REVOCATION_MARGIN + 1

    # a seed-style token never expires, so neither does its revocation (keyed by its hash)
    seed = sign({"userId": "gina", "iat": now}, key_pair)
    assert client.post("/v1/revocations", json={"token": seed}).status_code == 204
    by_hash = db.keys(PREFIX + "revoked:sha256:*")
    assert len(by_hash) == 1
    assert db.ttl(by_hash[0]) == -1
    assert_problem(client.post("/v1/verify", json={"token": seed}), 401, "token_revoked")


def test_revocation_needs_a_token_that_verifies(
    client: FlaskClient, key_pair: KeyPair, other_key_pair: KeyPair, db: redis.Redis
) -> None:
    assert_problem(
        client.post("/v1/revocations", json={"token": fresh(other_key_pair)}), 401,
        "signature_invalid",
    )
    now = int(time.time())
    expired = sign({"userId": "h", "iat": now - 900, "exp": now - 600, "jti": "old"}, key_pair)
    assert client.post("/v1/revocations", json={"token": expired}).status_code == 204
    # (the mirror's short-lived probe key, revoked:probe:*, names no token)
    assert [key for key in db.keys(PREFIX + "revoked:*") if b":probe:" not in key] == []
    assert_problem(client.post("/v1/revocations", json={}), 400, "request_invalid")


def test_the_cache_never_outlives_the_token(
    make_app: Callable[..., Flask], key_pair: KeyPair
) -> None:
    client = make_app(leeway=0).test_client()
    now = time.time()
    token = sign({"userId": "ivan", "iat": int(now), "exp": int(now) + 2}, key_pair)
    for _ in range(3):  # verified once, then answered from the in-process cache
        assert client.post("/v1/verify", json={"token": token}).status_code == 200
    time.sleep(max(0.0, int(now) + 2.2 - time.time()))
    assert_problem(client.post("/v1/verify", json={"token": token}), 401, "token_expired")


def test_a_mirror_in_sync_answers_without_a_round_trip_and_one_out_of_sync_reads_redis(
    make_app: Callable[..., Flask], key_pair: KeyPair, db: redis.Redis
) -> None:
    app = make_app()
    client = app.test_client()
    mirror = app.extensions["verifier"].store.mirror
    warm = fresh(key_pair, "una")
    assert client.post("/v1/verify", json={"token": warm}).status_code == 200
    wait_for(lambda: mirror.synced)
    repeated, fresh_tokens = warm, [fresh(key_pair, f"una-{n}") for n in range(5)]
    before = _mgets(db)
    for token in [repeated] * 5 + fresh_tokens:
        assert client.post("/v1/verify", json={"token": token}).status_code == 200
    assert _mgets(db) == before

    unmirrored = make_app(mirror_max_keys=0).test_client()
    for token in [repeated] * 5 + fresh_tokens:
        assert unmirrored.post("/v1/verify", json={"token": token}).status_code == 200
    assert _mgets(db) == before + 10  # one MGET per verification, cached or not


def _mgets(db: redis.Redis) -> int:
    stats = db.info("commandstats").get("cmdstat_mget", {"calls": 0})
    return int(stats["calls"])


def wait_for(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


# user-wide revocation and the admin API ----------------------------------------------------


def test_ending_a_user_ends_sessions_and_refuses_earlier_tokens(
    make_app: Callable[..., Flask], key_pair: KeyPair, admin_keys: tuple[Path, str, str],
    audit_events: list[dict[str, object]],
) -> None:
    client, other = make_app().test_client(), make_app().test_client()
    old = fresh(key_pair, "judy")
    no_iat = sign({"userId": "judy"}, key_pair)
    sessions = [
        client.post("/v1/sessions", json={"token": old}).get_json()["sessionId"] for _ in range(2)
    ]
    for app_client in (client, other):
        assert app_client.post("/v1/verify", json={"token": old}).status_code == 200
    bystander = fresh(key_pair, "kim")

    response = client.delete("/v1/users/judy/sessions", headers=admin_headers(admin_keys))
    assert response.status_code == 200
    body = response.get_json()
    assert (body["userId"], body["sessionsEnded"]) == ("judy", 2)
    cutoff = body["tokensRevokedBefore"]

    for session_id in sessions:
        assert_problem(client.get(f"/v1/sessions/{session_id}"), 404, "session_not_found")
    for app_client in (client, other):
        assert_problem(app_client.post("/v1/verify", json={"token": old}), 401, "token_revoked")
        assert_problem(
            app_client.post("/v1/verify", json={"token": no_iat}), 401, "token_revoked"
        )
    assert_problem(client.post("/v1/sessions", json={"token": old}), 401, "token_revoked")
    assert client.post("/v1/verify", json={"token": bystander}).status_code == 200

    # a token issued after the cut-off works again (iat one second later, within the leeway)
    newer = sign({"userId": "judy", "iat": int(cutoff) + 1}, key_pair)
    assert client.post("/v1/verify", json={"token": newer}).status_code == 200
    assert client.post("/v1/sessions", json={"token": newer}).status_code == 201
    record = client.get("/v1/users/judy", headers=admin_headers(admin_keys)).get_json()
    assert record["tokensRevokedBefore"] == cutoff
    # who did it, to whom: one audit event per admin action, never a key
    assert audit_events == [
        {"event": "user_sessions_ended", "client": "ops", "userId": "judy", "sessionsEnded": 2},
        {"event": "user_looked_up", "client": "ops", "userId": "judy", "found": True},
    ]


def test_admin_endpoints_need_an_admin_key(
    client: FlaskClient, key_pair: KeyPair, admin_keys: tuple[Path, str, str]
) -> None:
    for method, path in (("get", "/v1/users/x"), ("delete", "/v1/users/x/sessions")):
        call = getattr(client, method)
        missing = call(path)
        assert_problem(missing, 401, "unauthorized")
        assert "WWW-Authenticate" in missing.headers
        assert_problem(call(path, headers={"Authorization": "Bearer jwta_wrong"}), 401,
                       "unauthorized")
        assert_problem(call(path, headers={"Authorization": f"Bearer {admin_keys[2]}"}), 403,
                       "forbidden")
    assert_problem(
        client.get("/v1/users/nobody", headers=admin_headers(admin_keys)), 404, "user_not_found"
    )
    client.post("/v1/sessions", json={"token": fresh(key_pair, "lee", isAdmin=True)})
    record = client.get("/v1/users/lee", headers=admin_headers(admin_keys)).get_json()
    assert record["userId"] == "lee"
    assert record["isAdmin"] is True
    assert record["provider"] == "jwt"
    assert abs(record["createdAt"] - time.time()) < 60
    assert record["lastLoginAt"] >= record["createdAt"]
    assert record["tokensRevokedBefore"] is None


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
    client: FlaskClient, key_pair: KeyPair
) -> None:
    assert client.get("/healthz").status_code == 200
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.get_json()["checks"] == {"keys": True, "redis": True}

    client.post("/v1/verify", json={"token": fresh(key_pair)})
    client.post("/v1/verify", json={"token": "garbage"})
    metrics = client.get("/metrics").get_data(as_text=True)
    assert 'verifications_total{result="ok"}' in metrics
    assert 'verifications_total{result="token_malformed"}' in metrics
    assert 'http_requests_total{method="POST",route="/v1/verify",service="verifier"' in metrics

    document = client.get("/openapi.json").get_json()
    assert document["openapi"].startswith("3.1")
    app = client.application
    # Flask's rules, and the routes answered in front of Flask
    rules = [(rule.rule, rule.methods or set()) for rule in app.url_map.iter_rules()
             if rule.endpoint != "static"]
    rules += [(route.label, route.methods) for route in app.extensions["hot_routes"]]
    for rule, methods in rules:
        path = rule.replace("<path:", "<").replace("<", "{").replace(">", "}")
        path = path.replace("{user_id}", "{userId}").replace("{session_id}", "{sessionId}")
        path = path.replace("{forwarded_path}", "{forwardedPath}")
        assert path in document["paths"], path
        # Flask adds HEAD and OPTIONS to every route by itself
        for method in set(methods) - {"HEAD", "OPTIONS"}:
            assert method.lower() in document["paths"][path], (method, path)


# Redis failure modes -----------------------------------------------------------------------


def test_closed_mode_answers_503_while_redis_is_down_and_recovers(
    make_app: Callable[..., Flask],
    key_pair: KeyPair,
    other_key_pair: KeyPair,
    redis_server: RedisServer,
    admin_keys: tuple[Path, str, str],
) -> None:
    client = make_app(redis_failure_mode="closed").test_client()
    token = fresh(key_pair, "mia")
    assert client.post("/v1/verify", json={"token": token}).status_code == 200

    redis_server.kill()
    assert_problem(client.post("/v1/verify", json={"token": token}), 503, "store_unavailable")
    # a token that is bad anyway is still told so
    assert_problem(
        client.post("/v1/verify", json={"token": fresh(other_key_pair)}), 401, "signature_invalid"
    )
    assert_problem(client.post("/v1/sessions", json={"token": token}), 503, "store_unavailable")
    assert_problem(client.get("/readyz"), 503, "not_ready")
    assert client.get("/healthz").status_code == 200

    redis_server.start()
    wait_until(
        lambda: client.post("/v1/verify", json={"token": token}).status_code == 200,
        timeout=10, what="the verifier to use Redis again",
    )
    assert client.get("/readyz").status_code == 200


def test_open_mode_answers_by_signature_and_says_so(
    make_app: Callable[..., Flask],
    key_pair: KeyPair,
    redis_server: RedisServer,
    admin_keys: tuple[Path, str, str],
) -> None:
    client = make_app(redis_failure_mode="open").test_client()
    token = fresh(key_pair, "ned", isAdmin=True)
    session_id = client.post("/v1/sessions", json={"token": token}).get_json()["sessionId"]

    redis_server.kill()
    response = client.post("/v1/verify", json={"token": token})
    assert response.status_code == 200
    assert response.get_json()["revocationChecked"] is False
    assert response.headers["X-Revocation-Checked"] == "false"
    auth = client.get("/v1/auth", headers={"Authorization": f"Bearer {token}"})
    assert auth.status_code == 200
    assert auth.headers["X-Auth-User-Id"] == "ned"
    assert auth.headers["X-Revocation-Checked"] == "false"
    # what cannot work without Redis still says so
    for response in (
        client.post("/v1/sessions", json={"token": token}),
        client.get(f"/v1/sessions/{session_id}"),
        client.get("/v1/auth", headers={"Authorization": f"Bearer {session_id}"}),
        client.delete(f"/v1/sessions/{session_id}"),
        client.post("/v1/revocations", json={"token": token}),
        client.delete("/v1/users/ned/sessions", headers=admin_headers(admin_keys)),
        client.get("/v1/users/ned", headers=admin_headers(admin_keys)),
    ):
        assert_problem(response, 503, "store_unavailable")
    metrics = client.get("/metrics").get_data(as_text=True)
    assert 'verifications_total{result="ok_unchecked"}' in metrics

    redis_server.start()

    def checked_again() -> bool:
        answer = client.post("/v1/verify", json={"token": token})
        return answer.status_code == 200 and answer.get_json()["revocationChecked"] is True

    wait_until(checked_again, timeout=10, what="revocation checks to resume")
    # the session survived the outage: redis persists with AOF
    assert client.get(f"/v1/sessions/{session_id}").status_code == 200


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


def test_a_redis_that_can_lose_revocations_is_reported_at_start(
    key_pair: KeyPair, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = VerifierSettings(public_key_file=str(key_pair.public_path))
    forgetful = RedisServer(tmp_path / "forgetful", durable=False)
    forgetful.start()
    try:
        with caplog.at_level("WARNING", logger="verifier.app"):
            create_app(replace(settings, redis_url=forgetful.url))
    finally:
        forgetful.stop()
    assert "can lose acknowledged revocations" in caplog.text
    assert "appendonly=no" in caplog.text


def test_a_durable_redis_and_an_absent_one_start_without_a_durability_warning(
    key_pair: KeyPair, redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    settings = VerifierSettings(public_key_file=str(key_pair.public_path))
    with caplog.at_level("WARNING", logger="verifier.app"):
        create_app(replace(settings, redis_url=redis_url))
        # nothing listens on port 1: the service still starts, and /readyz reports Redis
        create_app(replace(settings, redis_url="redis://127.0.0.1:1/0"))
    assert "revocations" not in caplog.text


@pytest.mark.parametrize(("url", "shown"), [
    ("redis://:s3cret@cache:6379/0", "redis://***@cache:6379/0"),
    ("rediss://user:s3cret@cache:6380/1", "rediss://***@cache:6380/1"),
    ("redis://cache:6379/0", "redis://cache:6379/0"),
])
def test_redis_urls_in_logs_never_carry_the_password(url: str, shown: str) -> None:
    from verifier.store import _without_password

    assert _without_password(url) == shown
