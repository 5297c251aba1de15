"""Gauges of what a process is in: ready or not, Redis reachable, the mirror in sync, its keys.

Counters count events as they happen. State has no event to count: a breaker is open until a
moment passes, a JWKS grows old by itself. So each service lists *samplers*, small functions
that read its state and set its gauges, and each worker runs them every ``SAMPLE_SECONDS`` in a
background thread; ``/metrics`` runs them once more before answering, so the worker that answers
a scrape is never behind.

Under gunicorn every worker holds its own state (its breakers, its mirror, its copy of the
keys), and prometheus_client's multiprocess mode folds the workers' values into one per service
as each gauge says (``multiprocess_mode``): ``livemin`` for "all is well" (one worker's 0
shows), ``livemax`` for "something is wrong" (one worker's 1 shows), counting live workers only.
"""

from __future__ import annotations

import logging
import platform
import threading
from collections.abc import Callable, Iterable
from importlib import metadata

from prometheus_client import Gauge

from shared.periodic import Periodic

log = logging.getLogger(__name__)

SAMPLE_SECONDS = 5.0
"""How often each worker samples its state; well under a 15 s scrape interval."""

BUILD_INFO = Gauge(
    "jwt_auth_build_info", "The running version: always 1, the version in labels",
    ["service", "version", "python"], multiprocess_mode="livemax",
)
READY = Gauge(
    "jwt_auth_ready", "1 when every worker would answer /readyz with 200",
    ["service"], multiprocess_mode="livemin",
)


def version() -> str:
    try:
        return metadata.version("jwt-custom-auth")
    except metadata.PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown"


class StateSampler:
    """Runs one service's samplers: on demand, and every ``interval`` seconds in a worker."""

    def __init__(self, service: str, samplers: Iterable[Callable[[], None]], *,
                 interval: float = SAMPLE_SECONDS) -> None:
        self.service = service
        self._samplers = list(samplers)
        self._lock = threading.Lock()
        self._failing: set[str] = set()
        self._periodic = Periodic(f"{service}-metrics", interval, self.sample)

    def sample(self) -> None:
        """Set every gauge from the state as it is now; a sampler that fails logs once."""
        BUILD_INFO.labels(self.service, version(), platform.python_version()).set(1)
        with self._lock:  # the thread and a scrape may both sample
            for sampler in self._samplers:
                name = getattr(sampler, "__qualname__", repr(sampler))
                try:
                    sampler()
                except Exception:  # a gauge must never take the service down
                    if name not in self._failing:
                        log.exception("sampling %s for the metrics failed", name)
                    self._failing.add(name)
                else:
                    self._failing.discard(name)

    def start_in_worker(self) -> None:
        """Sample now and then every interval, from a thread of this worker's own."""
        self.sample()
        self._periodic.start()

    def stop(self) -> None:
        self._periodic.stop()
