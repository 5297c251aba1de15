"""``jwt-auth up``: redis-server, the issuer and the verifier on this machine, without Docker.

It is the compose file's stack for a laptop: the same dev keys (``jwt_auth.devkeys``), the same
environment variables, real gunicorn. Every child runs in its own process group so that stopping
reaches gunicorn's workers too, and on Linux each child is also told by the kernel to stop if this
process dies without cleaning up (``PR_SET_PDEATHSIG``), so even ``kill -9`` leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import IO, NoReturn

import click

from jwt_auth.devkeys import DEFAULT_BITS, DevPaths, announce, ensure_dev_keys
from jwt_auth.stacksettings import ADMIN_KEY_FILE_VARIABLE, VERIFIER_URL_VARIABLE, write_stack_env
from shared.errors import StartupError

# 6380, not Redis's own 6379: a laptop often runs a Redis of its own there, and the stack must
# neither fail on it nor quietly write into it. A fixed default (rather than any free port) keeps
# the printed URLs and `redis-cli -p 6380` the same from one run to the next.
DEFAULT_REDIS_PORT = 6380
REDIS_INSTALL_HINT = (
    "redis-server is not on PATH; install it (Debian/Ubuntu: apt-get install redis-server, "
    "macOS: brew install redis) and run again"
)
READY_TIMEOUT = {"redis-server": 15.0, "issuer": 60.0, "verifier": 60.0}
STOP_TIMEOUT = 15.0
POLL_INTERVAL = 0.1

# variables the stack sets itself; a user's value for these (or for their inline twins) would
# conflict with the dev keys, while every other ISSUER_*/VERIFIER_* variable passes through
_OVERRIDDEN = {
    "ISSUER_KEYS_DIR", "ISSUER_PRIVATE_KEY", "ISSUER_PRIVATE_KEY_FILE", "ISSUER_KEY_PASSPHRASE",
    "ISSUER_KEY_PASSPHRASE_FILE", "ISSUER_CLIENTS_FILE", "VERIFIER_PUBLIC_KEY",
    "VERIFIER_PUBLIC_KEY_FILE", "VERIFIER_JWKS_URL", "VERIFIER_ADMIN_KEYS_FILE", "REDIS_URL",
    "PROMETHEUS_MULTIPROC_DIR",
}


class StackError(Exception):
    """Raised when the stack cannot start or keep running; the message is one line."""


class _Stopped(Exception):
    """Raised inside a startup wait when a stop signal arrived."""


@dataclass
class Child:
    """One process the stack started, in its own process group."""

    name: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def last_log_line(self) -> str:
        """The child's last words, for the one-line message when it dies."""
        try:
            lines = self.log_path.read_text(errors="replace").strip().splitlines()
        except OSError:
            return ""
        return lines[-1].strip() if lines else ""


def _die_with_parent() -> None:
    """In the child, before exec: ask Linux to send SIGTERM when the stack process dies."""
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


def port_problem(host: str, port: int) -> str | None:
    """Why nothing could listen on host:port right now, or None when it is free."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        # as gunicorn and redis do: connections in TIME_WAIT must not count as "taken"
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return "is already in use"
            return f"cannot be used ({exc.strerror})"
    return None


def _url_host(bind_host: str) -> str:
    """The address clients use to reach a service bound to ``bind_host``."""
    if bind_host in ("0.0.0.0", "", "*"):
        return "127.0.0.1"
    if bind_host == "::":
        return "[::1]"
    return f"[{bind_host}]" if ":" in bind_host else bind_host


def _http_ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - our own http URL
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def _redis_ready(port: int) -> bool:
    import redis

    client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=1, socket_connect_timeout=1)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


def _describe_exit(status: int) -> str:
    if status < 0:
        return f"killed by signal {signal.Signals(-status).name}"
    return f"exit status {status}"


@contextlib.contextmanager
def _data_dir_lock(data_dir: Path) -> Iterator[None]:
    """Hold a lock on the data folder so two stacks never share one Redis folder and key set."""
    lock_path = data_dir / "up.lock"
    handle = lock_path.open("a+")
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "?"
            raise StackError(
                f"another jwt-auth up (pid {holder}) is already running on {data_dir}; "
                "stop it first or use another --data-dir"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        yield
    finally:
        handle.close()


class Stack:
    """The children of one ``jwt-auth up`` run, started in order and stopped in reverse."""

    def __init__(self, echo: Callable[[str], None]) -> None:
        self.echo = echo
        self.children: list[Child] = []
        self.stop_signal: int | None = None

    def on_signal(self, signum: int, frame: FrameType | None) -> None:
        """Remember the request to stop; the main loop does the stopping (never twice)."""
        if self.stop_signal is None:
            self.stop_signal = signum

    def start(self, name: str, argv: list[str], env: dict[str, str], log_path: Path,
              cwd: Path) -> Child:
        """Start one child in its own process group, its output appended to its log file."""
        with log_path.open("ab") as log:
            process = subprocess.Popen(
                argv,
                env=env,
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                # safe here: the stack is single-threaded when it forks
                preexec_fn=_die_with_parent,
            )
        child = Child(name, process, log_path)
        self.children.append(child)
        return child

    def wait_ready(self, child: Child, ready: Callable[[], bool]) -> None:
        """Poll until ``ready``; stop early on a signal or when the child dies (bounded)."""
        timeout = READY_TIMEOUT[child.name]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.stop_signal is not None:
                raise _Stopped
            self.check_alive()
            if ready():
                return
            time.sleep(POLL_INTERVAL)
        raise StackError(
            f"{child.name} was not ready after {timeout:.0f}s; see {child.log_path}"
        )

    def check_alive(self) -> None:
        """Raise StackError naming the first child that is no longer running."""
        for child in self.children:
            status = child.process.poll()
            if status is not None:
                last = child.last_log_line()
                said = f": {last}" if last else ""
                raise StackError(
                    f"{child.name} stopped unexpectedly ({_describe_exit(status)}){said} "
                    f"(log: {child.log_path})"
                )

    def run_until_stopped(self) -> None:
        """Sleep until a stop signal (return) or a dead child (StackError)."""
        while self.stop_signal is None:
            self.check_alive()
            time.sleep(POLL_INTERVAL)

    def stop_all(self) -> None:
        """SIGTERM every child's process group, newest first; SIGKILL what outlives the bound."""
        for child in reversed(self.children):
            if child.process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(child.process.pid, signal.SIGTERM)
            try:
                child.process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.echo(f"{child.name} did not stop within {STOP_TIMEOUT:.0f}s; killing it")
            # gunicorn's workers share the group: nothing of it may outlive the master
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.process.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.process.wait(timeout=STOP_TIMEOUT)
        self.children.clear()


def demo_script(issuer: str, verifier: str, client_key_file: Path, admin_key_file: Path) -> str:
    """The copy-paste curl walk-through printed once the stack is ready: README's, step by step."""
    key_file = shlex.quote(str(client_key_file))
    admin_file = shlex.quote(str(admin_key_file))
    json_header = "-H 'Content-Type: application/json'"
    body = '-d "{\\"token\\": \\"$TOKEN\\"}"'
    field = "python3 -c 'import json,sys; print(json.load(sys.stdin)[\"{}\"])'"
    return "\n".join([
        f"KEY=$(cat {key_file})",
        "# 1. your auth system asks the issuer for a token (the seed's payload)",
        f"TOKEN=$(curl -s -X POST {issuer}/v1/tokens -H \"Authorization: Bearer $KEY\" "
        f"{json_header} -d '{{\"userId\": \"123\", \"isAdmin\": true}}' | "
        f"{field.format('token')})",
        "# 2. an app backend verifies it",
        f"curl -s -X POST {verifier}/v1/verify {json_header} {body}; echo",
        "# 3. forward-auth, as nginx auth_request or Traefik ForwardAuth call it",
        f"curl -s -o /dev/null -D - {verifier}/v1/auth -H \"Authorization: Bearer $TOKEN\"",
        "# 4. log in (a session), read it, log out",
        f"SESSION=$(curl -s -X POST {verifier}/v1/sessions {json_header} {body} | "
        f"{field.format('sessionId')})",
        f"curl -s {verifier}/v1/sessions/$SESSION; echo",
        f"curl -s -o /dev/null -w 'logout: %{{http_code}}\\n' -X DELETE "
        f"{verifier}/v1/sessions/$SESSION",
        "# 5. revoke the token: verifying it again answers 401 token_revoked",
        f"curl -s -o /dev/null -w 'revoke: %{{http_code}}\\n' -X POST {verifier}/v1/revocations "
        f"{json_header} {body}",
        f"curl -s -X POST {verifier}/v1/verify {json_header} {body}; echo",
        "# 6. end every session of user 123 and refuse every token issued to it so far (admin key)",
        f"curl -s -X DELETE {verifier}/v1/users/123/sessions "
        f"-H \"Authorization: Bearer $(cat {admin_file})\"",  # Flask ends its JSON with a newline
    ])


def _child_env(extra: dict[str, str]) -> dict[str, str]:
    inherited = {name: value for name, value in os.environ.items() if name not in _OVERRIDDEN}
    return {**inherited, **extra}


def _fresh_dir(path: Path) -> Path:
    # prometheus' multiprocess files from an earlier run would be summed into this run's figures
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


def run_stack(
    *,
    data_dir: Path,
    issuer_port: int,
    verifier_port: int,
    redis_port: int,
    bind_host: str,
    key_bits: int,
    workers: int,
    echo: Callable[[str], None],
) -> None:
    """Start everything, serve until a signal, stop everything; raise StackError on failure."""
    redis_server = shutil.which("redis-server")
    if redis_server is None:
        raise StackError(REDIS_INSTALL_HINT)
    ports = {"issuer": issuer_port, "verifier": verifier_port, "redis-server": redis_port}
    if len(set(ports.values())) < len(ports):
        raise StackError(f"the ports must differ: {ports}")

    data_dir.mkdir(parents=True, exist_ok=True)
    with _data_dir_lock(data_dir):
        # redis is only ever reachable from this machine: it has no password
        checks = [
            ("issuer", bind_host, issuer_port, "--issuer-port"),
            ("verifier", bind_host, verifier_port, "--verifier-port"),
            ("redis-server", "127.0.0.1", redis_port, "--redis-port"),
        ]
        for name, host, port, option in checks:
            problem = port_problem(host, port)
            if problem:
                raise StackError(
                    f"port {port} on {host} (for the {name}) {problem}; "
                    f"free it or choose another with {option}"
                )
        stack = Stack(echo)
        previous = {
            sig: signal.signal(sig, stack.on_signal)
            for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
        }
        try:
            _start_and_serve(stack, data_dir, ports, bind_host, key_bits, workers,
                             redis_server, echo)
        except _Stopped:
            pass
        except StackError as exc:
            if stack.children:
                raise StackError(f"{exc}; stopping everything it started") from None
            raise
        finally:
            if stack.children:
                echo("stopping")
            stack.stop_all()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        if stack.stop_signal is not None:
            echo(f"stopped ({signal.Signals(stack.stop_signal).name}); data kept in {data_dir}")


def _start_and_serve(
    stack: Stack,
    data_dir: Path,
    ports: dict[str, int],
    bind_host: str,
    key_bits: int,
    workers: int,
    redis_server: str,
    echo: Callable[[str], None],
) -> None:
    paths = DevPaths.under(data_dir)
    try:
        result = ensure_dev_keys(paths, bits=key_bits, progress=echo)
    except (StartupError, OSError) as exc:
        raise StackError(f"dev keys: {exc}") from None
    announce(result, paths, click.echo)
    if stack.stop_signal is not None:
        raise _Stopped

    logs = data_dir / "logs"
    logs.mkdir(exist_ok=True)
    redis_dir = data_dir / "redis"
    redis_dir.mkdir(exist_ok=True)
    redis_port = ports["redis-server"]
    echo(f"starting redis-server on 127.0.0.1:{redis_port} (AOF, appendfsync always)")
    redis_child = stack.start(
        "redis-server",
        [
            redis_server, "--port", str(redis_port), "--bind", "127.0.0.1",
            "--dir", str(redis_dir),
            # every acknowledged write (a revocation) is on disk before the reply
            "--appendonly", "yes", "--appendfsync", "always", "--save", "",
            "--daemonize", "no", "--logfile", "",
        ],
        _child_env({}),
        logs / "redis.log",
        redis_dir,
    )
    stack.wait_ready(redis_child, lambda: _redis_ready(redis_port))

    host = _url_host(bind_host)
    issuer_url = f"http://{host}:{ports['issuer']}"
    verifier_url = f"http://{host}:{ports['verifier']}"
    # -P: never import from the working folder, where a folder named like a package (the data
    # folder's own issuer/ and verifier/) would shadow the installed one
    serve = [sys.executable, "-P", "-m", "jwt_auth", "serve"]
    bind_prefix = f"[{bind_host}]" if ":" in bind_host else bind_host
    run_dir = data_dir / "run"
    run_dir.mkdir(exist_ok=True)

    # the issuer's URL as its identifier, so discovery (/.well-known/openid-configuration) works
    # here as in production; one of the user's own (a proxy's public URL) wins. The verifier
    # does not require it (VERIFIER_ISSUER stays the user's): it trusts this one issuer's keys
    # only, so an iss check adds nothing, and it would refuse the seed's tokens signed offline
    # with the dev key, which carry no iss
    # what each service is given is also what stack.env holds for the commands run beside it
    # (jwt-auth issue signs as the running issuer does, iss included)
    issuer_settings = {
        "ISSUER_ISSUER": os.environ.get("ISSUER_ISSUER") or issuer_url,
        # keys that rotate: `jwt-auth keys rotate --dir <issuer folder>` (docs/deploy.md)
        "ISSUER_KEYS_DIR": str(paths.issuer_dir),
        "ISSUER_KEY_PASSPHRASE_FILE": str(paths.passphrase),
        "ISSUER_CLIENTS_FILE": str(paths.clients),
    }
    verifier_settings = {
        "VERIFIER_JWKS_URL": f"{issuer_url}/.well-known/jwks.json",
        "REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
        "VERIFIER_ADMIN_KEYS_FILE": str(paths.admin_keys),
    }
    echo(f"starting the issuer on {issuer_url}")
    issuer = stack.start(
        "issuer",
        [*serve, "issuer", "--bind", f"{bind_prefix}:{ports['issuer']}",
         "--workers", str(workers)],
        _child_env({
            **issuer_settings,
            "PROMETHEUS_MULTIPROC_DIR": str(_fresh_dir(run_dir / "metrics-issuer")),
        }),
        logs / "issuer.log",
        run_dir,
    )
    stack.wait_ready(issuer, lambda: _http_ready(f"{issuer_url}/readyz"))

    echo(f"starting the verifier on {verifier_url}")
    verifier = stack.start(
        "verifier",
        [*serve, "verifier", "--bind", f"{bind_prefix}:{ports['verifier']}",
         "--workers", str(workers)],
        _child_env({
            **verifier_settings,
            "PROMETHEUS_MULTIPROC_DIR": str(_fresh_dir(run_dir / "metrics-verifier")),
        }),
        logs / "verifier.log",
        run_dir,
    )
    stack.wait_ready(verifier, lambda: _http_ready(f"{verifier_url}/readyz"))

    stack_env = write_stack_env(data_dir, {
        **issuer_settings,
        **verifier_settings,
        VERIFIER_URL_VARIABLE: verifier_url,
        ADMIN_KEY_FILE_VARIABLE: str(paths.admin_key),
    })
    echo("ready")
    if not paths.client_key.exists():
        # the user brought their own clients file: the demo needs a key they hold
        echo(f"no {paths.client_key}: the demo needs a client key; make one with "
             f"jwt-auth clients add NAME --file {paths.clients} (no restart needed) and save "
             "it there")
    if not paths.admin_key.exists():
        # the user brought their own verifier admin keys file: step 6 needs a key they hold
        echo(f"no {paths.admin_key}: the demo's step 6 needs a verifier admin key; make one "
             f"with jwt-auth clients add NAME --admin --file {paths.admin_keys} and save it "
             "there")
    lines = [
        f"  issuer    {issuer_url}  (JWKS {issuer_url}/.well-known/jwks.json, discovery "
        f"{issuer_url}/.well-known/openid-configuration)",
        f"  verifier  {verifier_url}",
        f"  redis     redis://127.0.0.1:{redis_port}/0  (data in {redis_dir})",
        f"  keys      {paths.issuer_dir}  (dev client key: {paths.client_key})",
        f"  logs      {logs}",
        f"  cli       {_cli_path()}  ({_reads_settings(data_dir, stack_env)})",
        "",
        "Copy-paste demo (bash):",
        "",
        demo_script(issuer_url, verifier_url, paths.client_key, paths.admin_key),
        "",
        "Ctrl-C stops everything.",
    ]
    click.echo("\n".join(lines))
    stack.run_until_stopped()


def _cli_path() -> str:
    """How to run jwt-auth from any shell: this installation's own script."""
    installed = Path(sys.executable).parent / "jwt-auth"
    return str(installed) if installed.exists() else shutil.which("jwt-auth") or "jwt-auth"


def _reads_settings(data_dir: Path, stack_env: Path) -> str:
    if data_dir == (Path.cwd() / ".dev").resolve():
        return f"run here, it reads {stack_env}"
    return f"with --data-dir {data_dir}, it reads {stack_env}"


def _fail(message: str) -> NoReturn:
    click.echo(f"jwt-auth up: {message}", err=True)
    raise SystemExit(1)


@click.command("up")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path),
              default=Path(".dev"), show_default=True,
              help="Keys, passphrase, Redis data and logs (kept between runs).")
@click.option("--issuer-port", type=click.IntRange(1, 65535), default=8001, show_default=True)
@click.option("--verifier-port", type=click.IntRange(1, 65535), default=8002, show_default=True)
@click.option("--redis-port", type=click.IntRange(1, 65535), default=DEFAULT_REDIS_PORT,
              show_default=True, help="Not 6379, so a Redis of your own is never touched.")
@click.option("--bind-host", default="127.0.0.1", show_default=True,
              help="Address the issuer and verifier listen on (Redis stays on 127.0.0.1).")
@click.option("--key-bits", type=click.IntRange(2048, 16384), default=DEFAULT_BITS,
              show_default=True, help="Size of the dev RSA key made on the first run.")
@click.option("--workers", type=click.IntRange(1, 64), default=2, show_default=True,
              help="gunicorn workers per service.")
def up(data_dir: Path, issuer_port: int, verifier_port: int, redis_port: int, bind_host: str,
       key_bits: int, workers: int) -> None:
    """Run redis-server, the issuer and the verifier here, with dev keys made on first run."""
    out: IO[str] = sys.stdout

    def echo(line: str) -> None:
        click.echo(f"jwt-auth up: {line}", file=out)

    try:
        run_stack(
            data_dir=data_dir.resolve(),
            issuer_port=issuer_port,
            verifier_port=verifier_port,
            redis_port=redis_port,
            bind_host=bind_host,
            key_bits=key_bits,
            workers=workers,
            echo=echo,
        )
    except StackError as exc:
        _fail(str(exc))
