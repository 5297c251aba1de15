"""Helpers for tests that call the verifier app through Flask's test client."""

from __future__ import annotations

from pathlib import Path
from typing import Any

PREFIX = "jwtauth:"
"""The verifier's default Redis key prefix."""


def admin_headers(admin_keys: tuple[Path, str, str]) -> dict[str, str]:
    """The Authorization header with the admin key of the ``admin_keys`` fixture."""
    return {"Authorization": f"Bearer {admin_keys[1]}"}


def assert_problem(response: Any, status: int, code: str) -> dict[str, Any]:
    """Check an RFC 9457 problem response with this status and code; return its body."""
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"
    body: dict[str, Any] = response.get_json()
    assert body["code"] == code, body
    assert {"type", "title", "status", "detail"} <= body.keys()
    return body
