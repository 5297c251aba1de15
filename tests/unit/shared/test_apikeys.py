"""API keys: random, stored hashed, found in constant time, files written atomically."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from shared.apikeys import (
    KEY_PREFIX,
    ApiKeyRegistry,
    add_client,
    bearer_token,
)
from shared.digest import sha256_hex
from shared.errors import ConfigError


def test_added_client_authenticates_and_file_holds_only_the_hash(tmp_path: Path) -> None:
    path = tmp_path / "clients.json"
    key = add_client(path, "web", admin=False, variable="ISSUER_CLIENTS_FILE")
    admin_key = add_client(path, "ops", admin=True, variable="ISSUER_CLIENTS_FILE")
    assert key.startswith(KEY_PREFIX)
    assert len(key) >= len(KEY_PREFIX) + 43
    text = path.read_text()
    assert key not in text
    assert admin_key not in text
    assert sha256_hex(key) in text
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    registry = ApiKeyRegistry.load(str(path), variable="ISSUER_CLIENTS_FILE")
    web = registry.authenticate(key)
    ops = registry.authenticate(admin_key)
    assert web is not None
    assert web.name == "web"
    assert not web.admin
    assert ops is not None
    assert ops.name == "ops"
    assert ops.admin


def test_unknown_and_empty_keys_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "clients.json"
    key = add_client(path, "web", admin=False, variable="V")
    registry = ApiKeyRegistry.load(str(path), variable="V")
    assert registry.authenticate(key + "x") is None
    assert registry.authenticate("") is None
    assert registry.authenticate(None) is None


def test_keys_are_unique(tmp_path: Path) -> None:
    path = tmp_path / "clients.json"
    keys = {add_client(path, f"c{i}", admin=False, variable="V") for i in range(5)}
    assert len(keys) == 5


def test_duplicate_and_bad_names_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "clients.json"
    add_client(path, "web", admin=False, variable="V")
    with pytest.raises(ConfigError, match="already has a client named 'web'"):
        add_client(path, "web", admin=True, variable="V")
    with pytest.raises(ConfigError, match="without spaces"):
        add_client(path, "two words", admin=False, variable="V")


def test_no_file_configured_means_no_clients() -> None:
    assert ApiKeyRegistry.load(None, variable="V").clients == []


def test_missing_file_names_the_variable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="ISSUER_CLIENTS_FILE: no file at"):
        ApiKeyRegistry.load(str(tmp_path / "absent.json"), variable="ISSUER_CLIENTS_FILE")


@pytest.mark.parametrize(
    "content",
    ["not json", "[]", '{"clients": {}}', '{"clients": [{"name": "a", "key_sha256": "short"}]}',
     '{"clients": [{"name": "a", "key_sha256": "' + "0" * 64 + '", "admin": "yes"}]}'],
)
def test_malformed_files_name_the_variable(tmp_path: Path, content: str) -> None:
    path = tmp_path / "clients.json"
    path.write_text(content)
    with pytest.raises(ConfigError, match=r"^V: "):
        ApiKeyRegistry.load(str(path), variable="V")


def test_file_format_is_documented_json(tmp_path: Path) -> None:
    path = tmp_path / "clients.json"
    add_client(path, "web", admin=True, variable="V", clock=lambda: 1_700_000_000.5)
    document = json.loads(path.read_text())
    assert document["version"] == 1
    assert document["clients"] == [{
        "name": "web", "key_sha256": document["clients"][0]["key_sha256"], "admin": True,
        "created": 1_700_000_000, "rotated": None,
    }]


@pytest.mark.parametrize(
    ("header", "expected"),
    [("Bearer abc", "abc"), ("bearer   abc ", "abc"), ("Basic abc", None), ("Bearer", None),
     ("Bearer ", None), (None, None), ("", None)],
)
def test_bearer_token(header: str | None, expected: str | None) -> None:
    assert bearer_token(header) == expected
