"""Hostile clients against a real verifier under gunicorn's asgi worker, with their own bytes.

Each attack is one an earlier server of ours fell to (F1-F5 below); each test runs it against
``jwt-auth serve verifier --workers 1`` and checks that the service stays responsive for a
legitimate client meanwhile, and answers as before once it ends. Every loop is bounded in count
and time; every address is 127.0.0.1.

- F1: a header line of 8,180 spaces and a control character (quadratic in a regex of ours).
- F2: 1 MB bodies, far over the 16 KiB limit, on 250 connections at once (were buffered).
- F3: ``Expect: 100-continue`` in a body, and from an HTTP/1.0 client (got a 100 anyway).
- F4: ``Expect`` requests from a client that never reads (a blocking send on the loop).
- F5: 1,100 idle connections (a new request waited seconds, or failed).
"""

from __future__ import annotations

import contextlib
import json
import selectors
import socket
import statistics
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from tests.forge import fresh
from tests.keypairs import KeyPair
from tests.procs import RedisServer, ServiceProcess, one_verifier, wait_until

pytestmark = pytest.mark.e2e

BODY_LIMIT = 16 * 1024  # VERIFIER_MAX_BODY_BYTES' default


@dataclass
class Target:
    verifier: ServiceProcess
    token: str

    def worker_pid(self) -> int:
        """The one worker's pid: the child of gunicorn's master."""
        assert self.verifier.process is not None
        master = self.verifier.process.pid
        children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
        assert len(children) == 1, children
        return int(children[0])


@pytest.fixture(scope="module")
def target(
    key_pair: KeyPair, redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Target]:
    token = fresh(key_pair, "legit", lifetime=3600)
    with one_verifier(key_pair, redis_server, tmp_path_factory.mktemp("abuse")) as verifier:
        assert _verify(verifier.url, token) == 200
        yield Target(verifier, token)


def _verify(url: str, token: str, session: requests.Session | None = None) -> int:
    http = session or requests
    answer = http.post(f"{url}/v1/verify", json={"token": token}, timeout=10)
    return answer.status_code


def _read_answer(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes or goes quiet for the socket's timeout."""
    received = b""
    with contextlib.suppress(OSError):
        while chunk := sock.recv(65536):
            received += chunk
    return received


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


class Legitimate:
    """A backend verifying one token over one keep-alive connection, timing each answer."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self.latencies: list[float] = []
        self.failures: list[str] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with requests.Session() as http:
            while not self.stop.is_set() and len(self.latencies) < 100_000:
                started = time.perf_counter()
                try:
                    status = _verify(self.target.verifier.url, self.target.token, http)
                except requests.RequestException as exc:
                    self.failures.append(type(exc).__name__)
                    continue
                self.latencies.append(time.perf_counter() - started)
                if status != 200:
                    self.failures.append(str(status))

    def __enter__(self) -> Legitimate:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        self.thread.join(timeout=30)

    def p99_ms(self) -> float:
        return statistics.quantiles(self.latencies, n=100)[98] * 1000


# --- F1 -------------------------------------------------------------------------------------

F1_REQUEST = (b"POST /v1/verify HTTP/1.1\r\nHost: v\r\nX: " + b" " * 8180
              + b"\x01\r\nContent-Length: 0\r\n\r\n")


def test_f1_a_crafted_header_line_stalls_nothing(target: Target) -> None:
    refused: list[bytes] = []
    stop = threading.Event()

    def attack() -> None:
        while not stop.is_set() and len(refused) < 100_000:
            with socket.create_connection(("127.0.0.1", target.verifier.port), timeout=5) as sock:
                sock.settimeout(5)
                with contextlib.suppress(OSError):
                    sock.sendall(F1_REQUEST)
                refused.append(_read_answer(sock)[:12])

    attackers = [threading.Thread(target=attack, daemon=True) for _ in range(2)]
    with Legitimate(target) as legitimate:
        for attacker in attackers:
            attacker.start()
        time.sleep(5)
        stop.set()
        for attacker in attackers:
            attacker.join(timeout=30)
    assert not legitimate.failures
    assert len(legitimate.latencies) > 500, len(legitimate.latencies)
    # an attack that stalled the loop gave a p50 of 873 ms; nothing should come near 50 ms
    assert legitimate.p99_ms() < 50, legitimate.p99_ms()
    assert len(refused) > 100
    assert set(refused) == {b"HTTP/1.1 400"}, set(refused)
    assert _verify(target.verifier.url, target.token) == 200


# --- F2 -------------------------------------------------------------------------------------


@dataclass
class _Upload:
    """One connection sending a body far over the limit, and what came back on it."""

    sock: socket.socket
    left: int
    answer: bytes = b""
    closed: bool = False


def test_f2_bodies_over_the_limit_are_refused_not_buffered(target: Target) -> None:
    """250 connections announce 1 MB and send it: each gets 413 or is closed unread, and the
    worker's memory does not grow with what they sent."""
    worker = target.worker_pid()
    before = _rss_kib(worker)
    megabyte = 1024 * 1024
    paths = ["/v1/verify", "/v1/sessions"]  # a hot route and a Flask one
    selector = selectors.DefaultSelector()
    uploads: list[_Upload] = []
    for index in range(250):
        sock = socket.create_connection(("127.0.0.1", target.verifier.port), timeout=10)
        sock.sendall(f"POST {paths[index % 2]} HTTP/1.1\r\nHost: v\r\n"
                     f"Content-Type: application/json\r\nContent-Length: {megabyte}\r\n\r\n"
                     .encode())
        sock.setblocking(False)
        upload = _Upload(sock, megabyte)
        uploads.append(upload)
        selector.register(sock, selectors.EVENT_READ | selectors.EVENT_WRITE, upload)
    chunk = b"x" * 65536
    deadline = time.monotonic() + 60
    peak = before
    while selector.get_map() and time.monotonic() < deadline:
        for key, events in selector.select(timeout=1):
            upload = key.data
            try:
                if events & selectors.EVENT_READ:
                    data = upload.sock.recv(65536)
                    upload.answer += data
                    upload.closed = not data
                if not upload.closed and events & selectors.EVENT_WRITE and upload.left:
                    upload.left -= upload.sock.send(chunk[:upload.left])
                    if not upload.left:
                        selector.modify(upload.sock, selectors.EVENT_READ, upload)
            except BlockingIOError:
                continue
            except OSError:
                upload.closed = True
            if upload.closed:
                selector.unregister(upload.sock)
                upload.sock.close()
        peak = max(peak, _rss_kib(worker))
    for upload in uploads:
        upload.sock.close()
    for upload in uploads:
        # 413 before any byte of the body was read, or closed by the server (a reset while we
        # were still sending can swallow the answer)
        assert upload.answer == b"" or upload.answer.startswith(b"HTTP/1.1 413 "), \
            upload.answer[:80]
        assert upload.closed
    assert sum(upload.answer.startswith(b"HTTP/1.1 413 ") for upload in uploads) >= 200
    grown_mib = (peak - before) / 1024
    assert grown_mib < 100, f"worker RSS grew by {grown_mib:.0f} MiB"
    assert _verify(target.verifier.url, target.token) == 200


def test_a_chunked_body_over_the_limit_is_refused_at_the_limit(target: Target) -> None:
    for path in ("/v1/verify", "/v1/sessions"):
        with socket.create_connection(("127.0.0.1", target.verifier.port), timeout=10) as sock:
            sock.sendall(f"POST {path} HTTP/1.1\r\nHost: v\r\nContent-Type: application/json\r\n"
                         "Transfer-Encoding: chunked\r\n\r\n".encode())
            piece = b"x" * 4096
            with contextlib.suppress(OSError):
                for _ in range(64):  # 256 KiB offered, in 4 KiB chunks
                    sock.sendall(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
            sock.settimeout(5)
            answer = _read_answer(sock)
        assert answer.startswith(b"HTTP/1.1 413 "), (path, answer[:200])
        assert b"application/problem+json" in answer
        assert b'"code":"payload_too_large"' in answer


# --- F3 and F4 --------------------------------------------------------------------------------


def _expect_request(version: str, body: bytes, path: str = "/v1/verify") -> bytes:
    return (f"POST {path} HTTP/{version}\r\nHost: v\r\nContent-Type: application/json\r\n"
            f"Expect: 100-continue\r\nContent-Length: {len(body)}\r\n\r\n").encode()


def test_f3_expect_is_answered_only_when_asked_and_only_over_http_1_1(target: Target) -> None:
    body = json.dumps({"token": target.token}).encode()
    port = target.verifier.port
    # HTTP/1.1, the body held back: 100 Continue, then the answer once the body comes
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(_expect_request("1.1", body))
        interim = sock.recv(65536)
        assert interim == b"HTTP/1.1 100 Continue\r\n\r\n", interim
        sock.sendall(body)
        assert sock.recv(65536).startswith(b"HTTP/1.1 200 ")
    # HTTP/1.0 may not get a 100 (RFC 9110 section 10.1.1): the answer comes after the body
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(_expect_request("1.0", body))
        sock.settimeout(0.5)
        with pytest.raises(TimeoutError):
            sock.recv(65536)
        sock.settimeout(5)
        sock.sendall(body)
        answer = _read_answer(sock)
        assert answer.startswith(b"HTTP/1.0 200 "), answer[:80]
        assert b"100 Continue" not in answer
    # a body that only holds the words: no 100 comes from bytes of a body
    tricky = json.dumps({"token": "\r\nExpect: 100-continue\r\n"}).encode()
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"POST /v1/verify HTTP/1.1\r\nHost: v\r\nContent-Type: application/json\r\n"
                     + f"Content-Length: {len(tricky)}\r\nConnection: close\r\n\r\n".encode()
                     + tricky)
        answer = _read_answer(sock)
        assert answer.startswith(b"HTTP/1.1 401 "), answer[:80]
        assert b"100 Continue" not in answer
    # a body announced over the limit: 413 at once, never a 100
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(_expect_request("1.1", b"x" * (BODY_LIMIT + 1)))
        answer = _read_answer(sock)
        assert answer.startswith(b"HTTP/1.1 413 "), answer[:80]
        assert b"100 Continue" not in answer


def test_f4_expect_requests_from_a_client_that_never_reads_hold_nothing(target: Target) -> None:
    body = json.dumps({"token": target.token}).encode()
    stuck = []
    for _ in range(50):
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)
        sock.settimeout(5)
        sock.connect(("127.0.0.1", target.verifier.port))
        # pipelined Expect requests, each with its body, never reading a byte of the answers
        with contextlib.suppress(OSError):
            sock.sendall((_expect_request("1.1", body) + body) * 20)
        stuck.append(sock)
    try:
        with Legitimate(target) as legitimate:
            time.sleep(2)
        assert not legitimate.failures
        assert len(legitimate.latencies) > 100
        assert legitimate.p99_ms() < 50, legitimate.p99_ms()
    finally:
        for sock in stuck:
            sock.close()


# --- F5 -------------------------------------------------------------------------------------


def test_f5_idle_connections_do_not_keep_a_new_request_waiting(target: Target) -> None:
    idle = []
    try:
        for _ in range(1100):
            idle.append(socket.create_connection(("127.0.0.1", target.verifier.port),
                                                 timeout=10))
        # every connection accepted and parked by the worker
        time.sleep(1)
        started = time.monotonic()
        assert _verify(target.verifier.url, target.token) == 200
        assert time.monotonic() - started < 1.0
        # and again with half of them sending half a request
        for sock in idle[::2]:
            sock.sendall(b"POST /v1/verify HTTP/1.1\r\nHost: v\r\n")
        started = time.monotonic()
        assert _verify(target.verifier.url, target.token) == 200
        assert time.monotonic() - started < 1.0
    finally:
        for sock in idle:
            sock.close()
    wait_until(lambda: _verify(target.verifier.url, target.token) == 200, timeout=10,
               what="the verifier after the idle connections closed")


# --- pipelining -----------------------------------------------------------------------------


def test_pipelined_requests_are_answered_in_order(target: Target, key_pair: KeyPair) -> None:
    """Fifty requests in one write, of every kind: each answer is the one its request asked
    for, in order, from the right byte offset."""
    users = [f"pipe-{index}" for index in range(50)]
    tokens = {user: fresh(key_pair, user) for user in users}
    requests_sent = []
    for index, user in enumerate(users):
        token = tokens[user]
        body = json.dumps({"token": token}).encode()
        if index % 5 == 0:
            chunked = f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n"
            requests_sent.append(b"POST /v1/verify HTTP/1.1\r\nHost: v\r\nContent-Type: "
                                 b"application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
                                 + chunked)
        elif index % 5 == 1:
            requests_sent.append(f"GET /v1/auth HTTP/1.1\r\nHost: v\r\n"
                                 f"Authorization: Bearer {token}\r\n\r\n".encode())
        elif index % 5 == 2:
            requests_sent.append(f"HEAD /v1/auth/app HTTP/1.1\r\nHost: v\r\n"
                                 f"Authorization: Bearer {token}\r\n\r\n".encode())
        elif index % 5 == 3:
            requests_sent.append(b"GET /healthz HTTP/1.1\r\nHost: v\r\n"
                                 + f"X-Request-Id: {user}\r\n\r\n".encode())
        else:
            requests_sent.append(b"POST /v1/verify HTTP/1.1\r\nHost: v\r\nContent-Type: "
                                 + f"application/json\r\nContent-Length: {len(body)}\r\n\r\n"
                                 .encode() + body)
    with socket.create_connection(("127.0.0.1", target.verifier.port), timeout=10) as sock:
        sock.sendall(b"".join(requests_sent))
        received = b""
        answers = []
        for index in range(len(users)):
            while b"\r\n\r\n" not in received:
                chunk = sock.recv(65536)
                assert chunk, f"closed after {index} answers"
                received += chunk
            head, _, received = received.partition(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            headers = {k.lower(): v for k, _, v in (line.partition(": ") for line in lines[1:])}
            length = 0 if index % 5 == 2 else int(headers["content-length"])
            while len(received) < length:
                chunk = sock.recv(65536)
                assert chunk, "closed mid-answer"
                received += chunk
            body, received = received[:length], received[length:]
            answers.append((lines[0], headers, body))
        assert received == b""
    for index, (user, (status, headers, body)) in enumerate(zip(users, answers, strict=True)):
        assert status.startswith("HTTP/1.1 200 "), (index, status, body)
        if index % 5 in (1, 2):
            assert headers["x-auth-user-id"] == user
        elif index % 5 == 3:
            assert headers["x-request-id"] == user
        else:
            assert json.loads(body)["userId"] == user
