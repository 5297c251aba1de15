"""Answers given on the worker's event loop, and how code that must wait sends its request on.

Handing a request to a thread and its answer back to the event loop costs about as much CPU as
a cached verification does (a Future, a condition, a pipe write to wake the loop, the poller
unregistering and registering the socket). ``shared.worker`` therefore answers a whole,
buffered request on the event loop itself when the app says its route can answer at once
(``answers_at_once``): the issuer's token endpoint always (the rate limit is shared memory, the
signature is CPU), the verifier's verify and forward-auth while the revocation mirror is in
sync. Everything else goes to a thread as before.

The loop must never wait on a network peer: while it waits, no other connection is served. So
code that would wait on one calls ``before_waiting`` first (a Redis read for a key the mirror
has not settled, a JWKS fetch for a new kid, the layout check of a process that started without
Redis). On the loop it raises ``AnswerInThread``. Nothing has been answered, counted or logged
at that point: the worker hands the same request bytes to a thread, which answers from the
start. The route's ``answers_at_once`` is only the cheap guess that makes this rare.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager


class AnswerInThread(BaseException):
    """Raised on the event loop by code about to wait: answer this request in a thread.

    A BaseException, so that no ``except Exception`` on the way (a route's, gunicorn's)
    turns it into an answer.
    """


_state = threading.local()


@contextmanager
def answering_on_loop() -> Iterator[None]:
    """Marks the current thread (the worker's event loop) as answering a request."""
    _state.on_loop = True
    try:
        yield
    finally:
        _state.on_loop = False


def on_loop() -> bool:
    """Whether this thread is the event loop answering a request."""
    return getattr(_state, "on_loop", False)


def before_waiting() -> None:
    """Call before waiting on a network peer: on the event loop, the request goes to a thread."""
    if getattr(_state, "on_loop", False):
        raise AnswerInThread
