"""``jwt-auth keys list|rotate|promote|retire`` as an operator runs them, in a subprocess.

Two keys are generated once for the module (a first ``rotate``, then a second one) and each
test works on a copy of that directory, so only the tests about generating pay for it.
"""

from __future__ import annotations

import json
import shutil
import stat
import subprocess
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from issuer.keycommands import PUBLISH_SLACK
from issuer.keyring import ACTIVE, NEXT, RETIRED, RETIRING, KeyState, read_state, write_state
from shared.keys import load_private_key
from tests.procs import CLI_CWD, JWT_AUTH, assert_one_line_error, service_environment

pytestmark = [pytest.mark.e2e]

PASSPHRASE = "keys command passphrase"


def keys(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``jwt-auth keys ARGS`` with no ISSUER_* variable but ``env``; stdin is not a terminal."""
    return subprocess.run(
        [*JWT_AUTH, "keys", *args], env=service_environment(env or {}), cwd=CLI_CWD,
        capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=120, check=False,
    )


def audit_lines(stderr: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]


@dataclass(frozen=True)
class Made:
    """The directory after two rotates, and what each rotate answered."""

    directory: Path
    passphrase_file: Path
    first: subprocess.CompletedProcess[str]
    second: subprocess.CompletedProcess[str]
    active_kid: str
    next_kid: str


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> Made:
    root = tmp_path_factory.mktemp("cli-keys")
    passphrase_file = root / "passphrase.txt"
    passphrase_file.write_text(PASSPHRASE + "\n")
    directory = root / "keys"
    directory.mkdir()  # empty: the first rotate starts it
    first = keys("rotate", "--dir", str(directory), "--bits", "2048",
                 "--passphrase-file", str(passphrase_file))
    assert first.returncode == 0, first.stderr
    # the second one takes the directory and the passphrase from the issuer's variables
    second = keys("rotate", "--bits", "2048", env={
        "ISSUER_KEYS_DIR": str(directory), "ISSUER_KEY_PASSPHRASE_FILE": str(passphrase_file)})
    assert second.returncode == 0, second.stderr
    return Made(directory, passphrase_file, first, second, first.stdout.split()[0],
                second.stdout.split()[0])


@pytest.fixture
def keys_dir(made: Made, tmp_path: Path) -> Path:
    """A copy of the two-key directory for a test to change."""
    copy = tmp_path / "keys"
    shutil.copytree(made.directory, copy)
    return copy


def env_for(directory: Path, made: Made, **extra: str) -> dict[str, str]:
    return {"ISSUER_KEYS_DIR": str(directory),
            "ISSUER_KEY_PASSPHRASE_FILE": str(made.passphrase_file), **extra}


def backdate_next(directory: Path, seconds: int) -> None:
    """As if the next key had been published ``seconds`` earlier."""
    state = read_state(directory)
    upcoming = state.next(0)
    assert upcoming is not None
    write_state(directory, state.with_record(
        replace(upcoming, published_at=upcoming.published_at - seconds)))


def test_the_first_rotate_makes_an_encrypted_active_key(made: Made) -> None:
    result = made.first
    assert result.stdout == f"{made.active_kid} active\n"
    key_file = made.directory / f"{made.active_kid}.pem"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert key_file.read_bytes().startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    key = load_private_key(key_file.read_bytes(), PASSPHRASE.encode(), source="test")
    assert (key.kid, key.bits) == (made.active_kid, 2048)
    assert (made.directory / "keys.json").is_file()
    # progress on stderr, and one audit line naming the key, never the key or the passphrase
    assert "Generating a 2048-bit RSA key" in result.stderr
    assert "Done in" in result.stderr
    [event] = audit_lines(result.stderr)
    assert event["event"] == "signing_key_created"
    assert (event["kid"], event["role"]) == (made.active_kid, ACTIVE)
    assert PASSPHRASE not in result.stderr + result.stdout
    assert "PRIVATE KEY" not in result.stderr + result.stdout


def test_the_second_rotate_makes_a_next_key(made: Made) -> None:
    assert made.second.stdout == f"{made.next_kid} next\n"
    assert made.next_kid != made.active_kid
    assert "promote it from" in made.second.stderr
    [event] = audit_lines(made.second.stderr)
    assert (event["event"], event["kid"], event["role"]) == (
        "signing_key_created", made.next_kid, NEXT)
    key_file = made.directory / f"{made.next_kid}.pem"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert load_private_key(key_file.read_bytes(), PASSPHRASE.encode(), source="t").kid == (
        made.next_kid)


def test_a_third_rotate_while_a_next_key_exists_is_refused(made: Made, keys_dir: Path) -> None:
    before = (keys_dir / "keys.json").read_bytes()
    result = keys("rotate", "--bits", "2048", env=env_for(keys_dir, made))
    assert_one_line_error(result, f"{made.next_kid} is already the next key")
    assert (keys_dir / "keys.json").read_bytes() == before
    assert len(list(keys_dir.glob("*.pem"))) == 2


def test_list_shows_roles_and_times_and_no_key_material(made: Made, keys_dir: Path) -> None:
    result = keys("list", "--dir", str(keys_dir))
    assert result.returncode == 0, result.stderr
    header, *rows = result.stdout.splitlines()
    assert header.split() == ["KID", "ROLE", "ALG", "CREATED", "PUBLISHED", "UNTIL"]
    assert [row.split()[:3] for row in rows] == [[made.active_kid, ACTIVE, "RS256"],
                                                 [made.next_kid, NEXT, "RS256"]]
    assert "while active" in rows[0]
    assert "while next (promotable from " in rows[1]  # ISSUER_JWKS_MAX_AGE: 300 s by default
    public = read_state(keys_dir).find(made.active_kid)
    assert public is not None
    assert public.public["n"][:40] not in result.stdout
    # PEM armour or its labels; not a bare "KEY", which a random base64url kid can contain
    assert "-----BEGIN" not in result.stdout
    assert "PRIVATE KEY" not in result.stdout
    assert "PUBLIC KEY" not in result.stdout
    # with no JWKS cache, a next key waits only for every issuer worker to publish it
    backdate_next(keys_dir, PUBLISH_SLACK)
    now = keys("list", "--dir", str(keys_dir), env={"ISSUER_JWKS_MAX_AGE": "0"})
    assert "while next (promotable now)" in now.stdout


def test_promote_before_the_jwks_max_age_is_refused(made: Made, keys_dir: Path) -> None:
    before = (keys_dir / "keys.json").read_bytes()
    result = keys("promote", env=env_for(keys_dir, made))
    assert_one_line_error(result, "ISSUER_JWKS_MAX_AGE")
    assert "--force" in result.stderr
    assert made.next_kid in result.stderr
    assert (keys_dir / "keys.json").read_bytes() == before


@pytest.mark.parametrize("how", ["force", "max-age-0"])
def test_promote_makes_next_active_and_active_retiring(
    made: Made, keys_dir: Path, how: str
) -> None:
    if how == "force":
        result = keys("promote", "--force", env=env_for(keys_dir, made))
    else:
        backdate_next(keys_dir, PUBLISH_SLACK)
        result = keys("promote", env=env_for(keys_dir, made, ISSUER_JWKS_MAX_AGE="0"))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"{made.next_kid} active"
    assert lines[1].startswith(f"{made.active_kid} retiring until 20")
    assert len(lines) == 2
    state = read_state(keys_dir)
    assert {r.kid: r.role for r in state.keys} == {made.active_kid: RETIRING,
                                                   made.next_kid: ACTIVE}
    [event] = audit_lines(result.stderr)
    assert (event["event"], event["kid"], event["retiring"]) == (
        "signing_key_promoted", made.next_kid, made.active_kid)
    # the old key's private file stays until it is retired: it signed tokens still valid
    assert (keys_dir / f"{made.active_kid}.pem").exists()


def test_promote_with_a_wrong_passphrase_is_refused(made: Made, keys_dir: Path,
                                                    tmp_path: Path) -> None:
    wrong = tmp_path / "wrong.txt"
    wrong.write_text("not the passphrase\n")
    before = (keys_dir / "keys.json").read_bytes()
    result = keys("promote", "--force", "--passphrase-file", str(wrong),
                  env={"ISSUER_KEYS_DIR": str(keys_dir)})
    assert_one_line_error(result, "the passphrase does not decrypt the private key")
    assert (keys_dir / "keys.json").read_bytes() == before


def test_retire_of_the_active_key_is_refused(made: Made, keys_dir: Path) -> None:
    result = keys("retire", made.active_kid, "--dir", str(keys_dir))
    assert_one_line_error(result, f"{made.active_kid} is the active key")
    assert "promote another first" in result.stderr
    assert (keys_dir / f"{made.active_kid}.pem").exists()


def test_retire_of_the_retiring_key_deletes_it(made: Made, keys_dir: Path) -> None:
    promoted = keys("promote", "--force", env=env_for(keys_dir, made))
    assert promoted.returncode == 0, promoted.stderr
    result = keys("retire", made.active_kid, "--dir", str(keys_dir))
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"{made.active_kid} retired\n"
    assert "ISSUER_JWKS_MAX_AGE" in result.stderr
    [event] = audit_lines(result.stderr)
    assert (event["event"], event["kid"]) == ("signing_key_retired", made.active_kid)
    assert not (keys_dir / f"{made.active_kid}.pem").exists()
    assert (keys_dir / f"{made.next_kid}.pem").exists()
    listed = keys("list", "--dir", str(keys_dir))
    rows = {row.split()[0]: row.split()[1] for row in listed.stdout.splitlines()[1:]}
    assert rows == {made.active_kid: RETIRED, made.next_kid: ACTIVE}
    again = keys("retire", made.active_kid, "--dir", str(keys_dir))
    assert_one_line_error(again, f"{made.active_kid} is already retired")


def test_retire_of_the_next_key_lets_another_be_made(made: Made, keys_dir: Path) -> None:
    result = keys("retire", made.next_kid, "--dir", str(keys_dir))
    assert result.returncode == 0, result.stderr
    assert not (keys_dir / f"{made.next_kid}.pem").exists()
    assert read_state(keys_dir).next(0) is None


def test_rotate_with_a_wrong_passphrase_is_refused(made: Made, keys_dir: Path,
                                                   tmp_path: Path) -> None:
    retired = keys("retire", made.next_kid, "--dir", str(keys_dir))  # room for a next key
    assert retired.returncode == 0, retired.stderr
    wrong = tmp_path / "wrong.txt"
    wrong.write_text("not the passphrase\n")
    before = (keys_dir / "keys.json").read_bytes()
    result = keys("rotate", "--dir", str(keys_dir), "--bits", "2048",
                  "--passphrase-file", str(wrong))
    assert_one_line_error(result, "the passphrase does not decrypt the private key")
    assert "Generating" not in result.stderr  # refused before the slow part
    assert (keys_dir / "keys.json").read_bytes() == before
    assert [path.name for path in keys_dir.glob("*.pem")] == [f"{made.active_kid}.pem"]


def test_rotate_without_a_passphrase_or_a_terminal_is_refused(made: Made,
                                                              keys_dir: Path) -> None:
    result = keys("rotate", "--dir", str(keys_dir), "--bits", "2048")
    assert_one_line_error(result, "no passphrase: pass --passphrase-file")


@pytest.mark.parametrize("command", [["list"], ["rotate", "--bits", "2048"], ["promote"],
                                     ["retire", "somekid"]])
def test_no_keys_directory_is_refused(command: list[str]) -> None:
    result = keys(*command)
    assert_one_line_error(result, "no keys directory: pass --dir DIR or set ISSUER_KEYS_DIR")


def test_list_of_a_directory_without_keys_says_how_to_start(tmp_path: Path) -> None:
    result = keys("list", "--dir", str(tmp_path))
    assert_one_line_error(result, f"jwt-auth keys rotate --dir {tmp_path}")


@pytest.mark.parametrize("first", ["-", "-h", "-A"])
def test_retire_takes_a_kid_that_begins_with_a_dash(made: Made, keys_dir: Path,
                                                    first: str) -> None:
    # one thumbprint in 64 begins with "-" (base64url): not an option, nor --help for "-h..."
    kid = first + made.next_kid[len(first):]
    state = read_state(keys_dir)
    upcoming = state.find(made.next_kid)
    assert upcoming is not None
    write_state(keys_dir, KeyState(tuple(
        replace(record, kid=kid) if record is upcoming else record for record in state.keys)))
    result = keys("retire", kid, "--dir", str(keys_dir))
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"{kid} retired\n"
    assert not (keys_dir / upcoming.file).exists()
    # "--" still works, as in any click command
    assert_one_line_error(keys("retire", "--dir", str(keys_dir), "--", kid),
                          f"{kid} is already retired")
