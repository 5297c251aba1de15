"""``VerifierClient``: the verifier's HTTP API over the standard library's ``http.client``.

No third-party dependency: one keep-alive ``HTTPConnection`` per thread (a connection is not
safe to share between threads, and a thread-local one needs no pool or lock on the hot path),
reused call after call. Retries, with exponential backoff and jitter inside a bounded total
time, happen only when no answer came (the connection failed) or the answer was 503; a 401 or
any other answer is final at once.
"""

from __future__ import annotations

import http.client
import json
import os
import random
import re
import threading
import time
import urllib.parse
import weakref
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from jwt_auth_client.errors import (
    LoginRateExceeded,
    VerifierError,
    VerifierUnavailable,
    error_for,
)

__all__ = ["Identity", "Session", "VerifierClient"]

_USER_AGENT = "jwt-auth-client/0.1"
# the ids the verifier keeps (docs/deploy.md, request ids); any other is replaced there
_ACCEPTABLE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:/+=@-]{1,128}")
# what "no answer" looks like: refused, reset, timed out, closed before the status line
_CONNECTION_ERRORS = (OSError, http.client.HTTPException)
# a kept-alive connection the server closed while it was idle fails like this on reuse
_STALE_CONNECTION = (
    http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError,
    ConnectionAbortedError,
)


@dataclass(frozen=True)
class Identity:
    """A good token, as the verifier reported it (``POST /v1/verify``)."""

    user_id: str
    is_admin: bool
    provider: str
    claims: dict[str, Any] = field(repr=False)
    expires_at: float | None
    issued_at: float | None = None
    revocation_checked: bool = True

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> Identity:
        return cls(
            user_id=str(body["userId"]),
            is_admin=bool(body["isAdmin"]),
            provider=str(body["provider"]),
            claims=dict(body["claims"]),
            expires_at=body.get("expiresAt"),
            issued_at=body.get("issuedAt"),
            revocation_checked=bool(body.get("revocationChecked", True)),
        )


@dataclass(frozen=True)
class Session:
    """A server-side session (``POST /v1/sessions``, ``GET /v1/sessions/<id>``)."""

    session_id: str = field(repr=False)  # a bearer secret: kept out of logs and reprs
    user_id: str
    is_admin: bool
    provider: str
    created_at: int
    expires_at: int

    @classmethod
    def from_json(cls, body: Mapping[str, Any], session_id: str | None = None) -> Session:
        return cls(
            session_id=str(body.get("sessionId") or session_id or ""),
            user_id=str(body["userId"]),
            is_admin=bool(body["isAdmin"]),
            provider=str(body["provider"]),
            created_at=int(body["createdAt"]),
            expires_at=int(body["expiresAt"]),
        )


@dataclass
class _Answer:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


class VerifierClient:
    """The verifier's API: ``verify``, ``login``, ``session``, ``logout``, ``revoke``.

    ``timeout`` bounds each attempt (connect and each read), in seconds. ``retries`` is how many
    times a call is tried again after a connection error or a 503, waiting ``backoff`` seconds
    doubled at each retry (at most ``max_backoff``, with jitter: between half and all of it);
    no retry starts once ``retry_budget`` seconds have passed since the call began, so a dead
    verifier costs a call at most about ``retry_budget + timeout``. A login repeated after a
    connection error may open a second session; the other calls are safe to repeat.

    Safe to share between threads. ``close()`` (or ``with``) closes every connection.
    """

    def __init__(
        self,
        base_url: str,
        *,
        timeout: float = 5.0,
        retries: int = 2,
        backoff: float = 0.1,
        max_backoff: float = 2.0,
        retry_budget: float = 10.0,
    ) -> None:
        url = urllib.parse.urlsplit(base_url)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ValueError(f"base_url must be an http:// or https:// URL, not {base_url!r}")
        if retries < 0 or timeout <= 0 or backoff < 0 or retry_budget < 0:
            raise ValueError("timeout must be positive; retries, backoff and budget not negative")
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.retry_budget = retry_budget
        self._https = url.scheme == "https"
        self._host = url.hostname
        self._port = url.port
        self._prefix = url.path.rstrip("/")
        self._local = threading.local()
        # every thread's connection, so close() reaches them all; a thread that ends drops its
        # thread-local, and with it the entry here
        self._connections: weakref.WeakSet[http.client.HTTPConnection] = weakref.WeakSet()
        self._lock = threading.Lock()

    # -- the API ----------------------------------------------------------------------------

    # Every call takes ``request_id``: sent as ``X-Request-Id``, so the verifier's log lines for
    # the call carry the id of the request being served (the integrations pass the incoming
    # one on). Without one, or with one the verifier would not keep (1 to 128 of
    # ``A-Z a-z 0-9 - _ . : / + = @``), the call gets a new id. Retries send the same id; a
    # ``VerifierError`` carries it as ``request_id``.

    def verify(self, token: str, *, request_id: str | None = None) -> Identity:
        """Who the token names; raises the ``VerifierError`` subclass of the refusal's code."""
        return Identity.from_json(
            self._call("POST", "/v1/verify", {"token": token}, request_id=request_id))

    def login(self, token: str, *, request_id: str | None = None) -> Session:
        """Verify the token and open a server-side session for its user."""
        return Session.from_json(
            self._call("POST", "/v1/sessions", {"token": token}, request_id=request_id))

    def session(self, session_id: str, *, request_id: str | None = None) -> Session:
        """The live session with this id; ``SessionNotFound`` when it ended or never was."""
        body = self._call("GET", f"/v1/sessions/{_segment(session_id)}", request_id=request_id)
        return Session.from_json(body, session_id)

    def logout(self, session_id: str, *, request_id: str | None = None) -> None:
        """End the session (idempotent: no error when it had already ended)."""
        self._call("DELETE", f"/v1/sessions/{_segment(session_id)}", request_id=request_id)

    def revoke(self, token: str, *, request_id: str | None = None) -> None:
        """Revoke the token: every verifier refuses it from now on with ``TokenRevoked``."""
        self._call("POST", "/v1/revocations", {"token": token}, request_id=request_id)

    def close(self) -> None:
        """Close every connection this client holds (in every thread)."""
        with self._lock:
            connections = list(self._connections)
        for connection in connections:
            connection.close()

    def __enter__(self) -> VerifierClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"VerifierClient({self.base_url!r}, timeout={self.timeout}, retries={self.retries})"

    # -- transport --------------------------------------------------------------------------

    def _call(self, method: str, path: str, payload: Any = None, *,
              request_id: str | None = None) -> Any:
        if request_id is None or _ACCEPTABLE_REQUEST_ID.fullmatch(request_id) is None:
            request_id = os.urandom(12).hex()  # the verifier's own form of a new id
        answer = self._request(method, path, payload, request_id)
        if 200 <= answer.status < 300:
            return answer.json()
        raise _problem(answer, request_id=request_id)

    def _request(self, method: str, path: str, payload: Any, request_id: str) -> _Answer:
        body = None if payload is None else json.dumps(payload).encode("utf-8")
        started = time.monotonic()
        deadline = started + self.retry_budget
        attempt = 0
        while True:
            attempt += 1
            failure: BaseException | None = None
            answer: _Answer | None = None
            try:
                answer = self._send(method, path, body, request_id,
                                    max(deadline - time.monotonic(), 0.0))
            except _CONNECTION_ERRORS as error:
                failure = error
            if answer is not None and answer.status != 503:
                return answer
            delay = self._delay(attempt)
            if attempt > self.retries or time.monotonic() + delay > deadline:
                if answer is not None:
                    raise _problem(answer, attempts=attempt, request_id=request_id)
                unavailable = VerifierUnavailable(
                    f"{method} {self.base_url}{path}: no answer after {attempt} attempt(s): "
                    f"{type(failure).__name__}: {failure}",
                    attempts=attempt,
                )
                unavailable.request_id = request_id
                raise unavailable from failure
            time.sleep(delay)

    def _delay(self, attempt: int) -> float:
        ceiling: float = min(self.max_backoff, self.backoff * 2.0 ** (attempt - 1))
        # jitter, so clients that failed together do not come back together; not for security
        return ceiling / 2 + random.uniform(0, ceiling / 2)  # noqa: S311

    def _send(self, method: str, path: str, body: bytes | None, request_id: str,
              remaining: float) -> _Answer:
        connection = self._connection()
        reused = connection.sock is not None
        try:
            return self._exchange(connection, method, path, body, request_id, remaining)
        except _STALE_CONNECTION:
            connection.close()
            if not reused:
                raise
        except BaseException:
            connection.close()
            raise
        # the server closed the kept-alive connection while it was idle (its keep-alive
        # timeout): that is not the verifier being down, so one fresh connection at once
        try:
            return self._exchange(connection, method, path, body, request_id, remaining)
        except BaseException:
            connection.close()
            raise

    def _exchange(
        self, connection: http.client.HTTPConnection, method: str, path: str,
        body: bytes | None, request_id: str, remaining: float,
    ) -> _Answer:
        timeout = max(min(self.timeout, remaining), 0.05)
        connection.timeout = timeout
        if connection.sock is not None:
            connection.sock.settimeout(timeout)
        headers = {"Accept": "application/json", "User-Agent": _USER_AGENT,
                   "X-Request-Id": request_id}
        if body is not None:
            headers["Content-Type"] = "application/json"
        connection.request(method, self._prefix + path, body=body, headers=headers)
        response = connection.getresponse()
        data = response.read()  # all of it, so the connection can carry the next request
        if response.will_close:
            connection.close()
        return _Answer(response.status, response.headers, data)

    def _connection(self) -> http.client.HTTPConnection:
        slot: _Slot | None = getattr(self._local, "slot", None)
        if slot is None:
            if self._https:
                connection: http.client.HTTPConnection = http.client.HTTPSConnection(
                    self._host, self._port, timeout=self.timeout)
            else:
                connection = http.client.HTTPConnection(
                    self._host, self._port, timeout=self.timeout)
            slot = _Slot(connection)
            # the thread's socket is closed when the thread ends (its thread-local goes, and
            # the slot with it), not left open until the garbage collector finds it
            weakref.finalize(slot, connection.close)
            self._local.slot = slot
            with self._lock:
                self._connections.add(connection)
        return slot.connection


class _Slot:
    """One thread's connection."""

    __slots__ = ("__weakref__", "connection")

    def __init__(self, connection: http.client.HTTPConnection) -> None:
        self.connection = connection


def _segment(value: str) -> str:
    """A path segment: ``~`` stays as is (session ids carry one), everything else escaped."""
    return urllib.parse.quote(value, safe="~")


def _problem(answer: _Answer, *, request_id: str, attempts: int = 1) -> VerifierError:
    """The exception for an error answer: its problem document's code, else the status."""
    document: dict[str, Any] = {}
    try:
        parsed = answer.json()
    except ValueError:
        parsed = None
    if isinstance(parsed, dict):
        document = parsed
    code = document.get("code")
    detail = document.get("detail") or answer.body.decode("utf-8", "replace")[:200] or (
        f"HTTP {answer.status}")
    error = error_for(
        answer.status, code if isinstance(code, str) else None, str(detail), document,
        attempts=attempts,
    )
    # the verifier answers the id it used; it is the one sent, unless a proxy replaced it
    error.request_id = answer.headers.get("X-Request-Id") or request_id
    if isinstance(error, LoginRateExceeded):
        retry_after = answer.headers.get("Retry-After", "")
        error.retry_after = int(retry_after) if retry_after.isdigit() else None
    return error
