"""``jwt-auth sessions list|end`` and ``jwt-auth revoke`` against a real verifier under gunicorn.

What an operator checks: the commands do what the admin API does (a listed session is the one
that logged in, an ended user's tokens stop working, a revoked token is refused), the admin key
comes from a file or the environment, and every failure is one line.
"""

from __future__ import annotations

import hashlib
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from shared.apikeys import add_client
from tests.forge import fresh, sign
from tests.keypairs import KeyPair
from tests.procs import (
    CLI_CWD,
    JWT_AUTH,
    RedisServer,
    ServiceProcess,
    assert_one_line_error,
    free_port,
    run_cli,
    service_environment,
    verifier_env,
)

pytestmark = pytest.mark.e2e


@dataclass
class Verifier:
    service: ServiceProcess
    admin_key_file: Path
    client_key: str  # a key of the same file without --admin

    @property
    def env(self) -> dict[str, str]:
        return {"JWT_AUTH_VERIFIER_URL": self.service.url,
                "JWT_AUTH_ADMIN_KEY_FILE": str(self.admin_key_file)}


@pytest.fixture(scope="module")
def verifier(key_pair: KeyPair, redis_server: RedisServer,
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[Verifier]:
    folder = tmp_path_factory.mktemp("cli-admin")
    admins = folder / "admins.json"
    admin_key_file = folder / "admin.key"
    admin_key_file.write_text(
        add_client(admins, "ops", admin=True, variable="VERIFIER_ADMIN_KEYS_FILE") + "\n")
    client_key = add_client(admins, "app", admin=False, variable="VERIFIER_ADMIN_KEYS_FILE")
    if redis_server.process is None or redis_server.process.poll() is not None:
        redis_server.start()
    service = ServiceProcess("verifier", verifier_env(key_pair, redis_server.url, admins),
                             folder / "verifier.log", workers=1, threads=2)
    service.start()
    try:
        yield Verifier(service, admin_key_file, client_key)
    finally:
        service.stop()


def _login(verifier: Verifier, token: str) -> str:
    answer = requests.post(f"{verifier.service.url}/v1/sessions", json={"token": token},
                           timeout=10)
    assert answer.status_code == 201, answer.text
    session_id: str = answer.json()["sessionId"]
    return session_id


def _verify(verifier: Verifier, token: str) -> requests.Response:
    return requests.post(f"{verifier.service.url}/v1/verify", json={"token": token}, timeout=10)


def test_list_then_end_a_users_sessions(verifier: Verifier, key_pair: KeyPair) -> None:
    token = fresh(key_pair, "olga", isAdmin=True)
    session_id = _login(verifier, token)
    _login(verifier, fresh(key_pair, "olga"))

    listed = run_cli("sessions", "list", "olga", env=verifier.env)
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert lines[0] == "2 live sessions of olga (provider jwt), oldest first:"
    # the first login, an admin one, named by the start of its id's hash; never the id
    assert lines[2].split()[:2] == [hashlib.sha256(session_id.encode()).hexdigest()[:16], "yes"]
    assert session_id not in listed.stdout

    ended = run_cli("sessions", "end", "olga", env=verifier.env)
    assert ended.returncode == 0, ended.stderr
    assert ended.stdout.startswith("ended 2 sessions of olga (provider jwt); its tokens issued "
                                   "before ")
    assert _verify(verifier, token).json()["code"] == "token_revoked"
    assert requests.get(f"{verifier.service.url}/v1/sessions/{session_id}",
                        timeout=10).status_code == 404
    empty = run_cli("sessions", "list", "olga", "--json", env=verifier.env)
    assert '"sessions": []' in empty.stdout


def test_revoke_a_token_held_or_named_by_its_jti(verifier: Verifier, key_pair: KeyPair) -> None:
    held = fresh(key_pair, "pia")
    assert _verify(verifier, held).status_code == 200
    # from standard input: a token on a command line would show in ps and the shell's history
    revoked = subprocess.run(
        [*JWT_AUTH, "revoke", "-"], input=held + "\n", capture_output=True, text=True,
        env=service_environment({"JWT_AUTH_VERIFIER_URL": verifier.service.url}),
        cwd=CLI_CWD, timeout=60, check=False)
    assert revoked.returncode == 0, revoked.stderr
    assert revoked.stdout.strip() == "revoked; the token is refused until it expires"
    assert _verify(verifier, held).json()["code"] == "token_revoked"

    named = sign({"userId": "pia", "jti": "cli-jti-1", "exp": 4102444800}, key_pair)
    assert _verify(verifier, named).status_code == 200
    by_jti = run_cli("revoke", "--jti", "cli-jti-1", "--user", "pia", "--expires-at",
                     "4102444800", env=verifier.env)
    assert by_jti.returncode == 0, by_jti.stderr
    assert by_jti.stdout.strip() == \
        "revoked jti cli-jti-1 of pia; refused until 2100-01-01 00:00:00 UTC"
    assert _verify(verifier, named).json()["code"] == "token_revoked"


def test_the_admin_key_may_come_from_the_environment(verifier: Verifier,
                                                     key_pair: KeyPair) -> None:
    key = verifier.admin_key_file.read_text().strip()
    listed = run_cli("sessions", "list", "quinn", "--verifier", verifier.service.url,
                     env={"JWT_AUTH_ADMIN_KEY": key})
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.strip() == "0 live sessions of quinn (provider jwt)"


@pytest.mark.parametrize(("args", "env", "expected"), [
    (["sessions", "list", "x"], {}, "which verifier? pass --verifier URL"),
    (["sessions", "list", "x", "--verifier", "ftp://host"], {},
     "expected an http:// or https:// URL"),
    (["sessions", "end", "x"], "NO_KEY", "no admin key: set JWT_AUTH_ADMIN_KEY_FILE"),
    (["sessions", "list", "x"], "WRONG_KEY",
     "the verifier refused: 401 unauthorized"),
    (["sessions", "list", "x"], "CLIENT_KEY", "the verifier refused: 403 forbidden"),
    (["sessions", "list", "x", "--provider", "nope"], "OK", "400 request_invalid"),
    (["revoke", "not-a-token"], "OK", "the verifier refused: 401 token_malformed"),
    (["revoke", "--jti", "j"], "OK", "--jti needs --user"),
    (["revoke"], "OK", "give a TOKEN (or -) or --jti"),
    (["revoke", "-"], "OK", "no token on standard input"),
    (["sessions", "list", "x", "--admin-key-file", "/nonexistent/key"], "OK",
     "/nonexistent/key: No such file or directory"),
    (["sessions", "list", "x", "--data-dir", "/nonexistent"], "OK",
     "/nonexistent/stack.env does not exist"),
    (["sessions", "list", "x", "--verifier", "http://[::1"], {}, "expected an http:// or https"),
    (["sessions", "list", "x", "--verifier", "http://h:abc"], {}, "expected an http:// or https"),
    (["sessions", "list", "x"], "TWO_LINE_KEY", "the admin key must be one word of visible"),
])
def test_every_failure_is_one_line(verifier: Verifier, tmp_path: Path, args: list[str],
                                   env: dict[str, str] | str, expected: str) -> None:
    if env == "NO_KEY":
        env = {"JWT_AUTH_VERIFIER_URL": verifier.service.url}
    elif env in ("WRONG_KEY", "CLIENT_KEY", "TWO_LINE_KEY"):
        key_file = tmp_path / "key"
        key_file.write_text({"WRONG_KEY": "jwta_wrong", "CLIENT_KEY": verifier.client_key,
                             "TWO_LINE_KEY": "jwta_secret-one\njwta_secret-two"}[env])
        env = {**verifier.env, "JWT_AUTH_ADMIN_KEY_FILE": str(key_file)}
    elif env == "OK":
        env = verifier.env
    assert isinstance(env, dict)
    result = run_cli(*args, env=env)
    assert result.returncode in (1, 2), result
    if result.returncode == 2:  # click's usage errors: the usage line, then the one-line reason
        assert expected in result.stderr.strip().splitlines()[-1]
        assert "Traceback" not in result.stderr
    else:
        assert_one_line_error(result, expected)
    assert "jwta_secret" not in result.stdout + result.stderr


def test_an_answer_that_is_no_verifiers_is_one_line(verifier: Verifier, tmp_path: Path) -> None:
    # a server answering 200 with JSON of another shape: the issuer's JWKS, say
    import http.server
    import threading

    class Other(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(b'{"keys": []}')

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Other)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        result = run_cli("sessions", "list", "x", "--verifier", url, env=verifier.env)
        assert_one_line_error(result, "answered something that is not a verifier's answer")
    finally:
        server.shutdown()
        server.server_close()


def test_a_verifier_that_is_not_there_is_one_line(verifier: Verifier) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = run_cli("sessions", "list", "x", "--verifier", url, env=verifier.env)
    assert_one_line_error(result, f"cannot reach the verifier at {url}: [Errno 111] "
                                  "Connection refused")
