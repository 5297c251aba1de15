"""The verifier's Redis store against a real redis-server: its breaker."""

from __future__ import annotations

import time

import pytest

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
        store._down_until = time.monotonic() + 60  # white box: as after a failure
        store._next_probe = time.monotonic() + 60
        with pytest.raises(StoreUnavailable):  # no probe due: fail fast, Redis untouched
            store.lookup("jti:x", "u")
        store._next_probe = 0.0
        assert store.lookup("jti:x", "u") == Snapshot(False, None)  # the probe, and it worked
        assert store._down_until == 0.0
        assert store.lookup("jti:x", "u") == Snapshot(False, None)
    finally:
        store.close()
