"""The routes answered on the event loop: what a handler is given, and the body rules.

A hot route's handler is ``async def handler(request: Request) -> Answer``. It runs on the
worker's event loop, so it must never block: whatever may wait on a network peer or take long
on the CPU goes through ``await request.in_thread(function, ...)``, which runs it in the app's
bounded thread pool. Its body is read when it asks for it (``await request.body()``), up to the
service's limit: a handler that refuses a request first (a missing key) never reads the body.

``parse_json`` is also what the Flask views use for a JSON body, so both kinds of routes accept
and refuse the same bodies with the same problems.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any, TypeVar

from shared.errors import RequestInvalid, UnsupportedMediaType
from shared.strictjson import StrictJSONError, loads_strict
from shared.web.problems import Answer, too_large

T = TypeVar("T")

Receive = Callable[[], Awaitable[dict[str, Any]]]


class ClientGone(Exception):
    """Raised when the client went away while its body was being read: nobody to answer."""


class Request:
    """One HTTP request as a hot route's handler sees it."""

    __slots__ = ("_body", "_executor", "_headers", "_limit", "_receive", "method", "path",
                 "query", "request_id")

    def __init__(self, scope: dict[str, Any], receive: Receive, *, request_id: str,
                 body_limit: int, executor: Callable[[], Executor]) -> None:
        self.method: str = scope["method"]
        self.path: str = scope["path"]
        self.query: str = scope["query_string"].decode("latin-1")
        self.request_id = request_id
        self._headers = request_headers(scope["headers"])
        self._receive = receive
        self._limit = body_limit
        self._executor = executor
        self._body: bytes | None = None

    def header(self, name: str) -> str | None:
        """A request header by its lower-case name."""
        return self._headers.get(name)

    async def body(self) -> bytes:
        """The whole body; 413 past the service's limit, announced or sent, unread beyond it."""
        if self._body is None:
            self._body = await read_body(self._receive, self._headers.get("content-length"),
                                         self._limit)
        return self._body

    async def in_thread(self, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``function(*args, **kwargs)`` in the app's thread pool, with this request's context
        (its id on every log line), awaited without blocking the event loop."""
        context = contextvars.copy_context()
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._executor(), functools.partial(context.run, function, *args, **kwargs)
        )


def request_headers(raw: list[tuple[bytes, bytes]]) -> dict[str, str]:
    """Request headers by lower-case name, as a WSGI server gives them: a header sent twice is
    one value, joined with ","."""
    headers: dict[str, str] = {}
    repeated: dict[str, list[str]] = {}
    for raw_name, raw_value in raw:
        name, value = raw_name.decode("latin-1"), raw_value.decode("latin-1")
        if name in headers:
            repeated.setdefault(name, [headers[name]]).append(value)
        else:
            headers[name] = value
    for name, values in repeated.items():  # joined once: a join per repeat would be quadratic
        headers[name] = ",".join(values)
    return headers


async def read_body(receive: Receive, announced: str | None, limit: int) -> bytes:
    """A request's whole body from ASGI ``receive``: 413 past ``limit``, announced (nothing is
    read then) or sent (nothing more is read)."""
    # gunicorn's parser lets only one length of digits through
    if announced is not None and announced.isdigit() and int(announced) > limit:
        raise too_large(limit)
    received = b""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone
        chunk: bytes = message.get("body", b"")
        received += chunk
        if len(received) > limit:
            raise too_large(limit)
        if not message.get("more_body", False):
            return received


Handler = Callable[[Request], Awaitable[Answer]]


@dataclass(frozen=True)
class HotRoute:
    """A path (or, with ``prefix``, every path below it too), its methods and its handler.

    ``label`` is the route as Flask writes a rule (``/v1/auth/<path:forwarded_path>``): the
    ``route`` label of the request metrics, and the path the API description documents.
    """

    path: str
    label: str
    methods: frozenset[str]
    handler: Handler
    prefix: bool = False


def is_json(content_type: str | None) -> bool:
    """Whether a Content-Type names JSON (``application/json`` or ``application/*+json``)."""
    mimetype = (content_type or "").split(";", 1)[0].strip().lower()
    return mimetype == "application/json" or (
        mimetype.startswith("application/") and mimetype.endswith("+json")
    )


def parse_json(body: bytes, content_type: str | None) -> Any:
    """A request body as strict JSON: 415 unless it is JSON, 400 when it does not parse."""
    if not is_json(content_type):
        raise UnsupportedMediaType("Send the body as JSON with Content-Type: application/json.")
    try:
        return loads_strict(body)
    except StrictJSONError as exc:
        raise RequestInvalid(f"The body is not acceptable JSON: {exc}.") from None


__all__ = ["Answer", "ClientGone", "Handler", "HotRoute", "Request", "is_json", "parse_json",
           "read_body"]
