"""POST /v1/revocations with an admin key and ``{"jti", "userId", "expiresAt"}``: revoking a
token one does not hold (the issuer's admin-token audit line names its jti)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import redis

from tests.forge import fresh
from tests.integration.verifier_http import admin_headers, assert_problem, revoked_key


def _revoke(client: Any, body: dict[str, Any], headers: dict[str, str] | None = None) -> Any:
    return client.post("/v1/revocations", json=body, headers=headers or {})


def test_an_admin_revokes_a_token_by_its_jti(
    client: Any, key_pair: Any, admin_keys: tuple[Path, str, str], db: redis.Redis,
    audit_events: list[dict[str, object]],
) -> None:
    expires = int(time.time()) + 600
    token = fresh(key_pair, "eve", jti="admin-jti-1", exp=expires)
    assert client.post("/v1/verify", json={"token": token}).status_code == 200
    answer = _revoke(client, {"jti": "admin-jti-1", "userId": "eve", "expiresAt": expires},
                     admin_headers(admin_keys))
    assert answer.status_code == 204, answer.get_json()
    assert_problem(client.post("/v1/verify", json={"token": token}), 401, "token_revoked")
    # kept until the token's exp plus the largest leeway, as a revocation by token is
    assert 3600 < db.ttl(revoked_key("eve", "jti:admin-jti-1")) <= 600 + 3600
    assert audit_events[-1] == {
        "event": "token_revoked_by_jti", "client": "ops", "jti": "admin-jti-1",
        "userId": "eve", "provider": None, "expiresAt": expires, "written": True}


def test_a_token_without_exp_is_revoked_for_good_and_an_expired_one_needs_nothing(
    client: Any, key_pair: Any, admin_keys: tuple[Path, str, str], db: redis.Redis,
) -> None:
    headers = admin_headers(admin_keys)
    assert _revoke(client, {"jti": "forever", "userId": "fay", "expiresAt": None},
                   headers).status_code == 204
    assert db.ttl(revoked_key("fay", "jti:forever")) == -1
    long_gone = time.time() - 2 * 3600
    assert _revoke(client, {"jti": "gone", "userId": "fay", "expiresAt": long_gone},
                   headers).status_code == 204
    assert not db.exists(revoked_key("fay", "jti:gone"))


def test_revoking_by_jti_needs_an_admin_key_and_a_whole_body(
    client: Any, admin_keys: tuple[Path, str, str]
) -> None:
    body = {"jti": "j", "userId": "gus", "expiresAt": None}
    assert_problem(_revoke(client, body), 401, "unauthorized")
    assert_problem(_revoke(client, body, {"Authorization": f"Bearer {admin_keys[2]}"}), 403,
                   "forbidden")
    headers = admin_headers(admin_keys)
    for broken, field in (({"jti": "j", "expiresAt": None}, "userId"),
                          ({"jti": "j", "userId": "gus"}, "expiresAt"),
                          ({"jti": "x" * 129, "userId": "gus", "expiresAt": None}, "jti"),
                          ({"jti": "j\x00", "userId": "gus", "expiresAt": None}, "jti"),
                          ({"jti": "j", "userId": "g\nus", "expiresAt": None}, None),
                          ({"jti": "j", "userId": "gus", "expiresAt": "soon"}, "expiresAt")):
        refused = _revoke(client, broken, headers)
        problem = assert_problem(refused, 400, "request_invalid")
        if field is not None:
            assert problem["field"] == field, problem


def test_an_expiry_beyond_what_redis_takes_is_a_revocation_for_good(
    client: Any, key_pair: Any, admin_keys: tuple[Path, str, str], db: redis.Redis,
) -> None:
    # Redis refuses such an expiry; that must not read as an outage (503) to be retried forever
    answer = _revoke(client, {"jti": "far", "userId": "gus", "expiresAt": 1e300},
                     admin_headers(admin_keys))
    assert answer.status_code == 204, answer.get_json()
    assert db.ttl(revoked_key("gus", "jti:far")) == -1
    # the same for a token that claims such an exp, revoked by the token itself
    token = fresh(key_pair, "gus", exp=10**17)
    assert client.post("/v1/revocations", json={"token": token}).status_code == 204
    assert_problem(client.post("/v1/verify", json={"token": token}), 401, "token_revoked")
