"""API keys over their life: old files, rotation with a grace, removal, reloading in place."""

from __future__ import annotations

import json
import logging
import os
import stat
from pathlib import Path

import pytest

from shared.apikeys import (
    ApiKeyRegistry,
    add_client,
    read_clients,
    remove_client,
    rotate_client,
)
from shared.digest import sha256_hex
from shared.errors import ConfigError
from shared.reloading import Reloader

V = "ISSUER_CLIENTS_FILE"
T0 = 1_800_000_000.0


class Clock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def replace_file(path: Path, text: str) -> None:
    """Write as the CLI does (a new file renamed over the old), so the fingerprint changes."""
    fresh = path.with_name(path.name + ".new")
    fresh.write_text(text)
    os.replace(fresh, path)


def test_old_format_files_load_with_unknown_dates(tmp_path: Path) -> None:
    path = tmp_path / "clients.json"
    old_key = "jwta_old"
    path.write_text(json.dumps({"clients": [
        {"name": "legacy", "key_sha256": sha256_hex(old_key), "admin": True},
        {"name": "bare", "key_sha256": "0" * 64},
    ]}))
    registry = ApiKeyRegistry.load(str(path), variable=V)
    legacy = registry.authenticate(old_key)
    assert legacy is not None
    assert (legacy.name, legacy.admin, legacy.created, legacy.rotated) == (
        "legacy", True, None, None
    )
    assert legacy.previous_key_sha256 is None
    # and the tools keep working on such a file: unknown stays unknown, the rest is added
    add_client(path, "new", admin=False, variable=V, clock=Clock())
    entries = json.loads(path.read_text())["clients"]
    assert [(e["name"], e["created"], e["rotated"]) for e in entries] == [
        ("legacy", None, None), ("bare", None, None), ("new", int(T0), None)
    ]


@pytest.mark.parametrize(
    "entry",
    [
        {"created": "yesterday"},
        {"created": True},
        {"rotated": -5},
        {"previous_key_sha256": "ab" * 32},  # without previous_valid_until
        {"previous_valid_until": 5},  # without previous_key_sha256
        {"previous_key_sha256": "short", "previous_valid_until": 5},
        {"previous_key_sha256": "ab" * 32, "previous_valid_until": 5.5},
    ],
)
def test_bad_lifecycle_members_are_refused(tmp_path: Path, entry: dict[str, object]) -> None:
    path = tmp_path / "clients.json"
    path.write_text(json.dumps({"clients": [{"name": "a", "key_sha256": "0" * 64, **entry}]}))
    with pytest.raises(ConfigError, match=rf"^{V}: .*entry 0"):
        read_clients(path, variable=V)


def test_two_clients_with_one_name_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "clients.json"
    entry = {"name": "a", "key_sha256": "0" * 64}
    path.write_text(json.dumps({"clients": [entry, {**entry, "key_sha256": "1" * 64}]}))
    with pytest.raises(ConfigError, match="entry 1: a second client 'a'"):
        read_clients(path, variable=V)


def test_rotation_with_grace_accepts_the_old_key_until_the_deadline(tmp_path: Path) -> None:
    path = tmp_path / "clients.json"
    clock = Clock()
    old_key = add_client(path, "web", admin=True, variable=V, clock=clock)
    clock.now += 100
    new_key, rotated = rotate_client(path, "web", grace=600, variable=V, clock=clock)
    assert new_key != old_key
    assert rotated.rotated == int(T0) + 100
    assert rotated.created == int(T0)
    assert rotated.previous_valid_until == int(T0) + 700
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    text = path.read_text()
    assert old_key not in text
    assert new_key not in text

    registry = ApiKeyRegistry.load(str(path), variable=V, clock=clock)
    for key in (old_key, new_key):
        client = registry.authenticate(key)
        assert client is not None
        assert (client.name, client.admin) == ("web", True)
    clock.now = T0 + 699
    assert registry.authenticate(old_key) is not None
    clock.now = T0 + 700  # the deadline itself: refused
    assert registry.authenticate(old_key) is None
    assert registry.authenticate(new_key) is not None


def test_rotation_without_grace_refuses_the_old_key_at_once(tmp_path: Path) -> None:
    path = tmp_path / "clients.json"
    clock = Clock()
    old_key = add_client(path, "web", admin=False, variable=V, clock=clock)
    new_key, rotated = rotate_client(path, "web", grace=0, variable=V, clock=clock)
    assert rotated.previous_key_sha256 is None
    assert "previous_key_sha256" not in path.read_text()
    registry = ApiKeyRegistry.load(str(path), variable=V, clock=clock)
    assert registry.authenticate(old_key) is None
    assert registry.authenticate(new_key) is not None


def test_rotating_again_ends_the_earlier_grace(tmp_path: Path) -> None:
    path = tmp_path / "clients.json"
    clock = Clock()
    first = add_client(path, "web", admin=False, variable=V, clock=clock)
    second, _ = rotate_client(path, "web", grace=600, variable=V, clock=clock)
    third, _ = rotate_client(path, "web", grace=600, variable=V, clock=clock)
    registry = ApiKeyRegistry.load(str(path), variable=V, clock=clock)
    assert registry.authenticate(first) is None
    assert registry.authenticate(second) is not None
    assert registry.authenticate(third) is not None


def test_an_ended_grace_is_dropped_from_the_file_at_the_next_write(tmp_path: Path) -> None:
    path = tmp_path / "clients.json"
    clock = Clock()
    add_client(path, "web", admin=False, variable=V, clock=clock)
    rotate_client(path, "web", grace=60, variable=V, clock=clock)
    assert "previous_key_sha256" in path.read_text()
    clock.now += 61
    add_client(path, "other", admin=False, variable=V, clock=clock)
    assert "previous_key_sha256" not in path.read_text()


def test_remove_and_rotate_need_a_known_name(tmp_path: Path) -> None:
    path = tmp_path / "clients.json"
    add_client(path, "web", admin=False, variable=V)
    before = path.read_text()
    with pytest.raises(ConfigError, match="has no client named 'nope'"):
        remove_client(path, "nope", variable=V)
    with pytest.raises(ConfigError, match="has no client named 'nope'"):
        rotate_client(path, "nope", grace=0, variable=V)
    assert path.read_text() == before


def test_removed_client_no_longer_authenticates(tmp_path: Path) -> None:
    path = tmp_path / "clients.json"
    web = add_client(path, "web", admin=False, variable=V)
    ops = add_client(path, "ops", admin=True, variable=V)
    removed = remove_client(path, "ops", variable=V)
    assert (removed.name, removed.admin) == ("ops", True)
    registry = ApiKeyRegistry.load(str(path), variable=V)
    assert [client.name for client in registry.clients] == ["web"]
    assert registry.authenticate(ops) is None
    assert registry.authenticate(web) is not None


def test_reload_swaps_in_the_new_file_and_reports_what_changed(
    tmp_path: Path, audit_events: list[dict[str, object]]
) -> None:
    path = tmp_path / "clients.json"
    web = add_client(path, "web", admin=False, variable=V)
    ops = add_client(path, "ops", admin=True, variable=V)
    registry = ApiKeyRegistry.load(str(path), variable=V)
    assert registry.description == f"the API keys in {path} ({V})"
    mark = registry.fingerprint()
    assert registry.fingerprint() == mark

    new_web, _ = rotate_client(path, "web", grace=0, variable=V)
    remove_client(path, "ops", variable=V)
    late = add_client(path, "late", admin=False, variable=V)
    assert registry.fingerprint() != mark
    assert registry.authenticate(late) is None  # not before the reload
    assert audit_events == []

    registry.reload()
    assert registry.authenticate(late) is not None
    assert registry.authenticate(new_web) is not None
    assert registry.authenticate(web) is None
    assert registry.authenticate(ops) is None
    assert audit_events == [{
        "event": "api_keys_reloaded", "added": ["late"], "removed": ["ops"],
        "rotated": ["web"], "file": str(path),
    }]
    registry.reload()  # nothing changed: no second event
    assert len(audit_events) == 1


@pytest.mark.parametrize(
    "damage",
    ["{not json", '{"clients": [{"name": "web"}]}',
     '{"clients": [{"name": "web", "key_sha256": "' + "0" * 64 + '", "created": "now"}]}'],
)
def test_a_damaged_file_keeps_the_old_clients_and_logs_one_line(
    tmp_path: Path, damage: str, caplog: pytest.LogCaptureFixture,
    audit_events: list[dict[str, object]],
) -> None:
    path = tmp_path / "clients.json"
    key = add_client(path, "web", admin=False, variable=V)
    registry = ApiKeyRegistry.load(str(path), variable=V)
    before = registry.clients
    replace_file(path, damage)
    with pytest.raises(ConfigError):
        registry.reload()
    assert registry.clients is before
    assert registry.authenticate(key) is not None

    # the services' reloader: one error line, the old clients kept, no second line for the
    # same damaged file, and the next good file is taken
    reloader = Reloader([registry])
    replace_file(path, damage + " ")
    with caplog.at_level(logging.INFO, logger="shared.reloading"):
        assert reloader.check() == 0
        assert reloader.check() == 0
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert errors[0].getMessage().startswith(f"kept the API keys in {path} ({V}) as they were: ")
    assert "\n" not in errors[0].getMessage()
    assert registry.authenticate(key) is not None

    path.unlink()
    late = add_client(path, "late", admin=False, variable=V)
    assert reloader.check() == 1
    assert registry.authenticate(late) is not None
    assert registry.authenticate(key) is None
    assert audit_events == [{
        "event": "api_keys_reloaded", "added": ["late"], "removed": ["web"], "rotated": [],
        "file": str(path),
    }]


def test_a_registry_without_a_file_never_changes() -> None:
    registry = ApiKeyRegistry.load(None, variable=V)
    assert registry.fingerprint() == registry.fingerprint()
    registry.reload()
    assert registry.clients == []
    assert V in registry.description


def test_a_deleted_file_keeps_the_old_clients(tmp_path: Path) -> None:
    path = tmp_path / "clients.json"
    key = add_client(path, "web", admin=False, variable=V)
    registry = ApiKeyRegistry.load(str(path), variable=V)
    path.unlink()
    with pytest.raises(ConfigError, match="no file at"):
        registry.reload()
    assert registry.authenticate(key) is not None
