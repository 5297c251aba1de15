"""Writing the files services read while they run: whole or not at all."""

from __future__ import annotations

import os
import tempfile
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
