"""One line per request, written by the app itself.

gunicorn's asgi worker would build a WSGI environ of every request header for each access line
and then format it; measured here (a bare ASGI app, one core), that halved the requests per
second. The app already holds the seven fields the line names, so it writes the line itself, on
the event loop, after the answer. gunicorn's access log stays off (``shared.web.gunicorn``).

With ``LOG_FORMAT=text`` (the default) a line is
``127.0.0.1 "POST /v1/verify" 200 187 0ms request_id=4f2a...``; with ``LOG_FORMAT=json`` it is
one object with the fields of every other line (``shared.logs``) and these by name:
``remote_addr``, ``method``, ``path``, ``status``, ``bytes``, ``duration_ms``. The path only: a
query string can hold a token. A request whose client left before its answer has status 499.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import TextIO

from shared.logs import json_lines

ACCESS_LOGGER = "gunicorn.access"
"""The ``logger`` of a JSON access line: the name log pipelines already filter on."""

CLIENT_GONE = 499
"""The status logged for a request whose client went away before it was answered (nginx's)."""


class AccessLog:
    """Writes access lines to one stream (standard output by default), each in one write."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream

    def write(self, remote: str, method: str, path: str, status: int, sent: int,
              seconds: float, request_id: str) -> None:
        milliseconds = int(seconds * 1000)
        text = f'{remote} "{method} {path}" {status} {sent or "-"} {milliseconds}ms'
        if json_lines():
            line = _json_line(text, request_id, remote, method, path, status, sent, milliseconds)
        else:
            line = f"{text} request_id={request_id}\n"
        stream = self._stream
        if stream is None:
            # one write(2) per line: lines of several workers sharing the stream never interleave
            os.write(sys.stdout.fileno(), line.encode("utf-8", "backslashreplace"))
        else:
            stream.write(line)


def _json_line(text: str, request_id: str, remote: str, method: str, path: str, status: int,
               sent: int, milliseconds: int) -> str:
    now = time.time()
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now))
    return json.dumps({
        "time": f"{stamp}.{int(now * 1000) % 1000:03d}Z",
        "level": "INFO",
        "pid": os.getpid(),
        "logger": ACCESS_LOGGER,
        "message": text,
        "request_id": request_id,
        "remote_addr": remote,
        "method": method,
        "path": path,
        "status": status,
        "bytes": sent,
        "duration_ms": milliseconds,
    }, ensure_ascii=False) + "\n"
