"""Slow clients: many connections trickling their request headers, and legitimate requests beside.

The attack: ``--connections`` connections to each service, each sending the head of a request
one byte every ``--interval`` seconds and never finishing it (a connection the server closes is
opened again at once). Meanwhile legitimate clients call ``POST /v1/verify`` and ``GET /v1/auth``
on the verifier and ``POST /v1/tokens`` on the issuer, some on kept-alive connections and some
on new ones, and every answer's latency is recorded. Goal: zero failures and p99 under 100 ms.

The stack is the one users run, ``jwt-auth up`` with its defaults (2 workers per service, on
gunicorn's asgi worker), pinned to CPU 0; the attack and the clients run on CPU 1::

    .venv/bin/python bench/slow_clients.py [--connections 200] [--duration 30]
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import platform
import selectors
import socket
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.processes import Processes, free_port, log_tail, wait_answering  # noqa: E402
from jwt_auth.devkeys import DevPaths  # noqa: E402

REQUEST_TIMEOUT = 5.0
GOAL_P99_MS = 100.0
# what a trickling client sends, one byte at a time, forever: a head that never ends
TRICKLE = b"POST /v1/verify HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Padding: " + b"a" * 100_000

@dataclass
class Endpoint:
    service: str
    port: int


@dataclass
class Figures:
    latencies_ms: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    def percentile(self, fraction: float) -> float:
        ordered = sorted(self.latencies_ms)
        if not ordered:
            return float("nan")
        return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


class Trickle:
    """Keeps ``count`` connections to each port sending one byte of a never-ending head."""

    def __init__(self, ports: list[int], count: int, interval: float) -> None:
        self.ports, self.count, self.interval = ports, count, interval
        self.stop = threading.Event()
        self.reopened = 0
        self.selector = selectors.DefaultSelector()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _open(self, port: int) -> None:
        sock = socket.socket()
        sock.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            sock.connect(("127.0.0.1", port))
        self.selector.register(sock, selectors.EVENT_READ, [port, 0])

    def start(self) -> None:
        for port in self.ports:
            for _ in range(self.count):
                self._open(port)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.is_set():
            # a readable connection was answered or closed by the server: open another
            for key, _ in self.selector.select(timeout=0):
                self._reopen(key.fileobj, key.data[0])
            for key in list(self.selector.get_map().values()):
                port, sent = key.data
                try:
                    key.fileobj.send(TRICKLE[sent:sent + 1])
                    key.data[1] = sent + 1
                except (BlockingIOError, InterruptedError):
                    pass
                except OSError:
                    self._reopen(key.fileobj, port)
            self.stop.wait(self.interval)
        for key in list(self.selector.get_map().values()):
            key.fileobj.close()

    def _reopen(self, sock: socket.socket, port: int) -> None:
        self.selector.unregister(sock)
        sock.close()
        self.reopened += 1
        self._open(port)

    def open_connections(self) -> int:
        return len(self.selector.get_map())


def legitimate(endpoint: Endpoint, request: tuple[str, str, bytes, dict[str, str]],
               until: float, figures: Figures) -> None:
    """Requests one after another; every tenth one on a new connection."""
    # the issuer's default rate limit is 600 tokens a minute per client: stay under it
    pause = 0.125 if endpoint.service == "issuer" else 0.005
    method, path, body, headers = request
    connection: http.client.HTTPConnection | None = None
    sent = 0
    while time.monotonic() < until:
        if connection is None or sent % 10 == 0:
            if connection is not None:
                connection.close()
            connection = http.client.HTTPConnection("127.0.0.1", endpoint.port,
                                                    timeout=REQUEST_TIMEOUT)
        started = time.perf_counter()
        try:
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
            response.read()
            elapsed = (time.perf_counter() - started) * 1000
            if response.status not in (200, 201):
                figures.failures.append(f"{endpoint.service} {path}: {response.status}")
            else:
                figures.latencies_ms.append(elapsed)
        except (OSError, http.client.HTTPException) as exc:
            figures.failures.append(f"{endpoint.service} {path}: {type(exc).__name__} {exc}")
            connection.close()
            connection = None
        sent += 1
        time.sleep(pause)
    if connection is not None:
        connection.close()


def issue_token(issuer_port: int, client_key: str) -> str:
    connection = http.client.HTTPConnection("127.0.0.1", issuer_port, timeout=30)
    connection.request("POST", "/v1/tokens", body=b'{"userId": "123"}', headers={
        "Authorization": f"Bearer {client_key}", "Content-Type": "application/json"})
    response = connection.getresponse()
    answer = json.loads(response.read())
    if response.status != 201:
        raise SystemExit(f"the issuer refused a token: {response.status} {answer}")
    token: str = answer["token"]
    return token


def attack(name: str, issuer: Endpoint, verifier: Endpoint, client_key: str,
           args: argparse.Namespace) -> list[tuple[str, str, Figures, int]]:
    token = issue_token(issuer.port, client_key)
    json_headers = {"Content-Type": "application/json"}
    requests = {
        "POST /v1/verify": (verifier, ("POST", "/v1/verify",
                                       json.dumps({"token": token}).encode(), json_headers)),
        "GET /v1/auth": (verifier, ("GET", "/v1/auth", b"",
                                    {"Authorization": f"Bearer {token}"})),
        "POST /v1/tokens": (issuer, ("POST", "/v1/tokens", b'{"userId": "123"}',
                                     {**json_headers, "Authorization": f"Bearer {client_key}"})),
    }
    trickle = Trickle([issuer.port, verifier.port], args.connections, args.interval)
    trickle.start()
    # the trickling connections are open and mid-head before anyone measures
    time.sleep(args.interval * 2)
    held = trickle.open_connections()
    until = time.monotonic() + args.duration
    figures = {label: Figures() for label in requests}
    threads = [threading.Thread(target=legitimate, args=(endpoint, request, until,
                                                          figures[label]))
               for label, (endpoint, request) in requests.items()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    trickle.stop.set()
    trickle.thread.join(timeout=10)
    print(f"  {name}: {held} trickling connections open when measuring started, "
          f"{trickle.reopened} reopened after the server closed them", flush=True)
    return [(name, label, figures[label], held) for label in requests]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=200,
                        help="trickling connections to each service [200]")
    parser.add_argument("--interval", type=float, default=2.0,
                        help="seconds between two bytes of a trickling connection [2]")
    parser.add_argument("--duration", type=float, default=30.0,
                        help="seconds of legitimate requests under attack [30]")
    args = parser.parse_args()
    # the clients and the attack on CPU 1; every server on CPU 0 (Processes.start)
    with contextlib.suppress(OSError):
        os.sched_setaffinity(0, {1})

    scratch = Path(tempfile.mkdtemp(prefix="slow-clients-"))
    processes = Processes(scratch)
    ports = {"issuer": free_port(), "verifier": free_port(), "redis": free_port()}
    try:
        log = scratch / "up.log"
        print(f"starting `jwt-auth up` (data in {scratch / 'up'})...", flush=True)
        up = processes.start([sys.executable, "-m", "jwt_auth", "up", "--data-dir",
                              str(scratch / "up"), "--issuer-port", str(ports["issuer"]),
                              "--verifier-port", str(ports["verifier"]), "--redis-port",
                              str(ports["redis"])], dict(os.environ), log)
        wait_answering(up, ports["verifier"], "/readyz", log, "jwt-auth up", timeout=180)
        client_key = DevPaths.under(scratch / "up").client_key.read_text().strip()
        rows = attack("jwt-auth up (shipped)", Endpoint("issuer", ports["issuer"]),
                      Endpoint("verifier", ports["verifier"]), client_key, args)
    except SystemExit:
        print(f"stack log: {log_tail(scratch / 'up.log', 12)}", file=sys.stderr)
        raise
    finally:
        processes.stop_all()

    print(f"\nmachine: {platform.machine()}, {os.cpu_count()} CPUs, Python "
          f"{platform.python_version()}; servers on CPU 0, clients and attack on CPU 1")
    print(f"attack: {args.connections} connections to each service, one header byte every "
          f"{args.interval:g} s; {args.duration:g} s of legitimate requests, one client per "
          f"route, a new connection every 10 requests, {REQUEST_TIMEOUT:g} s timeout\n")
    print("| server | request | answered | failed | p50 ms | p99 ms | max ms |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    shipped_ok = True
    for name, label, figures, _held in rows:
        print(f"| {name} | {label} | {len(figures.latencies_ms)} | {len(figures.failures)} | "
              f"{figures.percentile(0.5):.1f} | {figures.percentile(0.99):.1f} | "
              f"{max(figures.latencies_ms, default=float('nan')):.1f} |")
        if name.startswith("jwt-auth up"):
            shipped_ok &= (not figures.failures and bool(figures.latencies_ms)
                           and figures.percentile(0.99) < GOAL_P99_MS)
    for name, label, figures, _held in rows:
        for failure in sorted(set(figures.failures))[:3]:
            print(f"  {name} {label}: {failure}")
    verdict = "PASS" if shipped_ok else "FAIL"
    print(f"\n{verdict}: shipped stack, zero failures and p99 under {GOAL_P99_MS:g} ms")
    return 0 if shipped_ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
