"""What the event loop does with the bytes it buffered (``shared.worker``): when a request is
complete, and which complete requests it may answer itself."""

from __future__ import annotations

import selectors
from functools import partial
from types import SimpleNamespace

import pytest

from shared.worker import (
    MAX_BUFFERED_BODY,
    MAX_HEAD_BYTES,
    answered_longest_ago_first,
    loop_target,
    request_is_complete,
)

HEAD = b"POST /v1/verify HTTP/1.1\r\nHost: x\r\n"


@pytest.mark.parametrize(
    ("received", "complete"),
    [
        (b"", False),
        (b"GET /healthz HTTP/1.1\r\nHost: x\r\n", False),
        (b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", True),
        (HEAD + b"Content-Length: 5\r\n\r\nabc", False),
        (HEAD + b"Content-Length: 5\r\n\r\nabcde", True),
        (HEAD + b"content-length:5\r\n\r\nabcdeGET", True),  # a pipelined request behind
        (HEAD + b"Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n", False),
        (HEAD + b"Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", True),
        # a body too large to buffer goes to the thread after the head: the services refuse it
        (HEAD + f"Content-Length: {MAX_BUFFERED_BODY + 1}\r\n\r\n".encode(), True),
        # a head that never ends is refused
        (HEAD + b"X: " + b"a" * MAX_HEAD_BYTES, None),
    ],
)
def test_request_is_complete(received: bytes, complete: bool | None) -> None:
    assert request_is_complete(received) is complete


def test_content_length_only_counts_in_the_head() -> None:
    # a body that mentions the header does not change what the head announced
    body = b"\r\ncontent-length: 1\r\n\r\n"
    request = HEAD + f"Content-Length: {len(body) + 5}\r\n\r\n".encode() + body
    assert request_is_complete(request) is False
    assert request_is_complete(request + b"12345") is True


@pytest.mark.parametrize(
    ("request_bytes", "target"),
    [
        (b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", ("GET", "/healthz")),
        (HEAD + b"Content-Length: 2\r\n\r\n{}", ("POST", "/v1/verify")),
        (b"POST /v1/tokens?expires_in=60 HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
         ("POST", "/v1/tokens")),
        # a pipelined request behind a whole one does not matter
        (HEAD + b"Content-Length: 2\r\n\r\n{}GET / HTTP/1.1\r\n", ("POST", "/v1/verify")),
        # a body still to come: only a thread may wait for it
        (HEAD + b"Content-Length: 5\r\n\r\nabc", None),
        (HEAD + f"Content-Length: {MAX_BUFFERED_BODY + 1}\r\n\r\n".encode(), None),
        # a chunked body's end is a guess, an upgrade changes the protocol
        (HEAD + b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", None),
        (b"GET / HTTP/1.1\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n", None),
        # a folded line can hide either (gunicorn's permit_obsolete_folding would join it)
        (HEAD + b"Transfer-Encoding:\r\n chunked\r\n\r\n5\r\nab", None),
        # not a request line gunicorn would take: it answers the error, in a thread
        (b"GET /a b HTTP/1.1\r\n\r\n", None),
        (b"GET /healthz HTTP/1.1\r\nHost: x\r\n", None),
    ],
)
def test_loop_target(request_bytes: bytes, target: tuple[str, str] | None) -> None:
    assert loop_target(request_bytes) == target


def test_ready_connections_are_taken_least_recently_answered_first() -> None:
    """A request that missed a turn of the loop must not come last in the next one as well."""
    def key(data: object) -> tuple[selectors.SelectorKey, int]:
        return selectors.SelectorKey(None, 0, selectors.EVENT_READ, data), selectors.EVENT_READ

    def on_readable(conn: object, sock: object) -> None:
        return None

    conns = {name: SimpleNamespace(answered=stamp) for name, stamp in
             (("late", 7), ("missed a turn", 3), ("earlier", 5), ("new", 0))}
    events = [key(partial(on_readable, conn)) for conn in conns.values()]
    events.append(key(print))  # not a connection's (the thread pool's queue): no order of its own
    events.sort(key=answered_longest_ago_first)
    order = [event[0].data.args[0] if hasattr(event[0].data, "args") else "queue"
             for event in events]
    # ties (0) keep the poller's order
    assert order == [conns["new"], "queue", conns["missed a turn"], conns["earlier"],
                     conns["late"]]
