"""Running a service under gunicorn, and stopping cleanly when it cannot start."""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from shared.errors import StartupError
from shared.reloading import EXTENSION as RELOADER_EXTENSION

T = TypeVar("T")

# gunicorn's arbiter stops (instead of respawning forever) when a worker exits with this status
STARTUP_FAILED = 3

BUFFERING_WORKER = "shared.worker.BufferingThreadWorker"


def exit_on_startup_error(service: str, build: Callable[[], T]) -> T:
    """Run ``build``; on a StartupError print one line naming the problem and exit 3.

    Used when a service is built from the environment (gunicorn, the CLI): there a traceback
    helps nobody and the process must not serve. Tests build apps from explicit settings and
    see the exception instead.
    """
    try:
        return build()
    except StartupError as exc:
        print(f"jwt-auth {service}: cannot start: {exc}", file=sys.stderr, flush=True)
        raise SystemExit(STARTUP_FAILED) from None


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


def _reloader_of(app: Any) -> Any:
    extensions = getattr(app, "extensions", None)
    return extensions.get(RELOADER_EXTENSION) if isinstance(extensions, dict) else None


def _start_watching(worker: Any) -> None:
    # each worker polls its key files from a thread of its own, started after the fork
    reloader = _reloader_of(worker.wsgi)
    if reloader is not None:
        reloader.start_in_worker()


def _reload_in_master(arbiter: Any) -> None:
    # SIGHUP: gunicorn forks fresh workers from the master right after this hook, so reading
    # the files again here is what hands the new keys to every new worker
    reloader = _reloader_of(arbiter.app.callable)
    if reloader is not None:
        reloader.reload_all()


def run_gunicorn(
    factory: Callable[[], Any],
    *,
    bind: str,
    workers: int,
    threads: int,
    access_log: bool = True,
    worker_class: str = BUFFERING_WORKER,
) -> None:
    """Serve the WSGI app made by ``factory`` under gunicorn until a signal stops it.

    The app is built once in the master before workers fork (``preload_app``): loading the
    private key is slow (``shared.keys.load_private_key``) and happens once, and a bad
    configuration stops the whole service with one line instead of a crash loop of workers. The
    gthread worker keeps connections alive, which the sync worker does not. Key files are read
    again on SIGHUP and when they change (``shared.reloading``).
    """
    from gunicorn.app.base import BaseApplication

    from shared.accesslog import AccessLogger

    options: dict[str, Any] = {
        "bind": bind,
        "workers": workers,
        "threads": threads,
        # gthread whose event loop reads each request whole first: slow clients hold no thread
        "worker_class": worker_class,
        "preload_app": True,
        "keepalive": 5,
        "timeout": 30,
        "graceful_timeout": 10,
        "accesslog": "-" if access_log else None,
        # the path only (a token in a query string must not reach the log), in few fields
        "logger_class": AccessLogger,
        "child_exit": _child_exit,
        "post_worker_init": _start_watching,
        "on_reload": _reload_in_master,
        # gunicorn >= 25.1 opens a control socket at one per-user path ($HOME/.gunicorn): every
        # gunicorn of the user (issuer and verifier side by side) would fight over it, and in a
        # read-only container it only logs a failure; nothing here uses it
        "control_socket_disable": True,
    }

    class _Application(BaseApplication):  # type: ignore[misc]  # gunicorn has no types
        def load_config(self) -> None:
            for name, value in options.items():
                # the control socket setting is unknown to gunicorn < 25.1, which has no socket
                if name == "control_socket_disable" and name not in self.cfg.settings:
                    continue
                if value is not None:
                    self.cfg.set(name, value)

        def load(self) -> Any:
            return factory()

    _Application().run()
