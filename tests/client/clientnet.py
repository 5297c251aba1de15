"""Network helpers for the client tests: the services, a counting TCP proxy, uvicorn in a thread.

Shared by tests/client's conftest and test files (a test never imports conftest).
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import uvicorn

from jwt_auth_client import StoreUnavailable, VerifierClient, VerifierUnavailable
from tests.forge import fresh
from tests.keypairs import KeyPair
from tests.procs import RedisServer, ServiceProcess, free_port, wait_until

REQUEST_LINE_END = b" HTTP/1.1\r\n"


def access_lines(service: ServiceProcess, request_id: str) -> int:
    """How many requests the service's access log shows under this request id."""
    return sum(1 for line in service.output().splitlines()
               if line.startswith('127.0.0.1 "') and line.endswith(f" request_id={request_id}"))


@dataclass
class Verifier:
    """The module's real verifier (conftest's ``verifier`` fixture)."""

    service: ServiceProcess
    admin_key: str

    @property
    def url(self) -> str:
        return self.service.url

    def access_lines(self, request_id: str) -> int:
        return access_lines(self.service, request_id)


@dataclass
class Issuer:
    """A real issuer of the verifier's key pair (conftest's ``issuer`` fixture)."""

    service: ServiceProcess
    client_key: str  # a client added without --admin
    admin_key: str  # a client added with --admin: may ask for isAdmin: true

    @property
    def url(self) -> str:
        return self.service.url

    def access_lines(self, request_id: str) -> int:
        return access_lines(self.service, request_id)


class CountingProxy:
    """A TCP proxy on 127.0.0.1 that counts what goes through it.

    ``connections`` counts the TCP connections clients opened, ``requests`` the HTTP/1.1
    request lines they sent. With ``target_port=None`` it accepts each connection and closes it
    at once (a verifier that dies mid-request: the client sees no answer).
    """

    def __init__(self, target_port: int | None) -> None:
        self.target_port = target_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.listener.getsockname()[1]
        self.connections = 0
        self.requests = 0
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._stopping = threading.Event()
        self.listener.settimeout(0.05)  # accept() wakes up to see close() was called
        self._accepting = threading.Thread(target=self._accept, daemon=True)
        self._accepting.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while not self._stopping.is_set():
            try:
                downstream, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            downstream.settimeout(None)
            with self._lock:
                self.connections += 1
            if self.target_port is None:
                downstream.close()
                continue
            upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=10)
            upstream.settimeout(None)
            with self._lock:
                self._sockets += [downstream, upstream]
            for source, sink, count in ((downstream, upstream, True),
                                        (upstream, downstream, False)):
                thread = threading.Thread(
                    target=self._pump, args=(source, sink, count), daemon=True)
                thread.start()
                self._threads.append(thread)

    def _pump(self, source: socket.socket, sink: socket.socket, count: bool) -> None:
        tail = b""
        try:
            while chunk := source.recv(65536):
                if count:
                    seen = tail + chunk
                    with self._lock:
                        self.requests += seen.count(REQUEST_LINE_END)
                    tail = seen[-(len(REQUEST_LINE_END) - 1):]
                sink.sendall(chunk)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def drop_connections(self) -> None:
        """Close every proxied connection, as a server ending idle keep-alive connections."""
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def close(self) -> None:
        self._stopping.set()
        self._accepting.join(timeout=5)
        self.listener.close()
        self.drop_connections()
        for thread in self._threads:
            thread.join(timeout=5)

    def __enter__(self) -> CountingProxy:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


@contextlib.contextmanager
def uvicorn_serving(app: Any, *, lifespan: str = "off") -> Iterator[str]:
    """An ASGI application under a real uvicorn server in a thread; yields its base URL.

    ``lifespan="on"`` runs the application's startup and shutdown (where an async client is
    closed, on the loop that used it).
    """
    port = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, lifespan=lifespan, log_level="warning",
        access_log=False,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        wait_until(lambda: server.started, timeout=15, what=f"uvicorn on port {port}")
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        assert not thread.is_alive(), "uvicorn did not stop within 15 s"


@contextlib.contextmanager
def store_down(redis_server: RedisServer, verifier: Verifier, key_pair: KeyPair) -> Iterator[None]:
    """Redis killed until the block ends: meanwhile the verifier answers 503 store_unavailable.

    The verifier runs without a revocation mirror (conftest), so each verification reads Redis.
    """
    direct = VerifierClient(verifier.url, retries=0)

    def answers(expected: type[Exception] | None) -> Callable[[], bool]:
        def check() -> bool:
            try:
                direct.verify(fresh(key_pair))
            except (StoreUnavailable, VerifierUnavailable) as error:
                return expected is not None and isinstance(error, expected)
            return expected is None
        return check

    redis_server.kill()
    try:
        wait_until(answers(StoreUnavailable), timeout=10,
                   what="the verifier answering 503 without Redis")
        yield
    finally:
        redis_server.start()
        wait_until(answers(None), timeout=10, what="the verifier using Redis again")
        direct.close()
