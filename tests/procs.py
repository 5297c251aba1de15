"""Real processes for tests: redis-server on a free port, services under gunicorn.

Every wait here is a bounded loop: a test that cannot reach its process fails with the
process's own output instead of hanging.
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import redis

from shared.apikeys import add_client
from tests.keypairs import KeyPair

REPO = Path(__file__).resolve().parent.parent
JWT_AUTH = [sys.executable, "-m", "jwt_auth"]
# where the CLI under test runs: the commands read a local stack's settings from ./.dev
# (jwt_auth/stacksettings.py), and a developer's own `scripts/up` in this checkout must not
# configure them
CLI_CWD = Path(tempfile.mkdtemp(prefix="jwt-auth-cli-"))
atexit.register(shutil.rmtree, CLI_CWD, ignore_errors=True)

_PRODUCT_VARIABLE_PREFIXES = (
    "ISSUER_", "VERIFIER_", "REDIS_URL", "REDIS_PASSWORD_FILE", "PROMETHEUS_MULTIPROC_DIR",
    "JWT_USER_ID_FIELD", "JWT_IS_ADMIN_", "JWT_AUTH_", "LOG_LEVEL", "LOG_FORMAT",
)


def service_environment(env: Mapping[str, str]) -> dict[str, str]:
    """This process's environment without any product variable, plus ``env``.

    A developer's shell may export ISSUER_* or VERIFIER_* for their own stack; a test service
    must see only what the test gives it.
    """
    inherited = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(_PRODUCT_VARIABLE_PREFIXES)
    }
    return {**inherited, **env}


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_until(check: Callable[[], bool], *, timeout: float, what: str) -> None:
    """Poll ``check`` until it is true; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what}")


def stop_process(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL if it still runs 10 seconds later; returns once it is gone."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
        return False


class RedisServer:
    """A redis-server of our own, on a free port, persisting with AOF like production."""

    def __init__(self, data_dir: Path, *, durable: bool = True) -> None:
        if shutil.which("redis-server") is None:
            raise RuntimeError("redis-server is not installed; run scripts/test (it installs it)")
        self.data_dir = data_dir
        self.durable = durable
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port", str(self.port),
                "--bind", "127.0.0.1",
                "--dir", str(self.data_dir),
                # an acknowledged write is on disk before the reply: revocations survive kill -9
                "--appendonly", "yes" if self.durable else "no",
                "--appendfsync", "always" if self.durable else "everysec",
                "--save", "",
                "--daemonize", "no",
                "--loglevel", "warning",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis(port=self.port, socket_timeout=0.5, socket_connect_timeout=0.5)

        def answers() -> bool:
            try:
                return bool(client.ping())
            except redis.RedisError:
                return False

        wait_until(answers, timeout=15, what=f"redis-server on port {self.port}")
        client.close()

    def emptied(self) -> str:
        """Its URL, once it runs (started again if a test stopped or killed it) and holds
        nothing: what a test's services start on."""
        if self.process is None or self.process.poll() is not None:
            self.start()
        client = redis.Redis.from_url(self.url)
        client.flushdb()
        client.close()
        return self.url

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Stop the server the hard way (default ``kill -9``) and wait for it to be gone."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(sig)
            self.process.wait(timeout=15)
        self.process = None

    def restart(self) -> None:
        self.kill()
        self.start()

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)
        self.process = None


class ServiceProcess:
    """``jwt-auth serve SERVICE`` as a real gunicorn process tree on a free port."""

    def __init__(
        self,
        service: str,
        env: Mapping[str, str],
        log_path: Path,
        *,
        workers: int = 2,
        threads: int = 4,
        port: int | None = None,
    ) -> None:
        self.service = service
        self.port = port or free_port()
        self.env = service_environment(env)
        self.log_path = log_path
        self.workers = workers
        self.threads = threads
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, *, wait: bool = True) -> None:
        self._log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [
                *JWT_AUTH, "serve", self.service,
                "--bind", f"127.0.0.1:{self.port}",
                "--workers", str(self.workers),
                "--threads", str(self.threads),
            ],
            env=self.env,
            cwd=REPO,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        if wait:
            try:
                wait_until(self._healthy, timeout=30, what=f"{self.service} on {self.url}")
            except TimeoutError:
                self.stop()
                raise AssertionError(f"{self.service} did not start:\n{self.output()}") from None

    def expect_exit(self, *, timeout: float = 30) -> tuple[int, list[str]]:
        """Start a service that should refuse to: its exit status and its non-blank output lines."""
        self.start(wait=False)
        assert self.process is not None
        try:
            returncode = self.process.wait(timeout=timeout)
        finally:
            self.stop()
        return returncode, [line for line in self.output().splitlines() if line.strip()]

    def _healthy(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            raise AssertionError(f"{self.service} exited early:\n{self.output()}")
        return http_ok(f"{self.url}/healthz")

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        self._log.close()
        self.process = None


def run_cli(*args: str, env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``jwt-auth ARGS`` with only the given product variables set; stdin is not a terminal."""
    return subprocess.run(
        [*JWT_AUTH, *args], env=service_environment(env or {}), cwd=CLI_CWD, capture_output=True,
        text=True, stdin=subprocess.DEVNULL, timeout=60, check=False,
    )


def assert_one_line_error(result: subprocess.CompletedProcess[str], expected: str) -> None:
    """The CLI's contract for bad input: non-zero, one line on stderr, no traceback."""
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert expected in lines[0]


def verifier_env(
    key_pair: KeyPair, redis_url: str, admin_file: Path, **extra: str
) -> dict[str, str]:
    """A verifier trusting the pair's public key file, on the given Redis."""
    return {
        "VERIFIER_PUBLIC_KEY_FILE": str(key_pair.public_path),
        "REDIS_URL": redis_url,
        "VERIFIER_ADMIN_KEYS_FILE": str(admin_file),
        **extra,
    }


def issuer_env(key_pair: KeyPair, clients_file: Path, **extra: str) -> dict[str, str]:
    """An issuer signing with the pair's encrypted key, its API clients in ``clients_file``."""
    return {
        "ISSUER_PRIVATE_KEY_FILE": str(key_pair.private_path),
        "ISSUER_KEY_PASSPHRASE_FILE": str(key_pair.passphrase_path),
        "ISSUER_CLIENTS_FILE": str(clients_file),
        **extra,
    }


@dataclass
class ServicePair:
    """An issuer and a verifier of one key pair, each 1 worker x 2 threads, on a real Redis."""

    issuer: ServiceProcess
    verifier: ServiceProcess
    client_key: str  # a non-admin API client of the issuer


@contextmanager
def service_pair(
    key_pair: KeyPair, redis_server: RedisServer, folder: Path, **env: str
) -> Iterator[ServicePair]:
    """Start both services (``env`` added to each, the issuer's rate limit off), stop them after."""
    clients = folder / "clients.json"
    client_key = add_client(clients, "webapp", admin=False, variable="ISSUER_CLIENTS_FILE")
    admins = folder / "admins.json"
    admins.write_text('{"clients": []}')
    if redis_server.process is None or redis_server.process.poll() is not None:
        redis_server.start()
    issuer = ServiceProcess("issuer", issuer_env(key_pair, clients, ISSUER_RATE_LIMIT="0", **env),
                            folder / "issuer.log", workers=1, threads=2)
    verifier = ServiceProcess("verifier", verifier_env(key_pair, redis_server.url, admins, **env),
                              folder / "verifier.log", workers=1, threads=2)
    started: list[ServiceProcess] = []
    try:
        for service in (issuer, verifier):
            service.start()
            started.append(service)
        yield ServicePair(issuer, verifier, client_key)
    finally:
        for service in started:
            service.stop()


@contextmanager
def one_verifier(
    key_pair: KeyPair, redis_server: RedisServer, folder: Path, *, threads: int = 4, **env: str
) -> Iterator[ServiceProcess]:
    """A verifier with one worker on the test's Redis (started again if a test stopped it), an
    admin key file holding one admin key; stopped after."""
    admins = folder / "admins.json"
    add_client(admins, "ops", admin=True, variable="VERIFIER_ADMIN_KEYS_FILE")
    if redis_server.process is None or redis_server.process.poll() is not None:
        redis_server.start()
    verifier = ServiceProcess("verifier", verifier_env(key_pair, redis_server.url, admins, **env),
                              folder / "verifier.log", workers=1, threads=threads)
    verifier.start()
    try:
        yield verifier
    finally:
        verifier.stop()
