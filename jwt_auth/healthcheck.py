"""``python -m jwt_auth.healthcheck [URL]``: exit 0 when the URL answers 200, else 1.

The container image has no curl (python:3.11-slim), so Docker's HEALTHCHECK and the compose
healthchecks call this instead. Without an argument it checks ``JWT_AUTH_HEALTHCHECK_URL``, or
the issuer's default port.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request

DEFAULT_URL = "http://127.0.0.1:8001/healthz"


def check(url: str, timeout: float = 3.0) -> str | None:
    """None when ``url`` answers 200, else a short reason."""
    if not url.startswith(("http://", "https://")):
        return f"not an http(s) URL: {url}"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - checked above
            status = int(response.status)
    except urllib.error.HTTPError as exc:
        status = exc.code
    except (urllib.error.URLError, OSError) as exc:
        return f"{url}: {getattr(exc, 'reason', exc)}"
    return None if status == 200 else f"{url}: HTTP {status}"


def main(argv: list[str]) -> int:
    """Check the URL given (or configured) and report a failure in one line."""
    url = argv[0] if argv else os.environ.get("JWT_AUTH_HEALTHCHECK_URL") or DEFAULT_URL
    problem = check(url)
    if problem:
        print(f"unhealthy: {problem}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
