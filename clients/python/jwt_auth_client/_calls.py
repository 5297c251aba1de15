"""Each API call of both services as a ``Call``: written once, sent by sync and async clients.

A client method is then one line (``return self._run(_calls.verify(token), request_id)``), so
``VerifierClient`` and ``AsyncVerifierClient`` cannot drift apart in what they send or read.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Mapping
from typing import Any

from jwt_auth_client._protocol import Call, path_segment
from jwt_auth_client.models import Identity, IssuedToken, Session

# the members POST /v1/tokens' own arguments set; claims= may not set them a second time
_ISSUE_ARGUMENTS = ("userId", "isAdmin")


def _nothing(document: Any) -> None:
    """The read of a 204 (or any answer whose body does not matter)."""


def verify(token: str) -> Call[Identity]:
    return Call("POST", "/v1/verify", Identity.from_json, {"token": token})


def is_session_id(credential: str) -> bool:
    """The verifier's own forward-auth rule: a JWT always has dots, a session id never."""
    return "." not in credential


def identify(credential: str) -> Call[Identity]:
    """A JWT through ``POST /v1/verify`` (claims included), a session id through forward-auth.

    ``GET /v1/auth`` with ``Authorization: Bearer <session id>`` is how the verifier checks a
    session for a proxy, and what it answers is the session's identity.
    """
    if not is_session_id(credential):
        return verify(credential)
    return Call("GET", "/v1/auth", Identity.from_session_check, bearer=credential)


def login(token: str) -> Call[Session]:
    return Call("POST", "/v1/sessions", Session.from_json, {"token": token})


def session(session_id: str) -> Call[Session]:
    return Call("GET", f"/v1/sessions/{path_segment(session_id)}",
                lambda document: Session.from_json(document, session_id))


def logout(session_id: str) -> Call[None]:
    return Call("DELETE", f"/v1/sessions/{path_segment(session_id)}", _nothing)


def revoke(token: str) -> Call[None]:
    return Call("POST", "/v1/revocations", _nothing, {"token": token})


def issue(
    key: str, user_id: str, *, is_admin: bool, claims: Mapping[str, Any] | None,
    expires_in: int | None,
) -> Call[IssuedToken]:
    """``POST /v1/tokens``: ``{"userId", "isAdmin", **claims}``, ``?expires_in`` when given.

    An empty ``key`` sends no ``Authorization`` at all: the issuer answers ``api_key_missing``.
    """
    extra = dict(claims or {})
    doubled = [name for name in _ISSUE_ARGUMENTS if name in extra]
    if doubled:
        raise ValueError(f"claims may not hold {doubled}: pass user_id= and is_admin= instead")
    path = "/v1/tokens"
    if expires_in is not None:
        path += "?" + urllib.parse.urlencode({"expires_in": expires_in})
    payload = {"userId": user_id, "isAdmin": is_admin, **extra}
    return Call("POST", path, IssuedToken.from_json, payload, bearer=key or None)
