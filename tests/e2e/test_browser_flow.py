"""A person's path through a site, in headless Chromium, through a real nginx.

Real Redis, a real issuer and verifier (gunicorn), the example site (examples/browser_site.py)
behind nginx, which includes docs/nginx/protect-app.conf as it is for the protected part and
sends ``/login`` and ``/logout`` to the site unchecked. Chromium is Debian's (scripts/bootstrap
--for-tests installs it), driven by Playwright; Playwright's own browser download is never used.

Each step keeps a screenshot and what the browser saw (every hop's method, status and URL, the
page's text) in a folder the test prints: under pytest's tmp path, or
``$JWT_AUTH_ARTIFACTS/browser-flow/`` when that variable is set; ``steps.json`` there holds
them all, and ``pytest -s`` shows a summary.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests
from playwright.sync_api import (
    Browser,
    BrowserContext,
    Page,
    Playwright,
    Request,
    Response,
    sync_playwright,
)

from shared.apikeys import add_client
from tests.keypairs import KeyPair
from tests.nginx import PROTECT_APP, Nginx, upstreams
from tests.procs import (
    REPO,
    RedisServer,
    ServiceProcess,
    free_port,
    http_ok,
    issuer_env,
    stop_process,
    verifier_env,
    wait_until,
)

pytestmark = pytest.mark.e2e

SITE_APP = REPO / "examples" / "browser_site.py"
CHROMIUM = Path(shutil.which("chromium") or "/usr/bin/chromium")
COOKIE = "jwt_auth_session"
WAIT_MS = 10_000
"""Every wait of the browser: a page, a navigation, an element."""


# the stack ------------------------------------------------------------------------------------

class SiteApp:
    """examples/browser_site.py as its own process, its log lines in a file."""

    def __init__(self, folder: Path, site: str, issuer: str, verifier: str, key: str) -> None:
        self.port = free_port()
        self.log_path = folder / "site.log"
        key_file = folder / "client.key"
        key_file.write_text(key + "\n")
        key_file.chmod(0o600)
        self.command = [sys.executable, str(SITE_APP), "--bind", f"127.0.0.1:{self.port}",
                        "--site", site, "--issuer", issuer, "--verifier", verifier,
                        "--client-key-file", str(key_file)]
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(self.command, stdout=log, stderr=subprocess.STDOUT,
                                            start_new_session=True)

        def up() -> bool:
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(f"the site exited:\n{self.log()}")
            return http_ok(f"http://127.0.0.1:{self.port}/healthz")

        wait_until(up, timeout=15, what="examples/browser_site.py")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def received(self, request_line: str) -> int:
        """How many requests starting with ``request_line`` (e.g. "POST /orders") it got."""
        return sum(f'"{request_line}' in line for line in self.log().splitlines())

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)
        self.process = None


class _Attacker(BaseHTTPRequestHandler):
    """Another origin's page: a form that posts itself to the protected site as it loads."""

    target = ""  # the protected site's origin

    def do_GET(self) -> None:
        action, field_html = {
            "/order": ("/orders", '<input name="item" value="forged">'),
            "/logout": ("/logout", ""),
        }.get(self.path, ("/orders", ""))
        body = (f'<!doctype html><html><body><h1>Win a prize</h1>'
                f'<form method="post" action="{self.target}{action}">{field_html}</form>'
                '<script>document.forms[0].submit()</script></body></html>').encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@dataclass
class Stack:
    site: str  # nginx, as the browser sees the site
    issuer: ServiceProcess
    verifier: ServiceProcess
    app: SiteApp
    attacker_port: int
    artifacts: Path
    steps: list[dict[str, Any]] = field(default_factory=list)


def _artifacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = os.environ.get("JWT_AUTH_ARTIFACTS")
    if not base:
        return tmp_path_factory.mktemp("browser-flow")
    folder = Path(base) / "browser-flow"
    folder.mkdir(parents=True, exist_ok=True)
    for old in (*folder.glob("*.png"), folder / "steps.json"):
        old.unlink(missing_ok=True)
    return folder


@pytest.fixture(scope="module")
def stack(
    key_pair: KeyPair, redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    folder = tmp_path_factory.mktemp("browser-stack")
    redis_server.emptied()
    clients = folder / "clients.json"
    client_key = add_client(clients, "website", admin=False, variable="ISSUER_CLIENTS_FILE")
    admins = folder / "admins.json"
    admins.write_text('{"clients": []}')
    port = free_port()
    site = f"http://127.0.0.1:{port}"
    issuer = ServiceProcess("issuer", issuer_env(key_pair, clients, ISSUER_RATE_LIMIT="0"),
                            folder / "issuer.log", workers=1, threads=2)
    # a person's browser is sent to the site's login page; plain http on this machine only
    verifier = ServiceProcess("verifier", verifier_env(
        key_pair, redis_server.url, admins, VERIFIER_LOGIN_URL=f"{site}/login",
        VERIFIER_REDIRECT_HOSTS=f"127.0.0.1:{port}", VERIFIER_SESSION_COOKIE_SECURE="false",
    ), folder / "verifier.log", workers=1, threads=2)
    app = SiteApp(folder, site, issuer.url, verifier.url, client_key)
    # the login and logout pages are the site's, outside the protected location
    nginx = Nginx(
        folder / "nginx",
        upstreams(f"127.0.0.1:{verifier.port}", f"127.0.0.1:{app.port}")
        + f"    server {{\n        listen 127.0.0.1:{port};\n"
          "        location = /login { proxy_pass http://protected_app; }\n"
          "        location = /logout { proxy_pass http://protected_app; }\n"
          f"        include {PROTECT_APP};\n    }}",
        port,
    )
    attacker = ThreadingHTTPServer(("127.0.0.1", 0),
                                   type("Attacker", (_Attacker,), {"target": site}))
    thread = threading.Thread(target=attacker.serve_forever, daemon=True)
    thread.start()
    started: list[Callable[[], None]] = []
    try:
        for part in (issuer, verifier, app, nginx):
            part.start()
            started.append(part.stop)
        yield Stack(site, issuer, verifier, app, attacker.server_address[1],
                    _artifacts(tmp_path_factory))
    finally:
        for stop in reversed(started):
            stop()
        attacker.shutdown()
        attacker.server_close()


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(f"Chromium is not installed ({CHROMIUM} is missing): run "
                    "scripts/bootstrap --for-tests, which installs it, or apt-get install -y "
                    "chromium (Debian's package)",
                    pytrace=False)
    # "localhost" is the cross-site origin below: always 127.0.0.1, where its page listens,
    # never [::1] tried first, so that page loads the same way on every machine
    launched = playwright.chromium.launch(
        executable_path=str(CHROMIUM), args=["--host-resolver-rules=MAP localhost 127.0.0.1"])
    yield launched
    launched.close()


# what the browser saw -------------------------------------------------------------------------

def _hops(response: Response) -> list[dict[str, Any]]:
    """Every hop of a navigation, first to last: method, status, URL."""
    chain = [response.request]
    while chain[0].redirected_from is not None:
        chain.insert(0, chain[0].redirected_from)
    hops = []
    for request in chain:
        answer = request.response()
        hops.append({"method": request.method, "status": answer.status if answer else None,
                     "url": request.url})
    return hops


def _record(stack: Stack, page: Page, name: str, response: Response | None) -> dict[str, Any]:
    """Screenshot and note what the browser shows now, after ``response``."""
    number = len(stack.steps) + 1
    shot = stack.artifacts / f"{number:02d}-{name}.png"
    page.screenshot(path=str(shot), full_page=True)
    step = {
        "step": number, "name": name,
        "hops": _hops(response) if response is not None else [],
        "url": page.url,
        "status": response.status if response is not None else None,
        "text": " ".join(page.inner_text("body").split())[:160],
        "screenshot": shot.name,
    }
    stack.steps.append(step)
    (stack.artifacts / "steps.json").write_text(json.dumps(stack.steps, indent=2) + "\n")
    return step


def _navigate(page: Page, origin: str, action: Callable[[], object]) -> Response:
    """Run ``action`` and return the last answer of the navigation it starts on ``origin``
    (its redirects followed), once that page has loaded."""
    def final(response: Response) -> bool:
        return (response.request.is_navigation_request()
                and response.url.startswith(origin + "/")
                and not 300 <= response.status < 400)

    with page.expect_response(final, timeout=WAIT_MS) as answer:
        action()
    page.wait_for_load_state("load", timeout=WAIT_MS)
    return answer.value


def _forged(page: Page, origin: str, attacker_page: str) -> Response:
    """Open another origin's page, whose form posts itself to ``origin`` as it loads: the
    answer to that post (``goto`` waits only for the page's own answer, not for a load that
    the post cuts short)."""
    return _navigate(page, origin, lambda: page.goto(attacker_page, wait_until="commit"))


def _sent(headers: dict[str, str]) -> str:
    """What a forged post carried, as the browser sent it."""
    cookie = "with" if f"{COOKIE}=" in headers.get("cookie", "") else "without"
    return f"posted by Origin {headers.get('origin')}, {cookie} the session cookie"


def _login_url(stack: Stack, rd: str) -> str:
    return f"{stack.site}/login?{urllib.parse.urlencode({'rd': rd})}"


def _summary(title: str, steps: list[dict[str, Any]]) -> str:
    lines = [title]
    for step in steps:
        hops = " -> ".join(f"{hop['method']} {hop['status']} {hop['url']}" for hop in step["hops"])
        lines.append(f"{step['step']:2d}. {step['name']}: {hops}")
        lines.append(f"      shows: {step['text'][:100]}")
        if "note" in step:
            lines.append(f"      {step['note']}")
    return "\n".join(lines)


@pytest.fixture
def page(browser: Browser, stack: Stack) -> Iterator[Page]:
    context: BrowserContext = browser.new_context()
    context.set_default_timeout(WAIT_MS)
    context.set_default_navigation_timeout(WAIT_MS)
    opened = context.new_page()
    print(f"\nbrowser-flow artifacts: {stack.artifacts}")
    yield opened
    context.close()


def _session_cookie(context: BrowserContext) -> dict[str, Any] | None:
    return next((dict(cookie) for cookie in context.cookies() if cookie["name"] == COOKIE), None)


# the person's path ----------------------------------------------------------------------------

def test_a_person_is_sent_to_log_in_let_in_refused_cross_site_and_logged_out(
    page: Page, stack: Stack
) -> None:
    site, context = stack.site, page.context
    first = len(stack.steps)
    protected = f"{site}/orders?x=1"

    # 1. a protected page, no session: nginx answers the verifier's login redirect
    seen = _record(stack, page, "protected-page-sends-to-login",
                   _navigate(page, site, lambda: page.goto(protected)))
    assert [(hop["method"], hop["status"]) for hop in seen["hops"]] == [("GET", 302),
                                                                       ("GET", 200)]
    assert page.url == _login_url(stack, protected)
    assert page.title() == "Sign in"

    # 2. signing in: the site's backend gets a token and a session, the browser the cookie,
    # and rd brings it back to the page it asked for, which the app now serves
    page.fill("input[name=user]", "alice")
    seen = _record(stack, page, "signed-in-back-on-the-page",
                   _navigate(page, site, lambda: page.click("button[type=submit]")))
    assert [(hop["method"], hop["status"], hop["url"]) for hop in seen["hops"]] == [
        ("POST", 303, f"{site}/login"), ("GET", 200, protected)]
    assert page.url == protected
    assert page.inner_text("#who") == "Signed in as alice"  # X-Auth-User-Id, from nginx
    cookie = _session_cookie(context)
    assert cookie is not None
    assert (cookie["httpOnly"], cookie["sameSite"], cookie["path"]) == (True, "Lax", "/")
    assert page.evaluate("document.cookie") == ""  # no script of the page can read it
    session_id = cookie["value"]

    # 3. the site's own form posts (same origin): the CSRF rule lets it through
    page.fill("input[name=item]", "book")
    seen = _record(stack, page, "own-form-post-accepted",
                   _navigate(page, site, lambda: page.click("text=Place order")))
    assert [(hop["method"], hop["status"]) for hop in seen["hops"]] == [("POST", 303),
                                                                       ("GET", 200)]
    assert page.inner_text("#orders") == "book"
    assert stack.app.received("POST /orders") == 1

    # 4. another origin of the same site (127.0.0.1, another port) posts a form to it: the
    # browser sends the cookie (SameSite=Lax lets same-site posts carry it), so the refusal
    # is the verifier's Origin check: 403 csrf_refused, and the app never sees the post
    attacker = f"http://127.0.0.1:{stack.attacker_port}"
    posted: list[Request] = []
    page.on("request", lambda request: posted.append(request) if request.method == "POST"
            else None)
    seen = _record(stack, page, "same-site-cross-origin-post-refused-by-verifier",
                   _forged(page, site, f"{attacker}/order"))
    assert [(hop["method"], hop["status"], hop["url"]) for hop in seen["hops"]] == [
        ("POST", 403, f"{site}/orders")]
    assert json.loads(page.inner_text("body"))["code"] == "csrf_refused"
    forged = posted[-1].all_headers()
    seen["note"] = _sent(forged)
    assert f"{COOKIE}={session_id}" in forged.get("cookie", ""), forged
    assert forged["origin"] == attacker
    assert stack.app.received("POST /orders") == 1

    # 5. another site (localhost is not 127.0.0.1's site) posts the same form: the browser
    # keeps the SameSite=Lax cookie off it, so the verifier sees no session and the browser
    # goes to the login page; the app never sees the post either
    cross_site = f"http://localhost:{stack.attacker_port}"
    seen = _record(stack, page, "cross-site-post-sent-without-cookie",
                   _forged(page, site, f"{cross_site}/order"))
    assert [(hop["method"], hop["status"]) for hop in seen["hops"]] == [("POST", 302),
                                                                       ("GET", 200)]
    assert page.url == _login_url(stack, f"{site}/orders")
    forged = posted[-1].all_headers()
    seen["note"] = _sent(forged)
    assert (forged["origin"], "cookie" in forged) == (cross_site, False), forged
    assert stack.app.received("POST /orders") == 1

    # 6. another origin posts the logout form: the site asks the verifier with the browser's
    # Cookie and Origin, the verifier refuses (403) and the session lives on
    seen = _record(stack, page, "cross-origin-logout-refused",
                   _forged(page, site, f"{attacker}/logout"))
    assert [(hop["method"], hop["status"]) for hop in seen["hops"]] == [("POST", 403)]
    assert "csrf_refused" in page.inner_text("body")
    forged = posted[-1].all_headers()
    seen["note"] = _sent(forged)
    assert f"{COOKIE}={session_id}" in forged.get("cookie", ""), forged

    # 7. the session lives on, and nothing forged reached the app
    seen = _record(stack, page, "still-signed-in",
                   _navigate(page, site, lambda: page.goto(f"{site}/orders")))
    assert seen["status"] == 200
    assert page.inner_text("#who") == "Signed in as alice"
    assert page.inner_text("#orders") == "book"

    # 8. signing out: the session ends, the cookie is cleared, and the protected page the
    # site sends the browser to sends it on to the login page
    seen = _record(stack, page, "signed-out-sent-to-login",
                   _navigate(page, site, lambda: page.click("text=Sign out")))
    assert [(hop["method"], hop["status"], hop["url"]) for hop in seen["hops"]] == [
        ("POST", 303, f"{site}/logout"), ("GET", 302, f"{site}/orders"),
        ("GET", 200, _login_url(stack, f"{site}/orders"))]
    assert _session_cookie(context) is None

    # 9. the protected page again: the login page
    seen = _record(stack, page, "protected-page-after-logout-sends-to-login",
                   _navigate(page, site, lambda: page.goto(protected)))
    assert [(hop["method"], hop["status"]) for hop in seen["hops"]] == [("GET", 302),
                                                                       ("GET", 200)]
    assert page.url == _login_url(stack, protected)

    # 10. the old cookie, put back: the session itself has ended, not just the cookie
    context.add_cookies([{"name": COOKIE, "value": session_id, "url": site}])
    seen = _record(stack, page, "old-cookie-refused",
                   _navigate(page, site, lambda: page.goto(protected)))
    assert [(hop["method"], hop["status"]) for hop in seen["hops"]] == [("GET", 302),
                                                                       ("GET", 200)]
    assert page.url == _login_url(stack, protected)
    sessions = requests.get(f"{stack.verifier.url}/v1/sessions/{session_id}", timeout=10)
    assert sessions.status_code == 404, sessions.text

    # 11. a login link whose rd is another origin: the site signs the person in and keeps
    # them on its own pages
    page.goto(_login_url(stack, f"{cross_site}/order"))
    page.fill("input[name=user]", "bob")
    seen = _record(stack, page, "foreign-rd-not-followed",
                   _navigate(page, site, lambda: page.click("button[type=submit]")))
    assert [(hop["method"], hop["status"], hop["url"]) for hop in seen["hops"]] == [
        ("POST", 303, f"{site}/login"), ("GET", 200, f"{site}/")]
    assert page.inner_text("#who") == "Signed in as bob"

    (stack.artifacts / "steps.json").write_text(json.dumps(stack.steps, indent=2) + "\n")
    print(_summary("browser-flow: the person's path", stack.steps[first:]))


# the API documentation, in the same browser ---------------------------------------------------

_METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")


def _operations(document: dict[str, Any]) -> set[tuple[str, str]]:
    return {(method.upper(), path) for path, item in document["paths"].items()
            for method in item if method in _METHODS}


def test_swagger_ui_shows_every_operation_of_both_services_without_leaving_the_machine(
    page: Page, stack: Stack
) -> None:
    first = len(stack.steps)
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    for service in (stack.issuer, stack.verifier):
        document = requests.get(f"{service.url}/openapi.json", timeout=10).json()
        expected = _operations(document)
        response = page.goto(f"{service.url}/docs")
        assert response is not None
        # Swagger UI renders every operation at once (docExpansion "list") once it has the
        # document: wait for that many, then compare them one by one
        page.wait_for_function(
            f"document.querySelectorAll('.opblock').length >= {len(expected)}",
            timeout=WAIT_MS)
        shown = page.eval_on_selector_all(
            ".opblock",
            """blocks => blocks.map(block => [
                block.querySelector('.opblock-summary-method').textContent.trim(),
                block.querySelector('[data-path]').getAttribute('data-path')])""")
        step = _record(stack, page, f"{service.service}-swagger-ui", response)
        step["note"] = f"{len(shown)} operations shown, {len(expected)} in /openapi.json"
        assert response.status == 200
        assert len(shown) == len(expected), shown
        assert {(method, path) for method, path in shown} == expected
    (stack.artifacts / "steps.json").write_text(json.dumps(stack.steps, indent=2) + "\n")
    # Swagger UI comes from the package: nothing but the two services was asked for anything
    elsewhere = [url for url in requested
                 if urllib.parse.urlsplit(url).hostname != "127.0.0.1"]
    assert elsewhere == [], elsewhere
    assert len(requested) >= 4  # each page, its script and style, the document
    print(_summary("browser-flow: Swagger UI", stack.steps[first:]))
