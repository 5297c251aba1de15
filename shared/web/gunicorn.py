"""Running a service under gunicorn's own ``asgi`` worker.

The worker is gunicorn's: an asyncio event loop per worker (uvloop), gunicorn's HTTP/1.1 parser
(gunicorn-h1c's C parser where it is installed, gunicorn's Python parser otherwise: the
``auto`` setting), keep-alive, and flow control that stops reading a connection whose unread
body passes 256 KiB. Nothing here parses HTTP or touches a socket.
"""

from __future__ import annotations

import gc
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shared.logs import format_gunicorn_lines, json_lines
from shared.reloading import EXTENSION as RELOADER_EXTENSION

if TYPE_CHECKING:  # imported when the app is: prometheus_client must wait for its folder
    from shared.web.app import ServiceApp

WORKER_CLASS = "asgi"

GRACEFUL_TIMEOUT = 10
"""Seconds a stopping worker lets requests in flight finish (Kubernetes' termination grace
period must be longer)."""


def prepare_multiprocess_metrics() -> None:
    """Give prometheus_client a fresh shared folder unless the operator chose one.

    Must run before any module imports prometheus_client: it picks its storage at import time.
    """
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="jwt-auth-metrics-")
    else:
        # the operator's folder may hold an earlier run's files: counters restart from zero
        from shared.metricsfiles import remove_stale

        remove_stale(Path(os.environ["PROMETHEUS_MULTIPROC_DIR"]))


def _child_exit(server: Any, worker: Any) -> None:
    from prometheus_client import multiprocess

    from shared.metricsfiles import fold_dead_process, multiproc_dir

    multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]  # untyped
    # its counters and histograms go to the archives: the folder does not grow with restarts
    folder = multiproc_dir()
    if folder is not None:
        fold_dead_process(folder, worker.pid)


def _master_ready(arbiter: Any) -> None:
    # importing the app in the master made its unlabelled gauges, each with a 0 in a file of
    # the master's pid; the master serves nothing and sets none, and its 0 would win every
    # "livemin" gauge (verifier_redis_up would read 0 for good): its live files go
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]  # untyped
    # the app's objects live as long as the process: out of the collector's sight, a full
    # collection in a worker scans what requests made (under 1 ms) instead of every module,
    # schema and route (about 60 ms, a stall every few seconds under load: measured in
    # docs/deploy.md), and the workers share the master's pages instead of copying them
    gc.freeze()


def _reload_in_master(arbiter: Any) -> None:
    # SIGHUP: gunicorn forks fresh workers from the master right after this hook, so reading
    # the files again here is what hands the new keys to every new worker
    extensions = getattr(arbiter.app.callable, "extensions", {})
    reloader = extensions.get(RELOADER_EXTENSION)
    if reloader is not None:
        reloader.reload_all()


def _logger_class() -> Any:
    from gunicorn.glogging import Logger

    class _Logger(Logger):  # type: ignore[misc]  # gunicorn has no types: Logger is Any
        """gunicorn's logger, whose own lines keep ``LOG_FORMAT`` after a SIGHUP."""

        def setup(self, cfg: Any) -> None:
            super().setup(cfg)
            # gunicorn makes its handlers again on SIGHUP: keep its lines JSON with json
            format_gunicorn_lines("json" if json_lines() else "text")

    return _Logger


def run_gunicorn(
    factory: Callable[[], ServiceApp],
    *,
    bind: str,
    workers: int,
    threads: int,
    access_log: bool = True,
) -> None:
    """Serve the app made by ``factory`` under gunicorn until a signal stops it.

    The app is built once in the master before workers fork (``preload_app``): loading the
    private key is slow (``shared.keys.load_private_key``) and happens once, and a bad
    configuration stops the whole service with one line instead of a crash loop of workers.
    ``threads`` sizes each worker's two pools (Flask's routes; the hot routes' waits). Key
    files are read again on SIGHUP and when they change (``shared.reloading``).
    """
    from gunicorn.app.base import BaseApplication

    def load() -> ServiceApp:
        app = factory()
        app.threads = threads
        if not access_log:
            app.access_log = None
        return app

    options: dict[str, Any] = {
        "bind": bind,
        "workers": workers,
        "worker_class": WORKER_CLASS,
        # uvloop is a dependency; gunicorn-h1c where it built ("auto" falls back to Python's)
        "asgi_loop": "uvloop",
        "http_parser": "auto",
        "preload_app": True,
        "keepalive": 5,
        "timeout": 30,
        "graceful_timeout": GRACEFUL_TIMEOUT,
        # the app writes the access line itself (shared.web.accesslog)
        "accesslog": None,
        "logger_class": _logger_class(),
        "child_exit": _child_exit,
        "when_ready": _master_ready,
        "on_reload": _reload_in_master,
        # gunicorn >= 25.1 opens a control socket at one per-user path ($HOME/.gunicorn): every
        # gunicorn of the user (issuer and verifier side by side) would fight over it, and in a
        # read-only container it only logs a failure; nothing here uses it
        "control_socket_disable": True,
    }

    class _Application(BaseApplication):  # type: ignore[misc]  # gunicorn has no types
        def load_config(self) -> None:
            for name, value in options.items():
                if value is not None:
                    self.cfg.set(name, value)

        def load(self) -> Any:
            return load()

    _Application().run()
