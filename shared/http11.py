"""A strict reading of the plain HTTP/1.1 request, for the answers given on the event loop.

gunicorn's parser, its WSGI environ and its bookkeeping cost the issuer a fifth of what
separates it from its raw signing rate, and the verifier more than its cached verification
(py-spy, ``bench/side_by_side.py``). Most requests to the busy routes are the plainest HTTP
there is: a request line, a dozen ordinary headers, a body of Content-Length bytes. This module
reads exactly those, and nothing else.

Reading a request differently from gunicorn would be a request-smuggling hole, so the rule is
one-sided: ``read_plain_request`` either returns what gunicorn would have read from the same
bytes, or None, and then gunicorn reads them as before. Anything that needs judgement gives
None:

- a request line other than ``METHOD /path[?query] HTTP/1.0|1.1`` with an upper-case method,
  a path of RFC 3986 characters without ``%`` (no decoding to agree on) that does not start
  with ``//``, a query of printable ASCII without ``#``;
- a header name with ``_`` (gunicorn drops or refuses those) or any character outside RFC 9110
  ``token``, whitespace before the colon, a folded line, a control character, a bare CR or LF;
- a header named twice, ``Transfer-Encoding``, ``Expect``, ``Upgrade``, ``HTTP2-Settings``, a
  scheme header gunicorn knows (``secure_scheme_headers``), a ``Connection`` other than
  ``close`` or ``keep-alive``, a ``Content-Length`` that is not digits;
- bytes after the body, or fewer than announced (a pipelined or incomplete request);
- a head past gunicorn's limits on the request line, the number of headers or their size.

``tests/unit/shared/test_http11.py`` holds the reading to gunicorn's own on generated requests,
the hostile ones included.
"""

from __future__ import annotations

import io
import re
from typing import Any

from gunicorn.http.message import DEFAULT_MAX_HEADERFIELD_SIZE, MAX_REQUEST_LINE

_REQUEST_LINE = re.compile(
    rb"([A-Z]{3,20}) "
    # origin-form: RFC 3986 pchar and "/", no percent-encoding, no "//" (an authority to urllib)
    rb"(/(?!/)[A-Za-z0-9\-._~!$&'()*+,;=:@/]*)"
    rb"(?:\?([\x21\x22\x24-\x7e]*))? "  # the query: printable, no fragment
    rb"HTTP/1\.([01])"
)
# RFC 9110 token without "_", then the value with no control character but HTAB (greedy: a
# lazy value tried the trailing whitespace at every byte of an 800-byte bearer token)
_HEADER_LINE = re.compile(rb"([!#$%&'*+\-.^`|~0-9A-Za-z]+):[ \t]*([^\x00-\x08\x0a-\x1f\x7f]*)")
_DIGITS = re.compile(rb"[0-9]+")

# headers whose meaning gunicorn decides on (framing, protocol switches, 100-continue)
_JUDGED = frozenset({"TRANSFER-ENCODING", "EXPECT", "UPGRADE", "HTTP2-SETTINGS"})
_CONNECTION_CLOSES = {"close": True, "keep-alive": False}
# longer heads are read by gunicorn (its own limits are larger, and never reached here)
MAX_PLAIN_HEAD = 16 * 1024


class PlainRequest:
    """A request read by ``PlainReader.read``: what gunicorn's ``Request`` offers the worker,
    the server hooks, ``Response`` and the access log (``body`` is a stream, as there)."""

    __slots__ = ("body", "close", "content", "headers", "method", "path", "peer_addr", "query",
                 "remote_addr", "uri", "version")

    scheme = "http"
    fragment = ""
    trailers: tuple[tuple[str, str], ...] = ()
    proxy_protocol_info = None
    _expected_100_continue = False

    def __init__(self, method: str, uri: str, path: str, query: str, version: tuple[int, int],
                 headers: list[tuple[str, str]], content: bytes, close: bool) -> None:
        self.method = method
        self.uri = uri
        self.path = path
        self.query = query
        self.version = version
        self.headers = headers
        self.content = content
        self.body = io.BytesIO(content)
        self.close = close
        # the client's address, set by the worker (gunicorn's hooks may read it)
        self.peer_addr: tuple[Any, ...] | None = None
        self.remote_addr: tuple[Any, ...] | None = None

    def should_close(self) -> bool:
        return self.close


class PlainReader:
    """``read_plain_request`` under one gunicorn configuration, or None when that configuration
    reads requests in ways this module does not follow (TLS, PROXY protocol, HTTP/2, uWSGI)."""

    def __init__(self, cfg: Any) -> None:
        line_limit = cfg.limit_request_line
        self.line_limit = MAX_REQUEST_LINE if line_limit <= 0 else min(line_limit,
                                                                        MAX_REQUEST_LINE)
        self.field_limit = cfg.limit_request_field_size
        if self.field_limit <= 0:
            self.field_limit = DEFAULT_MAX_HEADERFIELD_SIZE
        self.fields_limit = cfg.limit_request_fields
        self.judged = _JUDGED | {name.upper() for name in cfg.secure_scheme_headers}

    @classmethod
    def for_config(cls, cfg: Any, environ: dict[str, str]) -> PlainReader | None:
        if (cfg.is_ssl or cfg.proxy_protocol != "off" or "h2" in cfg.http_protocols
                or getattr(cfg, "protocol", "http") != "http" or environ.get("SCRIPT_NAME")):
            return None  # TLS, PROXY protocol, HTTP/2, uWSGI, a path prefix
        return cls(cfg)

    def read(self, data: bytes) -> PlainRequest | None:
        """The one request ``data`` holds, read as gunicorn would, or None (see the module)."""
        head_end = data.find(b"\r\n\r\n")
        if head_end < 0 or head_end > MAX_PLAIN_HEAD:
            return None
        lines = data[:head_end].split(b"\r\n")
        request_line = lines[0]
        if len(request_line) > self.line_limit:
            return None
        first = _REQUEST_LINE.fullmatch(request_line)
        if first is None or len(lines) > self.fields_limit:  # lines[1:] are the fields
            return None
        method = first.group(1).decode("ascii")
        if method == "CONNECT":
            return None
        minor = int(first.group(4))
        headers: list[tuple[str, str]] = []
        seen: set[str] = set()
        close = minor == 0
        length = 0
        field_limit = self.field_limit - 2
        judged = self.judged
        for line in lines[1:]:
            if len(line) > field_limit:
                return None
            field = _HEADER_LINE.fullmatch(line)
            if field is None:
                return None
            name = field.group(1).decode("ascii").upper()
            if name in seen or name in judged:
                return None
            seen.add(name)
            raw_value = field.group(2).rstrip(b" \t")
            value = raw_value.decode("latin-1")
            if name == "CONTENT-LENGTH":
                if _DIGITS.fullmatch(raw_value) is None:
                    return None
                length = int(value)
            elif name == "CONNECTION":
                closes = _CONNECTION_CLOSES.get(value.lower())
                if closes is None:
                    return None
                close = closes
            headers.append((name, value))
        body = data[head_end + 4:]
        if len(body) != length:
            return None
        target = first.group(2).decode("ascii")
        query = first.group(3)
        uri = target if query is None else f"{target}?{query.decode('ascii')}"
        return PlainRequest(method, uri, target, "" if query is None else query.decode("ascii"),
                            (1, minor), headers, body, close)


def plain_environ(base: dict[str, Any], request: PlainRequest, sock: Any,
                  client: tuple[Any, ...], server: tuple[Any, ...]) -> dict[str, Any]:
    """The WSGI environ gunicorn's ``wsgi.create`` makes for ``request`` on a TCP listener
    (``base`` is gunicorn's ``base_environ``), but ``wsgi.early_hints``, which the worker adds."""
    environ = base.copy()
    environ["wsgi.input"] = request.body
    environ["gunicorn.socket"] = sock
    environ["REQUEST_METHOD"] = request.method
    environ["QUERY_STRING"] = request.query
    environ["RAW_URI"] = request.uri
    environ["SERVER_PROTOCOL"] = "HTTP/1.1" if request.version[1] else "HTTP/1.0"
    for name, value in request.headers:
        if name == "CONTENT-TYPE":
            environ["CONTENT_TYPE"] = value
        elif name == "CONTENT-LENGTH":
            environ["CONTENT_LENGTH"] = value
        else:
            environ["HTTP_" + name.replace("-", "_")] = value
    environ["wsgi.url_scheme"] = "http"
    environ["REMOTE_ADDR"] = client[0]
    environ["REMOTE_PORT"] = str(client[1])
    environ["SERVER_NAME"] = server[0]
    environ["SERVER_PORT"] = str(server[1])
    environ["PATH_INFO"] = request.path
    environ["SCRIPT_NAME"] = ""
    environ["wsgi.multithread"] = True
    return environ
