"""The worst-case time of every parser and pattern of ours that reads what a client sends.

A test that only compares results cannot see a stall: a pattern that backtracks quadratically
still answers right, after half a second per request (a header regex of an earlier server of
ours did, with 8 KiB of spaces). Each parser here gets 8 KiB and 64 KiB inputs built to be its
worst case, and must take time that grows no faster than the input.

The bound is loose on purpose (this machine is shared): CPU time of this thread only
(``thread_time``, which other processes do not move), the best of three runs, and a limit two
orders of magnitude above what a linear parser takes. A quadratic one takes seconds at 64 KiB.
"""

from __future__ import annotations

import base64
import contextlib
import json
import time
from collections.abc import Callable
from typing import Any

import pytest

from issuer.config import IssuerSettings
from issuer.issuance import TokenIssuer
from shared import requestid
from shared.apikeys import ApiKeyRegistry, bearer_token
from shared.errors import Problem
from shared.strictjson import StrictJSONError, loads_strict
from shared.web.hot import parse_json, request_headers
from verifier.browser import (
    BrowserSettings,
    check_csrf,
    cookie_value,
    is_browser,
    original_url,
)
from verifier.callers import _basic_credentials
from verifier.errors import TokenError
from verifier.hotpath import header_safe, token_from_body
from verifier.keyset import _MAX_AGE
from verifier.service import _session_id_shaped, check_user_id
from verifier.verification import VerificationPolicy, verify_token

SIZES = (8 * 1024, 64 * 1024)
LIMIT_SECONDS = 0.25  # at 64 KiB; a linear parser takes well under 10 ms


def _worst(parse: Callable[[Any], Any], data: Any) -> float:
    """The least CPU time of three calls, whatever they raise."""
    best = float("inf")
    for _ in range(3):
        started = time.thread_time()
        with contextlib.suppress(Problem, StrictJSONError, TokenError, ValueError):
            parse(data)
        best = min(best, time.thread_time() - started)
    return best


def _assert_linear(parse: Callable[[Any], Any], make: Callable[[int], Any]) -> None:
    small, large = (_worst(parse, make(size)) for size in SIZES)
    assert large < LIMIT_SECONDS, f"{large:.3f} s for 64 KiB"
    # 8x the input may cost 8x the time, and noise on a tiny figure: never 64x
    assert large < max(small * 24, 0.02), f"{small:.4f} s for 8 KiB, {large:.4f} s for 64 KiB"


def test_a_request_id_header() -> None:
    _assert_linear(requestid.accept, lambda size: "a" * size + "\n")
    _assert_linear(requestid.accept, lambda size: "a/" * (size // 2) + " ")


def test_an_authorization_header() -> None:
    _assert_linear(bearer_token, lambda size: "Bearer " + " " * size + "x")
    _assert_linear(bearer_token, lambda size: "Bearer" + "\t" * size)


def _basic(credentials: str) -> str:
    return "Basic " + base64.b64encode(credentials.encode()).decode()


def test_a_basic_authorization_header() -> None:
    # introspection's client_secret_basic: base64, then percent-decoding of name and key
    _assert_linear(_basic_credentials, lambda size: _basic("%" * size + ":" + "%2" * (size // 2)))
    _assert_linear(_basic_credentials, lambda size: _basic("+" * size + ":"))
    _assert_linear(_basic_credentials, lambda size: "Basic " + "=" * size)
    _assert_linear(_basic_credentials, lambda size: "Basic" + " " * size + "QQ==")


def test_request_headers_sent_many_times() -> None:
    _assert_linear(request_headers,
                   lambda size: [(b"x-repeated", b"v" * 64)] * (size // 64))
    _assert_linear(request_headers, lambda size: [(b"x" * size, b" " * size)])


def test_json_bodies() -> None:
    _assert_linear(loads_strict, lambda size: "[" * size + "]" * size)
    _assert_linear(loads_strict, lambda size: '{"a":' * (size // 5) + "1" + "}" * (size // 5))
    _assert_linear(loads_strict, lambda size: "1" * size)
    _assert_linear(loads_strict, lambda size: '"' + "\\u0000" * (size // 6) + '"')
    _assert_linear(loads_strict, lambda size: "{" + ",".join(
        f'"k{index}":1' for index in range(size // 8)) + "}")
    _assert_linear(lambda body: parse_json(body, "application/json" + " " * 60000),
                   lambda size: b'{"token": "' + b"a" * size + b'"}')


def test_token_bodies() -> None:
    _assert_linear(lambda body: token_from_body(body, "application/json", None),
                   lambda size: json.dumps({"token": "x" * size}).encode())
    _assert_linear(lambda body: token_from_body(body, "application/json", None),
                   lambda size: json.dumps({"token": [["x"]] * (size // 8)}).encode())


def test_tokens() -> None:
    policy = VerificationPolicy()

    class _NoKeys:
        def select(self, kid: str | None, alg: str | None = None) -> Any:
            raise AssertionError("no token here gets as far as its key")

    def verify(token: str) -> Any:
        return verify_token(token, keys=_NoKeys(), policy=policy, now=time.time())

    _assert_linear(verify, lambda size: "a" * size)
    _assert_linear(verify, lambda size: "." * size)
    _assert_linear(verify, lambda size: "eyJ" + "A" * size + "..")
    header = "eyJhbGciOiJSUzI1NiJ9"
    _assert_linear(verify, lambda size: f"{header}." + "-_" * (size // 2) + "=.sig")


def test_expires_in_query_values() -> None:
    # the lifetime rule reads the settings only: no key or client is needed to ask it
    issuer = TokenIssuer(IssuerSettings(), keys=None, clients=ApiKeyRegistry([]))  # type: ignore[arg-type]
    _assert_linear(issuer.lifetime, lambda size: " " * size + "1" * size)
    _assert_linear(issuer.lifetime, lambda size: "9" * size)


def test_paths_holding_ids() -> None:
    _assert_linear(_session_id_shaped, lambda size: "a" * size + "~" + "b" * size)
    _assert_linear(check_user_id, lambda size: "u" * size + "\x00")
    _assert_linear(header_safe, lambda size: "\u00e9" * size)


@pytest.mark.parametrize("value", [
    lambda size: "max-age" + " " * size,
    lambda size: "max-age " * (size // 8),
    lambda size: ",max-age=" + "\"" * size,
])
def test_a_jwks_cache_control_header(value: Callable[[int], str]) -> None:
    _assert_linear(_MAX_AGE.search, value)


def test_the_session_cookie_and_the_forwarded_url() -> None:
    browser = BrowserSettings(login_url="https://login.example.com/", redirect_hosts=(
        "app.example.com", "*.example.org"))
    _assert_linear(lambda header: cookie_value(header, "jwt_auth_session"),
                   lambda size: "a=b;" * (size // 4))
    _assert_linear(lambda header: cookie_value(header, "jwt_auth_session"),
                   lambda size: "jwt_auth_sessio" + "=" * size)
    _assert_linear(lambda header: cookie_value(header, "jwt_auth_session"),
                   lambda size: " ;," * (size // 3) + "jwt_auth_session=x")

    def forwarded(headers: dict[str, str]) -> Any:
        url = original_url(headers.get)
        browser.login_location(url)
        check_csrf(headers.get, "POST", url)

    _assert_linear(forwarded, lambda size: {"x-original-url": "https://app.example.com/" +
                                            "%2F" * (size // 3), "origin": "https://a" * 3})
    _assert_linear(forwarded, lambda size: {"x-forwarded-proto": "https," * (size // 6),
                                            "x-forwarded-host": "a." * (size // 2) + "example.org",
                                            "x-forwarded-uri": "/" + "?" * size})
    _assert_linear(forwarded, lambda size: {"x-original-url": "https://" + "[" * size + "/"})
    _assert_linear(lambda value: is_browser({"accept": value}.get),
                   lambda size: "text/htm," * (size // 9))


def test_the_verifiers_path_converters() -> None:
    # the patterns werkzeug matches a request's path with (user ids hold "/" and line breaks)
    from werkzeug.exceptions import NotFound
    from werkzeug.routing import Map, Rule

    from verifier.app import SessionIdConverter, UserIdConverter, UserRecordIdConverter

    routes = Map([Rule("/v1/users/<user_record_id:user_id>", endpoint="user"),
                  Rule("/v1/users/<user_id:user_id>/sessions", endpoint="sessions"),
                  Rule("/v1/sessions/<session_id:session_id>", endpoint="session")],
                 converters={"user_id": UserIdConverter, "user_record_id": UserRecordIdConverter,
                             "session_id": SessionIdConverter}).bind("verifier")

    def match(path: str) -> Any:
        try:
            return routes.match(path, method="GET")
        except NotFound:
            return None

    _assert_linear(match, lambda size: "/v1/users/" + "a/" * (size // 2) + "sessions")
    _assert_linear(match, lambda size: "/v1/users/a" + "/sessions" * (size // 9) + "x")
    _assert_linear(match, lambda size: "/v1/users/" + "\n/" * (size // 2) + "sessions/x")
    _assert_linear(match, lambda size: "/v1/sessions/" + "current" * (size // 7))


def test_kubernetes_service_link_names() -> None:
    # the environment's names, checked at every start against what Kubernetes injects
    from shared.config import _service_link

    _assert_linear(lambda name: _service_link(name, "6379"),
                   lambda size: "REDIS" + "_SERVICE_PORT" * (size // 13) + "x")
    _assert_linear(lambda name: _service_link(name, "6379"),
                   lambda size: "A_" * (size // 2) + "PORT_1_TCPX")
