"""Stopping cleanly when a service or a command cannot start: one line, a known exit status."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TypeVar

from shared.errors import StartupError

T = TypeVar("T")

STARTUP_FAILED = 3
"""The exit status of a start that failed (gunicorn's master stops instead of respawning a
worker that exits with it)."""


def exit_on_startup_error(service: str, build: Callable[[], T]) -> T:
    """Run ``build``; on a StartupError print one line naming the problem and exit 3.

    Used when a service is built from the environment (gunicorn, the CLI): there a traceback
    helps nobody and the process must not serve. Tests build apps from explicit settings and
    see the exception instead.
    """
    try:
        return build()
    except StartupError as exc:
        print(f"jwt-auth {service}: cannot start: {exc}", file=sys.stderr, flush=True)
        raise SystemExit(STARTUP_FAILED) from None
