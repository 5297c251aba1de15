"""Sessions, revocation and the admin API of the verifier, through Flask's test client.

Login, lookup and logout; single-token revocation and how long it lasts; the in-process cache
and the revocation mirror; ending every session of a user; the admin key checks. A real
redis-server is behind every app (fixtures in ``conftest.py``).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from pathlib import Path

import redis
from flask import Flask
from flask.testing import FlaskClient

from tests.forge import fresh, sign
from tests.integration.verifier_http import (
    PREFIX,
    admin_headers,
    assert_problem,
    index_key,
    revoked_key,
)
from tests.keypairs import KeyPair
from verifier.store import REVOCATION_MARGIN

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
    session_keys = [key for key in keys if key.startswith(PREFIX + "v2:session:")]
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
    assert db.smembers(index_key("dave")) == set()


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
    ttl = db.ttl(revoked_key("gina", "jti:j-1"))
    assert 600 < ttl <= 600 + REVOCATION_MARGIN + 1

    # a seed-style token never expires, so neither does its revocation (keyed by its hash)
    seed = sign({"userId": "gina", "iat": now}, key_pair)
    assert client.post("/v1/revocations", json={"token": seed}).status_code == 204
    by_hash = db.keys(revoked_key("gina", "sha256:*"))
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
    assert [key for key in db.keys(PREFIX + "v2:revoked:*") if b":probe:" not in key] == []
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
        {"event": "user_sessions_ended", "client": "ops", "userId": "judy", "provider": "jwt",
         "sessionsEnded": 2},
        {"event": "user_looked_up", "client": "ops", "userId": "judy", "found": True},
    ]


def test_admin_endpoints_need_an_admin_key(
    client: FlaskClient, key_pair: KeyPair, admin_keys: tuple[Path, str, str]
) -> None:
    for method, path in (("get", "/v1/users/x"), ("delete", "/v1/users/x/sessions"),
                         ("get", "/v1/users/x/sessions")):
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


def test_an_operator_lists_a_users_live_sessions_by_hash_never_by_id(
    client: FlaskClient, key_pair: KeyPair, admin_keys: tuple[Path, str, str],
    audit_events: list[dict[str, object]],
) -> None:
    headers = admin_headers(admin_keys)
    empty = client.get("/v1/users/mia/sessions", headers=headers)
    assert empty.status_code == 200
    assert empty.get_json() == {"userId": "mia", "provider": "jwt", "sessions": []}

    first = client.post("/v1/sessions", json={"token": fresh(key_pair, "mia")}).get_json()
    second = client.post(
        "/v1/sessions", json={"token": fresh(key_pair, "mia", isAdmin=True)}).get_json()
    client.post("/v1/sessions", json={"token": fresh(key_pair, "ned")})
    listed = client.get("/v1/users/mia/sessions", headers=headers)
    assert listed.status_code == 200
    body = listed.get_json()
    assert (body["userId"], body["provider"]) == ("mia", "jwt")
    hashes = [hashlib.sha256(session["sessionId"].encode()).hexdigest()
              for session in (first, second)]
    # oldest first; a listing never carries a credential
    assert sorted(entry["sessionHash"] for entry in body["sessions"]) == sorted(hashes)
    assert [entry["isAdmin"] for entry in body["sessions"]] == [False, True]
    assert all(entry["expiresAt"] > entry["createdAt"] > 0 for entry in body["sessions"])
    assert first["sessionId"] not in listed.get_data(as_text=True)

    # a logout is gone from the list at once
    client.delete(f"/v1/sessions/{second['sessionId']}")
    after = client.get("/v1/users/mia/sessions", headers=headers).get_json()["sessions"]
    assert [entry["sessionHash"] for entry in after] == [hashes[0]]
    assert audit_events[0] == {"event": "user_sessions_listed", "client": "ops",
                               "userId": "mia", "provider": "jwt", "sessions": 0}
    assert_problem(client.get("/v1/users/mia/sessions?provider=nope", headers=headers),
                   400, "request_invalid")
