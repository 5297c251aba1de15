"""Request ids: one per request, in the ``X-Request-Id`` answer header and on its log lines.

``shared.web.app.ServiceApp``, which sees every request first, gives each its id: the caller's
``X-Request-Id`` when it is acceptable (``accept``), a fresh one otherwise. The id is then

- in the context variable ``current`` until the request is answered, where ``RequestIdFilter``
  puts it on every log record of the request: an async handler and a Flask view in its thread
  alike (the thread runs in a copy of the request's context);
- in the answer's ``X-Request-Id`` header, whatever answered: a hot route, a Flask view, a
  problem, a 404;
- on the request's access line (``shared.web.accesslog``).

An id that is not acceptable is replaced, never echoed or logged: a header value is the
caller's text, and a line break or a quote in it would forge or break log lines.
"""

from __future__ import annotations

import logging
import os
import re
from contextvars import ContextVar

HEADER = "X-Request-Id"
MAX_LENGTH = 128

# letters, digits and - _ . : / + = @ (UUIDs, W3C trace ids, base64 ids, "host:1234"), no
# space, quote, backslash or control character; fullmatch: "$" would let a final "\n" through
_ACCEPTABLE = re.compile(rf"[A-Za-z0-9._:/+=@-]{{1,{MAX_LENGTH}}}").fullmatch

current: ContextVar[str | None] = ContextVar("jwt_auth_request_id", default=None)
"""The id of the request being answered in this context; None outside of one."""


def is_acceptable(value: str) -> bool:
    """Whether a caller's id may be kept: 1 to 128 of ``A-Z a-z 0-9 - _ . : / + = @``."""
    return _ACCEPTABLE(value) is not None


def new_request_id() -> str:
    """24 random hex digits: unique across workers and hosts without coordination."""
    return os.urandom(12).hex()


def accept(offered: str) -> str:
    """The caller's id when it may be kept, else a new one."""
    return offered if _ACCEPTABLE(offered) is not None else new_request_id()


class RequestIdFilter(logging.Filter):
    """Sets ``record.request_id``: the current request's id, or None outside of a request."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None:
            record.request_id = current.get()
        return True
