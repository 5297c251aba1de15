"""HTTP plumbing both services share: every error the app can raise as problem+json."""

from __future__ import annotations

import logging

from flask import Flask, Response, current_app, json
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
from shared.hotroutes import PROBLEM_MIMETYPE

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
