"""docs/nginx/protect-app.conf, run by a real nginx in front of a real verifier and a small app.

The docs file is included as it is; the test supplies only what a site supplies: a main
nginx.conf (pid and log paths here, the two upstreams ``jwt_auth_verifier`` and
``protected_app``, and a server block with a free port that includes the docs file).
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest
import requests

from shared.apikeys import add_client
from tests.forge import fresh
from tests.keypairs import KeyPair
from tests.nginx import PROTECT_APP, Nginx, upstreams
from tests.procs import RedisServer, ServiceProcess, free_port, verifier_env, wait_until

pytestmark = pytest.mark.e2e


class _Echo(BaseHTTPRequestHandler):
    """The protected app: answers what it received, as JSON, so the test sees it."""

    seen: ClassVar[list[str]] = []

    def _answer(self) -> None:
        self.seen.append(self.requestline)
        length = int(self.headers.get("Content-Length") or 0)
        body = json.dumps({
            "path": self.path,
            "method": self.command,
            "body": self.rfile.read(length).decode() if length else "",
            "headers": {name.lower(): value for name, value in self.headers.items()},
        }).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_DELETE = _answer

    def log_message(self, format: str, *args: object) -> None:
        pass


@dataclass
class Site:
    nginx: Nginx
    verifier: ServiceProcess
    app_requests: list[str]


@pytest.fixture(scope="module")
def site(
    key_pair: KeyPair, redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Site]:
    folder = tmp_path_factory.mktemp("nginx-forward-auth")
    redis_server.emptied()
    admins = folder / "admins.json"
    add_client(admins, "ops", admin=True, variable="VERIFIER_ADMIN_KEYS_FILE")
    port = free_port()
    # a person's browser is sent to the site's login page; plain http on this machine only
    verifier = ServiceProcess("verifier", verifier_env(
        key_pair, redis_server.url, admins, VERIFIER_LOGIN_URL=f"http://127.0.0.1:{port}/login",
        VERIFIER_REDIRECT_HOSTS=f"127.0.0.1:{port}", VERIFIER_SESSION_COOKIE_SECURE="false",
    ), folder / "verifier.log", workers=1)
    app_requests: list[str] = []
    app = ThreadingHTTPServer(("127.0.0.1", 0), type("Echo", (_Echo,), {"seen": app_requests}))
    thread = threading.Thread(target=app.serve_forever, daemon=True)
    thread.start()
    nginx = Nginx(
        folder / "nginx",
        upstreams(f"127.0.0.1:{verifier.port}", f"127.0.0.1:{app.server_address[1]}")
        + f"    server {{\n        listen 127.0.0.1:{port};\n        include {PROTECT_APP};\n"
          "    }",
        port,
    )
    try:
        verifier.start()
        nginx.start()
        yield Site(nginx, verifier, app_requests)
    finally:
        nginx.stop()
        verifier.stop()
        app.shutdown()
        app.server_close()


def _get(site: Site, credential: str | None, path: str = "/orders/7?x=1",
         **headers: str) -> requests.Response:
    if credential is not None:
        headers["Authorization"] = f"Bearer {credential}"
    return requests.get(f"{site.nginx.url}{path}", headers=headers, timeout=10)


def _assert_refused(response: requests.Response, *, without_credential: bool = False) -> None:
    assert response.status_code == 401, response.text
    assert response.headers["Content-Type"] == "application/problem+json"
    # RFC 6750 3.1: no credential is no error, only the challenge
    assert response.headers["WWW-Authenticate"] == (
        'Bearer realm="jwt-auth"' if without_credential else 'Bearer error="invalid_token"')
    body = response.json()
    assert (body["status"], body["code"]) == (401, "authentication_required")


def test_good_token_reaches_the_app_with_the_users_identity(
    site: Site, key_pair: KeyPair
) -> None:
    token = fresh(key_pair, "alice", isAdmin=True)
    # a client's own identity headers never reach the app: the verifier's replace them
    response = _get(site, token, **{"X-Auth-User-Id": "mallory", "X-Auth-Is-Admin": "true",
                                    "X-Auth-User-Id-Encoding": "percent"})
    assert response.status_code == 200, response.text
    seen = response.json()
    assert seen["path"] == "/orders/7?x=1"
    assert seen["headers"]["x-auth-user-id"] == "alice"
    assert seen["headers"]["x-auth-is-admin"] == "true"
    assert seen["headers"]["x-auth-provider"] == "jwt"
    assert "x-auth-user-id-encoding" not in seen["headers"]
    assert seen["headers"]["authorization"] == f"Bearer {token}"

    # the body reaches the app (only the check goes without it), and so does the method
    posted = requests.post(f"{site.nginx.url}/orders", data="hello",
                           headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert posted.status_code == 200, posted.text
    assert (posted.json()["method"], posted.json()["body"]) == ("POST", "hello")

    # an id that cannot travel as is arrives percent-encoded, and says so
    odd = _get(site, fresh(key_pair, "zoë", isAdmin=False)).json()["headers"]
    assert (odd["x-auth-user-id"], odd["x-auth-user-id-encoding"]) == ("zo%C3%AB", "percent")
    assert odd["x-auth-is-admin"] == "false"


def test_the_request_id_reaches_the_verifier_and_the_app(site: Site, key_pair: KeyPair) -> None:
    """The client's X-Request-Id, or nginx's own: the same in the check and at the app."""
    token = fresh(key_pair, "rid")
    seen = _get(site, token, **{"X-Request-Id": "from-the-client-1"}).json()["headers"]
    assert seen["x-request-id"] == "from-the-client-1"
    generated = _get(site, token).json()["headers"]["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", generated), generated

    def logged() -> bool:
        lines = site.verifier.output()
        return "request_id=from-the-client-1" in lines and f"request_id={generated}" in lines

    wait_until(logged, timeout=10, what="both ids on the verifier's access lines")


def test_bad_or_missing_credentials_get_a_401_problem_and_never_reach_the_app(
    site: Site, key_pair: KeyPair, other_key_pair: KeyPair
) -> None:
    before = len(site.app_requests)
    _assert_refused(_get(site, None), without_credential=True)
    for credential in ("not.a.jwt", fresh(other_key_pair, "alice"),
                       fresh(key_pair, "alice", lifetime=-120), "no-such-session"):
        _assert_refused(_get(site, credential))
    assert len(site.app_requests) == before


def test_session_id_works_and_logout_and_revocation_apply_at_once(
    site: Site, key_pair: KeyPair
) -> None:
    token = fresh(key_pair, "bob")
    login = requests.post(f"{site.verifier.url}/v1/sessions", json={"token": token}, timeout=10)
    assert login.status_code == 201, login.text
    session_id = login.json()["sessionId"]
    by_session = _get(site, session_id)
    assert by_session.status_code == 200, by_session.text
    assert by_session.json()["headers"]["x-auth-user-id"] == "bob"

    # revoked: the very next request through nginx is refused (no cache in between)
    assert _get(site, token).status_code == 200
    revoked = requests.post(f"{site.verifier.url}/v1/revocations", json={"token": token},
                            timeout=10)
    assert revoked.status_code == 204, revoked.text
    _assert_refused(_get(site, token))

    ended = requests.delete(f"{site.verifier.url}/v1/sessions/{session_id}", timeout=10)
    assert ended.status_code == 204
    _assert_refused(_get(site, session_id))


def _assert_unavailable(response: requests.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["Content-Type"] == "application/problem+json"
    assert response.headers["Retry-After"] == "5"
    body = response.json()
    assert (body["status"], body["code"]) == (503, "auth_unavailable")


def test_verifier_down_or_without_redis_gives_503_problem_with_retry_after(
    site: Site, key_pair: KeyPair, redis_server: RedisServer
) -> None:
    token = fresh(key_pair, "carol")
    assert _get(site, token).status_code == 200
    before = len(site.app_requests)

    # the verifier cannot decide (its Redis is gone: 503 store_unavailable)
    redis_server.kill()
    try:
        _assert_unavailable(_get(site, fresh(key_pair, "carol")))
    finally:
        redis_server.start()

    # the verifier itself is gone
    site.verifier.stop()
    try:
        _assert_unavailable(_get(site, token))
    finally:
        site.verifier.start()
    # fail closed: nothing reached the app meanwhile
    assert len(site.app_requests) == before
    assert _get(site, token).status_code == 200


def test_a_browser_is_sent_to_log_in_then_its_cookie_lets_it_in(
    site: Site, key_pair: KeyPair
) -> None:
    page = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
    sent_away = requests.get(f"{site.nginx.url}/orders/7?x=1", headers=page, timeout=10,
                             allow_redirects=False)
    assert sent_away.status_code == 302, sent_away.text
    assert sent_away.headers["Location"] == (
        f"http://127.0.0.1:{site.nginx.port}/login?rd=http%3A%2F%2F127.0.0.1%3A"
        f"{site.nginx.port}%2Forders%2F7%3Fx%3D1")
    # the login page itself is the site's: here the echo app behind the same nginx would
    # refuse it too, which is why a real site leaves /login out of the protected location

    login = requests.post(f"{site.verifier.url}/v1/sessions?cookie=true",
                          json={"token": fresh(key_pair, "bea")}, timeout=10)
    cookie = login.headers["Set-Cookie"].split(";")[0]
    let_in = requests.get(f"{site.nginx.url}/orders/7", headers={**page, "Cookie": cookie},
                          timeout=10, allow_redirects=False)
    assert let_in.status_code == 200, let_in.text
    assert let_in.json()["headers"]["x-auth-user-id"] == "bea"

    # a form another site posts, carrying the cookie: refused before the app sees it
    before = len(site.app_requests)
    forged = requests.post(f"{site.nginx.url}/orders", data="amount=1000",
                           headers={"Cookie": cookie, "Origin": "https://evil.example"},
                           timeout=10, allow_redirects=False)
    assert forged.status_code == 403, forged.text
    assert forged.json()["code"] == "csrf_refused"
    own = requests.post(f"{site.nginx.url}/orders", data="amount=1",
                        headers={"Cookie": cookie, "Origin": site.nginx.url}, timeout=10)
    assert own.status_code == 200, own.text
    assert len(site.app_requests) == before + 1
