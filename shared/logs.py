"""Logging set-up and the one way tokens appear in logs.

``LOG_FORMAT`` picks how each line is written, with the same fields either way:

- ``text`` (the default): ``<time> <level> [<pid>] <logger>: <message> request_id=<id>``
- ``json``: one object per line, ``{"time", "level", "pid", "logger", "message",
  "request_id"}`` (and ``"exception"``, a traceback, when there is one)

``time`` is ISO 8601 in UTC with milliseconds; ``request_id`` is there while a request is being
answered (``shared.requestid``), absent otherwise. gunicorn's access line has its own fields
(``shared.web.accesslog``); audit events are JSON lines in both formats (``shared.audit``).
"""

from __future__ import annotations

import json
import logging
import sys

from shared.audit import configure_audit_log, record_time
from shared.config import LOG_FORMATS
from shared.digest import sha256_hex
from shared.requestid import RequestIdFilter

# gunicorn's own lines (workers booting, timeouts): set up by gunicorn before the app is built
GUNICORN_ERROR_LOGGER = "gunicorn.error"

_format = "text"


def token_fingerprint(token: str | bytes) -> str:
    """A short, stable hash that lets logs correlate a token without holding it: the first
    16 hex characters of its SHA-256."""
    return sha256_hex(token)[:16]


def json_lines() -> bool:
    """Whether lines are written as JSON objects (``LOG_FORMAT=json``)."""
    return _format == "json"


class _Formatter(logging.Formatter):
    def _exception(self, record: logging.LogRecord) -> str:
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        text = record.exc_text or ""
        if record.stack_info:
            text = f"{text}\n{self.formatStack(record.stack_info)}".lstrip("\n")
        return text


class TextFormatter(_Formatter):
    """``<time> <level> [<pid>] <logger>: <message> request_id=<id>``, a traceback below."""

    def format(self, record: logging.LogRecord) -> str:
        line = (f"{record_time(record)} {record.levelname} [{record.process}] {record.name}: "
                f"{record.getMessage()}")
        request_id = getattr(record, "request_id", None)
        if request_id is not None:
            line += f" request_id={request_id}"
        exception = self._exception(record)
        return f"{line}\n{exception}" if exception else line


class JsonFormatter(_Formatter):
    """One JSON object: the fields of ``TextFormatter`` by name."""

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": record_time(record),
            "level": record.levelname,
            "pid": record.process,
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = getattr(record, "request_id", None)
        if request_id is not None:
            line["request_id"] = request_id
        exception = self._exception(record)
        if exception:
            line["exception"] = exception
        return json.dumps(line, ensure_ascii=False, default=str)


def formatter(log_format: str) -> logging.Formatter:
    """The formatter of ``LOG_FORMAT``'s value."""
    return JsonFormatter() if log_format == "json" else TextFormatter()


class _GunicornTextWithRequestId(logging.Formatter):
    """gunicorn's text line as gunicorn formats it, with `` request_id=<id>`` at the end of its
    first line when it was logged while answering a request (a head it refused, say)."""

    def __init__(self, gunicorns: logging.Formatter) -> None:
        super().__init__()
        self.gunicorns = gunicorns

    def format(self, record: logging.LogRecord) -> str:
        text = self.gunicorns.format(record)
        request_id = getattr(record, "request_id", None)
        if request_id is None:
            return text
        first, newline, rest = text.partition("\n")
        return f"{first} request_id={request_id}{newline}{rest}"


def format_gunicorn_lines(log_format: str) -> None:
    """With ``json``, write gunicorn's own lines (not the access line) as JSON objects too.

    In ``text`` they keep gunicorn's form, with the request id added to a line logged while
    answering a request. Only the handlers gunicorn set up (``_gunicorn``): an operator's
    ``--log-config`` stays as it is.
    """
    for handler in logging.getLogger(GUNICORN_ERROR_LOGGER).handlers:
        if not getattr(handler, "_gunicorn", False):
            continue
        gunicorns: logging.Formatter | None = getattr(handler, "_jwt_auth_text", None)
        if gunicorns is None:  # gunicorn's own, kept for every later call (SIGHUP)
            gunicorns = handler.formatter or logging.Formatter()
            handler._jwt_auth_text = gunicorns  # type: ignore[attr-defined]
        if not any(isinstance(known, RequestIdFilter) for known in handler.filters):
            handler.addFilter(RequestIdFilter())
        handler.setFormatter(JsonFormatter() if log_format == "json" else
                             _GunicornTextWithRequestId(gunicorns))


def configure_logging(level: str = "INFO", log_format: str = "text") -> None:
    """One line per event on stderr, the form gunicorn and container runtimes collect.

    Called again (tests build several apps), it changes the level and the format. Audit events
    (logger ``audit``) get JSON lines of their own (``shared.audit``).
    """
    global _format
    if log_format not in LOG_FORMATS:
        raise ValueError(f"unknown log format {log_format!r}")
    _format = log_format
    configure_audit_log()
    root = logging.getLogger()
    root.setLevel(level)
    format_gunicorn_lines(log_format)
    for handler in root.handlers:
        if getattr(handler, "_jwt_auth", False):
            handler.setFormatter(formatter(log_format))
            return
    handler = logging.StreamHandler(sys.stderr)
    handler._jwt_auth = True  # type: ignore[attr-defined]  # marks our handler, set up once
    handler.setFormatter(formatter(log_format))
    handler.addFilter(RequestIdFilter())
    root.addHandler(handler)
