"""The revocation mirror against a real redis-server: exact while in sync, silent when not.

A lookup answers a Snapshot only when it is sure; otherwise None, and the verifier reads Redis.
The one answer that must never happen is "not revoked" for a key Redis holds.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import pytest
import redis

from tests.procs import RedisServer, wait_until
from verifier import mirror as mirror_module
from verifier.mirror import Mirror, Snapshot

REVOKED = "t:revoked:"
CUTOFF = "t:cutoff:"


@pytest.fixture
def db(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url, socket_timeout=2)
    yield client
    client.close()


@pytest.fixture
def make_mirror(redis_url: str) -> Iterator[Callable[..., Mirror]]:
    made: list[tuple[Mirror, redis.Redis]] = []

    def make(*, max_keys: int = 1000, revoked: str = REVOKED, cutoff: str = CUTOFF) -> Mirror:
        reader = redis.Redis.from_url(redis_url, socket_timeout=1)
        mirror = Mirror(pool=lambda: redis.ConnectionPool.from_url(redis_url, protocol=3,
                                                                 socket_timeout=0.5),
                        revoked_prefix=revoked, cutoff_prefix=cutoff,
                        timeout=0.5, max_keys=max_keys, reader=lambda: reader)
        made.append((mirror, reader))
        return mirror

    yield make
    for mirror, reader in made:
        mirror.stop()
        reader.close()


def in_sync(mirror: Mirror) -> Mirror:
    mirror.lookup(REVOKED + "warm-up", None)  # the first lookup starts the thread
    wait_until(lambda: mirror.synced, timeout=5, what="the mirror to sync")
    return mirror


def settled(mirror: Mirror, key: str, cutoff: str | None = None) -> Snapshot:
    """The mirror's answer once the background thread has settled the key."""
    answers: list[Snapshot] = []

    def answered() -> bool:
        snapshot = mirror.lookup(key, cutoff)
        if snapshot is not None:
            answers.append(snapshot)
        return snapshot is not None

    wait_until(answered, timeout=5, what=f"{key} to settle")
    return answers[-1]


def test_what_redis_held_before_the_sync_is_loaded(
    make_mirror: Callable[..., Mirror], db: redis.Redis
) -> None:
    db.set(REVOKED + "jti:a", "1")
    db.set(CUTOFF + "ann", "1700000000.5")
    db.set("t:session:x", "not mirrored")
    mirror = in_sync(make_mirror())
    assert mirror.lookup(REVOKED + "jti:a", CUTOFF + "ann") == Snapshot(True, 1700000000.5)
    assert mirror.lookup(REVOKED + "jti:b", CUTOFF + "bob") == Snapshot(False, None)


def test_a_fenced_write_is_never_answered_stale(
    make_mirror: Callable[..., Mirror], db: redis.Redis
) -> None:
    mirror = in_sync(make_mirror())
    for n in range(300):
        key = f"{REVOKED}jti:{n}"
        assert mirror.lookup(key, None) == Snapshot(False, None)
        db.set(key, "1")
        db.ping()  # the fence the verifier's own writes end with (Store._fenced)
        # right after the write's acknowledgement: unsure (read Redis) or revoked, never "no"
        assert mirror.lookup(key, None) in (None, Snapshot(True, None))
    assert settled(mirror, f"{REVOKED}jti:299") == Snapshot(True, None)


def test_a_cutoff_that_moves_is_followed(
    make_mirror: Callable[..., Mirror], db: redis.Redis
) -> None:
    mirror = in_sync(make_mirror())
    key = REVOKED + "jti:z"
    db.set(CUTOFF + "cat", "100")
    assert settled(mirror, key, CUTOFF + "cat") == Snapshot(False, 100.0)
    db.set(CUTOFF + "cat", "200")
    db.ping()  # the verifier's fence (Store._fenced)
    assert mirror.lookup(key, CUTOFF + "cat") in (None, Snapshot(False, 200.0))
    assert settled(mirror, key, CUTOFF + "cat") == Snapshot(False, 200.0)
    db.set(CUTOFF + "cat", "garbage")
    assert settled(mirror, key, CUTOFF + "cat").cutoff == float("inf")


def test_an_expired_revocation_settles_as_absent(
    make_mirror: Callable[..., Mirror], db: redis.Redis
) -> None:
    mirror = in_sync(make_mirror())
    db.set(REVOKED + "jti:short", "1", px=200)
    assert settled(mirror, REVOKED + "jti:short") == Snapshot(True, None)

    def gone() -> bool:
        return mirror.lookup(REVOKED + "jti:short", None) == Snapshot(False, None)

    # Redis pushes an invalidation when the key expires; touching it makes expiry certain
    wait_until(lambda: db.exists(REVOKED + "jti:short") == 0 and gone(), timeout=5,
               what="the expiry to reach the mirror")


def test_a_flush_puts_the_mirror_out_of_sync_until_it_reloads(
    make_mirror: Callable[..., Mirror], db: redis.Redis
) -> None:
    db.set(REVOKED + "jti:f", "1")
    mirror = in_sync(make_mirror())
    assert mirror.lookup(REVOKED + "jti:f", None) == Snapshot(True, None)
    db.flushdb()
    # Redis may answer the FLUSHDB before it writes the flush push: for a moment the mirror can
    # still say revoked (the safe side of stale), never "not revoked" before it has reloaded
    wait_until(lambda: mirror.lookup(REVOKED + "jti:f", None) == Snapshot(False, None),
               timeout=5, what="the mirror to reload after the flush")


def test_a_killed_tracking_connection_is_noticed_by_the_next_lookup(
    make_mirror: Callable[..., Mirror], db: redis.Redis
) -> None:
    mirror = in_sync(make_mirror())
    killed = db.client_kill_filter(_type="normal", skipme=True)
    assert killed >= 1
    # a write the mirror can no longer hear about: the lookup must not answer "not revoked"
    db.set(REVOKED + "jti:k", "1")
    assert mirror.lookup(REVOKED + "jti:k", None) is None
    wait_until(lambda: mirror.synced, timeout=5, what="the mirror to track again")
    assert mirror.lookup(REVOKED + "jti:k", None) == Snapshot(True, None)


def test_a_silent_redis_stops_the_mirror_within_its_bound(
    make_mirror: Callable[..., Mirror], db: redis.Redis
) -> None:
    mirror = in_sync(make_mirror())
    pause_ms = int(mirror_module.MAX_SILENCE * 1000) + 1000
    db.execute_command("CLIENT", "PAUSE", pause_ms, "ALL")
    try:
        paused = time.monotonic()
        # no ping is answered while Redis is paused: within MAX_SILENCE plus a beat, the mirror
        # stops answering, for a connection that fails silently is one that misses writes
        wait_until(lambda: mirror.lookup(REVOKED + "jti:s", None) is None,
                   timeout=mirror_module.MAX_SILENCE + 0.5, what="the mirror to distrust itself")
        assert time.monotonic() - paused <= mirror_module.MAX_SILENCE + 0.5
    finally:
        db.execute_command("CLIENT", "UNPAUSE")
    wait_until(lambda: mirror.lookup(REVOKED + "jti:s", None) is not None, timeout=5,
               what="the mirror to trust itself again")


def test_a_restarted_redis_is_reloaded_with_what_it_kept(
    make_mirror: Callable[..., Mirror], redis_server: RedisServer, db: redis.Redis
) -> None:
    mirror = in_sync(make_mirror())
    db.set(REVOKED + "jti:r", "1")
    redis_server.kill()
    # the dead connection is noticed by the lookup itself (asserted while Redis is down: once
    # it is back, the background thread may already have synced again)
    assert mirror.lookup(REVOKED + "jti:r", None) is None
    redis_server.start()
    wait_until(lambda: mirror.synced, timeout=10, what="the mirror to sync after the restart")
    assert mirror.lookup(REVOKED + "jti:r", None) == Snapshot(True, None)


def test_more_keys_than_the_bound_turns_the_mirror_off(
    make_mirror: Callable[..., Mirror], db: redis.Redis
) -> None:
    for n in range(6):
        db.set(f"{REVOKED}jti:{n}", "1")
    mirror = make_mirror(max_keys=5)
    mirror.lookup(REVOKED + "jti:0", None)
    time.sleep(0.5)
    assert not mirror.synced
    assert mirror.lookup(REVOKED + "jti:0", None) is None

    grows = in_sync(make_mirror(max_keys=8))
    for n in range(6, 9):
        db.set(f"{REVOKED}jti:{n}", "1")
    wait_until(lambda: grows.lookup(REVOKED + "jti:0", None) is None and not grows.synced,
               timeout=5, what="the growing mirror to turn itself off")


def test_prefixes_with_glob_characters_load_only_their_own_keys(
    make_mirror: Callable[..., Mirror], db: redis.Redis
) -> None:
    db.set("a*b:revoked:jti:1", "1")
    db.set("aXb:revoked:jti:2", "1")
    mirror = make_mirror(revoked="a*b:revoked:", cutoff="a*b:cutoff:")
    mirror.lookup("a*b:revoked:jti:1", None)
    wait_until(lambda: mirror.synced, timeout=5, what="the mirror to sync")
    assert mirror.lookup("a*b:revoked:jti:1", None) == Snapshot(True, None)
    assert mirror.lookup("a*b:revoked:jti:2", None) == Snapshot(False, None)


def test_lookups_from_many_threads_during_writes_are_never_stale(
    make_mirror: Callable[..., Mirror], db: redis.Redis
) -> None:
    mirror = in_sync(make_mirror())
    stale: list[str] = []
    written: set[str] = set()
    lock = threading.Lock()
    stop = threading.Event()

    def reader() -> None:
        while not stop.is_set():
            with lock:
                keys = list(written)
            for key in keys[-20:]:
                if mirror.lookup(key, None) == Snapshot(False, None):
                    stale.append(key)

    threads = [threading.Thread(target=reader) for _ in range(4)]
    for thread in threads:
        thread.start()
    try:
        for n in range(300):
            key = f"{REVOKED}jti:m{n}"
            db.set(key, "1")
            db.ping()  # the verifier's fence (Store._fenced)
            with lock:
                written.add(key)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=5)
    assert stale == []


def test_stopping_and_starting_again_leaves_one_thread(
    make_mirror: Callable[..., Mirror], db: redis.Redis
) -> None:
    mirror = in_sync(make_mirror())
    for _ in range(5):
        mirror.stop()
        in_sync(mirror)

    def threads() -> int:
        return sum(1 for t in threading.enumerate() if t.name == "revocation-mirror")

    wait_until(lambda: threads() == 1, timeout=2, what="the stopped threads to end")
    db.set(REVOKED + "jti:after", "1")
    assert settled(mirror, REVOKED + "jti:after") == Snapshot(True, None)


def test_a_reply_that_is_no_push_and_no_pong_puts_the_mirror_out_of_sync(
    make_mirror: Callable[..., Mirror],
) -> None:
    """The safety net for a client that would hand pushes back as replies: anything on the
    tracking connection that is neither means the mirror cannot know what it missed."""
    mirror = in_sync(make_mirror())
    mirror._conn.send_command("ECHO", "surprise")  # white box: a reply the mirror never asked for
    wait_until(lambda: mirror.lookup(REVOKED + "jti:e", None) is None or not mirror.synced,
               timeout=2, what="the reply to arrive")
    assert mirror.lookup(REVOKED + "jti:e", None) is None or not mirror.synced
    wait_until(lambda: mirror.synced, timeout=5, what="the mirror to sync again")


def test_every_sync_proves_pushes_arrive_with_a_short_lived_probe_key(
    make_mirror: Callable[..., Mirror], db: redis.Redis
) -> None:
    in_sync(make_mirror())
    probes = db.keys(REVOKED + "probe:*")
    assert len(probes) == 1
    assert 0 < db.pttl(probes[0]) <= mirror_module.PROBE_LIFETIME_MS


def test_probe_keys_are_not_revocations(
    make_mirror: Callable[..., Mirror], db: redis.Redis
) -> None:
    first = in_sync(make_mirror())
    # a second process syncing writes its probe while the first is listening (the first hears
    # it), and finds the first's probe when it loads
    second = in_sync(make_mirror())
    assert second.state() == (True, True, 0)
    # pushes reach the first in order: once a later key has settled there, so has the probe's
    db.set(REVOKED + "jti:real", "1")
    for mirror in (first, second):
        assert settled(mirror, REVOKED + "jti:real").revoked
        assert mirror.state() == (True, True, 1)
