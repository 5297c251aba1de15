"""Prometheus metrics that add up across gunicorn workers, and the request counts of both kinds
of routes.

Under gunicorn each worker is a process with its own counters; prometheus_client's multiprocess
mode (``PROMETHEUS_MULTIPROC_DIR``, set by ``jwt-auth serve`` before the app is imported) keeps
them in shared files so ``/metrics`` reports the whole service, whichever worker answers.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client import multiprocess as prometheus_multiprocess
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from shared.metricsfiles import multiproc_dir, reading

HTTP_REQUESTS = Counter(
    "http_requests_total", "HTTP requests answered", ["service", "method", "route", "status"]
)
HTTP_LATENCY = Histogram(
    "http_request_duration_seconds",
    "Time to answer an HTTP request",
    ["service", "route"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)

HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

UNMATCHED = "unmatched"
"""The ``route`` label of a request no route took (a 404): never the raw path, whose values a
client chooses."""


def method_label(method: str) -> str:
    """The request method as a metrics label; any other word a client sends is ``other``,
    so a client cannot create unbounded label values."""
    return method if method in HTTP_METHODS else "other"


def exposition() -> tuple[bytes, str]:
    """The Prometheus text exposition for this service (all workers when multiprocess), and
    its Content-Type."""
    # prometheus_client itself decides multiprocess mode from this variable
    folder = multiproc_dir()
    if folder is None:
        return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
    registry = CollectorRegistry()
    registry.register(_WorkerFiles(folder))
    # the master folds a dead worker's files into the archives under the same lock
    with reading(folder):
        return generate_latest(registry), CONTENT_TYPE_LATEST


class _WorkerFiles(Collector):
    """prometheus_client's ``MultiProcessCollector``, leaving out a file a process is creating.

    ``MmapedDict`` creates a file empty and then sizes it; a scrape that reads it in between
    fails on the missing header (``struct.error``: a 500 from /metrics while a worker starts).
    A file never becomes empty again, so one that has a size when listed is safe to read.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def collect(self) -> Iterable[Metric]:
        files = [str(path) for path in self.folder.glob("*.db") if _sized(path)]
        merge = prometheus_multiprocess.MultiProcessCollector.merge
        metrics: Iterable[Metric] = merge(files, accumulate=True)  # type: ignore[no-untyped-call]
        return metrics


def _sized(path: Path) -> bool:
    try:
        return path.stat().st_size > 0
    except FileNotFoundError:  # a dead worker's live gauges, removed since the listing
        return False


class RequestMetrics:
    """Counts and times every request of one service by route template (never by raw path)."""

    def __init__(self, service: str) -> None:
        self.service = service
        # label children resolved once: labels() takes a lock and hashes on every call
        self._counters: dict[tuple[str, str, int], Any] = {}
        self._timers: dict[str, Any] = {}

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        key = (method, route, status)
        counter = self._counters.get(key)
        if counter is None:
            counter = self._counters.setdefault(
                key, HTTP_REQUESTS.labels(self.service, method_label(method), route, str(status))
            )
        counter.inc()
        timer = self._timers.get(route)
        if timer is None:
            timer = self._timers.setdefault(route, HTTP_LATENCY.labels(self.service, route))
        timer.observe(seconds)
