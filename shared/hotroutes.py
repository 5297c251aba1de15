"""A few routes answered in front of Flask, with the same errors, limits and metrics.

The routes that carry a service's traffic (the verifier's verify and forward-auth, the issuer's
token endpoint) are answered by plain WSGI handlers: Flask's routing, request context and
response objects cost more than a cached verification, and a quarter of what separates the
issuer from its raw signing rate. Every other route stays a Flask view. Both paths share
``parse_json`` and ``Problem``, so they answer alike: problem+json for every error, the same
codes, the same body limit, the same ``http_requests_total`` labels.

Being the outermost layer that sees every request, ``HotRoutes`` also gives each one its request
id (``shared.requestid``) and answers it in ``X-Request-Id``, for Flask's answers as well.

A route with ``answers_at_once`` may be answered on the worker's event loop
(``shared.eventloop``); every other request that reaches this layer there is sent to a thread.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from shared.errors import (
    InternalError,
    MethodNotAllowed,
    PayloadTooLarge,
    Problem,
    RequestInvalid,
    UnsupportedMediaType,
)
from shared.eventloop import AnswerInThread, on_loop
from shared.metrics import HTTP_LATENCY, HTTP_REQUESTS, method_label
from shared.requestid import HEADER as REQUEST_ID_HEADER
from shared.requestid import begin as begin_request
from shared.requestid import end as end_request
from shared.strictjson import StrictJSONError, loads_strict

log = logging.getLogger(__name__)

PROBLEM_MIMETYPE = "application/problem+json"

Environ = dict[str, Any]
StartResponse = Callable[..., Any]


@dataclass
class Answer:
    """What a hot route answers: status, body and headers (Content-Length is added)."""

    status: int
    body: bytes
    headers: list[tuple[str, str]]


Handler = Callable[[Environ, str], Answer]


@dataclass(frozen=True)
class Route:
    """A path (or, with ``prefix``, every path below it), its methods, metrics label, handler.

    ``label`` is written the way Flask writes a rule (``/v1/auth/<path:forwarded_path>``): it
    is the ``route`` label of the request metrics and the path the API description documents.
    ``answers_at_once`` says whether the handler can answer now without waiting on a network
    peer (then the event loop answers it); None, the default, means a thread always does.
    """

    path: str
    label: str
    methods: frozenset[str]
    handler: Handler
    prefix: bool = False
    answers_at_once: Callable[[], bool] | None = None


_ENCODE = json.JSONEncoder(separators=(",", ":")).encode

_REASONS = {200: "OK", 201: "CREATED", 400: "BAD REQUEST", 401: "UNAUTHORIZED",
            403: "FORBIDDEN", 405: "METHOD NOT ALLOWED", 413: "REQUEST ENTITY TOO LARGE",
            415: "UNSUPPORTED MEDIA TYPE", 422: "UNPROCESSABLE ENTITY",
            429: "TOO MANY REQUESTS", 500: "INTERNAL SERVER ERROR",
            503: "SERVICE UNAVAILABLE"}


# the bytes Flask's views answer: jsonify ends a document with a newline, problems do not
def json_answer(status: int, document: dict[str, Any], headers: Iterable[tuple[str, str]] = ()
                ) -> Answer:
    """A JSON document."""
    body = (_ENCODE(document) + "\n").encode()
    return Answer(status, body, [("Content-Type", "application/json"), *headers])


def problem_answer(problem: Problem) -> Answer:
    """An RFC 7807 document."""
    body = _ENCODE(problem.to_dict()).encode()
    return Answer(
        problem.status, body, [("Content-Type", PROBLEM_MIMETYPE), *problem.headers.items()]
    )


def too_large(limit: int) -> Problem:
    return PayloadTooLarge(
        f"The request body is larger than this service accepts ({limit} bytes)."
    )


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


def read_body(environ: Environ, limit: int) -> bytes:
    """The request body, refused with 413 past ``limit`` (announced or sent)."""
    length = environ.get("CONTENT_LENGTH")
    if length:
        try:
            announced = int(length)
        except ValueError:
            raise RequestInvalid("Content-Length is not a number.") from None
        if announced > limit:
            raise too_large(limit)
    stream = environ.get("wsgi.input")
    if stream is None:
        return b""
    body: bytes = stream.read(limit + 1)
    if len(body) > limit:
        raise too_large(limit)
    return body


class HotRoutes:
    """WSGI middleware: the given routes here, every other request to ``app`` (Flask)."""

    def __init__(self, app: Callable[..., Iterable[bytes]], service: str,
                 routes: Iterable[Route]) -> None:
        self.app = app
        self.service = service
        self.routes = list(routes)
        self._exact = {route.path: route for route in self.routes if not route.prefix}
        self._prefixes = [route for route in self.routes if route.prefix]
        # label children resolved once: labels() takes a lock and hashes on every call
        self._counters: dict[tuple[str, str, int], Any] = {}
        self._timers: dict[str, Any] = {}

    def _route(self, path: str) -> Route | None:
        route = self._exact.get(path)
        if route is None:
            for candidate in self._prefixes:
                if path.startswith(candidate.path + "/"):
                    return candidate
        return route

    def answers_at_once(self, method: str, path: str) -> bool:
        """Whether the event loop may answer this request (``shared.worker``)."""
        route = self._route(path)
        return (route is not None and route.answers_at_once is not None
                and method in route.methods and route.answers_at_once())

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        route = self._route(environ.get("PATH_INFO", ""))
        if on_loop() and (route is None or route.answers_at_once is None):
            # the worker guessed from the raw request line; gunicorn's reading decides
            raise AnswerInThread
        request_id, context = begin_request(environ)
        try:
            if route is None:
                return self._flask(environ, start_response, request_id)
            started = time.perf_counter()
            method = environ.get("REQUEST_METHOD", "GET")
            try:
                if method not in route.methods:
                    # also keeps the metrics' method label to the few a route accepts
                    allowed = ", ".join(sorted(route.methods))
                    raise MethodNotAllowed(f"Use {allowed}.", headers={"Allow": allowed})
                answer = route.handler(environ, method)
            except Problem as problem:
                answer = problem_answer(problem)
            except Exception:
                # the traceback goes to the log for operators; the client learns nothing more
                log.exception("unhandled error on %s", route.label)
                answer = problem_answer(
                    InternalError("The server could not complete the request."))
            answer.headers.append(("Content-Length", str(len(answer.body))))
            answer.headers.append((REQUEST_ID_HEADER, request_id))
            start_response(f"{answer.status} {_REASONS.get(answer.status, '')}", answer.headers)
            self._count(method_label(method), route.label, answer.status,
                        time.perf_counter() - started)
            return [b"" if method == "HEAD" else answer.body]
        finally:
            end_request(context)

    def _flask(self, environ: Environ, start_response: StartResponse,
               request_id: str) -> Iterable[bytes]:
        """Flask answers; every answer of its, errors included, gets the id header here."""
        def start_with_id(status: str, headers: list[tuple[str, str]],
                          exc_info: Any = None) -> Any:
            headers.append((REQUEST_ID_HEADER, request_id))
            return start_response(status, headers, exc_info)

        return self.app(environ, start_with_id)

    def _count(self, method: str, label: str, status: int, seconds: float) -> None:
        key = (method, label, status)
        counter = self._counters.get(key)
        if counter is None:
            counter = self._counters.setdefault(
                key, HTTP_REQUESTS.labels(self.service, method, label, str(status))
            )
        counter.inc()
        timer = self._timers.get(label)
        if timer is None:
            timer = self._timers.setdefault(label, HTTP_LATENCY.labels(self.service, label))
        timer.observe(seconds)
