"""Picking up changed key files without a restart: on SIGHUP, and by noticing the files change.

Each reloadable piece of state (the issuer's signing keys, a keys file of API clients) says which
files it was read from (``fingerprint``) and how to read them again (``reload``). ``reload``
builds the new state completely, validates it, and only then swaps it in, so a half-written or
damaged file, or a wrong passphrase, never replaces a working set: the error is logged once, as
one line, and the process keeps serving with what it had.

Two triggers, because a service runs as a gunicorn master with forked workers:

- SIGHUP to the master: gunicorn calls ``on_reload`` (``shared.web.gunicorn``), which reloads
  here in the master, then forks fresh workers that inherit the new state and retires the old
  ones.
- A file change: every worker polls the fingerprints once per ``POLL_SECONDS`` from a
  background thread and reloads what changed. The command-line tools write these files
  atomically (a new file renamed over the old), so a reader sees the old file or the new one.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Hashable, Iterable, Sequence
from typing import Protocol

from shared.periodic import Periodic

log = logging.getLogger(__name__)

POLL_SECONDS = 1.0
"""How often each worker looks at the files (a few ``stat`` calls)."""

EXTENSION = "jwt_auth.reloader"
"""Where a Flask app keeps its ``Reloader`` (``app.extensions``), for the gunicorn hooks."""


class Reloadable(Protocol):
    """State read from files that can be read again."""

    @property
    def description(self) -> str:
        """What it is, for log lines ("the signing keys in /keys")."""
        ...

    def fingerprint(self) -> Hashable:
        """Something that changes whenever the files it was read from change; cheap."""
        ...

    def reload(self) -> None:
        """Read the files again and swap the new state in; raise, leaving the old state, if not."""
        ...


def loaded_fingerprint(item: Reloadable) -> Hashable:
    """The fingerprint of the files as they were when ``item`` read them.

    An item that records it (``loaded_from``, taken *before* reading) lets a change that lands
    while it reads (loading a private key is slow) be noticed at the next look; one taken after
    reading would swallow that change for good.
    """
    return getattr(item, "loaded_from", None) or item.fingerprint()


def file_fingerprint(paths: Iterable[str | os.PathLike[str] | None]) -> Hashable:
    """Identity, size and modification time of each file; None for a missing one."""
    marks: list[tuple[int, int, int, int] | None] = []
    for path in paths:
        if path is None:
            continue
        try:
            info = os.stat(path)
        except OSError:
            marks.append(None)
            continue
        marks.append((info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns))
    return tuple(marks)


class Reloader:
    """Keeps one process's reloadable state current."""

    def __init__(self, items: Sequence[Reloadable], *, interval: float = POLL_SECONDS) -> None:
        self._items = list(items)
        self._seen = {id(item): loaded_fingerprint(item) for item in self._items}
        self._lock = threading.Lock()
        # checking the key files for changes
        self._poller = Periodic("jwt-auth-reloader", interval, self.check)

    def check(self) -> int:
        """Reload what changed since the last look; the number of pieces reloaded."""
        reloaded = 0
        with self._lock:
            for item in self._items:
                mark = item.fingerprint()
                if mark == self._seen[id(item)]:
                    continue
                # remembered before reloading: a file that fails is reported once, not every
                # second, and tried again as soon as it changes again
                self._seen[id(item)] = mark
                reloaded += self._reload(item)
        return reloaded

    def reload_all(self) -> int:
        """Reload everything now (SIGHUP); the number of pieces reloaded."""
        with self._lock:
            reloaded = 0
            for item in self._items:
                self._seen[id(item)] = item.fingerprint()
                reloaded += self._reload(item, everything=True)
            return reloaded

    def start_in_worker(self) -> None:
        """In a freshly forked worker: catch up with the files, then keep polling.

        A worker inherits the state the master last read (at start or SIGHUP); a worker that
        gunicorn restarts later must not serve, even for a second, keys removed since.
        The app's ASGI lifespan start-up calls this, before the worker accepts a connection.
        """
        self.check()
        self.start()

    def _reload(self, item: Reloadable, *, everything: bool = False) -> int:
        # an item made of parts (the trusted issuers) reloads only what changed when a file
        # changes, and every part when the operator asks (SIGHUP): its ``reload_all``
        reload = getattr(item, "reload_all", item.reload) if everything else item.reload
        try:
            reload()
        except Exception as exc:  # noqa: BLE001 - whatever the file holds, keep serving
            log.error("kept %s as they were: %s", item.description, _one_line(exc))
            return 0
        log.info("reloaded %s", item.description)
        return 1

    def start(self) -> None:
        """Poll in a background thread (in a gunicorn worker, after the fork)."""
        self._poller.start()

    def stop(self) -> None:
        """Stop polling."""
        self._poller.stop()


def _one_line(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return " ".join(text.split())
