"""The one way an answer is written, for an error or a JSON document, whoever answers.

Hot routes return an ``Answer``; Flask views' errors are turned into the same ``Answer`` by the
handlers ``install_problem_handlers`` registers, and only then into a Flask ``Response``. So a
problem has the same bytes, headers and status from either side.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from flask import Flask, Response, current_app
from werkzeug.exceptions import HTTPException

from shared.errors import (
    Forbidden,
    InternalError,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    Problem,
    RequestInvalid,
    Unauthorized,
    UnsupportedMediaType,
)

log = logging.getLogger(__name__)

PROBLEM_MIMETYPE = "application/problem+json"

_ENCODE = json.JSONEncoder(separators=(",", ":")).encode


@dataclass(slots=True)
class Answer:
    """A whole answer: status, body and headers (``Content-Length`` is added when it is sent)."""

    status: int
    body: bytes
    headers: list[tuple[str, str]]


def json_answer(status: int, document: Any, headers: Iterable[tuple[str, str]] = ()) -> Answer:
    """A JSON document, ending with a newline as Flask's ``jsonify`` writes it."""
    body = (_ENCODE(document) + "\n").encode()
    return Answer(status, body, [("Content-Type", "application/json"), *headers])


def problem_answer(problem: Problem) -> Answer:
    """An RFC 7807 document with the problem's own headers (``WWW-Authenticate``, ``Allow``)."""
    body = _ENCODE(problem.to_dict()).encode()
    return Answer(
        problem.status, body, [("Content-Type", PROBLEM_MIMETYPE), *problem.headers.items()]
    )


def unexpected_answer(where: str) -> Answer:
    """A 500 for what should never happen: the traceback to the log, nothing to the client.

    Call it from an ``except`` block: the log line carries the exception being handled.
    """
    log.exception("unhandled error on %s", where)
    return problem_answer(InternalError("The server could not complete the request."))


def too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"The request body is larger than this service accepts ({limit} bytes)."
    )


def flask_response(answer: Answer) -> Response:
    """An ``Answer`` as Flask sends it."""
    response = Response(answer.body, status=answer.status)
    response.headers.clear()
    for name, value in answer.headers:
        response.headers.add(name, value)
    return response


# werkzeug's own errors (routing, body size, method) answered as our problems
_HTTP_PROBLEMS: dict[int, type[Problem]] = {
    problem.status: problem
    for problem in (RequestInvalid, Unauthorized, Forbidden, NotFound, MethodNotAllowed,
                    PayloadTooLarge, UnsupportedMediaType)
}


def _from_problem(problem: Problem) -> Response:
    return flask_response(problem_answer(problem))


def _from_http_exception(error: HTTPException) -> Response:
    status = error.code or 500
    limit = current_app.config.get("MAX_CONTENT_LENGTH")
    if status == 413 and limit:
        return _from_problem(too_large(limit))
    detail = error.description or error.name
    known = _HTTP_PROBLEMS.get(status)
    problem = known(detail) if known else Problem(
        detail, status=status, code=error.name.lower().replace(" ", "_"), title=error.name,
    )
    if status == 405:
        allowed = error.get_response().headers.get("Allow")
        if allowed:
            problem.headers["Allow"] = allowed
    return _from_problem(problem)


def _unexpected(error: Exception) -> Response:
    return flask_response(unexpected_answer(type(error).__name__))


def install_problem_handlers(app: Flask) -> None:
    """Make every error a Flask app can produce an application/problem+json response."""
    app.register_error_handler(Problem, _from_problem)
    app.register_error_handler(HTTPException, _from_http_exception)
    app.register_error_handler(Exception, _unexpected)
