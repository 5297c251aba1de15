"""The sync clients' transport: the standard library's ``http.client``, one connection a thread.

No third-party dependency: one keep-alive ``HTTPConnection`` per thread (a connection is not
safe to share between threads, and a thread-local one needs no pool or lock on the hot path),
reused call after call. When to retry is ``Attempts``' decision (``_protocol``), shared with
the async clients.
"""

from __future__ import annotations

import http.client
import threading
import time
import weakref
from typing import Any, ClassVar, Self, TypeVar, Unpack

from jwt_auth_client._protocol import Answer, Attempts, Call, ClientSettings, RetrySettings
from jwt_auth_client.errors import ServiceErrors

T = TypeVar("T")

# what "no answer" looks like: refused, reset, timed out, closed before the status line
_CONNECTION_ERRORS = (OSError, http.client.HTTPException)
# a kept-alive connection the server closed while it was idle fails like this on reuse
_STALE_CONNECTION = (
    http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError,
    ConnectionAbortedError,
)


class SyncClient(ClientSettings):
    """A service's API over ``http.client``; the subclasses name the service and its calls.

    Safe to share between threads. ``close()`` (or ``with``) closes every connection.
    """

    _errors: ClassVar[ServiceErrors[Any]]

    def __init__(self, base_url: str, **settings: Unpack[RetrySettings]) -> None:
        super().__init__(base_url, **settings)
        self._local = threading.local()
        # every thread's connection, so close() reaches them all; a thread that ends drops its
        # thread-local, and with it the entry here
        self._connections: weakref.WeakSet[http.client.HTTPConnection] = weakref.WeakSet()
        self._lock = threading.Lock()

    def close(self) -> None:
        """Close every connection this client holds (in every thread)."""
        with self._lock:
            connections = list(self._connections)
        for connection in connections:
            connection.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _run(self, call: Call[T], request_id: str | None) -> T:
        attempts = Attempts(self, self._errors, call, request_id)
        for wait in attempts:
            if wait:
                time.sleep(wait)
            attempts.record(self._attempt(call, attempts))
        return attempts.result()

    def _attempt(self, call: Call[Any], attempts: Attempts[Any]) -> Answer | BaseException:
        """One attempt's answer, or the connection error that stood for it."""
        try:
            return self._send(call, attempts)
        except _CONNECTION_ERRORS as error:
            return error

    def _send(self, call: Call[Any], attempts: Attempts[Any]) -> Answer:
        connection = self._connection()
        reused = connection.sock is not None
        try:
            return self._exchange(connection, call, attempts)
        except _STALE_CONNECTION:
            connection.close()
            if not reused:
                raise
        except BaseException:
            connection.close()
            raise
        # the server closed the kept-alive connection while it was idle (its keep-alive
        # timeout): that is not the service being down, so one fresh connection at once
        try:
            return self._exchange(connection, call, attempts)
        except BaseException:
            connection.close()
            raise

    def _exchange(
        self, connection: http.client.HTTPConnection, call: Call[Any], attempts: Attempts[Any],
    ) -> Answer:
        timeout = attempts.timeout()
        connection.timeout = timeout
        if connection.sock is not None:
            connection.sock.settimeout(timeout)
        connection.request(call.method, self._prefix + call.path, body=call.body,
                           headers=call.headers(attempts.request_id))
        response = connection.getresponse()
        body = response.read()  # all of it, so the connection can carry the next request
        if response.will_close:
            connection.close()
        headers = {name.lower(): value for name, value in response.getheaders()}
        return Answer(response.status, headers, body)

    def _connection(self) -> http.client.HTTPConnection:
        slot: _Slot | None = getattr(self._local, "slot", None)
        if slot is None:
            if self._https:
                connection: http.client.HTTPConnection = http.client.HTTPSConnection(
                    self._host, self._port, timeout=self.timeout)
            else:
                connection = http.client.HTTPConnection(
                    self._host, self._port, timeout=self.timeout)
            slot = _Slot(connection)
            # the thread's socket is closed when the thread ends (its thread-local goes, and
            # the slot with it), not left open until the garbage collector finds it
            weakref.finalize(slot, connection.close)
            self._local.slot = slot
            with self._lock:
                self._connections.add(connection)
        return slot.connection


class _Slot:
    """One thread's connection."""

    __slots__ = ("__weakref__", "connection")

    def __init__(self, connection: http.client.HTTPConnection) -> None:
        self.connection = connection
