"""Per-client rate limiting that holds across gunicorn workers without a network round trip.

One token bucket per client (capacity = the per-minute limit, refilled continuously) lives in a
block of shared memory made when the app is built. ``jwt-auth serve`` builds the app once in the
gunicorn master before the workers fork (``preload_app``), so every worker inherits the same
memory and the same lock: the limit is per service, not per worker, and needs no Redis (the
issuer does not depend on one). If the app is served without preloading (for instance plain
``gunicorn 'issuer.app:create_app()'`` without ``--preload``) each worker builds its own
buckets and the effective limit becomes the limit times the number of workers.

Clients can be added while the service runs (the keys file is reloaded), so the buckets are not
fixed at start: they form an open-addressing table of ``capacity`` slots (at least
``DEFAULT_CAPACITY``), keyed by a 64-bit BLAKE2b hash of the client's name and probed linearly
under the shared lock. A client gets its slot on its first request, in whichever worker that
comes; every worker then finds the same slot. Slots are never emptied (a removed client's slot
stays until restart), so when all are taken a new client takes the slot of a bucket that has
refilled completely, which holds nothing a fresh bucket would not. If every bucket is in use
(more clients than slots active within one refill period), the new client is not limited until
a slot frees up, and a warning is logged.
"""

from __future__ import annotations

import hashlib
import logging
import math
import multiprocessing
import time
from collections.abc import Callable, Iterable

log = logging.getLogger(__name__)

DEFAULT_CAPACITY = 4096
"""Slots in the table: far more clients than a keys file holds (96 KiB of shared memory)."""

_EMPTY = 0


def name_hash(name: str) -> int:
    """The table key of a client: 64 bits of BLAKE2b, never 0 (0 marks an empty slot)."""
    value = int.from_bytes(
        hashlib.blake2b(name.encode("utf-8"), digest_size=8).digest(), "little"
    )
    return value or 1


class RateLimiter:
    """Token buckets per client, in memory shared by forked processes; clients may come later."""

    def __init__(
        self,
        names: Iterable[str],
        per_minute: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        capacity: int = DEFAULT_CAPACITY,
    ) -> None:
        self.per_minute = per_minute
        self._clock = clock
        initial = list(dict.fromkeys(names))
        self.capacity = max(capacity, 2 * len(initial), 1)
        context = multiprocessing.get_context("fork")
        # per slot: the client's name hash, and two doubles (tokens left, when last counted);
        # CLOCK_MONOTONIC is one clock for every process on the machine
        self._keys = context.RawArray("Q", self.capacity)
        self._state = context.RawArray("d", 2 * self.capacity)
        self._lock = context.Lock()
        # this process's memo of where a name was found; checked against the table before use
        self._hints: dict[str, tuple[int, int]] = {}
        self._warned = False
        with self._lock:
            started = clock()
            for name in initial:
                self._slot(name, started)

    def acquire(self, name: str) -> float:
        """Take one request from the client's bucket: 0 when allowed, else seconds to wait."""
        if self.per_minute <= 0:
            return 0.0
        rate = self.per_minute / 60.0
        with self._lock:
            now = self._clock()
            index = self._slot(name, now)
            if index is None:
                return 0.0  # the table is full of buckets in use: see the module's notes
            tokens = self._state[2 * index]
            elapsed = max(0.0, now - self._state[2 * index + 1])
            tokens = min(float(self.per_minute), tokens + elapsed * rate)
            self._state[2 * index + 1] = now
            if tokens >= 1.0:
                self._state[2 * index] = tokens - 1.0
                return 0.0
            self._state[2 * index] = tokens
            return float((1.0 - tokens) / rate)

    def _slot(self, name: str, now: float) -> int | None:
        """The slot of this client's bucket, made full on first use; None if none is free.

        Called with the lock held.
        """
        hint = self._hints.get(name)
        if hint is not None and self._keys[hint[1]] == hint[0]:
            return hint[1]
        key = name_hash(name)
        start = key % self.capacity
        index: int | None = None
        for step in range(self.capacity):
            probe = (start + step) % self.capacity
            held = self._keys[probe]
            if held == key:
                index = probe
                break
            if held == _EMPTY:
                index = self._claim(probe, key, now)
                break
        else:
            # no empty slot anywhere and not present: reuse a bucket that has refilled
            index = self._reclaim(key, now)
        if index is None:
            if not self._warned:
                self._warned = True
                log.warning(
                    "rate limit table full (%d clients active): %r is not limited for now",
                    self.capacity, name,
                )
            return None
        if len(self._hints) >= self.capacity:
            self._hints.clear()
        self._hints[name] = (key, index)
        return index

    def _claim(self, index: int, key: int, now: float) -> int:
        self._state[2 * index] = float(self.per_minute)
        self._state[2 * index + 1] = now
        self._keys[index] = key  # last: the slot is ready when another process can match it
        return index

    def _reclaim(self, key: int, now: float) -> int | None:
        # Slots never become empty again, so a lookup that meets no empty slot scans the whole
        # table: overwriting a full slot's key keeps every other client findable.
        rate = self.per_minute / 60.0 if self.per_minute > 0 else math.inf
        for index in range(self.capacity):
            tokens = self._state[2 * index] + (now - self._state[2 * index + 1]) * rate
            if tokens >= self.per_minute:
                return self._claim(index, key, now)
        return None


def retry_after_header(wait: float) -> str:
    """Whole seconds for ``Retry-After`` (at least 1: 0 would invite an immediate retry)."""
    return str(max(1, math.ceil(wait)))
