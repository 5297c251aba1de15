"""Dev keys: made once, encrypted, owner-only, usable by the services, never overwritten."""

from __future__ import annotations

import stat
import time
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner

from issuer.keyring import ACTIVE, RETIRED, KeyState, load_ring, read_state, write_state
from jwt_auth.devkeys import DevPaths, dev_keys, ensure_dev_keys
from shared.apikeys import ApiKeyRegistry
from shared.errors import PassphraseMissing, StartupError
from shared.keys import load_private_key, load_public_keys, read_passphrase


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _snapshot(root: Path) -> dict[str, bytes]:
    files = sorted(path for path in root.rglob("*") if path.is_file())
    return {str(path.relative_to(root)): path.read_bytes() for path in files}


def test_first_run_makes_an_encrypted_pair_and_keys_the_services_accept(tmp_path: Path) -> None:
    paths = DevPaths.under(tmp_path)
    result = ensure_dev_keys(paths, bits=2048)

    pem = paths.private_key.read_bytes()
    assert b"ENCRYPTED PRIVATE KEY" in pem
    with pytest.raises(PassphraseMissing):
        load_private_key(pem, None, source="test")
    passphrase = read_passphrase(
        value=None, file=str(paths.passphrase), value_variable="V", file_variable="F"
    )
    signing = load_private_key(pem, passphrase, source="test")
    assert signing.bits == 2048
    [public] = load_public_keys(paths.public_key.read_bytes(), source="test")
    assert public.kid == signing.kid

    for secret in (paths.private_key, paths.passphrase, paths.clients, paths.admin_keys,
                   paths.client_key, paths.admin_key):
        assert _mode(secret) == 0o600, secret
    assert _mode(paths.issuer_dir) == 0o700

    assert result.client_key is not None
    assert result.admin_key is not None
    assert paths.client_key.read_text().strip() == result.client_key
    client = ApiKeyRegistry.load(str(paths.clients), variable="ISSUER_CLIENTS_FILE").authenticate(
        result.client_key
    )
    assert client is not None
    assert client.name == "dev"
    admins = ApiKeyRegistry.load(str(paths.admin_keys), variable="VERIFIER_ADMIN_KEYS_FILE")
    assert admins.authenticate(result.admin_key) is not None
    # the client key is not an admin key and the other way round
    assert admins.authenticate(result.client_key) is None


def test_second_run_changes_nothing_and_shows_no_key(tmp_path: Path) -> None:
    paths = DevPaths.under(tmp_path)
    ensure_dev_keys(paths, bits=2048)
    before = _snapshot(tmp_path)
    again = ensure_dev_keys(paths, bits=2048)
    assert again.created == []
    assert again.client_key is None
    assert again.admin_key is None
    assert _snapshot(tmp_path) == before


def test_own_clients_file_is_kept_and_no_dev_client_is_added(tmp_path: Path) -> None:
    paths = DevPaths.under(tmp_path)
    paths.issuer_dir.mkdir(parents=True)
    paths.clients.write_text('{"clients": []}\n')
    result = ensure_dev_keys(paths, bits=2048)
    assert paths.clients.read_text() == '{"clients": []}\n'
    assert result.client_key is None
    assert not paths.client_key.exists()


def test_half_a_key_pair_is_refused_not_overwritten(tmp_path: Path) -> None:
    paths = DevPaths.under(tmp_path)
    ensure_dev_keys(paths, bits=2048)
    private = paths.private_key.read_bytes()
    paths.keys_state.unlink()  # a dev folder from before keys directories
    paths.public_key.unlink()
    with pytest.raises(StartupError, match="incomplete"):
        ensure_dev_keys(paths, bits=2048)
    assert paths.private_key.read_bytes() == private


def _passphrase(paths: DevPaths) -> bytes | None:
    return read_passphrase(value=None, file=str(paths.passphrase), value_variable="V",
                           file_variable="F")


def test_the_issuer_folder_is_a_keys_directory_with_private_pem_active(tmp_path: Path) -> None:
    paths = DevPaths.under(tmp_path)
    ensure_dev_keys(paths, bits=2048)
    ring = load_ring(paths.issuer_dir, _passphrase(paths), now=time.time())
    [public] = load_public_keys(paths.public_key.read_bytes(), source="test")
    assert ring.active.kid == public.kid
    assert [(key.kid, key.role) for key in ring.published] == [(public.kid, ACTIVE)]


def test_an_older_dev_folder_is_adopted_as_it_is(tmp_path: Path) -> None:
    paths = DevPaths.under(tmp_path)
    ensure_dev_keys(paths, bits=2048)
    paths.keys_state.unlink()
    before = _snapshot(tmp_path)
    result = ensure_dev_keys(paths, bits=2048)
    assert result.created == [paths.keys_state]
    after = _snapshot(tmp_path)
    del after[str(paths.keys_state.relative_to(tmp_path))]
    assert after == before


def test_a_rotated_folder_is_left_alone_once_private_pem_is_retired(tmp_path: Path) -> None:
    paths = DevPaths.under(tmp_path)
    ensure_dev_keys(paths, bits=2048)
    state = read_state(paths.issuer_dir)
    # what `jwt-auth keys rotate/promote/retire` leave behind: another active key, no private.pem
    other = tmp_path / "other"
    ensure_dev_keys(DevPaths.under(other), bits=2048)
    [first] = state.keys
    [second] = read_state(other / "issuer").keys
    retired = replace(first, role=RETIRED, published_until=int(time.time()))
    write_state(paths.issuer_dir, KeyState((retired, replace(second, file="other.pem"))))
    paths.private_key.unlink()
    before = _snapshot(tmp_path)
    assert ensure_dev_keys(paths, bits=2048).created == []
    assert _snapshot(tmp_path) == before
    paths.passphrase.unlink()
    with pytest.raises(StartupError, match=r"passphrase\.txt is missing"):
        ensure_dev_keys(paths, bits=2048)


def test_command_prints_keys_once_and_says_when_it_leaves_them(tmp_path: Path) -> None:
    runner = CliRunner()
    args = ["--dir", str(tmp_path / "dev"), "--issuer-dir", str(tmp_path / "issuer"),
            "--verifier-dir", str(tmp_path / "verifier"), "--bits", "2048"]
    first = runner.invoke(dev_keys, args)
    assert first.exit_code == 0, first.output
    client_key = (tmp_path / "dev" / "dev-client.key").read_text().strip()
    assert client_key in first.stdout
    assert (tmp_path / "issuer" / "private.pem").exists()
    assert (tmp_path / "verifier" / "admin-keys.json").exists()

    second = runner.invoke(dev_keys, args)
    assert second.exit_code == 0, second.output
    assert client_key not in second.output
    assert "already exist" in second.stdout

    (tmp_path / "issuer" / "passphrase.txt").unlink()
    broken = runner.invoke(dev_keys, args)
    assert broken.exit_code == 1
    assert "Traceback" not in broken.output
    assert "passphrase.txt" in broken.output
