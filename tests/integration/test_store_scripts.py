"""The verifier store's writes against a real redis-server, read back key by key.

``verifier.store`` writes with three Lua scripts (login, logout, user-wide logout) and one plain
``SET ... EX`` (revocation). Each test calls the ``Store`` method, then looks at the keys Redis
holds: their names, values and lifetimes (``TTL``/``PTTL``), what a repeated call changes, and
that what one script does happens as a whole. The mirror is off, so the only keys in Redis are
the ones the store wrote; an unrelated key shows that nothing outside the prefix is touched.
The login limits the login script enforces have tests of their own (test_login_limits.py).
"""

from __future__ import annotations

import hashlib
import json
import random
import secrets
import threading
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from tests.integration.verifier_http import (
    cutoff_key,
    index_key,
    logins_key,
    revoked_key,
    session_key,
    user_key,
    user_tag,
)
from tests.procs import wait_until
from verifier.config import VerifierSettings
from verifier.mirror import Snapshot
from verifier.store import Store

P = "test-app:"
SESSION_TTL = 7200
RACE_ROUNDS = 200
FOREIGN = b"another-app:setting"


@pytest.fixture
def store(redis_url: str, db: redis.Redis) -> Iterator[Store]:
    db.set(FOREIGN, "kept")  # someone else's key in the same Redis
    made = Store(VerifierSettings(public_key_file="unused", redis_url=redis_url,
                                  redis_prefix=P, session_ttl=SESSION_TTL, mirror_max_keys=0))
    yield made
    made.close()
    assert db.get(FOREIGN) == b"kept"


def _hash(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


def _session_key(user: str, session_hash: str) -> str:
    return session_key(user, session_hash, P)


def _index_key(user: str) -> str:
    return index_key(user, P)


def _logins_key(user: str) -> str:
    return logins_key(user, P)


def _user_key(user: str) -> str:
    return user_key(user, P)


def _cutoff_key(user: str) -> str:
    return cutoff_key(user, P)


def _revoked_key(user: str, rev_id: str) -> str:
    return revoked_key(user, rev_id, P)


def _session_id(user: str = "alice") -> str:
    """An id as the verifier makes them: 43 random characters, "~", the user's tag."""
    return f"{secrets.token_urlsafe(32)}~{user_tag(user)}"


def _keys(db: redis.Redis) -> set[str]:
    # the layout marker is written once by the store's first command (test_store.py checks it)
    return {key.decode() for key in db.keys("*")} - {FOREIGN.decode(), f"{P}layout"}


def _dump(db: redis.Redis) -> dict[str, Any]:
    """Every key of ours with its value, to compare the whole state before and after."""
    state: dict[str, Any] = {}
    for key in sorted(_keys(db)):
        kind = db.type(key)
        if kind == b"string":
            state[key] = db.get(key)
        elif kind in (b"set", b"zset"):  # the session index was a set before the login limits
            state[key] = db.smembers(key) if kind == b"set" else set(db.zrange(key, 0, -1))
        elif kind == b"hash":
            state[key] = db.hgetall(key)
        else:
            raise AssertionError(f"{key} is a {kind!r}")
    return state


def _login(
    store: Store, session_id: str, user: str = "alice", *, admin: bool = False,
    provider: str = "jwt", issued_at: float | None = None, now: float = 1000.0,
) -> bool:
    session = {"userId": user, "isAdmin": admin, "provider": provider,
               "createdAt": int(now), "expiresAt": int(now) + SESSION_TTL}
    return store.create_session(session_id, session, issued_at=issued_at, now=now)


def _expire_now(db: redis.Redis, key: str) -> None:
    """Let Redis expire ``key`` the way a session runs out."""
    assert db.pexpire(key, 1)
    wait_until(lambda: db.exists(key) == 0, timeout=5, what=f"{key} to expire")


# login ---------------------------------------------------------------------------------------


def test_login_writes_the_session_its_user_index_and_the_user_record(
    store: Store, db: redis.Redis
) -> None:
    session_id = _session_id()
    assert _login(store, session_id, "alice", admin=True, issued_at=990.0, now=1000.0) is True

    digest = _hash(session_id)
    session_key, index_key, user_key, logins_key = (
        _session_key("alice", digest), _index_key("alice"), _user_key("alice"),
        _logins_key("alice"),
    )
    assert _keys(db) == {session_key, index_key, user_key, logins_key}
    assert json.loads(db.get(session_key) or b"") == {
        "userId": "alice", "isAdmin": True, "provider": "jwt",
        "createdAt": 1000, "expiresAt": 1000 + SESSION_TTL,
    }
    # the index and the login rate's window: the session hash, scored by its creation time
    assert db.zrange(index_key, 0, -1, withscores=True) == [(digest.encode(), 1000.0)]
    assert db.zrange(logins_key, 0, -1, withscores=True) == [(digest.encode(), 1000.0)]
    assert db.hgetall(user_key) == {
        b"userId": b"alice", b"isAdmin": b"true", b"provider": b"jwt",
        b"createdAt": b"1000.0", b"lastLoginAt": b"1000.0",
    }
    # the session and the index live VERIFIER_SESSION_TTL; the user record is kept
    assert SESSION_TTL - 5 <= db.ttl(session_key) <= SESSION_TTL
    assert SESSION_TTL - 5 <= db.ttl(index_key) <= SESSION_TTL
    assert db.ttl(user_key) == -1
    assert 0 < db.ttl(logins_key) <= 60
    # the session id is a bearer credential: Redis holds only its hash
    for key, value in _dump(db).items():
        assert session_id not in key
        assert session_id not in repr(value)


def test_a_second_login_keeps_created_at_updates_the_rest_and_extends_the_index(
    store: Store, db: redis.Redis
) -> None:
    first, second = _session_id(), _session_id()
    assert _login(store, first, admin=True, now=1000.0)
    db.expire(_index_key("alice"), 60)
    assert _login(store, second, admin=False, provider="corp-sso", now=2000.0)

    assert db.hgetall(_user_key("alice")) == {
        b"userId": b"alice", b"isAdmin": b"false", b"provider": b"corp-sso",
        b"createdAt": b"1000.0", b"lastLoginAt": b"2000.0",
    }
    assert set(db.zrange(_index_key("alice"), 0, -1)) == {_hash(first).encode(),
                                                          _hash(second).encode()}
    assert db.ttl(_index_key("alice")) > SESSION_TTL - 5  # from the latest login
    assert db.exists(_session_key("alice", _hash(first)), _session_key("alice", _hash(second))) == 2


def test_login_drops_index_entries_of_sessions_that_expired(
    store: Store, db: redis.Redis
) -> None:
    gone, live, new = _session_id(), _session_id(), _session_id()
    assert _login(store, gone)
    assert _login(store, live)
    _expire_now(db, _session_key("alice", _hash(gone)))
    assert _login(store, new)
    assert set(db.zrange(_index_key("alice"), 0, -1)) == {_hash(live).encode(),
                                                          _hash(new).encode()}


def test_a_cutoff_refuses_logins_issued_up_to_it_and_they_write_nothing(
    store: Store, db: redis.Redis
) -> None:
    db.set(_cutoff_key("alice"), "1000.0")  # as a user-wide logout at t=1000 leaves it
    before = _dump(db)
    # issued before or at the cut-off, or with no iat to prove otherwise
    for issued_at in (999.0, 1000.0, None):
        assert _login(store, _session_id(), issued_at=issued_at, now=1500.0) is False
        assert _dump(db) == before  # no session, no index, no user record
    assert _login(store, _session_id(), issued_at=1000.5, now=1500.0) is True
    assert db.exists(_user_key("alice"), _index_key("alice")) == 2
    # another user's logins are not affected by alice's cut-off
    assert _login(store, _session_id("bob"), "bob", issued_at=None) is True


# logout --------------------------------------------------------------------------------------


def test_logout_deletes_that_session_and_its_index_entry_only(
    store: Store, db: redis.Redis
) -> None:
    ended, kept, bobs = _session_id(), _session_id(), _session_id("bob")
    assert _login(store, ended)
    assert _login(store, kept)
    assert _login(store, bobs, "bob")
    before = _dump(db)

    assert store.delete_session(ended) is True
    after = _dump(db)
    assert _session_key("alice", _hash(ended)) not in after
    assert after[_index_key("alice")] == {_hash(kept).encode()}
    # everything else as it was: the other sessions, bob's index, both user records
    del before[_session_key("alice", _hash(ended))]
    before[_index_key("alice")] = {_hash(kept).encode()}
    assert after == before

    # a second logout of the same session finds nothing and changes nothing
    assert store.delete_session(ended) is False
    assert _dump(db) == after
    assert store.get_session(kept) is not None


@pytest.mark.parametrize("stored", [b"not json", b'{"userId": 5}', b"[]", b'"alice"'])
def test_logout_still_deletes_a_damaged_session(
    store: Store, db: redis.Redis, stored: bytes
) -> None:
    session_id = _session_id()
    db.set(_session_key("alice", _hash(session_id)), stored)
    assert store.delete_session(session_id) is True
    assert _keys(db) == set()


# user-wide logout ----------------------------------------------------------------------------


def test_a_user_wide_logout_sets_a_permanent_cutoff_and_ends_every_session(
    store: Store, db: redis.Redis
) -> None:
    alices = [_session_id(), _session_id()]
    bobs = _session_id("bob")
    for session_id in alices:
        assert _login(store, session_id, issued_at=900.0)
    assert _login(store, bobs, "bob")

    assert store.end_user("alice", 5000.25) == (5000.25, 2)

    assert db.get(_cutoff_key("alice")) == b"5000.25"
    assert db.ttl(_cutoff_key("alice")) == -1
    assert _keys(db) == {
        _cutoff_key("alice"), _user_key("alice"),  # the user record stays
        _session_key("bob", _hash(bobs)), _index_key("bob"), _user_key("bob"),
        _logins_key("alice"), _logins_key("bob"),  # the login rate's windows end by themselves
    }
    assert store.lookup("jti:any", "alice") == Snapshot(False, 5000.25)
    assert store.lookup("jti:any", "bob") == Snapshot(False, None)


def test_the_cutoff_only_moves_forward_and_repeating_a_logout_changes_nothing(
    store: Store, db: redis.Redis
) -> None:
    assert store.end_user("alice", 2000.0) == (2000.0, 0)
    # a later call with an earlier time (another verifier's clock) keeps the later cut-off
    assert store.end_user("alice", 1500.0) == (2000.0, 0)
    assert db.get(_cutoff_key("alice")) == b"2000.0"
    assert store.end_user("alice", 2000.0) == (2000.0, 0)
    assert _keys(db) == {_cutoff_key("alice")}
    assert store.end_user("alice", 3000.5) == (3000.5, 0)
    assert db.get(_cutoff_key("alice")) == b"3000.5"


def test_a_user_wide_logout_counts_only_sessions_that_still_exist(
    store: Store, db: redis.Redis
) -> None:
    expired, live = _session_id(), _session_id()
    assert _login(store, expired)
    assert _login(store, live)
    _expire_now(db, _session_key("alice", _hash(expired)))
    assert store.end_user("alice", 3000.0) == (3000.0, 1)
    assert not db.exists(_session_key("alice", _hash(live)), _index_key("alice"))


def test_a_user_wide_logout_replaces_a_damaged_cutoff(store: Store, db: redis.Redis) -> None:
    db.set(_cutoff_key("alice"), "garbage")
    # unreadable: every token of the user is refused, whatever its iat
    assert store.lookup("jti:any", "alice").cutoff == float("inf")
    assert store.end_user("alice", 3000.0) == (3000.0, 0)
    assert db.get(_cutoff_key("alice")) == b"3000.0"
    assert _login(store, _session_id(), issued_at=3001.0, now=3002.0) is True


def test_logins_racing_user_wide_logouts_never_leave_a_session_behind(
    redis_url: str, store: Store, db: redis.Redis
) -> None:
    """The login script checks the cut-off and registers the session in one step, so every
    login is either refused by the cut-off or registered in time to be ended by it.

    Another Store (another verifier process) logs users in without pause while this one ends
    each user's sessions at a random moment, a couple of hundred times over.
    """
    other = Store(VerifierSettings(public_key_file="unused", redis_url=redis_url,
                                   redis_prefix=P, session_ttl=SESSION_TTL, mirror_max_keys=0,
                                   login_rate=0, max_sessions_per_user=10_000))
    # logins without pause: neither login limit may end or refuse one
    current = ["user-0"]
    outcomes: list[tuple[str, bool]] = []
    stop = threading.Event()

    def log_in_repeatedly() -> None:
        while not stop.is_set():
            user = current[0]
            outcomes.append((user, _login(other, _session_id(user), user, issued_at=1000.0)))

    rng = random.Random(20261129)  # noqa: S311 - reproducible timing, not a secret
    ended: dict[str, int] = {}
    worker = threading.Thread(target=log_in_repeatedly)
    worker.start()
    try:
        for n in range(RACE_ROUNDS):
            user = current[0] = f"user-{n}"
            time.sleep(rng.uniform(0, 0.003))
            cutoff, ended[user] = store.end_user(user, 1000.5)
            assert cutoff == 1000.5
    finally:
        stop.set()
        worker.join(timeout=10)
        other.close()

    accepted = Counter(user for user, ok in outcomes if ok)
    refused = sum(1 for _, ok in outcomes if not ok)
    # both sides happened many times: the logouts did land among the logins
    assert sum(accepted.values()) > RACE_ROUNDS // 2
    assert refused > RACE_ROUNDS // 4
    # every session opened before its user's cut-off was ended by it, and none remains
    assert ended == {user: accepted[user] for user in ended}
    assert {key for key in _keys(db) if key.startswith(f"{P}v2:session:")} == set()
    assert {key for key in _keys(db) if key.startswith(f"{P}v2:sessions:")} == set()


# revocation (a plain SET with EX, not a script) ------------------------------------------------


def test_a_revocation_lives_for_its_ttl_or_for_good(store: Store, db: redis.Redis) -> None:
    store.revoke("jti:abc", "alice", 600)
    store.revoke("sha256:" + "0" * 64, "alice", None)  # a token without exp
    by_jti, by_hash = _revoked_key("alice", "jti:abc"), _revoked_key("alice", "sha256:" + "0" * 64)
    assert _keys(db) == {by_jti, by_hash}
    assert db.get(by_jti) == b"1"
    assert 595_000 < db.pttl(by_jti) <= 600_000
    assert db.ttl(by_hash) == -1
    assert store.lookup("jti:abc", "alice") == Snapshot(True, None)
    assert store.lookup("sha256:" + "0" * 64, "alice") == Snapshot(True, None)
    assert store.lookup("jti:other", "alice") == Snapshot(False, None)
    # a revocation is filed under its token's user: another user's token of that jti is not it
    assert store.lookup("jti:abc", "bob") == Snapshot(False, None)

    # revoking again leaves one key, still revoked
    store.revoke("jti:abc", "alice", 600)
    assert _keys(db) == {by_jti, by_hash}
    assert store.lookup("jti:abc", "alice") == Snapshot(True, None)
