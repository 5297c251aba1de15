"""The issuer's commands as a user runs them: keygen, clients add, issue."""

from __future__ import annotations

import os
import pty
import select
import stat
import time
from pathlib import Path

import jwt as pyjwt
import pytest

from shared.apikeys import ApiKeyRegistry
from shared.keys import load_private_key, load_public_keys
from tests.keypairs import PASSPHRASE, KeyPair
from tests.procs import JWT_AUTH, REPO, assert_one_line_error, run_cli

run = run_cli


def test_keygen_with_passphrase_file(tmp_path: Path) -> None:
    secret = tmp_path / "passphrase"
    secret.write_text("keygen passphrase\n")
    out = tmp_path / "keys"
    result = run("keygen", "--out", str(out), "--bits", "2048", "--passphrase-file", str(secret))
    assert result.returncode == 0, result.stderr
    assert "Generating a 2048-bit RSA key" in result.stderr
    private, public = out / "private.pem", out / "public.pem"
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert b"BEGIN ENCRYPTED PRIVATE KEY" in private.read_bytes()
    assert public.read_text().startswith("-----BEGIN PUBLIC KEY-----")
    key = load_private_key(private.read_bytes(), b"keygen passphrase", source="test")
    assert key.bits == 2048
    assert key.public_pem() == public.read_text()
    assert result.stdout.strip().splitlines()[-1] == f"kid {key.kid}"


def test_keygen_refuses_to_overwrite_without_force(tmp_path: Path) -> None:
    secret = tmp_path / "passphrase"
    secret.write_text("p1")
    args = ("keygen", "--out", str(tmp_path), "--bits", "2048", "--passphrase-file", str(secret))
    assert run(*args).returncode == 0
    before = (tmp_path / "private.pem").read_bytes()
    assert_one_line_error(run(*args), "pass --force")
    assert (tmp_path / "private.pem").read_bytes() == before
    assert run(*args, "--force").returncode == 0
    assert (tmp_path / "private.pem").read_bytes() != before
    assert stat.S_IMODE((tmp_path / "private.pem").stat().st_mode) == 0o600


def test_keygen_without_terminal_or_passphrase_file_is_one_line(tmp_path: Path) -> None:
    assert_one_line_error(run("keygen", "--out", str(tmp_path)), "--passphrase-file")
    assert not (tmp_path / "private.pem").exists()


def test_keygen_refuses_small_keys(tmp_path: Path) -> None:
    result = run("keygen", "--out", str(tmp_path), "--bits", "1024")
    assert result.returncode != 0
    assert "Traceback" not in result.stderr


def _read_until(fd: int, marker: bytes, seen: bytearray, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while marker not in seen:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"no {marker!r} from keygen; saw {bytes(seen)!r}")
        ready, _, _ = select.select([fd], [], [], remaining)
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # EIO: the child closed the terminal
                chunk = b""
            if not chunk:
                raise AssertionError(f"keygen ended before {marker!r}; saw {bytes(seen)!r}")
            seen.extend(chunk)


def test_keygen_asks_twice_on_a_terminal(tmp_path: Path) -> None:
    out = tmp_path / "keys"
    pid, fd = pty.fork()
    if pid == 0:  # the child: jwt-auth with the pseudo-terminal as its controlling terminal
        try:
            os.chdir(REPO)
            argv = [*JWT_AUTH, "keygen", "--out", str(out), "--bits", "2048"]
            os.execv(argv[0], argv)  # noqa: S606 - a fixed argv, no shell involved
        finally:
            os._exit(127)  # never run the rest of pytest in the child
    seen = bytearray()
    try:
        _read_until(fd, b"Passphrase", seen)
        os.write(fd, b"typed twice\n")
        _read_until(fd, b"Repeat", seen)
        os.write(fd, b"typed twice\n")
        _read_until(fd, b"kid ", seen)
        _, status = os.waitpid(pid, 0)
    finally:
        os.close(fd)
    assert os.waitstatus_to_exitcode(status) == 0, bytes(seen)
    assert b"typed twice" not in seen  # the passphrase is not echoed
    load_private_key((out / "private.pem").read_bytes(), b"typed twice", source="test")


def test_clients_add_prints_the_key_last(tmp_path: Path) -> None:
    clients_file = tmp_path / "clients.json"
    result = run("clients", "add", "webapp", env={"ISSUER_CLIENTS_FILE": str(clients_file)})
    assert result.returncode == 0, result.stderr
    key = result.stdout.strip().splitlines()[-1]
    admin = run("clients", "add", "backoffice", "--admin", "--file", str(clients_file))
    admin_key = admin.stdout.strip().splitlines()[-1]
    registry = ApiKeyRegistry.load(str(clients_file), variable="ISSUER_CLIENTS_FILE")
    web, ops = registry.authenticate(key), registry.authenticate(admin_key)
    assert web is not None
    assert (web.name, web.admin) == ("webapp", False)
    assert ops is not None
    assert (ops.name, ops.admin) == ("backoffice", True)
    assert key not in clients_file.read_text()


def test_clients_add_errors_are_one_line(tmp_path: Path) -> None:
    assert_one_line_error(run("clients", "add", "webapp"), "ISSUER_CLIENTS_FILE")
    clients_file = tmp_path / "clients.json"
    assert run("clients", "add", "webapp", "--file", str(clients_file)).returncode == 0
    assert_one_line_error(run("clients", "add", "webapp", "--file", str(clients_file)),
                          "already has a client named 'webapp'")
    clients_file.write_text("{broken")
    assert_one_line_error(run("clients", "add", "other", "--file", str(clients_file)),
                          "not a readable keys file")


def _issuer_env(key_pair: KeyPair, **extra: str) -> dict[str, str]:
    return {"ISSUER_PRIVATE_KEY_FILE": str(key_pair.private_path),
            "ISSUER_KEY_PASSPHRASE_FILE": str(key_pair.passphrase_path), **extra}


def test_issue_prints_only_a_verifiable_token(key_pair: KeyPair) -> None:
    result = run("issue", '{"userId": "123", "isAdmin": true}', "--expires-in", "120",
                 env=_issuer_env(key_pair, ISSUER_ISSUER="https://auth.example"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("\n") == 1
    token = result.stdout.strip()
    claims = pyjwt.decode(token, key_pair.public_pem, algorithms=["RS256"],
                          issuer="https://auth.example")
    assert claims["userId"] == "123"
    assert claims["isAdmin"] is True
    assert claims["exp"] - claims["iat"] == 120
    [public] = load_public_keys(key_pair.public_pem.encode(), source="test")
    assert pyjwt.get_unverified_header(token) == {"alg": "RS256", "typ": "JWT", "kid": public.kid}


def test_issue_with_ttl_zero_makes_a_seed_style_token(key_pair: KeyPair) -> None:
    result = run("issue", '{"userId": "123"}', env=_issuer_env(key_pair, ISSUER_TOKEN_TTL="0"))
    claims = pyjwt.decode(result.stdout.strip(), key_pair.public_pem, algorithms=["RS256"])
    assert "exp" not in claims


@pytest.mark.parametrize(
    ("args", "extra", "expected"),
    [
        (('{"userId": 1}',), {}, "userId"),
        (('{"userId": "1", "exp": 5}',), {}, "'exp' is set by the issuer"),
        (("not json",), {}, "PAYLOAD_JSON"),
        (('{"userId": "1"}', "--expires-in", "999999"), {}, "--expires-in"),
        (('{"userId": "1"}',), {"ISSUER_KEY_PASSPHRASE_FILE": "",
                                "ISSUER_KEY_PASSPHRASE": "wrong"}, "does not decrypt"),
        (('{"userId": "1"}',), {"ISSUER_TOKEN_TTL": "soon"}, "ISSUER_TOKEN_TTL"),
    ],
)
def test_issue_errors_are_one_line(
    key_pair: KeyPair, args: tuple[str, ...], extra: dict[str, str], expected: str
) -> None:
    result = run("issue", *args, env=_issuer_env(key_pair, **extra))
    assert_one_line_error(result, expected)
    assert result.stdout == ""
    assert PASSPHRASE not in result.stderr


def test_issue_without_a_key_says_what_to_set() -> None:
    assert_one_line_error(run("issue", '{"userId": "1"}'), "ISSUER_PRIVATE_KEY_FILE")
