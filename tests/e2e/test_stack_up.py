"""``jwt-auth up`` as a user runs it: a real subprocess with redis-server and gunicorn under it."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from jwt_auth.devkeys import DevPaths
from tests.forge import load_private, sign
from tests.procs import free_port, service_environment, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

JWT_AUTH = [sys.executable, "-m", "jwt_auth"]


def _processes_mentioning(needles: list[str]) -> dict[int, str]:
    """Live (non-zombie) processes whose command line contains one of ``needles``."""
    found: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if state != "Z" and any(needle in cmdline for needle in needles):
            found[int(entry.name)] = cmdline
    return found


class Up:
    """One ``jwt-auth up`` run on free ports and a data folder of the test's own."""

    def __init__(self, data_dir: Path, logs: Path, env: dict[str, str] | None = None) -> None:
        self.data_dir = data_dir
        self.ports = {"issuer": free_port(), "verifier": free_port(), "redis": free_port()}
        self.logs = logs
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        self.process: subprocess.Popen[bytes] | None = None
        self.run = 0

    @property
    def issuer(self) -> str:
        return f"http://127.0.0.1:{self.ports['issuer']}"

    @property
    def verifier(self) -> str:
        return f"http://127.0.0.1:{self.ports['verifier']}"

    @property
    def needles(self) -> list[str]:
        """What the command lines of the stack's children contain (redis retitles itself)."""
        return [f"127.0.0.1:{port}" for port in self.ports.values()]

    def argv(self) -> list[str]:
        return [
            *JWT_AUTH, "up", "--data-dir", str(self.data_dir),
            "--issuer-port", str(self.ports["issuer"]),
            "--verifier-port", str(self.ports["verifier"]),
            "--redis-port", str(self.ports["redis"]),
            "--key-bits", "2048", "--workers", "1",
        ]

    def start(self) -> None:
        self.run += 1
        self.stdout_path = self.logs / f"up-{self.run}.out"
        self.stderr_path = self.logs / f"up-{self.run}.err"
        with self.stdout_path.open("wb") as out, self.stderr_path.open("wb") as err:
            self.process = subprocess.Popen(
                self.argv(), stdout=out, stderr=err, env=self.env, cwd=self.logs
            )

    def stdout(self) -> str:
        return self.stdout_path.read_text(errors="replace")

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def wait_ready(self) -> None:
        assert self.process is not None

        def ready() -> bool:
            if self.process is not None and self.process.poll() is not None:
                raise AssertionError(f"jwt-auth up exited early:\n{self.stdout()}\n{self.stderr()}")
            return "jwt-auth up: ready" in self.stdout()

        try:
            wait_until(ready, timeout=90, what="jwt-auth up to be ready")
        except TimeoutError:
            self.kill()
            raise AssertionError(f"not ready:\n{self.stdout()}\n{self.stderr()}") from None

    def failure_lines(self, *, timeout: float = 30) -> list[str]:
        """Wait for a run that must fail; its stderr lines, once it has exited non-zero."""
        assert self.process is not None
        status = self.process.wait(timeout=timeout)
        self.process = None
        assert status != 0, self.stdout()
        return self.stderr().strip().splitlines()

    def stop(self, sig: int) -> int:
        assert self.process is not None
        self.process.send_signal(sig)
        status = self.process.wait(timeout=60)
        self.process = None
        return status

    def kill(self) -> None:
        """Last resort for a failing test: the stack and whatever it left."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.process = None
        for pid in _processes_mentioning(self.needles):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def client_key(self) -> str:
        return (self.data_dir / "dev-client.key").read_text().strip()

    def issue(self, user_id: str) -> dict[str, str]:
        response = requests.post(
            f"{self.issuer}/v1/tokens",
            json={"userId": user_id},
            headers={"Authorization": f"Bearer {self.client_key()}"},
            timeout=10,
        )
        assert response.status_code == 201, response.text
        body: dict[str, str] = response.json()
        return body

    def verify(self, token: str) -> requests.Response:
        return requests.post(f"{self.verifier}/v1/verify", json={"token": token}, timeout=10)


@pytest.fixture
def up(tmp_path: Path) -> Iterator[Up]:
    logs = tmp_path / "logs"
    logs.mkdir()
    stack = Up(tmp_path / "data", logs)
    yield stack
    stack.kill()


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _parent(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def _assert_all_gone(up: Up, pids: dict[int, str]) -> None:
    """Every process the stack started is gone, and nothing else serves its ports."""

    def gone() -> bool:
        return not any(_alive(pid) for pid in pids) and not _processes_mentioning(up.needles)

    try:
        wait_until(gone, timeout=5, what="the stack's children to be gone")
    except TimeoutError:
        left = {pid: cmd for pid, cmd in pids.items() if _alive(pid)}
        raise AssertionError(f"processes left behind: {left}") from None


def test_up_round_trip_survives_restart_and_stops_cleanly_on_sigint_and_sigterm(up: Up) -> None:
    up.start()
    up.wait_ready()
    first_out = up.stdout()
    client_key = up.client_key()
    # the keys are shown once, on the first run
    assert client_key in first_out
    assert f"{up.issuer}" in first_out
    assert f"{up.verifier}" in first_out
    children = _processes_mentioning(up.needles)
    kinds = " ".join(children.values())
    assert "redis-server" in kinds
    assert "serve issuer" in kinds
    assert "serve verifier" in kinds

    issued = up.issue("123")
    answer = up.verify(issued["token"])
    assert answer.status_code == 200, answer.text
    assert answer.json()["userId"] == "123"
    # the issuer's identifier is its URL: discovery works, and its tokens say so in iss
    discovered = requests.get(f"{up.issuer}/.well-known/openid-configuration", timeout=10)
    assert discovered.status_code == 200, discovered.text
    assert discovered.json()["issuer"] == up.issuer
    assert discovered.json()["jwks_uri"] == f"{up.issuer}/.well-known/jwks.json"
    assert answer.json()["claims"]["iss"] == up.issuer
    # the verifier does not require iss: a seed-style token signed offline with the dev key
    # (the seed's node snippet sets none) is still accepted
    dev = DevPaths.under(up.data_dir)
    dev_key = load_private(dev.private_key.read_bytes(), dev.passphrase.read_text().strip())
    seed_style = up.verify(sign({"userId": "seed", "iat": int(time.time())}, dev_key))
    assert seed_style.status_code == 200, seed_style.text
    assert "iss" not in seed_style.json()["claims"]
    revoked = requests.post(
        f"{up.verifier}/v1/revocations", json={"token": issued["token"]}, timeout=10
    )
    assert revoked.status_code < 300, revoked.text

    assert up.stop(signal.SIGINT) == 0
    _assert_all_gone(up, children)
    assert "stopped (SIGINT)" in up.stdout()

    # a second run reuses its data: same key, same client, the revocation still holds
    up.start()
    up.wait_ready()
    assert client_key not in up.stdout()
    assert "already exist" in up.stdout()
    again = up.verify(issued["token"])
    assert again.status_code == 401
    assert again.json()["code"] == "token_revoked"
    fresh = up.issue("456")
    assert fresh["kid"] == issued["kid"]
    assert up.verify(fresh["token"]).json()["userId"] == "456"

    children = _processes_mentioning(up.needles)
    assert up.stop(signal.SIGTERM) == 0
    _assert_all_gone(up, children)
    assert "stopped (SIGTERM)" in up.stdout()


@pytest.mark.skipif(shutil.which("curl") is None, reason="the printed demo uses curl")
def test_printed_demo_runs_as_pasted(up: Up) -> None:
    up.start()
    up.wait_ready()
    lines = up.stdout().splitlines()
    start = lines.index("Copy-paste demo (bash):") + 2
    end = lines.index("Ctrl-C stops everything.")
    script = "\n".join(lines[start:end])
    result = subprocess.run(
        ["bash", "-c", "set -e\n" + script], capture_output=True, text=True, timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert '"userId": "123"' in out or '"userId":"123"' in out, out
    assert "X-Auth-User-Id: 123" in out
    assert "logout: 204" in out
    assert "token_revoked" in out.splitlines()[-2]
    assert '"sessionsEnded":0' in out.splitlines()[-1], out
    assert up.stop(signal.SIGINT) == 0


def test_dead_child_stops_the_rest_and_says_which(up: Up) -> None:
    up.start()
    up.wait_ready()
    children = _processes_mentioning(up.needles)
    assert up.process is not None
    # the gunicorn master is the stack's own child; its workers are the master's children
    [verifier_master] = [
        pid for pid, cmd in children.items()
        if "serve verifier" in cmd and _parent(pid) == up.process.pid
    ]
    os.kill(verifier_master, signal.SIGKILL)
    err = up.failure_lines(timeout=60)
    assert len(err) == 1, err
    assert "verifier stopped unexpectedly" in err[0]
    assert "SIGKILL" in err[0]
    _assert_all_gone(up, children)


def test_taken_port_is_one_line_and_starts_nothing(up: Up) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", up.ports["verifier"]))
        taken.listen()
        up.start()
        err = up.failure_lines()
    assert len(err) == 1, err
    assert f"port {up.ports['verifier']}" in err[0]
    assert "--verifier-port" in err[0]
    assert "Traceback" not in up.stdout()
    assert not (up.data_dir / "issuer" / "private.pem").exists()
    assert not _processes_mentioning(up.needles)


def test_missing_redis_server_names_the_package(up: Up, tmp_path: Path) -> None:
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    up.env["PATH"] = str(empty)
    up.start()
    err = up.failure_lines()
    assert len(err) == 1, err
    assert "redis-server is not on PATH" in err[0]
    assert "apt-get install redis-server" in err[0]
    assert "brew install redis" in err[0]


def test_commands_beside_the_stack_use_its_settings(tmp_path: Path) -> None:
    """A runbook step after ``jwt-auth up`` needs nothing exported: run from the folder that
    holds ``.dev``, each command reads ``.dev/stack.env``."""
    logs = tmp_path / "logs"
    logs.mkdir()
    up = Up(tmp_path / ".dev", logs)
    try:
        up.start()
        up.wait_ready()
        [cli_line] = [line for line in up.stdout().splitlines()
                      if line.strip().startswith("cli ")]
        assert cli_line.split()[1] == str(Path(sys.executable).parent / "jwt-auth")
        assert str(tmp_path / ".dev" / "stack.env") in cli_line
        bare = service_environment({})  # no variable of ours: the stack's file is all there is

        def cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
            return subprocess.run([*JWT_AUTH, *args], env=bare, cwd=tmp_path, input=stdin,
                                  capture_output=True, text=True, timeout=60, check=False)

        issued = cli("issue", '{"userId": "123"}')  # signs with the stack's rotating keys
        assert issued.returncode == 0, issued.stderr
        token = issued.stdout.strip()
        checked = cli("verify", token)  # trusts what the stack's issuer publishes
        assert checked.returncode == 0, checked.stderr
        assert '"userId": "123"' in checked.stdout
        # signed as the running issuer signs: its iss too
        assert f'"iss": "{up.issuer}"' in checked.stdout
        login = requests.post(f"{up.verifier}/v1/sessions", json={"token": token}, timeout=10)
        assert login.status_code == 201, login.text

        listed = cli("sessions", "list", "123")  # the dev admin key, the stack's verifier
        assert listed.returncode == 0, listed.stderr
        assert listed.stdout.startswith("1 live session of 123 (provider jwt)")
        revoked = cli("revoke", "-", stdin=token)
        assert revoked.returncode == 0, revoked.stderr
        assert up.verify(token).json()["code"] == "token_revoked"
        ended = cli("sessions", "end", "123")
        assert ended.stdout.startswith("ended 1 session of 123"), ended.stderr
        config = cli("config", "check", "verifier")
        assert config.returncode == 0, config.stderr
        assert f"redis://127.0.0.1:{up.ports['redis']}/0" in config.stdout

        # the shell's own settings win, a whole service at a time
        mine = subprocess.run([*JWT_AUTH, "sessions", "list", "123"],
                              env={**bare, "JWT_AUTH_VERIFIER_URL": "http://127.0.0.1:9"},
                              cwd=tmp_path, capture_output=True, text=True, timeout=60,
                              check=False)
        assert "cannot reach the verifier at http://127.0.0.1:9" in mine.stderr
        assert up.stop(signal.SIGINT) == 0
    finally:
        up.kill()
