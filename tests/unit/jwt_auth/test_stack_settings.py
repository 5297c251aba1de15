"""The local stack's settings file: what it fills in, and what a shell's own settings keep."""

from __future__ import annotations

from pathlib import Path

import click
import pytest

from jwt_auth.stacksettings import apply_stack_env, read_stack_env, write_stack_env

STACK = {
    "ISSUER_KEYS_DIR": "/data/issuer",
    "ISSUER_KEY_PASSPHRASE_FILE": "/data/issuer/passphrase.txt",
    "VERIFIER_JWKS_URL": "http://127.0.0.1:8001/.well-known/jwks.json",
    "REDIS_URL": "redis://127.0.0.1:6380/0",
    "JWT_AUTH_VERIFIER_URL": "http://127.0.0.1:8002",
    "JWT_AUTH_ADMIN_KEY_FILE": "/data/with space/dev-admin.key",
}


def test_the_file_round_trips_and_is_shell_syntax(tmp_path: Path) -> None:
    path = write_stack_env(tmp_path, STACK)
    assert path.stat().st_mode & 0o777 == 0o600
    assert read_stack_env(path) == STACK
    assert "JWT_AUTH_ADMIN_KEY_FILE='/data/with space/dev-admin.key'" in path.read_text()


def test_an_empty_shell_takes_every_stack_setting() -> None:
    environ: dict[str, str] = {"PATH": "/usr/bin"}
    assert sorted(apply_stack_env(STACK, environ)) == sorted(STACK)
    assert environ == {"PATH": "/usr/bin", **STACK}


def test_a_shell_that_configures_a_service_keeps_all_of_it() -> None:
    # a private key set by hand must not meet the stack's keys folder (two keys, or the wrong one)
    environ = {"ISSUER_PRIVATE_KEY_FILE": "/mine.pem", "REDIS_URL": "redis://mine:6379/1",
               "JWT_AUTH_VERIFIER_URL": "https://verifier.example"}
    filled = apply_stack_env(STACK, environ)
    assert filled == ["JWT_AUTH_ADMIN_KEY_FILE"]
    assert "ISSUER_KEYS_DIR" not in environ
    assert "VERIFIER_JWKS_URL" not in environ  # REDIS_ and VERIFIER_ are one service's
    assert environ["JWT_AUTH_VERIFIER_URL"] == "https://verifier.example"


@pytest.mark.parametrize("line", ["NOT A LINE", "X=a b", "1X=y", "X='unclosed"])
def test_a_damaged_file_is_one_line_naming_where(tmp_path: Path, line: str) -> None:
    path = tmp_path / "stack.env"
    path.write_text(f"# comment\nREDIS_URL=redis://x\n{line}\n")
    with pytest.raises(click.ClickException) as caught:
        read_stack_env(path)
    assert caught.value.message == f"{path}:3: expected NAME=value"
