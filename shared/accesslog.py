"""gunicorn's access log, one line per request, at a fraction of gunicorn's own cost.

gunicorn builds a dictionary of every request header, response header and environ entry for
each access line, then formats it; measured here, that costs more than the verifier's whole
answer for a cached token (about 40% of a bare endpoint's throughput). Our line names seven
fields, so only those seven are computed. With ``LOG_FORMAT=text`` (the default) the line is
``127.0.0.1 "POST /v1/verify" 200 187 0ms request_id=4f2a...``; with ``LOG_FORMAT=json`` it is
one object with the fields of every other line (``shared.logs``) and these by name:
``remote_addr``, ``method``, ``path``, ``status``, ``bytes``, ``duration_ms``. The path only: a
query string can hold a token. The request id is the one the app gave the request
(``shared.requestid``), read from the environ: gunicorn writes this line after the answer.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from datetime import timedelta
from typing import Any

from gunicorn.glogging import Logger

from shared.logs import format_gunicorn_lines, json_lines
from shared.requestid import ENVIRON_KEY, current

ACCESS_LOGGER = "gunicorn.access"


class AccessLogger(Logger):  # type: ignore[misc]  # gunicorn has no types: Logger is Any
    """gunicorn's logger with a lean ``access``; errors and set-up are gunicorn's own."""

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        # gunicorn makes its handlers again on SIGHUP: keep its lines JSON with LOG_FORMAT=json
        format_gunicorn_lines("json" if json_lines() else "text")

    def access(self, resp: Any, req: Any, environ: dict[str, Any], request_time: timedelta) -> None:
        if not self.access_log_enabled:
            return
        status = resp.status
        if isinstance(status, str):
            status = status.split(None, 1)[0]
        sent = getattr(resp, "sent", None)
        milliseconds = request_time.seconds * 1000 + request_time.microseconds // 1000
        remote = environ.get("REMOTE_ADDR", "-")
        method = environ.get("REQUEST_METHOD")
        path = environ.get("PATH_INFO")
        # gunicorn answered without the app (a head it could not read): the worker's id for
        # that answer (shared.worker.BufferingThreadWorker.handle_error)
        request_id = environ.get(ENVIRON_KEY) or current.get()
        text = f'{remote} "{method} {path}" {status} {sent or "-"} {milliseconds}ms'
        if json_lines():
            line = _json_line(text, request_id, remote, method, path, status, sent, milliseconds)
        else:
            line = f"{text} request_id={request_id or '-'}\n"
        # straight to gunicorn's access handlers: a LogRecord per line costs as much again
        for handler in self.access_log.handlers:
            stream = getattr(handler, "stream", None)
            if stream is None:
                handler.handle(self.access_log.makeRecord(
                    self.access_log.name, logging.INFO, "", 0, line.rstrip("\n"), None, None))
                continue
            with handler.lock:
                stream.write(line)
                stream.flush()


def _json_line(text: str, request_id: str | None, remote: str, method: str | None, path: str | None,
               status: Any, sent: int | None, milliseconds: int) -> str:
    now = time.time()
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now))
    with contextlib.suppress(TypeError, ValueError):
        status = int(status)
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
