"""Writing the files services read while they run: whole or not at all."""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


def write_atomically(path: Path, content: bytes, mode: int = 0o600) -> None:
    """Replace ``path`` with ``content``: a new file in the same folder, fsynced, renamed over.

    A crash never leaves half a file, and a service reading it meanwhile (the keys files are
    read again when they change) sees the old file or the new one. ``mode`` is set before any
    byte is written, so a secret is never readable by others, not even for an instant.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(descriptor, mode)
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def exclusive(path: Path) -> Iterator[None]:
    """Hold an exclusive lock for a read-modify-write of ``path`` (its ``.NAME.lock`` beside it).

    Two commands changing one keys file at once would otherwise each write their own version
    and one change would be lost: a removed client could come back. Readers (the services)
    need no lock, since every write replaces the file whole.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    lock_path = path.parent / f".{path.name}.lock"
    descriptor = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        os.close(descriptor)  # closing releases the lock
