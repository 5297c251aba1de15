"""Logging set-up and the one way tokens appear in logs."""

from __future__ import annotations

import logging
import sys

from shared.audit import configure_audit_log
from shared.digest import sha256_hex


def token_fingerprint(token: str | bytes) -> str:
    """A short, stable hash that lets logs correlate a token without holding it: the first
    16 hex characters of its SHA-256."""
    return sha256_hex(token)[:16]


def configure_logging(level: str = "INFO") -> None:
    """One line per event on stderr, the form gunicorn and container runtimes collect.

    Audit events (logger ``audit``) get JSON lines of their own (``shared.audit``).
    """
    configure_audit_log()
    root = logging.getLogger()
    if any(getattr(handler, "_jwt_auth", False) for handler in root.handlers):
        return
    handler = logging.StreamHandler(sys.stderr)
    handler._jwt_auth = True  # type: ignore[attr-defined]  # marks our handler, set up once
    handler.setFormatter(
        logging.Formatter("%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s")
    )
    root.addHandler(handler)
    root.setLevel(level)
