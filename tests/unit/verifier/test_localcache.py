"""The verifier's in-process cache of verified tokens (``verifier.service.LocalCache``)."""

from __future__ import annotations

from typing import cast

from verifier.service import LocalCache
from verifier.verification import VerifiedToken

TOKEN = cast(VerifiedToken, object())  # the cache never looks inside


def test_expired_entries_leave_as_new_ones_come_in() -> None:
    cache = LocalCache(100)
    for number in range(10):
        cache.put(f"old-{number}", TOKEN, until=160.0, now=100.0)
    cache.put("long", TOKEN, until=1000.0, now=100.0)
    cache.put("new", TOKEN, until=300.0, now=200.0)  # every "old" one expired at 160
    assert len(cache._entries) == 2
    assert cache.get("long", 200.0) is TOKEN
    assert cache.get("new", 200.0) is TOKEN


def test_an_entry_in_use_is_kept_until_it_expires() -> None:
    cache = LocalCache(100)
    cache.put("a", TOKEN, until=500.0, now=100.0)
    cache.put("b", TOKEN, until=150.0, now=100.0)
    cache.put("c", TOKEN, until=500.0, now=200.0)
    assert cache.get("a", 200.0) is TOKEN
    assert cache.get("b", 200.0) is None


def test_the_size_bounds_the_entries() -> None:
    cache = LocalCache(3)
    for number in range(5):
        cache.put(str(number), TOKEN, until=1000.0, now=100.0)
    assert [cache.get(str(number), 100.0) is TOKEN for number in range(5)] == [
        False, False, True, True, True]
