"""What the benchmark scripts share: their processes, pinned and stopped whole, probes, and the
pool initializer that signs tokens on every core.

Imported by ``side_by_side.py``, ``scaleout.py`` and ``soak.py`` (each puts the repository on
``sys.path``).
"""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import socket
import subprocess
from pathlib import Path
from typing import Any

SERVER_CPU = "0"
"""The core every server runs on; the load generator gets the other one."""

STOP_TIMEOUT = 15.0


class Processes:
    """Every process a run starts, each in its own group, so each can be stopped whole."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.running: list[subprocess.Popen[bytes]] = []

    def start(self, argv: list[str], env: dict[str, str], log: Path,
              cpu: str = SERVER_CPU) -> subprocess.Popen[bytes]:
        # the whole group runs on that core: gunicorn's master and worker, node, redis
        with log.open("ab") as output:
            process = subprocess.Popen(["taskset", "-c", cpu, *argv], env=env,
                                       cwd=Path(__file__).resolve().parent.parent,
                                       stdin=subprocess.DEVNULL, stdout=output,
                                       stderr=subprocess.STDOUT, start_new_session=True)
        self.running.append(process)
        return process

    def stop(self, process: subprocess.Popen[bytes]) -> None:
        if process.poll() is None:
            _signal_group(process, signal.SIGTERM)
            try:
                process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                _signal_group(process, signal.SIGKILL)
                process.wait()
        if process in self.running:
            self.running.remove(process)

    def stop_all(self) -> None:
        for process in reversed(list(self.running)):
            self.stop(process)


def _signal_group(process: subprocess.Popen[bytes], signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signum)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def answers(port: int, path: str) -> bool:
    # http.client, not urllib: no proxy variable can send this anywhere but 127.0.0.1
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        connection.request("GET", path)
        return connection.getresponse().status == 200
    except (OSError, http.client.HTTPException):
        return False
    finally:
        connection.close()


def log_tail(path: Path, lines: int = 6) -> str:
    if not path.exists():
        return "(no output)"
    text = path.read_text(encoding="utf-8", errors="replace").strip().splitlines()
    return " | ".join(text[-lines:]) or "(no output)"


signing_key: Any = None
"""The private key in a signing pool's worker, set by ``load_signing_key``."""


def load_signing_key(private_pem: bytes, passphrase: bytes) -> None:
    """Pool initializer: decrypt the key once per process, not once per chunk."""
    from cryptography.hazmat.primitives import serialization

    # the parent handles Ctrl-C and a kill and then terminates the pool: a worker that raised
    # too (it inherits the parent's handler) would only print a traceback
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    global signing_key
    signing_key = serialization.load_pem_private_key(private_pem, passphrase)


# --- added for bench/soak.py: a redis-server, readiness waits, and /proc figures ------------


def redis_answers(port: int) -> bool:
    """PING on a raw socket (no client library needed): True when redis-server says PONG."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def start_redis_server(processes: Processes, data: Path, port: int,
                       cpu: str = SERVER_CPU, timeout: float = 20.0) -> subprocess.Popen[bytes]:
    """A redis-server of its own, durable as production asks (AOF, fsync on every write)."""
    import time

    data.mkdir(parents=True, exist_ok=True)
    log = processes.logs / "redis.log"
    argv = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", str(data),
            "--appendonly", "yes", "--appendfsync", "always", "--save", ""]
    process = processes.start(argv, dict(os.environ), log, cpu=cpu)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"redis-server exited: {log_tail(log)}")
        if redis_answers(port):
            return process
        time.sleep(0.05)
    processes.stop(process)
    raise SystemExit(f"redis-server did not answer PING in {timeout:.0f} s")


def wait_answering(process: subprocess.Popen[bytes], port: int, path: str, log: Path,
                   what: str, timeout: float = 90.0) -> None:
    """Poll ``path`` until it answers 200; stop with the log's tail if the process dies first."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{what} exited with status {process.returncode}: {log_tail(log)}")
        if answers(port, path):
            return
        time.sleep(0.1)
    raise SystemExit(f"{what} not ready after {timeout:.0f} s: {log_tail(log)}")


def children_of(pid: int) -> list[int]:
    """The direct children of ``pid`` (gunicorn's workers, for its master), from /proc."""
    found: list[int] = []
    for children in Path(f"/proc/{pid}/task").glob("*/children"):
        with contextlib.suppress(OSError):
            found += [int(word) for word in children.read_text().split()]
    return sorted(set(found))


def rss_kib(pid: int) -> int | None:
    """Resident memory (VmRSS) of a process in KiB, or None when it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def open_fds(pid: int) -> int | None:
    """How many file descriptors a process holds open, or None when it is gone."""
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None
