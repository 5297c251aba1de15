"""Keys files are replaced whole, and changed one command at a time."""

from __future__ import annotations

import multiprocessing
import stat
from pathlib import Path

from shared.apikeys import add_client, read_clients
from shared.files import write_atomically

WRITERS = 8


def test_atomic_write_replaces_the_file_with_the_mode_set(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "secret.json"
    write_atomically(path, b"first")
    write_atomically(path, b"second", mode=0o640)
    assert path.read_bytes() == b"second"
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert [p.name for p in path.parent.iterdir()] == ["secret.json"]  # no temporary left


def _add(path: str, name: str) -> None:
    add_client(Path(path), name, admin=False, variable="ISSUER_CLIENTS_FILE")


def test_concurrent_changes_to_one_keys_file_are_all_kept(tmp_path: Path) -> None:
    # each writer reads, adds and writes back: without the lock, the last writers would drop
    # the clients the others added meanwhile
    path = tmp_path / "clients.json"
    context = multiprocessing.get_context("fork")
    for _ in range(3):
        path.unlink(missing_ok=True)
        writers = [context.Process(target=_add, args=(str(path), f"client-{number}"))
                   for number in range(WRITERS)]
        for writer in writers:
            writer.start()
        for writer in writers:
            writer.join(timeout=30)
            assert writer.exitcode == 0
        names = sorted(client.name for client in read_clients(path, variable="V"))
        assert names == sorted(f"client-{number}" for number in range(WRITERS))
