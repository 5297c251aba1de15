"""Slow and odd clients against the real services under gunicorn's asgi worker.

A connection whose request is still arriving costs the worker's event loop a parser and a
buffer, never a thread: under gthread a handful of such connections held every thread. The
figures under a 200-connection attack come from ``bench/slow_clients.py``; here the service
must simply keep answering.
"""

from __future__ import annotations

import contextlib
import json
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import requests

from tests.forge import fresh
from tests.keypairs import KeyPair
from tests.procs import RedisServer, ServiceProcess, service_pair

pytestmark = pytest.mark.e2e

TRICKLERS = 60  # per service: 30 times its threads


@dataclass
class Services:
    issuer: ServiceProcess
    verifier: ServiceProcess
    client_key: str
    token: str


@pytest.fixture(scope="module")
def services(
    key_pair: KeyPair, redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Services]:
    with service_pair(key_pair, redis_server, tmp_path_factory.mktemp("slow-clients")) as pair:
        yield Services(pair.issuer, pair.verifier, pair.client_key, fresh(key_pair, "alice"))


def _connect(service: ServiceProcess) -> socket.socket:
    return socket.create_connection(("127.0.0.1", service.port), timeout=5)


class Responses:
    """Reads HTTP/1.1 responses with a Content-Length off one connection, in order."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock, self.received = sock, b""

    def _more(self) -> None:
        chunk = self.sock.recv(65536)
        assert chunk, f"connection closed after {self.received!r}"
        self.received += chunk

    def next(self) -> tuple[int, bytes]:
        while b"\r\n\r\n" not in self.received:
            self._more()
        head, _, rest = self.received.partition(b"\r\n\r\n")
        length = next(int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")[1:]
                      if line.lower().startswith(b"content-length:"))
        while len(rest) < length:
            self._more()
            head, _, rest = self.received.partition(b"\r\n\r\n")
        self.received = rest[length:]
        return int(head.split(b" ", 2)[1]), rest[:length]


def _verify_request(token: str) -> bytes:
    body = json.dumps({"token": token}).encode()
    return (b"POST /v1/verify HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)


def test_connections_that_never_finish_their_request_hold_no_thread(services: Services) -> None:
    # 60 connections per service sit mid-head (gthread gave each a thread that waited)
    tricklers = [_connect(service) for service in (services.issuer, services.verifier)
                 for _ in range(TRICKLERS)]
    try:
        for sock in tricklers:
            sock.sendall(b"POST /v1/verify HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        for _ in range(10):
            verified = requests.post(f"{services.verifier.url}/v1/verify",
                                     json={"token": services.token}, timeout=3)
            assert verified.status_code == 200, verified.text
            issued = requests.post(f"{services.issuer.url}/v1/tokens", json={"userId": "123"},
                                   headers={"Authorization": f"Bearer {services.client_key}"},
                                   timeout=3)
            assert issued.status_code == 201, issued.text
            for sock in tricklers:
                sock.sendall(b"a")
    finally:
        for sock in tricklers:
            sock.close()


def test_a_request_arriving_in_pieces_is_answered(services: Services) -> None:
    request = _verify_request(services.token)
    with _connect(services.verifier) as sock:
        for start in range(0, len(request), 97):  # the head and the body both split
            sock.sendall(request[start:start + 97])
            time.sleep(0.02)
        status, body = Responses(sock).next()
    assert status == 200
    assert json.loads(body)["claims"]["userId"] == "alice"


def test_pipelined_requests_are_answered_in_order(services: Services) -> None:
    request = _verify_request(services.token)
    bad = _verify_request("not.a.token")
    with _connect(services.verifier) as sock:
        # two whole requests and the start of a third in one segment, its rest later
        sock.sendall(request + bad + request[:40])
        time.sleep(0.3)
        sock.sendall(request[40:])
        responses = Responses(sock)
        answers = [responses.next()[0] for _ in range(3)]
    assert answers == [200, 401, 200]


def test_expect_100_continue_gets_its_interim_answer_before_the_body(
    services: Services
) -> None:
    request = _verify_request(services.token)
    head, _, body = request.partition(b"\r\n\r\n")
    with _connect(services.verifier) as sock:
        sock.sendall(head + b"\r\nExpect: 100-continue\r\n\r\n")
        interim = sock.recv(1024)
        assert interim.startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
        sock.sendall(body)
        received = b""
        while b'"claims"' not in received:
            chunk = sock.recv(65536)
            assert chunk, received
            received += chunk
    # exactly one interim answer, then the final one
    assert received.startswith(b"HTTP/1.1 200 "), received[:80]
    assert b"100 Continue" not in received


def test_a_head_line_over_the_limit_is_refused_with_431(services: Services) -> None:
    """gunicorn refuses a header line past its limit (8190 bytes) with its own 431 and closes
    the connection; the app never sees the request."""
    with _connect(services.verifier) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * 70_000)
        answer = b""
        with contextlib.suppress(ConnectionResetError):
            while chunk := sock.recv(65536):  # until closed
                answer += chunk
        assert answer.startswith(b"HTTP/1.1 431 "), answer[:80]
    assert requests.get(f"{services.verifier.url}/healthz", timeout=3).status_code == 200
