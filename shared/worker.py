"""gunicorn's gthread worker, except that a request is read whole before a thread takes it.

Stock gthread hands a connection to a thread as soon as it is readable, and the thread then
blocks until the rest of the request arrives. A client that sends its headers one byte every
few seconds therefore holds a thread for as long as it likes: a few dozen such connections
held every thread of every worker, and no one else was answered (measured with
``bench/slow_clients.py``).

Here the worker's event loop, which already watches every idle connection, also reads the
request: each readable connection gets one non-blocking ``recv`` into a buffer of its own, and
only a complete request (its head, and its body when the head announces one) is queued for a
thread, with the bytes already in the parser's buffer. The thread then parses and answers
without ever waiting on the client. A connection that has not sent a whole request within
``REQUEST_READ_TIMEOUT`` seconds is closed, so slow connections cost a file descriptor and a
buffer each, never a thread. This is what a buffering proxy (nginx) in front would do, done in
the process that is shipped, so ``jwt-auth serve``, ``jwt-auth up`` and the compose file are
covered without another moving part.

On the fast path (a keep-alive connection whose request arrives in one segment) the only
change is who calls ``recv``: the event loop instead of the thread.
"""

from __future__ import annotations

import contextlib
import errno
import re
import selectors
import socket
import time
from functools import partial
from typing import Any

from gunicorn.workers.gthread import TConn, ThreadWorker

# a whole request, from its first byte, must arrive within this many seconds
REQUEST_READ_TIMEOUT = 10.0
# a head longer than this without its blank line is refused with 431 (gunicorn's own limits
# would refuse it later anyway; the services need a few KiB at most: a JWT and a few headers)
MAX_HEAD_BYTES = 64 * 1024
# a body announced larger than this is handed over after the head (the services refuse
# bodies of more than 16 KiB with 413 without reading them)
MAX_BUFFERED_BODY = 1024 * 1024
RECV_SIZE = 64 * 1024

_CONTENT_LENGTH = re.compile(rb"\r\ncontent-length[ \t]*:[ \t]*([0-9]+)", re.IGNORECASE)
_CHUNKED = re.compile(rb"\r\ntransfer-encoding[ \t]*:[^\r\n]*chunked", re.IGNORECASE)
_EXPECT_CONTINUE = re.compile(rb"\r\nexpect[ \t]*:[ \t]*100-continue", re.IGNORECASE)

_TOO_LARGE = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
    b"Connection: close\r\nContent-Length: 0\r\n\r\n"
)
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


class _Reading:
    """What the event loop knows about a connection whose request is still arriving."""

    __slots__ = ("continued", "deadline", "received")

    def __init__(self, received: bytes, deadline: float) -> None:
        self.received = bytearray(received)
        self.deadline = deadline
        self.continued = False


def request_is_complete(received: bytes | bytearray) -> bool | None:
    """True when ``received`` holds a whole request (or as much as is worth buffering), False
    when more must arrive, None when the head is too large to accept."""
    head_end = received.find(b"\r\n\r\n")
    if head_end < 0:
        return None if len(received) > MAX_HEAD_BYTES else False
    head = received[:head_end]
    body_received = len(received) - head_end - 4
    if _CHUNKED.search(head):
        # complete once the last chunk (size 0, no trailers) has arrived
        return received.endswith(b"0\r\n\r\n") or body_received > MAX_BUFFERED_BODY
    length = _CONTENT_LENGTH.search(head)
    if length is None:
        return True
    announced = int(length.group(1))
    return announced > MAX_BUFFERED_BODY or body_received >= announced


class BufferingThreadWorker(ThreadWorker):  # type: ignore[misc]  # gunicorn has no types
    """gthread whose event loop reads each request whole before a thread takes it."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # in arrival order, so their deadlines are in order too; touched by the loop only
        self.reading: dict[TConn, _Reading] = {}

    # -- connections entering the loop -------------------------------------------------------

    def accept(self, listener: socket.socket) -> None:
        try:
            client, address = listener.accept()
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK):
                raise
            return
        self.nr_conns += 1
        conn = TConn(self.cfg, client, address, listener.getsockname())  # non-blocking now
        self._wait_for_more(conn, b"")

    def on_client_socket_readable(self, conn: TConn, client: socket.socket) -> None:
        # a kept-alive connection has bytes: most often its whole next request
        self.keepalived_conns.remove(conn)
        state = _Reading(b"", time.monotonic() + REQUEST_READ_TIMEOUT)
        self._receive(conn, state, registered=True, fresh=True)

    def finish_request(self, conn: TConn, fs: Any) -> None:
        # the thread's answer: True when the connection stays open (its errors are super's)
        keep_alive = not fs.cancelled() and fs.exception() is None and fs.result() is True
        if keep_alive and self.alive and conn.parser is not None:
            # bytes the thread read past its request (a pipelined request) go through the
            # same buffering as any other, instead of a thread waiting for their rest
            ahead = conn.parser.unreader.take_buffered()
            if ahead:
                conn.sock.setblocking(False)
                self._wait_for_more(conn, ahead)
                return
        super().finish_request(conn, fs)

    # -- reading -------------------------------------------------------------------------------

    def _wait_for_more(self, conn: TConn, received: bytes) -> None:
        # ``conn`` is not on the poller yet: just accepted, or back from a thread
        state = _Reading(received, time.monotonic() + REQUEST_READ_TIMEOUT)
        if received and self._settle(conn, state, registered=False):
            return
        self.reading[conn] = state
        self.poller.register(conn.sock, selectors.EVENT_READ, partial(self._on_readable, conn))

    def _on_readable(self, conn: TConn, _sock: socket.socket) -> None:
        state = self.reading.get(conn)
        if state is not None:
            self._receive(conn, state, registered=True, fresh=False)

    def _receive(self, conn: TConn, state: _Reading, *, registered: bool, fresh: bool) -> None:
        try:
            data = conn.sock.recv(RECV_SIZE)
        except (BlockingIOError, InterruptedError):
            data = None
        except OSError:
            self._drop(conn, registered=registered)
            return
        if data == b"":  # the client closed its side before sending a whole request
            self._drop(conn, registered=registered)
            return
        if data:
            state.received += data
            if self._settle(conn, state, registered=registered):
                return
        if fresh:
            self.reading[conn] = state
            self.poller.modify(conn.sock, selectors.EVENT_READ, partial(self._on_readable, conn))

    def _settle(self, conn: TConn, state: _Reading, *, registered: bool) -> bool:
        """Hand a complete request to a thread, or refuse one too large; False to wait."""
        complete = request_is_complete(state.received)
        if complete is False:
            if not state.continued and _EXPECT_CONTINUE.search(state.received):
                # the client waits for this before sending its body; gunicorn's own 100 in
                # the thread comes later and is one more interim response, which HTTP allows
                state.continued = True
                self._send_quietly(conn, _CONTINUE)
            return False
        self.reading.pop(conn, None)
        if registered:
            self.poller.unregister(conn.sock)
        if complete is None:
            self._send_quietly(conn, _TOO_LARGE)
            self.nr_conns -= 1
            conn.close()
            return True
        conn.buffered_request = bytes(state.received)
        conn.data_ready = True
        self.enqueue_req(conn)
        return True

    def handle(self, conn: TConn) -> Any:
        received = getattr(conn, "buffered_request", None)
        if received is not None:
            conn.buffered_request = None
            conn.sock.setblocking(True)
            conn.init()
            conn.parser.unreader.unread(received)
        return super().handle(conn)

    # -- closing -------------------------------------------------------------------------------

    def _drop(self, conn: TConn, *, registered: bool) -> None:
        self.reading.pop(conn, None)
        if registered:
            with contextlib.suppress(KeyError, ValueError, OSError):
                self.poller.unregister(conn.sock)
        self.nr_conns -= 1
        conn.close()

    @staticmethod
    def _send_quietly(conn: TConn, data: bytes) -> None:
        # a client gone or not reading: closing is all that is left to do
        with contextlib.suppress(OSError):
            conn.sock.send(data)

    def murder_pending(self) -> None:
        super().murder_pending()
        now = time.monotonic()
        while self.reading:
            conn, state = next(iter(self.reading.items()))
            if state.deadline > now:
                break
            self._drop(conn, registered=True)

    def _cap_keepalive(self, deadline: float) -> None:
        # a stopping worker waits for requests still arriving no longer than for idle ones
        super()._cap_keepalive(deadline)
        for state in self.reading.values():
            state.deadline = min(state.deadline, deadline)
