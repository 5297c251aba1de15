"""HTTP plumbing both services share: problem+json errors and strict JSON request bodies."""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Request, Response, current_app, json
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
from shared.hotroutes import PROBLEM_MIMETYPE, parse_json

PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "RFC 7807 problem document; branch on `code`, which never changes.",
    "required": ["type", "title", "status", "detail", "code"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "code": {"type": "string"},
        "field": {"type": "string", "description": "the request field that was refused"},
    },
}
"""The OpenAPI schema of every error both services answer with."""

log = logging.getLogger(__name__)

# werkzeug's own errors (routing, body size, method) answered as our problems
_HTTP_PROBLEMS: dict[int, type[Problem]] = {
    problem.status: problem
    for problem in (RequestInvalid, Unauthorized, Forbidden, NotFound, MethodNotAllowed,
                    PayloadTooLarge, UnsupportedMediaType)
}


def problem_response(problem: Problem) -> Response:
    """Render a Problem as an RFC 7807 response."""
    response = Response(
        json.dumps(problem.to_dict()), status=problem.status, mimetype=PROBLEM_MIMETYPE
    )
    for name, value in problem.headers.items():
        response.headers[name] = value
    return response


def _from_http_exception(error: HTTPException) -> Response:
    status = error.code or 500
    detail = error.description or error.name
    limit = current_app.config.get("MAX_CONTENT_LENGTH")
    if status == 413 and limit:
        detail = f"The request body is larger than this service accepts ({limit} bytes)."
    known = _HTTP_PROBLEMS.get(status)
    problem = known(detail) if known else Problem(
        detail, status=status, code=error.name.lower().replace(" ", "_"), title=error.name,
    )
    response = problem_response(problem)
    if status == 405 and error.get_response().headers.get("Allow"):
        response.headers["Allow"] = error.get_response().headers["Allow"]
    return response


def _unexpected(error: Exception) -> Response:
    # the traceback goes to the log for operators; the client learns nothing about internals
    log.exception("unhandled error: %s", type(error).__name__)
    return problem_response(InternalError("The server could not complete the request."))


def install_problem_handlers(app: Flask) -> None:
    """Make every error the app can produce an application/problem+json response."""
    app.register_error_handler(Problem, problem_response)
    app.register_error_handler(HTTPException, _from_http_exception)
    app.register_error_handler(Exception, _unexpected)


def json_body(request: Request) -> Any:
    """The request body as strict JSON: 415 unless it is JSON, 400 when it does not parse."""
    return parse_json(request.get_data(cache=True), request.content_type)
