"""Configuration mistakes, as an operator makes them, against the real commands.

A misspelt variable is named at start (or refused under ``JWT_AUTH_STRICT_CONFIG=true``), a
``REDIS_URL`` redis-py would choke on is one line and exit 3, and ``jwt-auth config check``
shows what a service would start with, secrets masked, before anything is started.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.apikeys import add_client
from tests.keypairs import KeyPair
from tests.procs import RedisServer, ServiceProcess, issuer_env, run_cli, verifier_env

pytestmark = pytest.mark.e2e


def test_a_typo_is_named_at_start_and_refused_in_strict_mode(
    key_pair: KeyPair, redis_server: RedisServer, tmp_path: Path
) -> None:
    admins = tmp_path / "admins.json"
    add_client(admins, "ops", admin=True, variable="VERIFIER_ADMIN_KEYS_FILE")
    env = verifier_env(key_pair, redis_server.url, admins, VERIFIER_LEWAY="5")
    verifier = ServiceProcess("verifier", env, tmp_path / "verifier.log", workers=1)
    verifier.start()
    verifier.stop()
    warnings = [line for line in verifier.output().splitlines() if "unknown variable" in line]
    assert len(warnings) == 1, verifier.output()
    # one line, as every other line of the service: <time> WARNING [<pid>] <logger>: <text>
    assert " WARNING [" in warnings[0]
    assert warnings[0].endswith(
        "] verifier.app: unknown variable VERIFIER_LEWAY (did you mean VERIFIER_LEEWAY?)")

    strict = ServiceProcess("verifier", {**env, "JWT_AUTH_STRICT_CONFIG": "true"},
                            tmp_path / "strict.log", workers=1)
    status, lines = strict.expect_exit()
    assert status == 3
    assert lines[-1] == ("jwt-auth verifier: cannot start: VERIFIER_LEWAY: unknown to the "
                         "verifier, and JWT_AUTH_STRICT_CONFIG is true (fix the names, or unset "
                         "them)")


def test_the_issuer_names_its_own_typos(key_pair: KeyPair, tmp_path: Path) -> None:
    clients = tmp_path / "clients.json"
    add_client(clients, "webapp", admin=False, variable="ISSUER_CLIENTS_FILE")
    issuer = ServiceProcess("issuer", {**issuer_env(key_pair, clients),
                                       "ISSUER_TOKEN_TTLL": "60", "ISUER_CLIENTS_FILE": "x",
                                       "JWT_AUTH_STRICT_CONFIG": "true"},
                            tmp_path / "issuer.log", workers=1)
    status, _lines = issuer.expect_exit()
    assert status == 3
    assert "unknown variable ISSUER_TOKEN_TTLL (did you mean ISSUER_TOKEN_TTL?)" in \
        issuer.output()
    assert "unknown variable ISUER_CLIENTS_FILE (did you mean ISSUER_CLIENTS_FILE?)" in \
        issuer.output()
    assert "Traceback" not in issuer.output()


@pytest.mark.parametrize(("url", "message"), [
    ("redis://127.0.0.1:abc/0", "REDIS_URL: a URL has a port that is not a number"),
    ("redis://127.0.0.1:6379/abc", "REDIS_URL: the database must be a number"),
    ("http://127.0.0.1:6379", "REDIS_URL: expected redis://, rediss:// or unix:// URLs"),
    ("redis://u:p@[::1/0", "REDIS_URL: a URL cannot be read"),
])
def test_a_redis_url_that_cannot_work_is_one_line_and_exit_3(
    key_pair: KeyPair, tmp_path: Path, url: str, message: str
) -> None:
    admins = tmp_path / "admins.json"
    add_client(admins, "ops", admin=True, variable="VERIFIER_ADMIN_KEYS_FILE")
    verifier = ServiceProcess("verifier", verifier_env(key_pair, url, admins),
                              tmp_path / "verifier.log", workers=1)
    status, lines = verifier.expect_exit()
    assert status == 3
    assert "Traceback" not in verifier.output()
    assert lines[-1].startswith(f"jwt-auth verifier: cannot start: {message}"), lines


def test_config_check_shows_the_settings_masked_and_the_problems(key_pair: KeyPair) -> None:
    env = {"VERIFIER_PUBLIC_KEY_FILE": str(key_pair.public_path),
           "REDIS_URL": "redis://:s3cret@127.0.0.1:6380/2", "VERIFIER_LEWAY": "5",
           "ISSUER_KEY_PASSPHRASE": "hunter2", "ISSUER_TOKEN_TTLL": "60"}
    checked = run_cli("config", "check", env=env)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    out = checked.stdout
    assert "verifier: would start" in out
    assert "issuer: would start" in out
    assert 'redis_url = "redis://:********@127.0.0.1:6380/2"' in out
    assert 'key_passphrase = "********"' in out
    assert "s3cret" not in out
    assert "hunter2" not in out
    assert "unknown variable VERIFIER_LEWAY (did you mean VERIFIER_LEEWAY?)" in out
    assert "unknown variable ISSUER_TOKEN_TTLL (did you mean ISSUER_TOKEN_TTL?)" in out

    strict = run_cli("config", "check", "verifier",
                     env={**env, "JWT_AUTH_STRICT_CONFIG": "true"})
    assert strict.returncode == 3
    assert "verifier: would NOT start" in strict.stdout
    broken = run_cli("config", "check", "verifier",
                     env={**env, "REDIS_URL": "redis://127.0.0.1:abc"})
    assert broken.returncode == 3
    assert "refused at start: REDIS_URL: a URL has a port that is not a number" in broken.stdout
    # redis-py also takes a password from the query; and a URL nothing can read is no traceback
    query = run_cli("config", "check", "verifier",
                    env={**env, "REDIS_URL": "redis://127.0.0.1:6380/2?password=s3cret"})
    assert 'redis_url = "redis://127.0.0.1:6380/2?password=********"' in query.stdout
    assert "s3cret" not in query.stdout + query.stderr
    unreadable = run_cli("config", "check", "verifier",
                         env={**env, "REDIS_URL": "redis://u:s3cret@[::1/0"})
    assert unreadable.returncode == 3
    assert "Traceback" not in unreadable.stderr
    assert "s3cret" not in unreadable.stdout + unreadable.stderr
    assert "refused at start: REDIS_URL: a URL cannot be read" in unreadable.stdout
