"""Helpers for tests that call the verifier app through Flask's test client."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

PREFIX = "jwtauth:"
"""The verifier's default Redis key prefix."""


# the key layout as docs/verifier.md spells it: each user's keys share the hash tag {T}
def user_tag(user: str) -> str:
    return hashlib.sha256(user.encode()).hexdigest()[:8]


def revoked_key(user: str, rev_id: str, prefix: str = PREFIX) -> str:
    return f"{prefix}v2:revoked:{{{user_tag(user)}}}:{rev_id}"


def cutoff_key(user: str, prefix: str = PREFIX) -> str:
    return f"{prefix}v2:cutoff:{{{user_tag(user)}}}:{user}"


def session_key(user: str, session_hash: str, prefix: str = PREFIX) -> str:
    return f"{prefix}v2:session:{{{user_tag(user)}}}:{session_hash}"


def index_key(user: str, prefix: str = PREFIX) -> str:
    return f"{prefix}v2:sessions:{{{user_tag(user)}}}:{user}"


def logins_key(user: str, prefix: str = PREFIX) -> str:
    return f"{prefix}v2:logins:{{{user_tag(user)}}}:{user}"


def user_key(user: str, prefix: str = PREFIX) -> str:
    return f"{prefix}v2:user:{{{user_tag(user)}}}:{user}"


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
