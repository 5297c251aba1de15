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

Two more changes make the hot path cheaper (``bench/side_by_side.py``):

- A whole request whose route the app says can answer at once (``answers_at_once``, see
  ``shared.eventloop``) is answered on the event loop itself, with no thread hand-off. Code
  that would wait there raises ``AnswerInThread`` before anything is answered, and the same
  bytes go to a thread. The answer is sent without blocking; what a client does not take at
  once is left to a thread, so a client that stops reading never holds the loop.
- Such a request, when it is the plainest HTTP/1.1 (``shared.http11``: a request line,
  ordinary headers, a Content-Length body), is read without gunicorn's parser and answered
  with gunicorn's ``Response``; anything that needs judgement is read by gunicorn as before.
- gunicorn writes an answer's head and body in separate sends; here they leave in one.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import json
import os
import re
import selectors
import socket
import time
from concurrent import futures
from datetime import timedelta
from email.utils import formatdate
from functools import partial
from typing import Any

from gunicorn import util
from gunicorn.http.wsgi import Response, _make_early_hints_callback, base_environ
from gunicorn.workers.gthread import TConn, ThreadWorker

from shared import requestid
from shared.errors import Problem
from shared.eventloop import AnswerInThread, answering_on_loop, on_loop
from shared.http11 import PlainReader, PlainRequest, plain_environ

# a whole request, from its first byte, must arrive within this many seconds
REQUEST_READ_TIMEOUT = 10.0
# a head longer than this without its blank line is refused with 431 (gunicorn's own limits
# would refuse it later anyway; the services need a few KiB at most: a JWT and a few headers)
MAX_HEAD_BYTES = 64 * 1024
# a body announced larger than this is handed over after the head (the services refuse
# bodies of more than 16 KiB with 413 without reading them)
MAX_BUFFERED_BODY = 1024 * 1024
RECV_SIZE = 64 * 1024
# connections accepted per readiness event of the listening socket, at most
ACCEPT_BATCH = 100
# a thread's answer is sent as soon as this much is gathered (large documents, static files)
GATHER_LIMIT = 64 * 1024

ANSWERS_AT_ONCE = "answers_at_once"
"""The WSGI app's optional ``answers_at_once(method, path) -> bool``: whether a request to that
route may be answered on the event loop (``shared.eventloop``)."""

_CONTENT_LENGTH = re.compile(rb"\r\ncontent-length[ \t]*:[ \t]*([0-9]+)", re.IGNORECASE)
_CHUNKED = re.compile(rb"\r\ntransfer-encoding[ \t]*:[^\r\n]*chunked", re.IGNORECASE)
_EXPECT_CONTINUE = re.compile(rb"\r\nexpect[ \t]*:[ \t]*100-continue", re.IGNORECASE)
_UPGRADE = re.compile(rb"\r\nupgrade[ \t]*:", re.IGNORECASE)
# a folded line (refused by gunicorn unless permit_obsolete_folding) could hide the two above
_FOLDED = re.compile(rb"\r\n[ \t]")

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


def loop_target(request: bytes) -> tuple[str, str] | None:
    """The method and path of a complete request that the event loop could answer, or None.

    Only a request held whole qualifies: no chunked body (its end is a guess, and the parser
    would read on from the socket), no body still to come, no protocol upgrade, no folded line
    (which could hide either from these patterns).
    """
    head_end = request.find(b"\r\n\r\n")
    if head_end < 0:
        return None
    head = request[:head_end]
    if _CHUNKED.search(head) or _UPGRADE.search(head) or _FOLDED.search(head):
        return None
    length = _CONTENT_LENGTH.search(head)
    if length is not None and len(request) - head_end - 4 < int(length.group(1)):
        return None
    line_end = head.find(b"\r\n")
    words = (head if line_end < 0 else head[:line_end]).split(b" ")
    if len(words) != 3:
        return None
    path = words[1].split(b"?", 1)[0]
    return words[0].decode("latin-1"), path.decode("latin-1")


class _GatheredWrites:
    """The connection's socket while gunicorn writes an answer: ``sendall`` gathers the head
    and the body, to leave in one send; everything else is the socket's own."""

    __slots__ = ("pending", "size", "sock")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.pending: list[bytes] = []
        self.size = 0

    def sendall(self, data: bytes) -> None:
        self.pending.append(data)
        self.size += len(data)
        if self.size > GATHER_LIMIT and not on_loop():
            self.flush()

    def sendfile(self, *args: Any, **kwargs: Any) -> Any:
        # straight to the socket: what was gathered must go first
        self.flush()
        return self.sock.sendfile(*args, **kwargs)

    def flush(self) -> None:
        if self.pending:
            data = b"".join(self.pending)
            self.pending, self.size = [], 0
            self.sock.sendall(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.sock, name)


# the answers gunicorn and this worker give without the app (a head that cannot be read), as
# problem documents like every other answer: code, title, detail (never the request's bytes)
_SERVER_PROBLEMS = {
    400: ("request_invalid", "Bad request", "The request could not be read as HTTP/1.1."),
    403: ("forbidden", "Forbidden", "The request is not accepted from this peer."),
    414: ("uri_too_long", "URI too long", "The request line is longer than this service reads."),
    417: ("expectation_failed", "Expectation failed", "Only Expect: 100-continue is understood."),
    431: ("headers_too_large", "Request header fields too large",
          "The request's headers are larger than this service reads."),
    501: ("not_implemented", "Not implemented", "The request's transfer coding is not supported."),
}
_INTERNAL = ("internal_error", "Internal server error",
             "The server could not complete the request.")


def server_problem(status: int, reason: str, request_id: str) -> bytes:
    """A whole answer, closing the connection: the problem document for ``status``."""
    code, title, detail = _SERVER_PROBLEMS.get(status, _INTERNAL)
    body = json.dumps(Problem(detail, status=status, code=code, title=title).to_dict(),
                      separators=(",", ":")).encode()
    return (f"HTTP/1.1 {status} {reason}\r\nConnection: close\r\n"
            f"Content-Type: application/problem+json\r\nContent-Length: {len(body)}\r\n"
            f"{requestid.HEADER}: {request_id}\r\n\r\n").encode("latin-1") + body


class _ErrorPage:
    """The client's socket as gunicorn's ``handle_error`` writes to it: its HTML page is not
    sent, only its status is kept (``BufferingThreadWorker.handle_error`` answers instead)."""

    def __init__(self, sock: Any) -> None:
        self.sock = sock
        self.status: tuple[int, str] | None = None

    def gettimeout(self) -> float:
        return 0.0  # gunicorn then writes without touching the socket's blocking mode

    def sendall(self, data: bytes) -> None:
        words = data.split(b"\r\n", 1)[0].decode("latin-1").split(" ", 2)
        self.status = (int(words[1]), words[2] if len(words) > 2 else "")

    def __getattr__(self, name: str) -> Any:
        return getattr(self.sock, name)


class _DateHeader:
    """gunicorn formats the Date header anew for every answer (4% of the issuer's time outside
    the signature); it changes once a second."""

    second = 0
    text = ""

    @classmethod
    def now(cls) -> str:
        second = int(time.time())
        if second != cls.second:
            cls.text, cls.second = formatdate(second, usegmt=True), second
        return cls.text


class _PlainResponse(Response):  # type: ignore[misc]  # gunicorn has no types
    """gunicorn's answer, with the Date header formatted once a second."""

    def default_headers(self) -> list[str]:
        if self.upgrade:
            connection = "upgrade"
        elif self.should_close():
            connection = "close"
        else:
            connection = "keep-alive"
        headers = [
            f"HTTP/{self.req.version[0]}.{self.req.version[1]} {self.status}\r\n",
            f"Server: {self.version}\r\n",
            f"Date: {_DateHeader.now()}\r\n",
            f"Connection: {connection}\r\n",
        ]
        if self.chunked:
            headers.append("Transfer-Encoding: chunked\r\n")
        return headers


def answered_longest_ago_first(event: tuple[selectors.SelectorKey, int]) -> int:
    """Sort key of a ready event: when its connection was last answered (0: never, or not a
    connection: the listeners and the thread pool's queue)."""
    args = getattr(event[0].data, "args", None)  # the callbacks of connections are partials
    return getattr(args[0], "answered", 0) if args else 0


class BufferingThreadWorker(ThreadWorker):  # type: ignore[misc]  # gunicorn has no types
    """gthread whose event loop reads each request whole before a thread takes it."""

    alive: bool  # gthread's: False once the worker is stopping

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # in arrival order, so their deadlines are in order too; touched by the loop only
        self.reading: dict[TConn, _Reading] = {}
        # plain requests to routes answered on the loop skip gunicorn's parser (shared.http11)
        self.plain_reader = PlainReader.for_config(self.cfg, dict(os.environ))
        self.plain_base_environ = base_environ(self.cfg)
        self.answers = itertools.count(1)  # stamps each connection's last answer, in order

    def wait_for_and_dispatch_events(self, timeout: float) -> None:
        # gthread's, with the ready connections taken in the order they were last answered.
        # epoll (level-triggered) lists a connection that stayed readable ahead of one whose
        # request arrived while the loop was busy: a request that missed one turn of the loop
        # also came last in the next, and waited two turns. With every request answered on the
        # loop that was about 1 in 16 of the issuer's at 16 connections (p99 51 ms for a p50 of
        # 26); served least recently answered first, p99 is 29-33 ms
        try:
            events = self.poller.select(timeout)
            if len(events) > 1:
                events.sort(key=answered_longest_ago_first)
            for key, _ in events:
                key.data(key.fileobj)
        except OSError as exc:
            if exc.errno != errno.EINTR:
                raise

    # -- connections entering the loop -------------------------------------------------------

    def accept(self, listener: socket.socket) -> None:
        # every connection waiting, up to ACCEPT_BATCH (as asyncio does): one per turn of the
        # loop made the 64th connection of a burst wait for 63 turns, each answering every
        # request already in, seconds for the issuer (measured: wrk timeouts at 64 connections)
        for _ in range(ACCEPT_BATCH):
            if self.nr_conns >= self.worker_connections:
                return
            try:
                client, address = listener.accept()
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK):
                    raise
                return
            self.nr_conns += 1
            conn = TConn(self.cfg, client, address, listener.getsockname())  # non-blocking now
            conn.buffered_request = None  # a whole request, from the loop to a thread
            conn.read_ahead = None  # bytes of the next request, from a thread to the loop
            conn.keep_alive = None  # the thread's answer: True to keep the connection
            conn.unsent = None  # an answer given on the loop, for the loop to send
            conn.answered = 0  # when it was last answered (self.answers); 0: not yet
            self._wait_for_more(conn, b"")

    def on_client_socket_readable(self, conn: TConn, client: socket.socket) -> None:
        # a kept-alive connection has bytes: most often its whole next request, in one segment
        self.keepalived_conns.remove(conn)
        try:
            data = client.recv(RECV_SIZE)
        except (BlockingIOError, InterruptedError):
            data = None
        except OSError:
            self._drop(conn, registered=True)
            return
        if data == b"":  # the client closed the connection
            self._drop(conn, registered=True)
            return
        if data:
            # a plain request is whole by its reading: no other look at its bytes
            plain = self._plain_for_loop(conn, data)
            if plain is not None or request_is_complete(data) is True:
                if plain is not None or self._loop_may_answer(data):
                    # answered with the connection left on the poller as it is
                    self._answer_on_loop(conn, data, registered=True, plain=plain)
                    return
                self.poller.unregister(client)
                self._to_thread(conn, data)
                return
        state = _Reading(data or b"", time.monotonic() + REQUEST_READ_TIMEOUT)
        if data and self._settle(conn, state, registered=True):
            return
        self.reading[conn] = state
        self.poller.modify(client, selectors.EVENT_READ, partial(self._on_readable, conn))

    def finish_request(self, conn: TConn, fs: Any) -> None:
        # back in the loop from a thread; handle() left its answer on the connection, so the
        # common case reads no Future (each of its calls takes a lock: measured, 8% of the loop)
        keep_alive, conn.keep_alive = conn.keep_alive, None
        ahead, conn.read_ahead = conn.read_ahead, None
        conn.answered = next(self.answers)
        if keep_alive is True and not self.alive and conn.parser is None:
            # only ever answered plainly (no gunicorn parser): gthread's linger for a stopping
            # worker reads the parser's buffer, so such a connection is closed at once instead
            keep_alive = False
        if keep_alive is not True or not self.alive:
            if ahead is not None:
                conn.parser.unreader.unread(ahead)  # gunicorn's own way, for a stopping worker
            if fs is None:  # answered on the loop: gthread's steps want the answer as a Future
                fs = futures.Future()
                fs.set_result(keep_alive)
            super().finish_request(conn, fs)
            return
        try:
            conn.sock.setblocking(False)
            if ahead is not None:
                # bytes the thread read past its request (a pipelined request) go through the
                # same buffering as any other, instead of a thread waiting for their rest
                self._wait_for_more(conn, ahead)
                return
            # kept alive: back on the poller until its next request (gthread's own steps)
            conn.set_timeout()
            self.keepalived_conns.append(conn)
            self.poller.register(conn.sock, selectors.EVENT_READ,
                                 partial(self.on_client_socket_readable, conn))
        except Exception as exc:  # noqa: BLE001 - as gthread: the loop must outlive a connection
            self.log.warning("closing a connection that cannot be kept alive: %r", exc)
            self.nr_conns -= 1
            conn.close()

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
        if state is None:
            return
        try:
            data = conn.sock.recv(RECV_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._drop(conn, registered=True)
            return
        if data == b"":  # the client closed its side before sending a whole request
            self._drop(conn, registered=True)
            return
        state.received += data
        self._settle(conn, state, registered=True)

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
            request_id = requestid.new_request_id()
            context = requestid.current.set(request_id)  # on the warning line, as on the answer
            try:
                self.log.warning("Invalid request from ip=%s: a head over %d bytes",
                                 conn.client[0] if type(conn.client) is tuple else conn.client,
                                 MAX_HEAD_BYTES)
            finally:
                requestid.current.reset(context)
            self._send_quietly(
                conn, server_problem(431, "Request Header Fields Too Large", request_id))
            self.nr_conns -= 1
            conn.close()
            return True
        self._hand_over(conn, bytes(state.received))
        return True

    def _hand_over(self, conn: TConn, request: bytes) -> None:
        plain = self._plain_for_loop(conn, request)
        if plain is not None or self._loop_may_answer(request):
            self._answer_on_loop(conn, request, registered=False, plain=plain)
            return
        self._to_thread(conn, request)

    def _to_thread(self, conn: TConn, request: bytes) -> None:
        conn.buffered_request = request
        conn.data_ready = True  # gthread's own wait for a first byte is not needed
        self.enqueue_req(conn)

    def _plain_for_loop(self, conn: TConn, request: bytes) -> PlainRequest | None:
        """The request read by ``shared.http11`` when the loop answers it, else None."""
        answers_at_once = getattr(self.wsgi, ANSWERS_AT_ONCE, None)
        if (answers_at_once is None or self.plain_reader is None
                # a unix socket's addresses are strings: gunicorn's environ is built otherwise
                or type(conn.client) is not tuple or type(conn.server) is not tuple):
            return None
        plain = self.plain_reader.read(request)
        if plain is None or not answers_at_once(plain.method, plain.path):
            return None
        plain.peer_addr = plain.remote_addr = conn.client
        return plain

    def _loop_may_answer(self, request: bytes) -> bool:
        answers_at_once = getattr(self.wsgi, ANSWERS_AT_ONCE, None)
        if answers_at_once is None:
            return False
        target = loop_target(request)
        return target is not None and bool(answers_at_once(*target))

    # -- answering on the loop -------------------------------------------------------------------

    def _answer_on_loop(self, conn: TConn, request: bytes, *, registered: bool,
                        plain: PlainRequest | None = None) -> None:
        """Answer ``request`` here; ``registered``: the connection is still on the poller;
        ``plain``: the request as ``shared.http11`` read it, or None for gunicorn to read."""
        try:
            with answering_on_loop():
                if plain is not None:
                    self._answer_plain(conn, plain)
                else:
                    conn.buffered_request = request
                    conn.data_ready = True
                    self.handle(conn)
        except AnswerInThread:
            # the app would have waited; nothing was sent, counted or logged: a thread answers
            # the same bytes from the start, with a parser of its own, and counts it (both ways
            # of answering here counted it before calling the app)
            self.nr -= 1
            if registered:
                self.poller.unregister(conn.sock)
            conn.parser = None
            conn.initialized = False
            conn.unsent = conn.keep_alive = conn.read_ahead = None
            conn.buffered_request = request
            self.enqueue_req(conn)
            return
        unsent, conn.unsent = conn.unsent, None
        conn.answered = next(self.answers)
        data = b"".join(unsent) if unsent else b""
        try:
            if plain is None:  # gunicorn's reading made the socket blocking; a plain one did not
                conn.sock.setblocking(False)
            sent = conn.sock.send(data) if data else 0
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError:  # the client is gone
            conn.keep_alive = False
            sent = len(data)
        if sent < len(data):
            # the client is not reading: a thread waits for it to, the loop goes on
            if registered:
                self.poller.unregister(conn.sock)
            fs = self.tpool.submit(self._send_rest, conn, data[sent:])
            fs.add_done_callback(
                lambda _: self.method_queue.defer(self.finish_request, conn, None))
            return
        if registered:
            if conn.keep_alive is True and conn.read_ahead is None and self.alive:
                # the common case: the connection stays on the poller with the same callback,
                # sparing two epoll_ctl calls and the selector's bookkeeping per request
                conn.keep_alive = None
                conn.set_timeout()
                self.keepalived_conns.append(conn)
                return
            self.poller.unregister(conn.sock)
        if conn.read_ahead is not None:
            # a pipelined request is taken up on the loop's next turn: a client sending
            # thousands at once gets one answer per turn, and no recursion
            self.method_queue.defer(self.finish_request, conn, None)
            return
        self.finish_request(conn, None)

    def _answer_plain(self, conn: TConn, req: PlainRequest) -> None:
        """gthread's ``handle_request`` for a request ``shared.http11`` read, on the loop: the
        same environ, hooks, limits, answer and access line, minus gunicorn's parser.

        On ``AnswerInThread`` nothing is answered or logged and ``post_request`` is not run: the
        thread runs the request from the start, ``pre_request`` included, and counts it.
        """
        resp = _PlainResponse(req, _GatheredWrites(conn.sock), self.cfg)  # sent by the loop
        environ: dict[str, Any] = {}
        try:
            environ = plain_environ(self.plain_base_environ, req, conn.sock, conn.client,
                                    conn.server)
            # a 103 is gathered ahead of the answer, as gunicorn would send it ahead
            environ["wsgi.early_hints"] = _make_early_hints_callback(req, resp.sock, resp)
            self.cfg.pre_request(self, req)
            started = time.perf_counter()
            self.nr += 1
            if self.nr >= self.max_requests:
                if self.alive:
                    self.log.info("Autorestarting worker after current request.")
                    self.alive = False
                resp.force_close()
            if (not self.alive or not self.cfg.keepalive
                    or len(self.keepalived_conns) >= self.max_keepalived):
                resp.force_close()
            respiter = self.wsgi(environ, resp.start_response)
            try:
                for item in respiter:
                    resp.write(item)
                resp.close()
            finally:
                self.log.access(resp, req, environ,
                                timedelta(seconds=time.perf_counter() - started))
                if hasattr(respiter, "close"):
                    respiter.close()
        except Exception as exc:  # noqa: BLE001 - as gthread's handle: a 500, the connection closed
            # nothing of the failed answer has left: gunicorn's error page goes instead
            self.handle_error(req, conn.sock, conn.client, exc)
            conn.unsent, conn.keep_alive = None, False
        else:
            conn.unsent = resp.sock.pending
            conn.keep_alive = not resp.should_close()
        try:
            self.cfg.post_request(self, req, environ, resp)
        except Exception:
            self.log.exception("Exception in post_request hook")

    @staticmethod
    def _send_rest(conn: TConn, data: bytes) -> None:
        # runs in a thread
        try:
            conn.sock.setblocking(True)
            conn.sock.sendall(data)
        except OSError:
            conn.keep_alive = False

    def handle(self, conn: TConn) -> Any:
        # in a thread, or on the loop (_answer_on_loop)
        received = conn.buffered_request
        if received is not None:
            conn.buffered_request = None
            conn.init()  # the parser, on a new connection
            conn.parser.unreader.unread(received)
        keep_alive = super().handle(conn)
        if keep_alive is True:
            ahead = conn.parser.unreader.take_buffered()
            if ahead:
                conn.read_ahead = ahead  # finish_request, in the loop, reads on from there
        conn.keep_alive = keep_alive
        return keep_alive

    def handle_request(self, req: Any, conn: TConn) -> Any:
        # gunicorn writes the head and the body in two sends; gathered, they leave in one
        real = conn.sock
        gathered = _GatheredWrites(real)
        conn.sock = gathered
        try:
            keep_alive = super().handle_request(req, conn)
        finally:
            # on an error what was gathered belongs to an answer that failed: gunicorn has
            # closed the connection or sends its own error page
            conn.sock = real
        if on_loop():
            conn.unsent = gathered.pending  # the loop sends it without blocking
        else:
            gathered.flush()
        return keep_alive

    def handle_error(self, req: Any, client: Any, addr: Any, exc: BaseException) -> None:
        # gunicorn decides the status (400 for a malformed head, 431, 500...), logs and writes
        # the access line; the answer is a problem document with a request id instead of its
        # HTML page, and its log lines carry that id. It is written without blocking (on the
        # loop, a client that stopped reading must not hold it): it goes out if it fits, and
        # the connection is closed after an error either way
        request_id = requestid.new_request_id()
        page = _ErrorPage(client)
        context = requestid.current.set(request_id)
        try:
            super().handle_error(req, page, addr, exc)
        finally:
            requestid.current.reset(context)
        if page.status is not None:
            with contextlib.suppress(Exception):  # as gunicorn: a client gone is no error here
                util.write_nonblock(client, server_problem(*page.status, request_id))

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
