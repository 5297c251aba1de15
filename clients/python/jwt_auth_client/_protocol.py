"""What every client shares, whatever carries its bytes: settings, request ids and retries.

The sync clients send over ``http.client`` (``_sync``), the async ones over httpx (``aio``);
both describe a request as a ``Call``, and run its attempts with ``Attempts``, which decides
alone when to retry and what the last answer comes to. So the two transports cannot disagree
on the rules: retries only when no answer came (the connection failed) or the answer was 503,
with exponential backoff and jitter, never starting one after the retry budget; a 401 or any
other answer is final at once.
"""

from __future__ import annotations

import json
import os
import random
import re
import time
import urllib.parse
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypedDict, TypeVar

from jwt_auth_client._version import __version__
from jwt_auth_client.errors import JwtAuthError, ServiceErrors

T = TypeVar("T")

USER_AGENT = f"jwt-auth-client/{__version__}"
# the ids both services keep (docs/deploy.md, request ids); any other is replaced there
_ACCEPTABLE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:/+=@-]{1,128}")
# the shortest timeout an attempt gets, however little of the budget is left
_MIN_ATTEMPT_TIMEOUT = 0.05


def request_id_for(offered: str | None) -> str:
    """``offered`` when the services would keep it as is, else a new id in their own form."""
    if offered is None or _ACCEPTABLE_REQUEST_ID.fullmatch(offered) is None:
        return os.urandom(12).hex()
    return offered


def path_segment(value: str) -> str:
    """A path segment: ``~`` stays as is (session ids carry one), everything else escaped."""
    return urllib.parse.quote(value, safe="~")


@dataclass(frozen=True)
class Answer:
    """An HTTP answer, whichever transport read it; header names in lower case."""

    status: int
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


@dataclass(frozen=True)
class Call(Generic[T]):
    """One API call before it is sent: the request, and how its good answer is read."""

    method: str
    path: str  # below the base URL, escaped, with its query string
    read: Callable[[Any], T]  # the good answer's JSON document (None when empty) to a value
    payload: Any = None
    bearer: str | None = None  # sent as Authorization: Bearer

    @property
    def body(self) -> bytes | None:
        return None if self.payload is None else json.dumps(self.payload).encode("utf-8")

    def headers(self, request_id: str) -> dict[str, str]:
        headers = {"Accept": "application/json", "User-Agent": USER_AGENT,
                   "X-Request-Id": request_id}
        if self.payload is not None:
            headers["Content-Type"] = "application/json"
        if self.bearer:
            headers["Authorization"] = f"Bearer {self.bearer}"
        return headers


class RetrySettings(TypedDict, total=False):
    """``ClientSettings``' keyword arguments, for the clients that pass them on."""

    timeout: float
    retries: int
    backoff: float
    max_backoff: float
    retry_budget: float


class ClientSettings:
    """Where a client sends its calls, and how patiently.

    ``timeout`` bounds each attempt (connect and each read), in seconds. ``retries`` is how many
    times a call is tried again after a connection error or a 503, waiting ``backoff`` seconds
    doubled at each retry (at most ``max_backoff``, with jitter: between half and all of it);
    no retry starts once ``retry_budget`` seconds have passed since the call began, so a dead
    service costs a call at most about ``retry_budget + timeout``. The attributes may be changed
    after construction; the next call uses the new values.
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

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({self.base_url!r}, timeout={self.timeout}, "
                f"retries={self.retries})")


class Attempts(Generic[T]):
    """One call's attempts: when each starts, and what the last one's outcome comes to.

    A transport iterates it, waiting each value it yields (seconds: 0 before the first
    attempt) and then making one attempt, whose answer, or connection error, it ``record``s;
    the iteration ends when that outcome is final. ``result()`` then reads the good answer or
    raises the service's exception, which carries the call's request id.
    """

    def __init__(
        self, settings: ClientSettings, errors: ServiceErrors[Any], call: Call[T],
        request_id: str | None,
    ) -> None:
        self.settings = settings
        self.errors = errors
        self.call = call
        self.request_id = request_id_for(request_id)  # one id for every attempt of the call
        self.count = 0
        self._deadline = time.monotonic() + settings.retry_budget
        self._outcome: Answer | BaseException | None = None

    def __iter__(self) -> Iterator[float]:
        yield 0.0
        while True:
            outcome = self._outcome
            if isinstance(outcome, Answer) and outcome.status != 503:
                return
            delay = self._delay()
            if self.count > self.settings.retries or time.monotonic() + delay > self._deadline:
                return
            yield delay

    def timeout(self) -> float:
        """The next attempt's timeout: the client's, or what is left of the budget."""
        remaining = max(self._deadline - time.monotonic(), 0.0)
        return max(min(self.settings.timeout, remaining), _MIN_ATTEMPT_TIMEOUT)

    def record(self, outcome: Answer | BaseException) -> None:
        self.count += 1
        self._outcome = outcome

    def result(self) -> T:
        """The good answer, read; else the exception for the refusal or for no answer."""
        outcome = self._outcome
        if isinstance(outcome, Answer) and 200 <= outcome.status < 300:
            return self.call.read(outcome.json())
        if isinstance(outcome, Answer):
            raise self._problem(outcome)
        call = self.call
        unavailable = self.errors.unavailable(
            f"{call.method} {self.settings.base_url}{call.path.partition('?')[0]}: no answer "
            f"after {self.count} attempt(s): {type(outcome).__name__}: {outcome}")
        unavailable.attempts = self.count
        unavailable.request_id = self.request_id
        raise unavailable from outcome

    def _delay(self) -> float:
        settings = self.settings
        ceiling: float = min(settings.max_backoff, settings.backoff * 2.0 ** (self.count - 1))
        # jitter, so clients that failed together do not come back together; not for security
        return ceiling / 2 + random.uniform(0, ceiling / 2)  # noqa: S311

    def _problem(self, answer: Answer) -> JwtAuthError:
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
        error: JwtAuthError = self.errors.error_for(
            answer.status, code if isinstance(code, str) else None, str(detail), document,
            attempts=self.count,
        )
        # the service answers the id it used; it is the one sent, unless a proxy replaced it
        error.request_id = answer.headers.get("x-request-id") or self.request_id
        retry_after = answer.headers.get("retry-after", "")
        if retry_after.isdigit():
            error.retry_after = int(retry_after)
        return error
