"""Who may answer on the worker's event loop (``shared.eventloop``, ``shared.hotroutes``)."""

from __future__ import annotations

from typing import Any

import pytest

from shared.eventloop import AnswerInThread, answering_on_loop, before_waiting, on_loop
from shared.hotroutes import Answer, HotRoutes, Route


def _answer(environ: dict[str, Any], method: str) -> Answer:
    return Answer(200, b"{}", [("Content-Type", "application/json")])


def _flask(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    start_response("200 OK", [])
    return [b"flask"]


SYNCED = {"now": True}
ROUTES = HotRoutes(_flask, "test", [
    Route("/at-once", "/at-once", frozenset({"POST"}), _answer, answers_at_once=lambda: True),
    Route("/when-synced", "/when-synced", frozenset({"GET"}), _answer,
          answers_at_once=lambda: SYNCED["now"]),
    Route("/threads", "/threads", frozenset({"GET"}), _answer),
])


def _call(path: str, method: str = "GET") -> list[bytes]:
    environ = {"PATH_INFO": path, "REQUEST_METHOD": method}
    return list(ROUTES(environ, lambda status, headers, exc_info=None: None))


def test_before_waiting_hands_over_only_on_the_loop() -> None:
    before_waiting()  # in a thread: nothing happens, the caller waits
    assert not on_loop()
    with answering_on_loop(), pytest.raises(AnswerInThread):
        before_waiting()
    assert not on_loop()


def test_answers_at_once_asks_the_route() -> None:
    assert ROUTES.answers_at_once("POST", "/at-once")
    assert not ROUTES.answers_at_once("GET", "/at-once")  # a 405 is answered by a thread
    assert ROUTES.answers_at_once("GET", "/when-synced")
    SYNCED["now"] = False
    try:
        assert not ROUTES.answers_at_once("GET", "/when-synced")
    finally:
        SYNCED["now"] = True
    assert not ROUTES.answers_at_once("GET", "/threads")
    assert not ROUTES.answers_at_once("GET", "/healthz")  # Flask's


@pytest.mark.parametrize("path", ["/threads", "/healthz"])
def test_on_the_loop_only_routes_that_may_answer_there_run(path: str) -> None:
    """The worker guessed the route from the raw request line; the parsed path decides."""
    with answering_on_loop(), pytest.raises(AnswerInThread):
        _call(path)
    assert _call(path) in ([b"{}"], [b"flask"])


def test_on_the_loop_a_route_that_may_answer_there_answers() -> None:
    with answering_on_loop():
        assert _call("/at-once", "POST") == [b"{}"]
