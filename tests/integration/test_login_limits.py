"""The login limits (VERIFIER_MAX_SESSIONS_PER_USER, VERIFIER_LOGIN_RATE) against a real Redis.

Both are enforced by the login script itself (``verifier.store``): over the session limit the
user's oldest sessions are ended as their logouts would end them, and a login over the rate is
refused with 429 and writes nothing. Store-level tests pass the login time themselves, so the
sliding window is checked without waiting; the HTTP tests use small limits.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Callable, Iterator

import pytest
import redis
from flask import Flask

from shared.errors import ConfigError
from tests.forge import fresh
from tests.integration.verifier_http import (
    assert_problem,
    index_key,
    logins_key,
    session_key,
    user_tag,
)
from tests.keypairs import KeyPair
from verifier.config import VerifierSettings
from verifier.errors import LoginRateExceeded
from verifier.store import LOGIN_WINDOW, Store

P = "limits:"
SESSION_TTL = 7200


def _store(redis_url: str, **limits: int) -> Store:
    return Store(VerifierSettings(public_key_file="unused", redis_url=redis_url, redis_prefix=P,
                                  session_ttl=SESSION_TTL, mirror_max_keys=0, **limits))


@pytest.fixture
def make_store(redis_url: str) -> Iterator[Callable[..., Store]]:
    made: list[Store] = []

    def build(**limits: int) -> Store:
        made.append(_store(redis_url, **limits))
        return made[-1]

    yield build
    for store in made:
        store.close()


def _hash(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


def _session_id(user: str = "alice") -> str:
    return f"{secrets.token_urlsafe(32)}~{user_tag(user)}"


def _login(store: Store, user: str = "alice", *, now: float = 1000.0,
           session_id: str | None = None) -> str:
    session_id = session_id or _session_id(user)
    session = {"userId": user, "isAdmin": False, "provider": "jwt",
               "createdAt": int(now), "expiresAt": int(now) + SESSION_TTL}
    assert store.create_session(session_id, session, issued_at=None, now=now) is True
    return session_id


def _state(db: redis.Redis) -> dict[str, object]:
    """Every key under the prefix with its value (index and window: members with scores)."""
    state: dict[str, object] = {}
    for raw in db.keys(f"{P}*"):
        key = raw.decode()
        kind = db.type(key)
        if kind == b"string":
            state[key] = db.get(key)
        elif kind == b"zset":
            state[key] = db.zrange(key, 0, -1, withscores=True)
        elif kind == b"set":
            state[key] = db.smembers(key)
        else:
            state[key] = db.hgetall(key)
    return state


# the session limit ----------------------------------------------------------------------------


def test_over_the_session_limit_the_oldest_session_is_ended(
    make_store: Callable[..., Store], db: redis.Redis
) -> None:
    store = make_store(max_sessions_per_user=3, login_rate=0)
    opened = [_login(store, now=1000.0 + n) for n in range(3)]
    bobs = _login(store, "bob", now=1000.0)

    newest = _login(store, now=2000.0)
    assert store.get_session(opened[0]) is None
    assert [store.get_session(s) is not None for s in [*opened[1:], newest]] == [True] * 3
    assert store.get_session(bobs) is not None  # another user is not touched
    index = db.zrange(index_key("alice", P), 0, -1, withscores=True)
    assert index == [(_hash(opened[1]).encode(), 1001.0), (_hash(opened[2]).encode(), 1002.0),
                     (_hash(newest).encode(), 2000.0)]

    # every further login ends the then-oldest one, and the count stays at the limit
    for n in range(4):
        _login(store, now=3000.0 + n)
        assert db.zcard(index_key("alice", P)) == 3
        assert len(db.keys(session_key("alice", "*", P))) == 3
    assert store.get_session(newest) is None


def test_ending_an_old_session_deletes_what_its_logout_deletes(
    make_store: Callable[..., Store], db: redis.Redis
) -> None:
    """A login over the limit leaves Redis as a logout of the oldest session, then the login
    with no limit reached, would: the same keys, values and index entries."""
    oldest, kept, third = _session_id(), _session_id(), _session_id()
    roomy = make_store(max_sessions_per_user=3, login_rate=0)
    _login(roomy, now=1000.0, session_id=oldest)
    _login(roomy, now=1001.0, session_id=kept)
    assert roomy.delete_session(oldest) is True
    _login(roomy, now=1002.0, session_id=third)
    logged_out = _state(db)

    db.flushdb()
    limited = make_store(max_sessions_per_user=2, login_rate=0)
    _login(limited, now=1000.0, session_id=oldest)
    _login(limited, now=1001.0, session_id=kept)
    _login(limited, now=1002.0, session_id=third)
    assert _state(db) == logged_out
    assert session_key("alice", _hash(oldest), P) not in logged_out
    assert logged_out[index_key("alice", P)] == [(_hash(kept).encode(), 1001.0),
                                                 (_hash(third).encode(), 1002.0)]


def test_sessions_that_ended_by_themselves_do_not_count(
    make_store: Callable[..., Store], db: redis.Redis
) -> None:
    store = make_store(max_sessions_per_user=2, login_rate=0)
    gone, live = _login(store, now=1000.0), _login(store, now=1001.0)
    db.delete(session_key("alice", _hash(gone), P))  # as if it had expired
    new = _login(store, now=1002.0)
    assert store.get_session(live) is not None
    assert store.get_session(new) is not None
    assert db.zcard(index_key("alice", P)) == 2


def test_a_set_index_from_before_is_converted_and_its_oldest_ended(
    make_store: Callable[..., Store], db: redis.Redis
) -> None:
    """Layout-2 data written before the limits (or by ``jwt-auth redis migrate``) indexes
    sessions in a plain set: the next login orders it by each session's createdAt."""
    store = make_store(max_sessions_per_user=3, login_rate=0)
    ids = [_session_id() for _ in range(3)]
    for created, session_id in zip((1500, 1000, 1200), ids, strict=True):
        db.set(session_key("alice", _hash(session_id), P), json.dumps(
            {"userId": "alice", "isAdmin": False, "provider": "jwt", "createdAt": created,
             "expiresAt": created + SESSION_TTL}), ex=SESSION_TTL)
        db.sadd(index_key("alice", P), _hash(session_id))
    db.sadd(index_key("alice", P), "0" * 64)  # a session that ended without its index knowing

    newest = _login(store, now=2000.0)
    assert db.type(index_key("alice", P)) == b"zset"
    assert store.get_session(ids[1]) is None  # createdAt 1000: the oldest
    assert db.zrange(index_key("alice", P), 0, -1, withscores=True) == [
        (_hash(ids[2]).encode(), 1200.0), (_hash(ids[0]).encode(), 1500.0),
        (_hash(newest).encode(), 2000.0)]
    assert SESSION_TTL - 5 <= db.ttl(index_key("alice", P)) <= SESSION_TTL


def test_logout_and_user_wide_logout_read_a_set_index_too(
    make_store: Callable[..., Store], db: redis.Redis
) -> None:
    store = make_store()
    ids = [_session_id() for _ in range(2)]
    for session_id in ids:
        db.set(session_key("alice", _hash(session_id), P),
               json.dumps({"userId": "alice", "createdAt": 1000}), ex=SESSION_TTL)
        db.sadd(index_key("alice", P), _hash(session_id))
    assert store.delete_session(ids[0]) is True
    assert db.smembers(index_key("alice", P)) == {_hash(ids[1]).encode()}
    assert store.end_user("alice", 3000.0) == (3000.0, 1)
    assert not db.exists(index_key("alice", P), session_key("alice", _hash(ids[1]), P))


def test_the_session_limit_over_http(
    make_app: Callable[..., Flask], key_pair: KeyPair
) -> None:
    client = make_app(max_sessions_per_user=2).test_client()
    ids = []
    for _ in range(3):
        response = client.post("/v1/sessions", json={"token": fresh(key_pair, "dave")})
        assert response.status_code == 201
        ids.append(response.get_json()["sessionId"])
    assert_problem(client.get(f"/v1/sessions/{ids[0]}"), 404, "session_not_found")
    assert [client.get(f"/v1/sessions/{s}").status_code for s in ids[1:]] == [200, 200]
    assert client.delete(f"/v1/sessions/{ids[0]}").status_code == 204  # still idempotent


def test_a_full_redis_refuses_a_login_at_the_limit_and_ends_nothing(
    make_app: Callable[..., Flask], key_pair: KeyPair, db: redis.Redis
) -> None:
    """The session is written before an old one is ended: Redis refuses a script's first
    write under maxmemory, so a refused login (503, never 500) has changed nothing."""
    client = make_app(max_sessions_per_user=1, mirror_max_keys=0).test_client()
    token = fresh(key_pair, "fay")
    first = client.post("/v1/sessions", json={"token": token}).get_json()["sessionId"]
    used = int(db.info("memory")["used_memory"])
    db.config_set("maxmemory-policy", "noeviction")
    db.config_set("maxmemory", str(used // 2))  # already over it: every write refused
    try:
        with pytest.raises(redis.exceptions.OutOfMemoryError):
            db.set("filler", "x")
        assert_problem(client.post("/v1/sessions", json={"token": token}), 503,
                       "store_unavailable")
        assert client.get(f"/v1/sessions/{first}").status_code == 200
    finally:
        db.config_set("maxmemory", "0")


# the login rate -------------------------------------------------------------------------------


def test_the_rate_refuses_the_login_after_the_limit_and_writes_nothing(
    make_store: Callable[..., Store], db: redis.Redis
) -> None:
    store = make_store(login_rate=3)
    for n in range(3):
        _login(store, now=1000.0 + 10 * n)  # at 1000, 1010, 1020
    before = _state(db)
    with pytest.raises(LoginRateExceeded) as refused:
        store.create_session(_session_id(), {"userId": "alice", "isAdmin": False,
                                              "provider": "jwt", "createdAt": 1030,
                                              "expiresAt": 1030 + SESSION_TTL},
                             issued_at=None, now=1030.0)
    # the window frees when the login at 1000 is a minute old
    assert refused.value.retry_after == 1000 + LOGIN_WINDOW - 1030
    assert refused.value.headers == {"Retry-After": "30"}
    assert _state(db) == before
    # the window slides: at 1060 the first login has left it, at 1061 no second one yet
    _login(store, now=1060.0)
    with pytest.raises(LoginRateExceeded) as again:
        _login(store, now=1061.0)
    assert again.value.retry_after == 1010 + LOGIN_WINDOW - 1061
    # another user has a window of its own
    _login(store, "bob", now=1061.0)
    # the window key holds at most the last minute's logins, and lives a minute
    window = db.zrange(logins_key("alice", P), 0, -1, withscores=True)
    assert [score for _, score in window] == [1010.0, 1020.0, 1060.0]
    assert 0 < db.ttl(logins_key("alice", P)) <= LOGIN_WINDOW


def test_a_rate_of_zero_is_off_and_keeps_no_key(
    make_store: Callable[..., Store], db: redis.Redis
) -> None:
    store = make_store(login_rate=0)
    for _ in range(40):
        _login(store)
    assert not db.exists(logins_key("alice", P))


def test_the_rate_over_http_answers_429_with_retry_after(
    make_app: Callable[..., Flask], key_pair: KeyPair, db: redis.Redis
) -> None:
    client = make_app(login_rate=3).test_client()
    token = fresh(key_pair, "erin")
    for _ in range(3):
        assert client.post("/v1/sessions", json={"token": token}).status_code == 201
    refused = client.post("/v1/sessions", json={"token": token})
    body = assert_problem(refused, 429, "login_rate_exceeded")
    assert body["status"] == 429
    assert body["type"].endswith("/login-rate-exceeded")
    assert "VERIFIER_LOGIN_RATE" in body["detail"]
    assert refused.headers["Retry-After"].isdigit()
    assert 1 <= int(refused.headers["Retry-After"]) <= LOGIN_WINDOW
    assert db.zcard(index_key("erin")) == 3  # the refused login opened no session
    assert 0 < db.ttl(logins_key("erin")) <= LOGIN_WINDOW
    # another user is not affected, and the refused user's token still verifies
    assert client.post("/v1/sessions", json={"token": fresh(key_pair, "frank")}).status_code \
        == 201
    assert client.post("/v1/verify", json={"token": token}).status_code == 200


def test_the_api_description_shows_the_429(make_app: Callable[..., Flask]) -> None:
    document = make_app().test_client().get("/openapi.json").get_json()
    responses = document["paths"]["/v1/sessions"]["post"]["responses"]
    schema = responses["429"]["content"]["application/problem+json"]["schema"]
    assert schema["allOf"][1]["properties"]["code"]["enum"] == ["login_rate_exceeded"]
    assert "Retry-After" in responses["429"]["headers"]


# configuration --------------------------------------------------------------------------------


def test_the_defaults() -> None:
    settings = VerifierSettings.from_env({"VERIFIER_PUBLIC_KEY_FILE": "unused"})
    assert (settings.max_sessions_per_user, settings.login_rate) == (100, 30)
    off = VerifierSettings.from_env({"VERIFIER_PUBLIC_KEY_FILE": "unused",
                                     "VERIFIER_LOGIN_RATE": "0",
                                     "VERIFIER_MAX_SESSIONS_PER_USER": "1"})
    assert (off.max_sessions_per_user, off.login_rate) == (1, 0)


@pytest.mark.parametrize(("variable", "value"), [
    ("VERIFIER_MAX_SESSIONS_PER_USER", "0"),
    ("VERIFIER_MAX_SESSIONS_PER_USER", "-5"),
    ("VERIFIER_MAX_SESSIONS_PER_USER", "ten"),
    ("VERIFIER_MAX_SESSIONS_PER_USER", "2.5"),
    ("VERIFIER_MAX_SESSIONS_PER_USER", "100000"),
    ("VERIFIER_LOGIN_RATE", "-1"),
    ("VERIFIER_LOGIN_RATE", "30/min"),
    ("VERIFIER_LOGIN_RATE", "100000"),
])
def test_a_bad_limit_stops_the_start_with_one_line(variable: str, value: str) -> None:
    with pytest.raises(ConfigError) as refused:
        VerifierSettings.from_env({"VERIFIER_PUBLIC_KEY_FILE": "unused", variable: value})
    message = str(refused.value)
    assert message.startswith(f"{variable}: ")
    assert "\n" not in message
    assert refused.value.variable == variable
