"""The plain reading (``shared.http11``) against gunicorn's own parser on the same bytes.

Whatever the plain reader accepts, gunicorn must read the same way: the same environ, body,
keep-alive and nothing left over. A difference would let one request mean two things, which is
how requests are smuggled. The generated requests lean on what smuggling uses: doubled or
odd Content-Length, Transfer-Encoding, folded lines, bare CR or LF, spaces before the colon,
underscores, controls, percent-encoding, absolute and authority forms.
"""

from __future__ import annotations

from typing import Any

import pytest
from gunicorn.config import Config
from gunicorn.http import wsgi
from gunicorn.http.parser import RequestParser
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from shared.http11 import PlainReader, plain_environ

CLIENT = ("127.0.0.1", 40000)
SERVER = ("127.0.0.1", 8000)
# what the WSGI app reads; the rest are objects (streams, the socket) compared by behaviour
COMPARED = ("REQUEST_METHOD", "PATH_INFO", "QUERY_STRING", "RAW_URI", "SERVER_PROTOCOL",
            "SCRIPT_NAME", "CONTENT_TYPE", "CONTENT_LENGTH", "wsgi.url_scheme", "REMOTE_ADDR",
            "REMOTE_PORT", "SERVER_NAME", "SERVER_PORT", "wsgi.multithread", "wsgi.version",
            "wsgi.multiprocess", "wsgi.run_once", "wsgi.input_terminated", "SERVER_SOFTWARE")


class _NoSocket:
    def send(self, data: bytes) -> int:  # gunicorn's 100 Continue; never reached when equal
        raise AssertionError("an interim answer on a plain request")


def gunicorn_reading(data: bytes, cfg: Config) -> dict[str, Any] | None:
    """What gunicorn reads from ``data``: environ, body, keep-alive, leftover; None: refused."""
    parser = RequestParser(cfg, iter([data]), CLIENT)
    try:
        req = next(parser)
        _, environ = wsgi.create(req, _NoSocket(), CLIENT, SERVER, cfg)
        body = req.body.read()
    except Exception:  # noqa: BLE001 - any refusal of gunicorn's: a 4xx, never plain
        return None
    environ["wsgi.multithread"] = True  # gthread sets it after create
    leftover = b""
    while chunk := parser.unreader.read():
        leftover += chunk
    return {"environ": environ, "body": body, "close": req.should_close(),
            "leftover": leftover}


def assert_read_alike(data: bytes, cfg: Config | None = None) -> bool:
    """Asserts the plain reading, if any, equals gunicorn's; whether it read ``data``."""
    cfg = cfg or Config()
    plain = PlainReader(cfg).read(data)
    if plain is None:
        return False
    theirs = gunicorn_reading(data, cfg)
    assert theirs is not None, f"read plainly, refused by gunicorn: {data!r}"
    ours = plain_environ(wsgi.base_environ(cfg), plain, object(), CLIENT, SERVER)
    assert theirs["leftover"] == b"", f"gunicorn sees a second request: {data!r}"
    assert plain.content == theirs["body"] == ours["wsgi.input"].read()
    assert plain.should_close() == theirs["close"]
    for key in COMPARED:
        assert ours.get(key) == theirs["environ"].get(key), (key, data)
    http = {key for key in theirs["environ"] if key.startswith("HTTP_")}
    assert http == {key for key in ours if key.startswith("HTTP_")}, data
    for key in http:
        assert ours[key] == theirs["environ"][key], (key, data)
    return True


# -- requests real clients send are read plainly -------------------------------------------------

COMMON = {
    "curl POST": b"POST /v1/verify HTTP/1.1\r\nHost: 127.0.0.1:8001\r\nUser-Agent: curl/7.88.1\r\n"
                 b"Accept: */*\r\nContent-Type: application/json\r\nContent-Length: 15\r\n\r\n"
                 b'{"token":"a.b"}',
    "wrk with a token": b"GET /v1/auth HTTP/1.1\r\nHost: 127.0.0.1:8001\r\n"
                        b"Authorization: Bearer eyJhbGciOiJSUzI1NiJ9.eyJ1c2VySWQiOiIxMjMifQ.c2ln"
                        b"\r\n\r\n",
    "python requests": b"POST /v1/tokens?expires_in=60 HTTP/1.1\r\nHost: issuer:8000\r\n"
                       b"User-Agent: python-requests/2.32.3\r\nAccept-Encoding: gzip, deflate\r\n"
                       b"Accept: */*\r\nConnection: keep-alive\r\nAuthorization: Bearer k-1\r\n"
                       b"Content-Length: 17\r\nContent-Type: application/json\r\n\r\n"
                       b'{"userId": "123"}',
    "nginx auth_request": b"GET /v1/auth/app/orders?id=7 HTTP/1.0\r\nHost: verifier\r\n"
                          b"Connection: close\r\nX-Forwarded-Method: GET\r\n"
                          b"X-Original-URI: /app/orders?id=7\r\nCookie: session=abc\r\n\r\n",
    "node fetch": b"POST /v1/verify HTTP/1.1\r\nhost: localhost:8001\r\nconnection: keep-alive\r\n"
                  b"content-type: application/json\r\naccept: */*\r\naccept-language: *\r\n"
                  b"sec-fetch-mode: cors\r\nuser-agent: node\r\naccept-encoding: gzip, deflate\r\n"
                  b"content-length: 2\r\n\r\n{}",
    "no headers at all": b"GET / HTTP/1.0\r\n\r\n",
}


@pytest.mark.parametrize("name", list(COMMON))
def test_requests_of_common_clients_are_read_plainly_and_as_gunicorn_reads_them(name: str) -> None:
    assert assert_read_alike(COMMON[name]), "gunicorn would read this one"


def test_the_reading_gives_method_path_query_body_and_keep_alive() -> None:
    plain = PlainReader(Config()).read(COMMON["python requests"])
    assert plain is not None
    assert (plain.method, plain.path, plain.query) == ("POST", "/v1/tokens", "expires_in=60")
    assert plain.content == b'{"userId": "123"}'
    assert plain.should_close() is False
    nginx = PlainReader(Config()).read(COMMON["nginx auth_request"])
    assert nginx is not None
    assert nginx.should_close() is True


# -- what needs judgement is left to gunicorn ----------------------------------------------------

LEFT_TO_GUNICORN = {
    "chunked": b"POST /v HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
    "TE and CL": b"POST /v HTTP/1.1\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n"
                 b"0\r\n\r\n",
    "two CL": b"POST /v HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\n{}",
    "CL with a sign": b"POST /v HTTP/1.1\r\nContent-Length: +2\r\n\r\n{}",
    "CL list": b"POST /v HTTP/1.1\r\nContent-Length: 2, 2\r\n\r\n{}",
    "space before colon": b"POST /v HTTP/1.1\r\nContent-Length : 2\r\n\r\n{}",
    "folded": b"GET /v HTTP/1.1\r\nX-A: 1\r\n 2\r\n\r\n",
    "bare LF": b"GET /v HTTP/1.1\nHost: a\r\n\r\n",
    "bare CR in a value": b"GET /v HTTP/1.1\r\nX-A: 1\r2\r\n\r\n",
    "underscore": b"GET /v HTTP/1.1\r\nX_Forwarded_For: 1.2.3.4\r\n\r\n",
    "scheme header": b"GET /v HTTP/1.1\r\nX-Forwarded-Proto: https\r\n\r\n",
    "expect": b"POST /v HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n{}",
    "upgrade": b"GET /v HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n",
    "pipelined": b"GET /v HTTP/1.1\r\n\r\nGET /w HTTP/1.1\r\n\r\n",
    "body without CL": b"GET /v HTTP/1.1\r\n\r\n{}",
    "short body": b"POST /v HTTP/1.1\r\nContent-Length: 5\r\n\r\n{}",
    "percent-encoded": b"GET /v1/%61uth HTTP/1.1\r\n\r\n",
    "double slash": b"GET //v1/auth HTTP/1.1\r\n\r\n",
    "absolute form": b"GET http://evil/v1/auth HTTP/1.1\r\n\r\n",
    "fragment": b"GET /v1/auth#x HTTP/1.1\r\n\r\n",
    "lower-case method": b"get /v1/auth HTTP/1.1\r\n\r\n",
    "HTTP/2 preface": b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
    "leading CRLF": b"\r\nGET /v1/auth HTTP/1.1\r\n\r\n",
    "two hosts": b"GET /v HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
    "connection list": b"GET /v HTTP/1.1\r\nConnection: keep-alive, close\r\n\r\n",
    "NUL in a value": b"GET /v HTTP/1.1\r\nX-A: a\x00b\r\n\r\n",
    "CONNECT": b"CONNECT /v HTTP/1.1\r\n\r\n",
    "too many fields": b"GET /v HTTP/1.1\r\n" + b"X-A: 1\r\n" * 100 + b"\r\n",
    "field too long": b"GET /v HTTP/1.1\r\nX-A: " + b"a" * 8190 + b"\r\n\r\n",
}


@pytest.mark.parametrize("name", list(LEFT_TO_GUNICORN))
def test_requests_that_need_judgement_are_left_to_gunicorn(name: str) -> None:
    assert PlainReader(Config()).read(LEFT_TO_GUNICORN[name]) is None


def test_configurations_read_differently_get_no_plain_reader() -> None:
    assert PlainReader.for_config(Config(), {}) is not None
    assert PlainReader.for_config(Config(), {"SCRIPT_NAME": "/auth"}) is None
    proxied = Config()
    proxied.set("proxy_protocol", "v1")
    assert PlainReader.for_config(proxied, {}) is None
    h2 = Config()
    h2.set("http_protocols", "h2,h1")
    assert PlainReader.for_config(h2, {}) is None


def test_a_smaller_header_count_limit_is_followed() -> None:
    cfg = Config()
    cfg.set("limit_request_fields", 2)
    assert PlainReader(cfg).read(b"GET /v HTTP/1.1\r\nA: 1\r\n\r\n") is not None
    assert PlainReader(cfg).read(b"GET /v HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n") is None


# -- generated requests: whatever is read plainly, gunicorn reads the same ------------------------

_METHODS = st.sampled_from(["GET", "POST", "HEAD", "PUT", "DELETE", "OPTIONS", "PATCH", "CONNECT",
                            "get", "PoST", "GE", "GET#", "ABCDEFGHIJKLMNOPQRSTU", "G-T", ""])
_TARGET_CHARS = st.sampled_from([*"/aZ09-._~!$&'()*+,;=:@?#%[] \t\"<>\\^`{|}",
                                 "\x00", "\x7f", "\x80", "\xff", "//", "%2F", "%00", "%zz"])
_TARGETS = st.one_of(
    st.sampled_from(["/v1/verify", "/v1/auth", "/v1/auth/x/y?z=1", "/v1/tokens?expires_in=5",
                     "*", "http://h/v1/auth", "h:80", "//h/v1/auth", "/", "", "/?", "/a?b?c"]),
    st.lists(_TARGET_CHARS, max_size=12).map("".join),
)
_VERSIONS = st.sampled_from(["HTTP/1.1", "HTTP/1.0", "HTTP/2.0", "HTTP/1.2", "http/1.1",
                             "HTTP/1.1 ", "HTTP/01.1", "HTTP/1", "HTTP/0.9", "HTTP/1.1\x00"])
_NAMES = st.one_of(
    st.sampled_from(["Host", "Content-Length", "content-length", "CONTENT-LENGTH",
                     "Transfer-Encoding", "Connection", "Expect", "Upgrade", "Content-Type",
                     "Authorization", "X-Forwarded-Proto", "X-Forwarded-Ssl", "X_Forwarded_For",
                     "X-Forwarded-For", "Forwarded", "Script-Name", "SCRIPT_NAME", "TE",
                     "Trailer", "Cookie", "X-Request-Id", "HTTP2-Settings", "Keep-Alive"]),
    st.text(alphabet="aZ-_.!~ \t:\x00\x7f\xe9", min_size=0, max_size=6),
)
_SEPARATORS = st.sampled_from([": ", ":", ":\t", " : ", " :", ":  ", "\t:"])
_VALUES = st.one_of(
    st.sampled_from(["0", "2", "5", "00002", "+2", "-1", " 2", "2 ", "2,2", "0x2", "\u00b2", "",
                     "chunked", "identity", "gzip, chunked", "close", "keep-alive", "Close",
                     "KEEP-ALIVE", "upgrade", "keep-alive, close", "100-continue", "https", "on",
                     "ssl", "h2c", "a\x00b", "a\rb", "a\nb", "\xe9t\xe9", "Bearer x.y.z",
                     "\t v \t"]),
    st.text(alphabet="az09 \t;=,-.\"\x01\x7f\xe9", max_size=8),
)
_ENDINGS = st.sampled_from(["\r\n"] * 12 + ["\n", "\r", "\r\r\n", "\n\r"])
_FIELDS = st.lists(
    st.tuples(_NAMES, _SEPARATORS, _VALUES, _ENDINGS, st.booleans()), max_size=7
)


@st.composite
def _requests(draw: Any) -> bytes:
    line = f"{draw(_METHODS)} {draw(_TARGETS)} {draw(_VERSIONS)}"
    head = [line, draw(_ENDINGS)]
    for name, separator, value, ending, folded in draw(_FIELDS):
        head += [name, separator, value, ending]
        if folded:
            head += [" ", draw(_VALUES), "\r\n"]
    head.append(draw(st.sampled_from(["\r\n"] * 8 + ["\n", "", "\r\n\r\n"])))
    body = draw(st.sampled_from([b"", b"{}", b"2\r\n{}\r\n0\r\n\r\n", b"GET / HTTP/1.1\r\n\r\n",
                                 b"abcde"]))
    return "".join(head).encode("latin-1") + body


@settings(max_examples=3000, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(_requests())
@example(LEFT_TO_GUNICORN["TE and CL"])
@example(COMMON["python requests"])
def test_whatever_is_read_plainly_gunicorn_reads_the_same(data: bytes) -> None:
    assert_read_alike(data)


_SANE_VALUES = st.text(alphabet="az09 \t;=,-.\"/\xe9", max_size=12)


@settings(max_examples=1500, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.sampled_from(["Host", "Content-Type", "Authorization", "Accept",
                                        "X-Request-Id", "User-Agent", "Cookie"]),
                       _SANE_VALUES, max_size=6),
       st.sampled_from(["close", "keep-alive", "Keep-Alive", None]),
       st.binary(max_size=40), st.sampled_from(["1.1", "1.0"]),
       st.sampled_from(["/v1/verify", "/v1/auth/app/x;y", "/v1/tokens?expires_in=60&a=%20"]))
def test_ordinary_requests_are_read_plainly_as_gunicorn_reads_them(
        fields: dict[str, str], connection: str | None, body: bytes, version: str,
        target: str) -> None:
    # the generated requests above are mostly refused; these are all plain, so the reading is
    # checked against gunicorn's on many requests it accepts
    if connection is not None:
        fields["Connection"] = connection
    fields["Content-Length"] = str(len(body))
    head = f"POST {target} HTTP/{version}\r\n" + "".join(
        f"{name}: {value}\r\n" for name, value in fields.items())
    assert assert_read_alike(head.encode("latin-1") + b"\r\n" + body)
