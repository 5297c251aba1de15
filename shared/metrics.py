"""Prometheus metrics that add up across gunicorn workers.

Under gunicorn each worker is a process with its own counters; prometheus_client's multiprocess
mode (``PROMETHEUS_MULTIPROC_DIR``, set by ``jwt-auth serve`` before the app is imported) keeps
them in shared files so ``/metrics`` reports the whole service, whichever worker answers.
"""

from __future__ import annotations

import time

from flask import Flask, Response, g, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client import multiprocess as prometheus_multiprocess

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


def method_label(method: str) -> str:
    """The request method as a metrics label; any other word a client sends is ``other``,
    so a client cannot create unbounded label values."""
    return method if method in HTTP_METHODS else "other"


def metrics_response() -> Response:
    """The Prometheus text exposition for this service (all workers when multiprocess)."""
    # prometheus_client itself decides multiprocess mode from this variable
    folder = multiproc_dir()
    if folder is None:
        return Response(generate_latest(REGISTRY), mimetype=CONTENT_TYPE_LATEST)
    registry = CollectorRegistry()
    prometheus_multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]  # untyped
    # the master folds a dead worker's files into the archives under the same lock
    with reading(folder):
        body = generate_latest(registry)
    return Response(body, mimetype=CONTENT_TYPE_LATEST)


def install_request_metrics(app: Flask, service: str) -> None:
    """Count and time every request by route template (never by raw path: ids would explode)."""

    @app.before_request
    def _start_timer() -> None:
        g.request_started = time.perf_counter()

    @app.after_request
    def _record(response: Response) -> Response:
        route = request.url_rule.rule if request.url_rule else "unmatched"
        HTTP_REQUESTS.labels(
            service, method_label(request.method), route, str(response.status_code)
        ).inc()
        started = g.get("request_started")
        if started is not None:
            HTTP_LATENCY.labels(service, route).observe(time.perf_counter() - started)
        return response
