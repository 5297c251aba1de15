"""The verifier's Redis store against a real redis-server: its breaker."""

from __future__ import annotations

import time
from typing import Any

import pytest
import redis

from verifier.config import VerifierSettings
from verifier.errors import StoreUnavailable
from verifier.mirror import Snapshot
from verifier.store import Store


def test_an_open_breaker_lets_one_probe_through_and_closes_when_it_succeeds(
    redis_url: str,
) -> None:
    """Half-open: while the breaker is open, requests fail fast, except one probe every
    PROBE_INTERVAL; a probe that reaches Redis closes the breaker for everyone."""
    store = Store(VerifierSettings(public_key_file="unused", redis_url=redis_url,
                                   mirror_max_keys=0))
    try:
        assert store.lookup("jti:x", "u") == Snapshot(False, None)
        breaker = store._breakers["redis"]  # white box: as after a failure
        breaker.down_until = time.monotonic() + 60
        breaker.next_probe = time.monotonic() + 60
        with pytest.raises(StoreUnavailable):  # no probe due: fail fast, Redis untouched
            store.lookup("jti:x", "u")
        breaker.next_probe = 0.0
        assert store.lookup("jti:x", "u") == Snapshot(False, None)  # the probe, and it worked
        assert breaker.down_until == 0.0
        assert store.lookup("jti:x", "u") == Snapshot(False, None)
    finally:
        store.close()



def _fence_after(monitor: Any, write: str, marker: str) -> None:
    """MONITOR shows ``write`` (a command holding ``marker``), then a PING from that client."""
    writer = None
    for _ in range(500):
        entry = monitor.next_command()
        command = entry["command"]
        if writer is None:
            if command.upper().startswith(write) and marker in command:
                writer = (entry["client_address"], entry["client_port"])
            continue
        if (entry["client_address"], entry["client_port"]) != writer:
            continue  # other connections' commands
        if command.upper().startswith(("SCRIPT LOAD", write)):
            continue  # a script's first run: NOSCRIPT, load, run again
        assert command.upper() == "PING", f"{write} was followed by {command!r}, not the fence"
        return
    raise AssertionError(f"no {write} with {marker!r}, or no PING after it")


def test_revocations_and_cutoffs_end_with_the_mirror_fence(redis_url: str) -> None:
    # Redis may write the reply before the mirrors' pushes; the PING after the write is what
    # makes an acknowledged revocation visible to every mirror (Store._confirmed)
    store = Store(VerifierSettings(public_key="unused", redis_url=redis_url))
    # a read timeout: a missing command fails the test instead of hanging it
    db = redis.Redis.from_url(redis_url, socket_timeout=5)
    try:
        with db.monitor() as monitor:
            store.revoke("jti:fence", "u", 60)
            _fence_after(monitor, "SET", "jti:fence")
        with db.monitor() as monitor:
            store.end_user("fenced-user", time.time())
            _fence_after(monitor, "EVALSHA", "fenced-user")
    finally:
        db.close()
        store.close()


def test_a_write_no_replica_confirms_is_refused_and_leaves_reads_working(redis_url: str) -> None:
    """VERIFIER_REDIS_MIN_REPLICAS=1 on a Redis without replicas: WAIT counts none, so the
    revocation is not acknowledged (503); Redis answers, so the breaker stays closed."""
    store = Store(VerifierSettings(public_key="unused", redis_url=redis_url,
                                   redis_min_replicas=1, mirror_max_keys=0))
    try:
        started = time.monotonic()
        with pytest.raises(StoreUnavailable, match="did not confirm the change on 1 replica"):
            store.revoke("jti:unconfirmed", "u", 60)
        assert time.monotonic() - started < 1.0  # WAIT gives up before the socket timeout
        assert store.lookup("jti:other", "u") == Snapshot(False, None)
        assert store.durability_warnings()[-1].endswith(
            "has 0 connected replica(s) and VERIFIER_REDIS_MIN_REPLICAS is 1: revocations and "
            "logouts answer 503 until enough replicas confirm them"
        )
    finally:
        store.close()
