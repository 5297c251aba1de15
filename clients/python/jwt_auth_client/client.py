"""``VerifierClient``: the verifier's HTTP API over the standard library's ``http.client``.

``Identity`` and ``Session`` live in ``jwt_auth_client.models`` and are importable from here
too, as they were in version 0.1.
"""

from __future__ import annotations

from jwt_auth_client import _calls
from jwt_auth_client._sync import SyncClient
from jwt_auth_client.errors import VERIFIER_ERRORS
from jwt_auth_client.models import Identity, Session

__all__ = ["Identity", "Session", "VerifierClient"]


class VerifierClient(SyncClient):
    """The verifier's API: ``verify``, ``identify``, ``login``, ``session``, ``logout``, ``revoke``.

    ``VerifierClient(base_url, timeout=5.0, retries=2, backoff=0.1, max_backoff=2.0,
    retry_budget=10.0)``: each attempt is bounded by ``timeout`` seconds; a call is retried
    only after a connection error or a 503, ``retries`` times at most, with exponential backoff
    (``backoff`` doubled each time, at most ``max_backoff``, with jitter), and no retry starts
    once ``retry_budget`` seconds have passed since the call began. A login repeated after a
    connection error may open a second session; the other calls are safe to repeat.

    Every call takes ``request_id``: sent as ``X-Request-Id``, so the verifier's log lines for
    the call carry the id of the request being served (the integrations pass the incoming one
    on). Without one, or with one the verifier would not keep (1 to 128 of
    ``A-Z a-z 0-9 - _ . : / + = @``), the call gets a new id. Retries send the same id; a
    ``VerifierError`` carries it as ``request_id``.

    Each thread keeps one keep-alive connection; safe to share between threads. ``close()``
    (or ``with``) closes every connection.
    """

    _errors = VERIFIER_ERRORS

    def verify(self, token: str, *, request_id: str | None = None) -> Identity:
        """Who the token names; raises the ``VerifierError`` subclass of the refusal's code."""
        return self._run(_calls.verify(token), request_id)

    def identify(self, credential: str, *, request_id: str | None = None) -> Identity:
        """Who a JWT or a session id names (a credential with a dot is a JWT, as in ``/v1/auth``).

        A JWT is verified (``Identity`` with its claims); a session id is checked through the
        verifier's forward-auth (``Identity`` with ``session=True``, no claims), and one that
        names no live session raises ``SessionNotFound``.
        """
        return self._run(_calls.identify(credential), request_id)

    def login(self, token: str, *, request_id: str | None = None) -> Session:
        """Verify the token and open a server-side session for its user."""
        return self._run(_calls.login(token), request_id)

    def session(self, session_id: str, *, request_id: str | None = None) -> Session:
        """The live session with this id; ``SessionNotFound`` when it ended or never was."""
        return self._run(_calls.session(session_id), request_id)

    def logout(self, session_id: str, *, request_id: str | None = None) -> None:
        """End the session (idempotent: no error when it had already ended)."""
        self._run(_calls.logout(session_id), request_id)

    def revoke(self, token: str, *, request_id: str | None = None) -> None:
        """Revoke the token: every verifier refuses it from now on with ``TokenRevoked``."""
        self._run(_calls.revoke(token), request_id)
