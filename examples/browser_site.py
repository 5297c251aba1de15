"""A small web site that people use in a browser, behind nginx and the verifier (the "Browser
sessions" of docs/verifier.md): its own login page, a session cookie, pages nginx protects,
and a logout. Standard library only; not for production (a real login page checks a password
or asks your identity provider where this one takes any user name).

What it answers, all through nginx:

- ``GET /login?rd=URL``: the sign-in form (outside the protected location). ``POST /login``
  (from this site only: its ``Origin``) asks the issuer for a token for that user (``POST
  /v1/tokens`` with the client key), opens a session with it (``POST
  /v1/sessions?cookie=true``), passes the verifier's ``Set-Cookie`` on to the browser and
  sends it to ``rd``, only when ``rd`` is a URL of this site (else to ``/``).
- ``POST /logout`` (outside the protected location too): the verifier ends the session of the
  browser's cookie (``DELETE /v1/sessions/current``, given the browser's ``Cookie`` and
  ``Origin`` and the URL it posted to, ``X-Original-URL``, for the verifier's CSRF rule); its
  clearing ``Set-Cookie`` goes back to the browser, which is sent to ``/``.
- anything else is the protected part, which nginx lets through only with a live session:
  ``GET`` shows the user nginx vouches for (``X-Auth-User-Id``) and their orders, and ``POST
  /orders`` (a form of that page) adds one. It never checks a credential itself.

Run it by hand against ``jwt-auth up``, nginx in front on 127.0.0.1:8080 (plain http on this
machine only, hence ``VERIFIER_SESSION_COOKIE_SECURE=false``)::

    VERIFIER_LOGIN_URL=http://127.0.0.1:8080/login VERIFIER_REDIRECT_HOSTS=127.0.0.1:8080 \\
      VERIFIER_SESSION_COOKIE_SECURE=false jwt-auth up
    python examples/browser_site.py --bind 127.0.0.1:8000 --site http://127.0.0.1:8080 \\
      --client-key-file .dev/dev-client.key

and in nginx's http block (``include`` takes the full path of docs/nginx/protect-app.conf)::

    upstream jwt_auth_verifier { server 127.0.0.1:8002; }
    upstream protected_app { server 127.0.0.1:8000; }
    server {
        listen 127.0.0.1:8080;
        location = /login { proxy_pass http://protected_app; }
        location = /logout { proxy_pass http://protected_app; }
        include docs/nginx/protect-app.conf;
    }

then open http://127.0.0.1:8080/orders. tests/e2e/test_browser_flow.py runs exactly this in
headless Chromium.
"""

from __future__ import annotations

import argparse
import html
import json
import signal
import sys
import threading
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType

MAX_FORM = 4096
TIMEOUT = 5


def origin_of(url: str) -> str:
    """``scheme://host[:port]`` of a URL, lowercase."""
    parts = urllib.parse.urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


class Site:
    """What the handler needs: where the services are, this site's own origin, the orders."""

    def __init__(self, site: str, issuer: str, verifier: str, client_key: str) -> None:
        for url in (site, issuer, verifier):
            if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
                raise SystemExit(f"browser-site: {url!r} is not an http(s) URL")
        self.origin = origin_of(site)
        self.issuer = issuer.rstrip("/")
        self.verifier = verifier.rstrip("/")
        self.client_key = client_key
        self.orders: dict[str, list[str]] = {}
        self.lock = threading.Lock()

    def own_url(self, url: str) -> str | None:
        """``url`` when it is a page of this site (the login's ``rd``), rebuilt; else None."""
        parts = urllib.parse.urlsplit(url)
        if origin_of(url) != self.origin or parts.username or not parts.path.startswith("/"):
            return None
        return self.origin + parts.path + (f"?{parts.query}" if parts.query else "")


def call(method: str, url: str, headers: dict[str, str],
         body: bytes | None = None) -> tuple[int, bytes, list[str]]:
    """One request to a service: its status, body and ``Set-Cookie`` headers."""
    # S310: the URL is the issuer's or the verifier's, which Site checked are http(s)
    request = urllib.request.Request(url, data=body, method=method, headers=headers)  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as answer:  # noqa: S310
            return answer.status, answer.read(), answer.headers.get_all("Set-Cookie") or []
    except urllib.error.HTTPError as refused:
        return refused.code, refused.read(), []


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title></head>
<body><h1>{title}</h1>
{body}
</body></html>
"""


class Handler(BaseHTTPRequestHandler):
    server_version = "jwt-auth-browser-site"
    site: Site

    # answers -----------------------------------------------------------------------------

    def _send(self, status: int, headers: list[tuple[str, str]], body: bytes = b"") -> None:
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _page(self, status: int, title: str, body: str,
              headers: list[tuple[str, str]] | None = None) -> None:
        data = PAGE.format(title=html.escape(title), body=body).encode()
        self._send(status, [("Content-Type", "text/html; charset=utf-8"),
                            ("Cache-Control", "no-store"), *(headers or [])], data)

    def _redirect(self, location: str, cookies: list[str] | None = None) -> None:
        # 303: the browser follows a form's POST with a GET
        self._send(303, [("Location", location), ("Cache-Control", "no-store"),
                         *(("Set-Cookie", cookie) for cookie in cookies or [])])

    def _form(self) -> dict[str, str]:
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_FORM:
            return {}
        fields = urllib.parse.parse_qs(self.rfile.read(length).decode(errors="replace"))
        return {name: values[0] for name, values in fields.items()}

    # routes ------------------------------------------------------------------------------

    def do_GET(self) -> None:
        path = urllib.parse.urlsplit(self.path)
        if path.path == "/healthz":
            self._send(200, [("Content-Type", "text/plain")], b"ok\n")
        elif path.path == "/login":
            rd = urllib.parse.parse_qs(path.query).get("rd", [""])[0]
            self._page(200, "Sign in", (
                '<form method="post" action="/login">'
                '<label>User name <input name="user" required maxlength="64"></label>'
                f'<input type="hidden" name="rd" value="{html.escape(rd)}">'
                '<button type="submit">Sign in</button></form>'))
        else:
            self._protected_page()

    def do_POST(self) -> None:
        path = urllib.parse.urlsplit(self.path).path
        if path == "/login":
            self._login()
        elif path == "/logout":
            self._logout()
        elif path == "/orders":
            self._order()
        else:
            self._page(404, "Not found", "<p>No such form.</p>")

    def _user(self) -> str:
        """The user nginx vouches for: behind the proxy only, which sets the header itself."""
        user = self.headers.get("X-Auth-User-Id", "")
        if self.headers.get("X-Auth-User-Id-Encoding") == "percent":
            user = urllib.parse.unquote(user)
        return user

    def _protected_page(self) -> None:
        user = self._user()
        with self.site.lock:
            orders = list(self.site.orders.get(user, []))
        items = "".join(f"<li>{html.escape(order)}</li>" for order in orders)
        self._page(200, "Orders", (
            f'<p id="who">Signed in as <b>{html.escape(user)}</b></p>'
            f'<ul id="orders">{items}</ul>'
            '<form method="post" action="/orders"><input name="item" required maxlength="64">'
            '<button type="submit">Place order</button></form>'
            '<form method="post" action="/logout"><button type="submit">Sign out</button>'
            '</form>'))

    def _order(self) -> None:
        user, item = self._user(), self._form().get("item", "")
        with self.site.lock:
            self.site.orders.setdefault(user, []).append(item)
        self._redirect(f"{self.site.origin}/orders")

    def _login(self) -> None:
        # a login form another site posts would sign the browser in as someone else
        if origin_of(self.headers.get("Origin") or "") != self.site.origin:
            self._page(403, "Refused", "<p>Sign in from this site's own page.</p>")
            return
        form = self._form()
        user = form.get("user", "").strip()
        if not user or len(user) > 64:
            self._page(400, "Sign in", "<p>Give a user name.</p>")
            return
        status, body, _ = call(
            "POST", f"{self.site.issuer}/v1/tokens",
            {"Authorization": f"Bearer {self.site.client_key}",
             "Content-Type": "application/json"},
            json.dumps({"userId": user}).encode())
        if status != 201:
            self._page(502, "Sign-in failed", f"<p>The issuer answered {status}.</p>")
            return
        token = json.loads(body)["token"]
        status, _, cookies = call(
            "POST", f"{self.site.verifier}/v1/sessions?cookie=true",
            {"Content-Type": "application/json"}, json.dumps({"token": token}).encode())
        if status != 201 or not cookies:
            self._page(502, "Sign-in failed", f"<p>The verifier answered {status}.</p>")
            return
        # rd is the visitor's to choose: only a page of this site is followed
        target = self.site.own_url(form.get("rd", "")) or f"{self.site.origin}/"
        self._redirect(target, cookies)

    def _logout(self) -> None:
        # the verifier judges the browser's request: its cookie, its Origin, and the URL it
        # was sent to
        headers = {"X-Original-URL": f"{self.site.origin}/logout"}
        for name in ("Cookie", "Origin"):
            value = self.headers.get(name)
            if value is not None:
                headers[name] = value
        status, body, cookies = call("DELETE", f"{self.site.verifier}/v1/sessions/current",
                                     headers)
        if status == 403:
            self._page(403, "Refused", f"<pre>{html.escape(body.decode(errors='replace'))}</pre>")
        elif status != 204:
            self._page(502, "Sign-out failed", f"<p>The verifier answered {status}.</p>")
        else:
            self._redirect(f"{self.site.origin}/orders", cookies)

    def log_message(self, format: str, *args: object) -> None:
        sys.stderr.write(f"browser-site: {format % args}\n")
        sys.stderr.flush()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="A small site behind nginx and the verifier")
    parser.add_argument("--bind", default="127.0.0.1:8000", help="HOST:PORT to listen on")
    parser.add_argument("--site", default="http://127.0.0.1:8080",
                        help="the site's origin as the browser sees it (nginx)")
    parser.add_argument("--issuer", default="http://127.0.0.1:8001")
    parser.add_argument("--verifier", default="http://127.0.0.1:8002")
    parser.add_argument("--client-key-file", type=Path, default=Path(".dev/dev-client.key"),
                        help="the issuer client key this site asks for tokens with")
    args = parser.parse_args(argv)
    site = Site(args.site, args.issuer, args.verifier,
                args.client_key_file.read_text().strip())
    host, _, port = args.bind.rpartition(":")
    server = ThreadingHTTPServer((host, int(port)), type("SiteHandler", (Handler,), {"site": site}))

    def stop(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    sys.stderr.write(f"browser-site: listening on {args.bind}, site {site.origin}\n")
    sys.stderr.flush()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
