"""Request ids: one per request, in the ``X-Request-Id`` answer header and on its log lines.

``shared.hotroutes.HotRoutes``, the outermost layer of both services that sees every request,
calls ``begin`` first: the caller's ``X-Request-Id`` when it is acceptable (``is_acceptable``),
a fresh one otherwise. The id is then

- in the WSGI environ under ``ENVIRON_KEY``, where gunicorn's access line reads it after the
  answer (``shared.accesslog``);
- in the context variable ``current`` until the app has answered, where ``RequestIdFilter``
  puts it on every log record of the request (gthread serves a request on one thread; each
  thread has a context of its own);
- in the answer's ``X-Request-Id`` header, whatever answered: a hot route, a Flask view, a
  problem, a 404.

An id that is not acceptable is replaced, never echoed or logged: a header value is the
caller's text, and a line break or a quote in it would forge or break log lines.
"""

from __future__ import annotations

import logging
import os
import re
from contextvars import ContextVar, Token
from typing import Any

HEADER = "X-Request-Id"
ENVIRON_KEY = "jwt_auth.request_id"
MAX_LENGTH = 128

# letters, digits and - _ . : / + = @ (UUIDs, W3C trace ids, base64 ids, "host:1234"), no
# space, quote, backslash or control character; fullmatch: "$" would let a final "\n" through
_ACCEPTABLE = re.compile(rf"[A-Za-z0-9._:/+=@-]{{1,{MAX_LENGTH}}}").fullmatch

current: ContextVar[str | None] = ContextVar("jwt_auth_request_id", default=None)
"""The id of the request this thread is answering; None outside of one."""


def is_acceptable(value: str) -> bool:
    """Whether a caller's id may be kept: 1 to 128 of ``A-Z a-z 0-9 - _ . : / + = @``."""
    return _ACCEPTABLE(value) is not None


def new_request_id() -> str:
    """24 random hex digits: unique across workers and hosts without coordination."""
    return os.urandom(12).hex()


def begin(environ: dict[str, Any]) -> tuple[str, Token[str | None]]:
    """Give the request its id (environ, context); ``end`` with the token when it has answered."""
    offered = environ.get("HTTP_X_REQUEST_ID")
    request_id = offered if offered and _ACCEPTABLE(offered) is not None else new_request_id()
    environ[ENVIRON_KEY] = request_id
    return request_id, current.set(request_id)


def end(token: Token[str | None]) -> None:
    current.reset(token)


class RequestIdFilter(logging.Filter):
    """Sets ``record.request_id``: the current request's id, or None outside of a request."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None:
            record.request_id = current.get()
        return True
