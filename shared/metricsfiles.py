"""The multiprocess metrics folder: a dead worker's files folded into archives, not left behind.

prometheus_client's multiprocess mode gives every process its own files in
``PROMETHEUS_MULTIPROC_DIR``: ``counter_<pid>.db``, ``histogram_<pid>.db``, ``summary_<pid>.db``
and ``gauge_<mode>_<pid>.db``. Its own ``mark_process_dead`` removes only the ``live*`` gauges of
a dead process, so every worker gunicorn ever replaced (a crash, ``max_requests``, a SIGHUP
reload) would leave its counters and histograms in the folder for good, and each scrape would
read them all.

``fold_dead_process`` (called by gunicorn's master in ``child_exit``) adds the dead worker's
values to one archive file per kind, ``counter_archive.db``, ``histogram_archive.db``,
``summary_archive.db`` and ``gauge_<mode>_archive.db`` for the gauge modes that cover dead
processes (``sum``, ``min``, ``max``, ``mostrecent``), then deletes the worker's files. The
archives are prometheus_client's own ``MmapedDict`` files, named so that ``MultiProcessCollector``
reads them like any other (it takes the kind from the name's first ``_``-separated word), so
every total ``/metrics`` reports stays the same. ``gauge_all_<pid>.db`` (one series per process,
labelled by pid) is deleted: a dead process's series has nothing left to say.

Folding rewrites files a scrape may be reading at the same moment: it holds an exclusive lock
on ``fold.lock`` in the folder while it works, and ``reading`` (held by ``/metrics`` while it
collects) a shared one, so a scrape never sees a value twice (archive and worker file) or a
file vanish under it.

At start (``remove_stale``): files of processes that no longer exist are deleted, and the
archives with them when no living process has files in the folder. A restarted service starts
its counters from zero, which is what Prometheus expects of a restarted process (``rate()``
treats a drop as a counter reset); keeping them would also need the old run's archives to be
trusted after any crash. A folder shared with a service still running keeps that service's
files and archives.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import re
import struct
from collections.abc import Iterator
from pathlib import Path

from prometheus_client.mmap_dict import MmapedDict

log = logging.getLogger(__name__)

ARCHIVE = "archive"
"""The word in place of a pid in an archive's file name."""

LOCK_NAME = "fold.lock"
"""Not a ``.db`` file: ``MultiProcessCollector`` reads ``*.db`` only."""

# counter_123.db, histogram_123.db, summary_123.db, gauge_livesum_123.db, counter_archive.db
_FILE = re.compile(r"^(counter|histogram|summary|gauge_[a-z]+)_(\d+|archive)\.db$")

# how values of one key from two processes combine in an archive; kinds not listed are deleted
_SUMMED = ("counter", "histogram", "summary", "gauge_sum")
_FOLDABLE = (*_SUMMED, "gauge_min", "gauge_max", "gauge_mostrecent")


@contextlib.contextmanager
def _locked(directory: Path, operation: int) -> Iterator[None]:
    with (directory / LOCK_NAME).open("a") as handle:
        fcntl.flock(handle.fileno(), operation)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


@contextlib.contextmanager
def reading(directory: Path) -> Iterator[None]:
    """Hold while collecting: no fold runs until the collection has read every file."""
    with _locked(directory, fcntl.LOCK_SH):
        yield


def _files_of(directory: Path, owner: str) -> dict[str, Path]:
    """The metrics files of one owner (a pid, or ``archive``), by kind."""
    found: dict[str, Path] = {}
    for path in directory.glob(f"*_{owner}.db"):
        match = _FILE.match(path.name)
        if match is not None and match.group(2) == owner:
            found[match.group(1)] = path
    return found


def _combine(kind: str, old: tuple[float, float], new: tuple[float, float]) -> tuple[float, float]:
    (old_value, old_time), (new_value, new_time) = old, new
    if kind in _SUMMED:
        return old_value + new_value, max(old_time, new_time)
    if kind == "gauge_min":
        return min(old_value, new_value), max(old_time, new_time)
    if kind == "gauge_max":
        return max(old_value, new_value), max(old_time, new_time)
    # gauge_mostrecent: the later write wins
    return (new_value, new_time) if new_time >= old_time else (old_value, old_time)


def _fold_file(kind: str, source: Path, archive: Path) -> None:
    values = MmapedDict.read_all_values_from_file(str(source))  # type: ignore[no-untyped-call]
    if not values:
        return
    target = MmapedDict(str(archive))  # type: ignore[no-untyped-call]  # creates it when missing
    try:
        archived: dict[str, tuple[float, float]] = {
            key: (value, timestamp)
            for key, value, timestamp in target.read_all_values()  # type: ignore[no-untyped-call]
        }
        # one key per series: the json the worker wrote (``mmap_key``), the same in every file
        for key, value, timestamp, _ in values:
            old = archived.get(key)
            new = (value, timestamp) if old is None else _combine(kind, old, (value, timestamp))
            target.write_value(key, *new)  # type: ignore[no-untyped-call]
            archived[key] = new
    finally:
        target.close()  # type: ignore[no-untyped-call]


def fold_dead_process(directory: Path, pid: int) -> bool:
    """Add a dead process's values to the archives and delete its files (the master runs it).

    Never raises: gunicorn's master runs it, and must go on replacing workers. On a failure
    the files not folded yet stay where they are (their counts still reported) and a warning
    says why; False then.
    """
    if not directory.is_dir():
        return True
    try:
        with _locked(directory, fcntl.LOCK_EX):
            # kind by kind, each file deleted right after its values reached the archive
            for kind, path in sorted(_files_of(directory, str(pid)).items()):
                if kind in _FOLDABLE:
                    _fold_file(kind, path, directory / f"{kind}_{ARCHIVE}.db")
                path.unlink(missing_ok=True)
    except (OSError, ValueError, struct.error) as exc:
        log.warning("metrics files of process %s not folded in %s: %s", pid, directory, exc)
        return False
    return True


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def remove_stale(directory: Path) -> list[Path]:
    """At a service's start: delete the files of processes that are gone; returns what went.

    Never raises: a folder that cannot be cleaned is a warning, not a reason not to start.
    """
    removed: list[Path] = []
    try:
        _remove_stale(directory, removed)
    except OSError as exc:
        log.warning("stale metrics files not removed from %s: %s", directory, exc)
    return sorted(removed)


def _remove_stale(directory: Path, removed: list[Path]) -> None:
    if not directory.is_dir():
        return
    with _locked(directory, fcntl.LOCK_EX):
        owners: dict[str, bool] = {}
        for path in directory.iterdir():
            match = _FILE.match(path.name)
            if match is None or match.group(2) == ARCHIVE:
                continue
            owner = match.group(2)
            if owner not in owners:
                owners[owner] = _alive(int(owner))
            if not owners[owner]:
                path.unlink(missing_ok=True)
                removed.append(path)
        if not any(owners.values()):
            for path in _files_of(directory, ARCHIVE).values():
                path.unlink(missing_ok=True)
                removed.append(path)


def multiproc_dir() -> Path | None:
    """``PROMETHEUS_MULTIPROC_DIR`` as a path, or None outside multiprocess mode."""
    value = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    return Path(value) if value else None
