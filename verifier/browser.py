"""Sessions in a browser: the session cookie, the login redirect, and the CSRF rule.

A web app's backend logs a user in with ``POST /v1/sessions?cookie=true`` and passes the
``Set-Cookie`` it gets on to the browser. From then on the browser's requests carry the cookie,
and forward-auth (``/v1/auth``) accepts it where an API client would send
``Authorization: Bearer``. Three rules come with a credential that a browser sends by itself:

- **The cookie** is ``HttpOnly`` (no script reads it), ``SameSite=Lax`` (no cross-site
  subrequest or form post carries it), ``Secure`` (never over plain http, unless
  ``VERIFIER_SESSION_COOKIE_SECURE=false`` for a local http setup), ``Path=/``, and lives as long
  as the session.
- **CSRF.** A state-changing request (not GET, HEAD or OPTIONS) that carries the session only
  in the cookie must come from the protected site itself: its ``Origin`` names the site the
  request is for, or the browser says ``Sec-Fetch-Site: same-origin``. Otherwise ``403
  csrf_refused``. A request with ``Authorization`` is not a browser's doing and needs no check.
- **The login redirect.** With ``VERIFIER_LOGIN_URL`` set, a refused request that a person's
  browser made (it accepts ``text/html`` and is not XHR) is sent to the login page with
  ``rd=<the URL it asked for>``, rebuilt from the proxy's headers. ``rd`` is only ever a URL on
  a host of ``VERIFIER_REDIRECT_HOSTS``: nothing here redirects a browser to a site of an
  attacker's choosing. Traefik and other proxies that pass the answer through get a ``302``;
  nginx, whose ``auth_request`` can only pass a 401 on, gets the 401 with the same
  ``Location`` for its ``error_page 401`` to redirect to.

Every parser here reads headers a client chose: each is one pass over at most a few KiB.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from shared.config import env_bool, env_list, env_str
from shared.errors import ConfigError, Problem

DEFAULT_COOKIE = "jwt_auth_session"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
MAX_URL = 4096
"""A rebuilt URL longer than this is not used as ``rd`` (the login page gets no ``rd``)."""

# RFC 6265: a cookie name is an RFC 7230 token
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,64}")
# a host name or address as VERIFIER_REDIRECT_HOSTS may list it: "app.example.com",
# "*.example.com" (any subdomain), "localhost:8080"
_HOST_RULE = re.compile(r"(\*\.)?[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?(:[0-9]{1,5})?")
_LOCAL_HOSTS = ("localhost", "127.0.0.1", "[::1]")

VARIABLES = frozenset({
    "VERIFIER_SESSION_COOKIE", "VERIFIER_SESSION_COOKIE_SECURE",
    "VERIFIER_SESSION_COOKIE_DOMAIN", "VERIFIER_LOGIN_URL", "VERIFIER_REDIRECT_HOSTS",
})


class CsrfRefused(Problem):
    """Raised when a state-changing request carries the session cookie but does not come from
    the protected site itself (its Origin, or Sec-Fetch-Site: same-origin)."""

    status = 403
    code = "csrf_refused"
    title = "Cross-site request refused"


@dataclass(frozen=True)
class BrowserSettings:
    """The session cookie and the login redirect (``VERIFIER_SESSION_COOKIE*``,
    ``VERIFIER_LOGIN_URL``, ``VERIFIER_REDIRECT_HOSTS``)."""

    cookie_name: str = DEFAULT_COOKIE
    cookie_secure: bool = True
    cookie_domain: str | None = None
    login_url: str | None = None
    redirect_hosts: tuple[str, ...] = ()

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> BrowserSettings:
        settings = cls(
            cookie_name=env_str(env, "VERIFIER_SESSION_COOKIE", DEFAULT_COOKIE) or DEFAULT_COOKIE,
            cookie_secure=env_bool(env, "VERIFIER_SESSION_COOKIE_SECURE", True),
            cookie_domain=env_str(env, "VERIFIER_SESSION_COOKIE_DOMAIN"),
            login_url=env_str(env, "VERIFIER_LOGIN_URL"),
            redirect_hosts=tuple(host.lower() for host in
                                 env_list(env, "VERIFIER_REDIRECT_HOSTS", [])),
        )
        settings.check()
        return settings

    def check(self) -> None:
        if not _TOKEN.fullmatch(self.cookie_name):
            raise ConfigError("VERIFIER_SESSION_COOKIE",
                              "expected a cookie name: letters, digits and !#$%&'*+-.^_`|~")
        if self.cookie_domain is not None and not _HOST_RULE.fullmatch(
                self.cookie_domain.lower().lstrip(".")):
            raise ConfigError("VERIFIER_SESSION_COOKIE_DOMAIN", "expected a domain name")
        for host in self.redirect_hosts:
            if not _HOST_RULE.fullmatch(host):
                raise ConfigError("VERIFIER_REDIRECT_HOSTS",
                                  f"{host!r} is not a host name (app.example.com, "
                                  "*.example.com or localhost:8080)")
        if self.login_url is not None:
            parsed = _split(self.login_url)
            # ASCII (it travels in a Location header) and no fragment (rd is added to the query)
            if parsed is None or parsed.scheme not in ("http", "https") or not parsed.hostname \
                    or not self.login_url.isascii() or parsed.fragment or "#" in self.login_url:
                raise ConfigError("VERIFIER_LOGIN_URL",
                                  "expected an http:// or https:// URL in ASCII, without #")
        if not self.cookie_secure:
            # a cookie without Secure crosses plain http in the clear: only where nothing
            # leaves the machine
            public = [host for host in (*self.redirect_hosts, self.cookie_domain or "")
                      if host and not _local(host)]
            if public:
                raise ConfigError(
                    "VERIFIER_SESSION_COOKIE_SECURE",
                    f"false is for local http only, and {public[0]} is not local "
                    "(localhost, 127.0.0.1, [::1])")

    # the cookie ---------------------------------------------------------------------------

    def set_cookie(self, session_id: str, max_age: int) -> str:
        """The ``Set-Cookie`` value that gives the browser this session."""
        return self._cookie(session_id, max(0, max_age))

    def clear_cookie(self) -> str:
        """The ``Set-Cookie`` value that makes the browser forget the session."""
        return self._cookie("", 0)

    def _cookie(self, value: str, max_age: int) -> str:
        parts = [f"{self.cookie_name}={value}", f"Max-Age={max_age}", "Path=/"]
        if self.cookie_domain:
            parts.append(f"Domain={self.cookie_domain}")
        parts += ["HttpOnly", "SameSite=Lax"]
        if self.cookie_secure:
            parts.append("Secure")
        return "; ".join(parts)

    def session_id(self, cookie_header: str | None) -> str | None:
        """The session id in a ``Cookie`` header, or None."""
        return cookie_value(cookie_header, self.cookie_name)

    # the login redirect --------------------------------------------------------------------

    def login_location(self, original: str | None) -> str | None:
        """Where to send a refused browser: the login URL with ``rd`` when the URL it asked for
        is on a trusted host; None without ``VERIFIER_LOGIN_URL``."""
        if self.login_url is None:
            return None
        parsed = None if original is None else _split(original)
        if parsed is None or not self.trusts(parsed):
            return self.login_url
        separator = "&" if "?" in self.login_url else "?"
        return f"{self.login_url}{separator}{urllib.parse.urlencode({'rd': original})}"

    def trusts(self, url: urllib.parse.SplitResult) -> bool:
        """Whether ``url``'s host is one of ``VERIFIER_REDIRECT_HOSTS``."""
        if url.scheme not in ("http", "https") or url.username or url.password:
            return False
        netloc = url.netloc.lower()
        host = url.hostname or ""
        for rule in self.redirect_hosts:
            if rule.startswith("*."):
                suffix = rule[1:]
                if host.endswith(suffix) and len(host) > len(suffix):
                    return True
            elif rule in (netloc, host):
                return True
        return False


def _local(host: str) -> bool:
    """Whether a host (as VERIFIER_REDIRECT_HOSTS or a cookie domain names it) is this machine."""
    name = host.lower().removeprefix("*.").removeprefix(".")
    if name.startswith("["):
        name = name[:name.find("]") + 1]
    elif name.count(":") == 1:
        name = name.partition(":")[0]
    return name in _LOCAL_HOSTS or name.endswith(".localhost")


def cookie_value(header: str | None, name: str) -> str | None:
    """The first cookie called ``name`` in a ``Cookie`` header, or None (one pass, no regex:
    the header is the client's). The Python client's integrations read it the same way: they
    are a package of their own, which imports nothing of the services."""
    if not header:
        return None
    # one Cookie header holds "a=1; b=2"; two are joined with "," (as for any header), and a
    # cookie value never holds a comma (RFC 6265 cookie-octet)
    for pair in header.replace(",", ";").split(";"):
        key, equals, value = pair.partition("=")
        if equals and key.strip() == name:
            value = value.strip()
            if len(value) >= 2 and value[0] == value[-1] == '"':
                value = value[1:-1]
            return value or None
    return None


Headers = Callable[[str], str | None]
"""A request's header by lowercase name (``shared.web.hot.Request.header``)."""


def original_url(header: Headers) -> str | None:
    """The URL the browser asked the proxy for, as the proxy reports it: ``X-Original-URL``
    (nginx), or ``X-Forwarded-Proto`` + ``X-Forwarded-Host`` + ``X-Forwarded-Uri`` (Traefik);
    None when it cannot be rebuilt, or is not a plain http(s) URL."""
    url = header("x-original-url")
    if url is None:
        proto, host = header("x-forwarded-proto"), header("x-forwarded-host")
        if not proto or not host:
            return None
        uri = header("x-forwarded-uri") or "/"
        # a proxy may list several values; the first is the client's
        url = f"{proto.split(',')[0].strip()}://{host.split(',')[0].strip()}{uri}"
    if len(url) > MAX_URL or not url.isascii() or not url.isprintable() or " " in url:
        return None
    parsed = _split(url)
    if parsed is None or parsed.scheme not in ("http", "https") or not parsed.netloc:
        return None
    # a host name, an IPv4 or a bracketed IPv6 address, and nothing else: a browser reads
    # "evil.com\.example.org" as evil.com, where urlsplit sees one host under example.org
    if not set(parsed.hostname or "") <= _HOST_CHARACTERS:
        return None
    if parsed.path and not parsed.path.startswith("/"):
        return None
    return url


def from_nginx(header: Headers) -> bool:
    """nginx's ``auth_request`` (our recipe sends ``X-Original-URL``): it can pass a 401 on,
    never a 302."""
    return header("x-original-url") is not None


def is_browser(header: Headers) -> bool:
    """A person's browser asking for a page: it accepts HTML, and it is not a script's XHR."""
    accept = (header("accept") or "").lower()
    if "text/html" not in accept:
        return False
    return (header("x-requested-with") or "").lower() != "xmlhttprequest"


def forwarded_method(header: Headers, method: str) -> str:
    """The method the browser used: ``X-Original-Method`` (nginx), ``X-Forwarded-Method``
    (Traefik), or the request's own (Envoy and Traefik forward it as it was)."""
    return (header("x-original-method") or header("x-forwarded-method") or method).upper()


def check_csrf(header: Headers, method: str, target: str | None) -> None:
    """Refuse a state-changing request that carries only the cookie and does not come from the
    site it is for (``target``: the URL it asked for, when the proxy says)."""
    if method in SAFE_METHODS:
        return
    if (header("sec-fetch-site") or "").lower() == "same-origin":
        return
    origin = header("origin")
    # "" is an origin nothing could be read from: it matches nothing, not even another ""
    if origin and target and origin.lower() != "null" \
            and (site := _origin(origin)) and site == _origin(target):
        return
    raise CsrfRefused(
        "A request that changes something and carries the session cookie must come from the "
        "site itself (Origin, or Sec-Fetch-Site: same-origin); send Authorization instead "
        "from other clients.")


_DEFAULT_PORTS = {"http": 80, "https": 443}
_HOST_CHARACTERS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789.-:")
"""What urlsplit's lowercased ``hostname`` may hold in a URL we send a browser back to."""


def _split(url: str) -> urllib.parse.SplitResult | None:
    """``urlsplit``, or None for what it cannot read (an unclosed ``[``: a client's header)."""
    try:
        return urllib.parse.urlsplit(url)
    except ValueError:
        return None


def _origin(url: str) -> str:
    """``scheme://host[:port]`` as a browser's ``Origin`` writes it (no default port)."""
    parsed = _split(url)
    if parsed is None:
        return ""
    try:
        port = parsed.port
    except ValueError:  # not a number
        return ""
    netloc = (parsed.hostname or "") if port in (None, _DEFAULT_PORTS.get(parsed.scheme)) \
        else f"{parsed.hostname}:{port}"
    if ":" in (parsed.hostname or "") and not netloc.startswith("["):
        netloc = f"[{parsed.hostname}]" + (f":{port}" if port not in (
            None, _DEFAULT_PORTS.get(parsed.scheme)) else "")
    return f"{parsed.scheme}://{netloc}".lower()
