"""Per-client rate limiting that holds across gunicorn workers without a network round trip.

One token bucket per client (capacity = the per-minute limit, refilled continuously) lives in a
block of shared memory made when the app is built. ``jwt-auth serve`` builds the app once in the
gunicorn master before the workers fork (``preload_app``), so every worker inherits the same
memory and the same lock: the limit is per service, not per worker, and needs no Redis (the
issuer does not depend on one). If the app is served without preloading (for instance plain
``gunicorn 'issuer.app:create_app()'`` without ``--preload``) each worker builds its own
buckets and the effective limit becomes the limit times the number of workers.
"""

from __future__ import annotations

import math
import multiprocessing
import time
from collections.abc import Callable, Iterable


class RateLimiter:
    """Token buckets for a fixed set of clients, shared by forked processes."""

    def __init__(
        self,
        names: Iterable[str],
        per_minute: int,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.per_minute = per_minute
        self._clock = clock
        self._slots = {name: index for index, name in enumerate(names)}
        context = multiprocessing.get_context("fork")
        # two doubles per client: tokens left, and when they were last counted;
        # CLOCK_MONOTONIC is one clock for every process on the machine
        self._state = context.RawArray("d", 2 * max(1, len(self._slots)))
        self._lock = context.Lock()
        started = clock()
        for index in range(len(self._slots)):
            self._state[2 * index] = float(per_minute)
            self._state[2 * index + 1] = started

    def acquire(self, name: str) -> float:
        """Take one request from the client's bucket: 0 when allowed, else seconds to wait."""
        if self.per_minute <= 0:
            return 0.0
        index = self._slots.get(name)
        if index is None:
            # clients are fixed when the app is built; an unknown one cannot be authenticated
            return 0.0
        rate = self.per_minute / 60.0
        with self._lock:
            now = self._clock()
            tokens = self._state[2 * index]
            elapsed = max(0.0, now - self._state[2 * index + 1])
            tokens = min(float(self.per_minute), tokens + elapsed * rate)
            self._state[2 * index + 1] = now
            if tokens >= 1.0:
                self._state[2 * index] = tokens - 1.0
                return 0.0
            self._state[2 * index] = tokens
            return (1.0 - tokens) / rate


def retry_after_header(wait: float) -> str:
    """Whole seconds for ``Retry-After`` (at least 1: 0 would invite an immediate retry)."""
    return str(max(1, math.ceil(wait)))
