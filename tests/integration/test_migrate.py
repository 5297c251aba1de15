"""Upgrading a Redis an earlier verifier wrote (key layout 1) with ``jwt-auth redis migrate``.

A layout-1 data set is written key by key as that verifier left it (names, values, lifetimes).
The new verifier must refuse to start on it rather than ignore its revocations; after the
migration every revocation, cut-off, session and user record still does what it did, the old
session ids included, and a second run finds nothing left to move.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import redis
from flask import Flask

from tests.forge import sign
from tests.integration.verifier_http import admin_headers, assert_problem, cutoff_key
from tests.keypairs import KeyPair
from tests.procs import assert_one_line_error, free_port, run_cli, wait_until
from verifier.config import VerifierSettings
from verifier.errors import StoreUnavailable
from verifier.layout import KeyLayout
from verifier.migrate import Migration
from verifier.redisconn import Connector, RedisSettings
from verifier.store import LayoutError, Store

P = "jwtauth:"
DAY = 24 * 3600


def _hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


class V1Data:
    """What layout 1 held for a small user base: revocations, a cut-off, sessions, records."""

    def __init__(self, db: redis.Redis, key_pair: KeyPair) -> None:
        now = int(time.time())
        self.revoked = sign({"userId": "alice", "iat": now, "exp": now + 600, "jti": "j-rev"},
                            key_pair)
        self.revoked_seed = sign({"userId": "seed", "iat": now - 5}, key_pair)  # no jti, no exp
        self.before_cutoff = sign({"userId": "carol", "iat": now - 100, "exp": now + 600},
                                  key_pair)
        self.after_cutoff = sign({"userId": "carol", "iat": now - 10, "exp": now + 600},
                                 key_pair)
        self.good = sign({"userId": "alice", "iat": now, "exp": now + 600, "jti": "j-good"},
                         key_pair)
        self.session_id = secrets.token_urlsafe(32)  # layout 1: 43 characters, no tag
        session = {"userId": "dave", "isAdmin": True, "provider": "jwt",
                   "createdAt": now - 60, "expiresAt": now - 60 + 30 * DAY}

        db.set(f"{P}revoked:jti:j-rev", "1", ex=600 + 3600)
        db.set(f"{P}revoked:sha256:{_hash(self.revoked_seed)}", "1")
        db.set(f"{P}revoked:probe:0123456789abcdef", "1", px=2000)
        db.set(f"{P}cutoff:carol", repr(now - 50.5))
        db.set(f"{P}session:{_hash(self.session_id)}", json.dumps(session), ex=30 * DAY - 60)
        db.sadd(f"{P}user-sessions:dave", _hash(self.session_id))
        db.expire(f"{P}user-sessions:dave", 30 * DAY - 60)
        db.hset(f"{P}user:dave", mapping={"userId": "dave", "isAdmin": "true",
                                          "provider": "jwt", "createdAt": repr(now - 900.0),
                                          "lastLoginAt": repr(now - 60.0)})
        db.set("another-app:setting", "kept")
        self.cutoff = now - 50.5


def _names(db: redis.Redis, pattern: str) -> list[str]:
    return sorted(key.decode() if isinstance(key, bytes) else key for key in db.keys(pattern))


def _migrate(redis_url: str, *args: str) -> str:
    result = run_cli("redis", "migrate", *args, env={"REDIS_URL": redis_url})
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_the_verifier_refuses_to_start_on_layout_1_data(
    make_app: Callable[..., Flask], db: redis.Redis, key_pair: KeyPair
) -> None:
    V1Data(db, key_pair)
    with pytest.raises(LayoutError, match=r"run `jwt-auth redis migrate` once"):
        make_app()
    assert not db.exists(f"{P}layout")  # nothing marked: the data still reads as layout 1


def test_migrate_keeps_every_revocation_cutoff_session_and_record(
    make_app: Callable[..., Flask], db: redis.Redis, key_pair: KeyPair, redis_url: str,
    admin_keys: tuple[Path, str, str],
) -> None:
    v1 = V1Data(db, key_pair)
    before = {key: db.pttl(key) for key in _names(db, f"{P}*")}

    assert _migrate(redis_url, "--dry-run") == (
        "layout 2: would move 1 cut-offs, 1 probes, 2 revocations, 1 session indexes rebuilt, "
        "1 sessions, 1 user records"
    )
    assert _names(db, f"{P}*") == sorted(before)

    assert _migrate(redis_url) == (
        "layout 2: moved 1 cut-offs, 1 probes, 2 revocations, 1 session indexes rebuilt, "
        "1 sessions, 1 user records"
    )
    # no layout-1 key is left, and nobody else's key was touched
    assert [key for key in _names(db, f"{P}*") if not key.startswith(f"{P}v2:")] == [
        f"{P}layout"
    ]
    assert db.hgetall(f"{P}layout") == {b"version": b"2", b"legacy-revocations": b"1"}
    assert db.get("another-app:setting") == b"kept"
    # lifetimes carried over: the revocation still ends an hour after its token
    legacy = f"{P}v2:revoked:{{legacy}}:jti:j-rev"
    assert before[f"{P}revoked:jti:j-rev"] - 5000 < db.pttl(legacy) <= (
        before[f"{P}revoked:jti:j-rev"]
    )
    assert db.pttl(f"{P}v2:revoked:{{legacy}}:sha256:{_hash(v1.revoked_seed)}") == -1
    assert db.get(cutoff_key("carol")) == repr(v1.cutoff).encode()

    client = make_app().test_client()
    # revocations still hold, under whichever name the token is looked up
    for token in (v1.revoked, v1.revoked_seed):
        assert_problem(client.post("/v1/verify", json={"token": token}), 401, "token_revoked")
    assert client.post("/v1/verify", json={"token": v1.good}).status_code == 200
    # the cut-off still refuses tokens issued before it, and only those
    assert_problem(client.post("/v1/verify", json={"token": v1.before_cutoff}), 401,
                   "token_revoked")
    assert client.post("/v1/verify", json={"token": v1.after_cutoff}).status_code == 200
    # the old session id still works, everywhere a session id is accepted
    found = client.get(f"/v1/sessions/{v1.session_id}")
    assert found.status_code == 200
    assert found.get_json()["userId"] == "dave"
    forwarded = client.get("/v1/auth", headers={"Authorization": f"Bearer {v1.session_id}"})
    assert forwarded.headers["X-Auth-User-Id"] == "dave"
    user = client.get("/v1/users/dave", headers=admin_headers(admin_keys))
    assert (user.get_json()["isAdmin"], user.get_json()["provider"]) == (True, "jwt")
    # a user-wide logout ends the migrated session with the new ones
    new_session = client.post("/v1/sessions", json={"token": sign(
        {"userId": "dave", "iat": int(time.time()), "exp": int(time.time()) + 600}, key_pair,
    )}).get_json()["sessionId"]
    ended = client.delete("/v1/users/dave/sessions", headers=admin_headers(admin_keys))
    assert ended.get_json()["sessionsEnded"] == 2
    for session_id in (v1.session_id, new_session):
        assert_problem(client.get(f"/v1/sessions/{session_id}"), 404, "session_not_found")

    # a second run has nothing left to do
    assert _migrate(redis_url) == "layout 2: moved no keys"


def test_an_old_session_id_logs_out_and_leaves_no_pointer(
    make_app: Callable[..., Flask], db: redis.Redis, key_pair: KeyPair, redis_url: str
) -> None:
    v1 = V1Data(db, key_pair)
    _migrate(redis_url)
    pointer = f"{P}v2:legacy-session:{_hash(v1.session_id)}"
    assert db.exists(pointer)
    client = make_app().test_client()
    assert client.delete(f"/v1/sessions/{v1.session_id}").status_code == 204
    assert_problem(client.get(f"/v1/sessions/{v1.session_id}"), 404, "session_not_found")
    assert not db.exists(pointer)
    assert db.smembers(f"{P}v2:sessions:{{{_hash('dave')[:8]}}}:dave") == set()


def test_a_redis_written_by_a_later_layout_is_refused(
    make_app: Callable[..., Flask], db: redis.Redis
) -> None:
    db.hset(f"{P}layout", mapping={"version": "3"})
    with pytest.raises(LayoutError, match="layout 3"):
        make_app()


def test_migrate_reports_an_unreachable_redis_in_one_line() -> None:
    result = run_cli("redis", "migrate", env={"REDIS_URL": "redis://127.0.0.1:1/0"})
    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "nothing is lost, run it again" in lines[0]


def test_serve_on_layout_1_data_stops_with_one_line(
    db: redis.Redis, key_pair: KeyPair, redis_url: str
) -> None:
    V1Data(db, key_pair)
    result = run_cli("serve", "verifier", "--bind", f"127.0.0.1:{free_port()}", env={
        "VERIFIER_PUBLIC_KEY_FILE": str(key_pair.public_path), "REDIS_URL": redis_url,
    })
    assert result.returncode == 3
    assert_one_line_error(result, "run `jwt-auth redis migrate` once")


def test_a_migration_stopped_after_the_revocations_still_leaves_them_checked(
    db: redis.Redis, key_pair: KeyPair, redis_url: str, make_app: Callable[..., Flask]
) -> None:
    """The run stops once the revocations moved (as a kill would); the next run finds none
    left to move, yet the verifier must still look them up."""
    v1 = V1Data(db, key_pair)
    migration = Migration(Connector(RedisSettings(url=redis_url)), KeyLayout(P), dry_run=False)
    for key in list(migration._scan("revoked:")):  # white box: the first kind of a run
        migration._move("revoked:", key)
    migration.connector.close()
    assert _migrate(redis_url).startswith("layout 2: moved 1 cut-offs")  # no revocations left
    assert db.hget(f"{P}layout", "legacy-revocations") == b"1"
    client = make_app().test_client()
    for token in (v1.revoked, v1.revoked_seed):
        assert_problem(client.post("/v1/verify", json={"token": token}), 401, "token_revoked")


def test_a_process_that_started_without_redis_checks_the_layout_before_its_mirror(
    db: redis.Redis, key_pair: KeyPair, redis_url: str
) -> None:
    """A store whose start-up check could not run (Redis was away) meets layout-1 data: its
    first lookup refuses to answer, from Redis or from its mirror, instead of ignoring it."""
    V1Data(db, key_pair)
    store = Store(VerifierSettings(public_key="unused", redis_url=redis_url))
    mirror = store.mirror
    assert mirror is not None
    try:
        mirror.lookup("any", None)  # starts its thread, as a worker's first request would
        wait_until(lambda: mirror.synced, timeout=10, what="the mirror to sync")
        with pytest.raises(StoreUnavailable, match="jwt-auth redis migrate"):
            store.lookup("jti:j-rev", "alice")
    finally:
        store.close()
