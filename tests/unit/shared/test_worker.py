"""When the event loop hands a request to a thread (``shared.worker.request_is_complete``)."""

from __future__ import annotations

import pytest

from shared.worker import MAX_BUFFERED_BODY, MAX_HEAD_BYTES, request_is_complete

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
