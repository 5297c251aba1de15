"""Audit events: one JSON line each, on logger ``audit``, whatever the service's log format.

Security-relevant acts (an admin token minted, an admin action on the verifier, a key added,
removed or rotated) are written as JSON objects so they can be shipped and searched apart from
the service's other lines, with ``LOG_FORMAT=text`` too: ``{"time": ..., "level": "INFO",
"logger": "audit", "pid": ..., "request_id": ..., "event": ..., "client": ...}``
(``request_id`` when the act was a request's, ``shared.requestid``). They name who acted (the
API client's name) and what was touched (a user id, a jti, a kid), never a key, a passphrase or
a token.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

from shared.requestid import RequestIdFilter

LOGGER_NAME = "audit"

_logger = logging.getLogger(LOGGER_NAME)


def record_time(record: logging.LogRecord) -> str:
    """The record's time as every line of ours writes it: ISO 8601, UTC, milliseconds."""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
    return f"{stamp}.{int(record.msecs):03d}Z"


class AuditFormatter(logging.Formatter):
    """Formats a record whose message is an event dict as one JSON object."""

    def format(self, record: logging.LogRecord) -> str:
        event = record.msg if isinstance(record.msg, dict) else {"message": record.getMessage()}
        line: dict[str, Any] = {
            "time": record_time(record),
            "level": record.levelname,
            "logger": LOGGER_NAME,
            "pid": record.process,
        }
        request_id = getattr(record, "request_id", None)
        if request_id is not None:
            line["request_id"] = request_id
        line.update(event)
        return json.dumps(line, ensure_ascii=False, default=str)


def configure_audit_log() -> None:
    """Send audit events to stderr as JSON lines, once per process, apart from other logs."""
    if any(getattr(handler, "_jwt_auth_audit", False) for handler in _logger.handlers):
        return
    handler = logging.StreamHandler(sys.stderr)
    handler._jwt_auth_audit = True  # type: ignore[attr-defined]  # marks our handler
    handler.setFormatter(AuditFormatter())
    handler.addFilter(RequestIdFilter())
    _logger.addHandler(handler)
    _logger.setLevel(logging.INFO)
    _logger.propagate = False


def audit(event: str, **fields: Any) -> None:
    """Record one audit event; ``fields`` must hold no secret."""
    _logger.info({"event": event, **fields})
