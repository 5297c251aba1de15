"""``ServiceApp``: one service as an ASGI application, the hot routes and Flask behind one door.

Every request passes here first, whichever kind of route answers it:

1. It gets its request id (``shared.requestid``): the caller's ``X-Request-Id`` when acceptable,
   a new one otherwise, set in the context that the handler, the Flask view in its thread and
   every log line of the request see, and sent back in the answer's ``X-Request-Id``.
2. A hot route (``shared.web.hot``) is answered by its async handler on the event loop; any
   other path goes to Flask through a2wsgi, in a bounded pool of threads, once its body has
   arrived whole: a client that sends its body slowly holds no thread. A body larger than the
   service accepts is refused with 413, unread when its length was announced.
3. Once answered, it is counted and timed (``shared.web.metrics``) and logged in one access
   line (``shared.web.accesslog``).

Thread pools are made in each worker on first use: the app is built once in gunicorn's master,
and a pool's threads would not survive the fork.
"""

from __future__ import annotations

import gc
import logging
import os
import time
import urllib.parse
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, cast

from a2wsgi import WSGIMiddleware
from flask import Flask
from werkzeug.exceptions import HTTPException

from shared import requestid
from shared.errors import MethodNotAllowed, Problem
from shared.web.accesslog import CLIENT_GONE, AccessLog
from shared.web.api import Api
from shared.web.hot import ClientGone, HotRoute, Request, read_body
from shared.web.metrics import UNMATCHED, RequestMetrics
from shared.web.problems import Answer, problem_answer, unexpected_answer

log = logging.getLogger(__name__)

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Any]
Send = Callable[[Message], Any]

DEFAULT_THREADS = 4
"""Threads per worker for Flask's routes, and as many again for the waits of hot routes."""

_REQUEST_ID_HEADER = requestid.HEADER.lower().encode()  # as ASGI gives request headers
_REQUEST_ID_ANSWER = requestid.HEADER.encode()
_CONTENT_LENGTH = b"content-length"


class ServiceApp:
    """One service: hot routes answered on the event loop, Flask for every other path."""

    def __init__(
        self,
        name: str,
        flask: Flask,
        api: Api,
        hot_routes: Iterable[HotRoute] = (),
        *,
        max_body_bytes: int,
        redact_path: Callable[[str], str] | None = None,
        on_start: Iterable[Callable[[], None]] = (),
        on_stop: Iterable[Callable[[], None]] = (),
    ) -> None:
        self.name = name
        self.flask = flask
        self.api = api
        # the service's objects (the verifier service, key registries, the reloader)
        self.extensions: dict[str, Any] = flask.extensions
        self.max_body_bytes = max_body_bytes
        self.hot_routes = list(hot_routes)
        self._exact = {route.path: route for route in self.hot_routes if not route.prefix}
        self._prefixes = [route for route in self.hot_routes if route.prefix]
        self._redact_path = redact_path
        self._on_start = list(on_start)
        self._on_stop = list(on_stop)
        self.threads = DEFAULT_THREADS
        self.access_log: AccessLog | None = AccessLog()
        self.metrics = RequestMetrics(name)
        self._pid = 0
        self._pool: ThreadPoolExecutor | None = None
        self._wsgi: WSGIMiddleware | None = None

    # the ASGI entry point --------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._serve(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)
        # a websocket is refused by returning without accepting it: nothing here speaks one

    async def _serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        request_id = _request_id(scope["headers"])
        context = requestid.current.set(request_id)
        method: str = scope["method"]
        path: str = scope["path"]
        try:
            route = self._route(path)
            if route is not None:
                label = route.label
                status, sent = await self._answer_hot(route, scope, receive, send, request_id)
            else:
                label = self._flask_route(method, path)
                status, sent = await self._answer_with_flask(scope, receive, send, request_id)
            seconds = time.perf_counter() - started
            self.metrics.observe(method, label, status, seconds)
            if self.access_log is not None:
                self.access_log.write(_client(scope), method, self._logged_path(scope), status,
                                      sent, seconds, request_id)
        finally:
            requestid.current.reset(context)

    # hot routes -------------------------------------------------------------------------------

    def _route(self, path: str) -> HotRoute | None:
        route = self._exact.get(path)
        if route is None:
            for candidate in self._prefixes:
                if path.startswith(candidate.path + "/"):
                    return candidate
        return route

    async def _answer_hot(self, route: HotRoute, scope: Scope, receive: Receive, send: Send,
                          request_id: str) -> tuple[int, int]:
        method = scope["method"]
        try:
            if method not in route.methods:
                # also keeps the metrics' method label to the few a route accepts
                allowed = ", ".join(sorted(route.methods))
                raise MethodNotAllowed(f"Use {allowed}.", headers={"Allow": allowed})
            # the pool is asked for only when a handler must wait
            request = Request(scope, receive, request_id=request_id,
                              body_limit=self.max_body_bytes, executor=self.pool)
            answer = await route.handler(request)
        except Problem as problem:
            answer = problem_answer(problem)
        except ClientGone:
            return CLIENT_GONE, 0
        except Exception:  # noqa: BLE001 - logged with its traceback; the client learns nothing
            answer = unexpected_answer(route.label)
        return await _send_answer(send, answer, request_id, head=method == "HEAD")

    # Flask ------------------------------------------------------------------------------------

    async def _answer_with_flask(self, scope: Scope, receive: Receive, send: Send,
                                 request_id: str) -> tuple[int, int]:
        head = scope["method"] == "HEAD"
        try:
            body = await read_body(receive, _header(scope, _CONTENT_LENGTH),
                                   self.max_body_bytes)
        except Problem as problem:
            return await _send_answer(send, problem_answer(problem), request_id, head=head)
        except ClientGone:
            return CLIENT_GONE, 0
        status, sent = 500, 0
        id_header = (_REQUEST_ID_ANSWER, request_id.encode())
        delivered = False

        async def replay() -> Message:
            # the body, whole, then whatever comes next (a disconnect)
            nonlocal delivered
            if delivered:
                message: Message = await receive()
                return message
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}

        async def send_with_id(message: Message) -> None:
            nonlocal status, sent
            if message["type"] == "http.response.start":
                status = message["status"]
                message = {**message, "headers": [*message.get("headers", ()), id_header]}
            elif message["type"] == "http.response.body":
                sent += len(message.get("body", b""))
            await send(message)

        # Flask sees the body as sent with its length, chunked or not
        headers = [(name, value) for name, value in scope["headers"]
                   if name not in (_CONTENT_LENGTH, b"transfer-encoding")]
        headers.append((_CONTENT_LENGTH, str(len(body)).encode()))
        measured = {**scope, "headers": headers}
        # a2wsgi types the ASGI messages as TypedDicts; they are these plain dicts
        await self.wsgi()(cast(Any, measured), cast(Any, replay), cast(Any, send_with_id))
        return status, sent

    def _flask_route(self, method: str, path: str) -> str:
        """The Flask rule a request matches, for the metrics (``unmatched`` when none)."""
        try:
            rule, _ = self.flask.url_map.bind("").match(path, method, return_rule=True)
        except HTTPException:
            return UNMATCHED
        return str(rule.rule)

    # per worker -------------------------------------------------------------------------------

    def pool(self) -> ThreadPoolExecutor:
        """The threads hot routes hand blocking calls to (``Request.in_thread``)."""
        self._in_this_process()
        assert self._pool is not None
        return self._pool

    def wsgi(self) -> WSGIMiddleware:
        """Flask behind a2wsgi, with its own threads."""
        self._in_this_process()
        assert self._wsgi is not None
        return self._wsgi

    def _in_this_process(self) -> None:
        if self._pid != os.getpid():
            self._pid = os.getpid()
            self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix=f"{self.name}-hot")
            self._wsgi = WSGIMiddleware(cast(Any, self.flask), workers=self.threads)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        """Start and stop what each worker runs of its own (key file watchers)."""
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    for start in self._on_start:
                        start()
                except Exception as exc:
                    log.exception("worker start-up failed")
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                # what the worker made to start (its pools, connections, mirror) lives as long
                # as it does: kept out of full collections too, as the master's objects are
                # (shared.web.gunicorn)
                gc.freeze()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                for stop in self._on_stop:
                    try:
                        stop()
                    except Exception:
                        log.exception("worker shut-down step failed")
                if self._pool is not None:
                    self._pool.shutdown(wait=False, cancel_futures=True)
                await send({"type": "lifespan.shutdown.complete"})
                return

    def _logged_path(self, scope: Scope) -> str:
        # the path as sent (still percent-encoded): a decoded %0A would break the line
        raw: bytes = scope.get("raw_path") or scope["path"].encode("utf-8", "backslashreplace")
        path = raw.decode("latin-1")
        return self._redact_path(path) if self._redact_path is not None else path

    def test_client(self, *, use_cookies: bool = False) -> Any:
        """A werkzeug test client over the whole ASGI app (a2wsgi's ASGI-to-WSGI adapter), with
        the answers of Flask's test client: hot routes and Flask views alike. It keeps no
        cookies unless asked: a test sends the session cookie it means to send."""
        from a2wsgi import ASGIMiddleware
        from werkzeug.test import Client

        class _WholeAnswers(Client):
            # each answer read whole at once: one left half-read would hold the app's task
            def open(self, *args: Any, **kwargs: Any) -> Any:
                kwargs["buffered"] = True
                return super().open(*args, **kwargs)

        adapter = ASGIMiddleware(cast(Any, self))

        def application(environ: dict[str, Any], start_response: Any) -> Any:
            # a query string with bytes past ASCII, percent-encoded as an HTTP client would
            # send it (the adapter takes ASCII only)
            query = environ.get("QUERY_STRING", "")
            if not query.isascii():
                environ["QUERY_STRING"] = urllib.parse.quote(query.encode("latin-1"),
                                                             safe="&=+%;/:,")
            return adapter(cast(Any, environ), start_response)

        return _WholeAnswers(application, self.flask.response_class, use_cookies=use_cookies)


async def _send_answer(send: Send, answer: Answer, request_id: str, *, head: bool
                       ) -> tuple[int, int]:
    # names as written (X-Auth-User-Id, as the contract spells them): gunicorn sends them so
    headers = [(name.encode("latin-1"), value.encode("latin-1"))
               for name, value in answer.headers]
    headers.append((b"Content-Length", str(len(answer.body)).encode()))
    headers.append((_REQUEST_ID_ANSWER, request_id.encode()))
    body = b"" if head else answer.body
    await send({"type": "http.response.start", "status": answer.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
    return answer.status, len(body)


def _request_id(headers: list[tuple[bytes, bytes]]) -> str:
    for name, value in headers:
        if name == _REQUEST_ID_HEADER:
            return requestid.accept(value.decode("latin-1"))
    return requestid.new_request_id()


def _header(scope: Scope, wanted: bytes) -> str | None:
    for name, value in scope["headers"]:
        if name == wanted:
            return str(value.decode("latin-1"))
    return None


def _client(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "-"
