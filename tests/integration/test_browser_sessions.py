"""Sessions in a browser, through Flask's test client against a real Redis: the cookie a login
sets, forward-auth reading it, the CSRF rule, the login redirect and the logout that clears it.

The whole path in a real browser through real nginx is tests/e2e/test_browser_flow.py.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Callable
from http.cookies import SimpleCookie

import pytest
from flask import Flask

from shared.errors import ConfigError
from tests.forge import fresh
from tests.integration.verifier_http import assert_problem
from tests.keypairs import KeyPair
from verifier.browser import BrowserSettings
from verifier.config import VerifierSettings

LOGIN = "https://login.example.com/signin"
SITE = "https://app.example.com"
# what Traefik's ForwardAuth sends with the original request
TRAEFIK = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "app.example.com",
           "X-Forwarded-Uri": "/orders?page=2"}
BROWSER = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}


@pytest.fixture
def browser_app(make_app: Callable[..., Flask]) -> Flask:
    return make_app(browser=BrowserSettings(login_url=LOGIN, redirect_hosts=(
        "app.example.com", "*.example.org")))


def _login(app: Flask, key_pair: KeyPair, user: str = "uma") -> tuple[str, SimpleCookie]:
    answer = app.test_client().post("/v1/sessions?cookie=true",
                                    json={"token": fresh(key_pair, user)})
    assert answer.status_code == 201
    cookie: SimpleCookie = SimpleCookie(answer.headers["Set-Cookie"])
    session_id: str = answer.get_json()["sessionId"]
    return session_id, cookie


def test_a_login_for_a_browser_sets_the_session_cookie(
    browser_app: Flask, make_app: Callable[..., Flask], key_pair: KeyPair
) -> None:
    session_id, cookie = _login(browser_app, key_pair)
    morsel = cookie["jwt_auth_session"]
    assert morsel.value == session_id
    assert (morsel["httponly"], morsel["secure"], morsel["samesite"], morsel["path"]) == \
        (True, True, "Lax", "/")
    assert morsel["domain"] == ""  # host-only unless VERIFIER_SESSION_COOKIE_DOMAIN
    # as long as the session: 30 days by default
    assert abs(int(morsel["max-age"]) - 30 * 24 * 3600) <= 2

    # without ?cookie=true an API login sets nothing
    plain = browser_app.test_client().post("/v1/sessions", json={"token": fresh(key_pair)})
    assert "Set-Cookie" not in plain.headers

    named = make_app(session_ttl=600, browser=BrowserSettings(
        cookie_name="sid", cookie_domain="example.com"))
    _, cookie = _login(named, key_pair)
    assert cookie["sid"]["domain"] == "example.com"
    assert abs(int(cookie["sid"]["max-age"]) - 600) <= 2


def test_forward_auth_takes_the_cookie_and_authorization_wins(
    browser_app: Flask, key_pair: KeyPair
) -> None:
    session_id, _ = _login(browser_app, key_pair)
    client = browser_app.test_client()
    headers = {"Cookie": f"theme=dark; jwt_auth_session={session_id}; other=1"}
    answer = client.get("/v1/auth", headers=headers)
    assert answer.status_code == 200
    assert answer.headers["X-Auth-User-Id"] == "uma"
    # an explicit credential is the one judged: a bad one is not rescued by the cookie
    refused = client.get("/v1/auth", headers={**headers, "Authorization": "Bearer a.b.c"})
    assert_problem(refused, 401, "token_malformed")
    # a cookie of another name is no session
    assert_problem(client.get("/v1/auth", headers={"Cookie": f"session={session_id}"}), 401,
                   "token_missing")


@pytest.mark.parametrize(("headers", "allowed"), [
    ({"Origin": SITE}, True),
    ({"Origin": "https://app.example.com:443"}, True),  # the default port is the same origin
    ({"Sec-Fetch-Site": "same-origin"}, True),
    ({"Origin": "https://evil.example"}, False),
    ({"Origin": "http://app.example.com"}, False),  # another scheme is another origin
    ({"Origin": "null"}, False),
    ({"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"}, False),
    ({"Sec-Fetch-Site": "same-site"}, False),  # a sibling subdomain is not the site itself
    ({}, False),
])
def test_a_state_changing_request_with_only_the_cookie_must_come_from_the_site(
    browser_app: Flask, key_pair: KeyPair, headers: dict[str, str], allowed: bool
) -> None:
    session_id, _ = _login(browser_app, key_pair)
    client = browser_app.test_client()
    sent = {**TRAEFIK, "X-Forwarded-Method": "POST",
            "Cookie": f"jwt_auth_session={session_id}", **headers}
    answer = client.get("/v1/auth", headers=sent)
    if allowed:
        assert answer.status_code == 200
    else:
        assert_problem(answer, 403, "csrf_refused")
        # a page view is never refused for it, nor is a request with its own credential
        assert client.get("/v1/auth", headers={**sent, "X-Forwarded-Method": "GET"}
                          ).status_code == 200
        token = fresh(key_pair, "uma")
        assert client.post("/v1/auth", headers={**sent, "Authorization": f"Bearer {token}"}
                           ).status_code == 200
    # nginx names the method in X-Original-Method, Envoy sends the request with its own
    nginx = {"X-Original-URL": f"{SITE}/orders", "X-Original-Method": "DELETE",
             "Cookie": f"jwt_auth_session={session_id}", **headers}
    assert (client.get("/v1/auth", headers=nginx).status_code == 200) is allowed
    envoy = {**TRAEFIK, "Cookie": f"jwt_auth_session={session_id}", **headers}
    assert (client.patch("/v1/auth/orders/7", headers=envoy).status_code == 200) is allowed


def test_a_refused_browser_is_sent_to_the_login_page_with_where_it_was_going(
    browser_app: Flask, make_app: Callable[..., Flask]
) -> None:
    client = browser_app.test_client()
    answer = client.get("/v1/auth", headers={**TRAEFIK, **BROWSER})
    assert answer.status_code == 302
    location = urllib.parse.urlsplit(answer.headers["Location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == LOGIN
    assert urllib.parse.parse_qs(location.query) == {"rd": [f"{SITE}/orders?page=2"]}
    assert answer.headers["Cache-Control"] == "no-store"

    # a subdomain of a *. rule is trusted; anything else is never an rd
    sibling = client.get("/v1/auth", headers={**BROWSER, "X-Forwarded-Proto": "https",
                                              "X-Forwarded-Host": "shop.example.org"})
    assert "rd=https%3A%2F%2Fshop.example.org%2F" in sibling.headers["Location"]
    for host in ("evil.example", "app.example.com.evil.example", "example.org",
                 "user@app.example.com"):
        untrusted = client.get("/v1/auth", headers={**BROWSER, "X-Forwarded-Proto": "https",
                                                    "X-Forwarded-Host": host})
        assert (untrusted.status_code, untrusted.headers["Location"]) == (302, LOGIN), host
    for scheme in ("javascript", "ftp"):
        odd = client.get("/v1/auth", headers={**BROWSER, "X-Original-URL":
                                              f"{scheme}://app.example.com/"})
        assert odd.headers["Location"] == LOGIN

    # nginx's auth_request passes only a 401 on: the same Location rides on it
    nginx = client.get("/v1/auth", headers={**BROWSER, "X-Original-URL": f"{SITE}/a?b=c"})
    assert_problem(nginx, 401, "token_missing")
    assert nginx.headers["Location"] == f"{LOGIN}?rd=https%3A%2F%2Fapp.example.com%2Fa%3Fb%3Dc"

    # API clients keep their 401 problem+json: a script, JSON, no login page configured
    for headers in ({**TRAEFIK, "Accept": "application/json"},
                    {**TRAEFIK, **BROWSER, "X-Requested-With": "XMLHttpRequest"}):
        assert_problem(client.get("/v1/auth", headers=headers), 401, "token_missing")
    plain = make_app().test_client().get("/v1/auth", headers={**TRAEFIK, **BROWSER})
    assert_problem(plain, 401, "token_missing")


def test_the_browser_logs_out_with_its_cookie(browser_app: Flask, key_pair: KeyPair) -> None:
    session_id, _ = _login(browser_app, key_pair)
    client = browser_app.test_client()
    cookie = {"Cookie": f"jwt_auth_session={session_id}"}
    refused = client.delete("/v1/sessions/current",
                            headers={**cookie, "Origin": "https://evil.example"})
    assert_problem(refused, 403, "csrf_refused")
    assert client.get("/v1/auth", headers=cookie).status_code == 200
    # a page's script cannot read the cookie; it asks who is logged in
    current = client.get("/v1/sessions/current", headers=cookie)
    assert current.status_code == 200
    assert (current.get_json()["userId"], current.headers["Cache-Control"]) == ("uma", "no-store")
    assert session_id not in current.get_data(as_text=True)  # the cookie is HttpOnly for that

    answer = client.delete("/v1/sessions/current",
                           headers={**cookie, "Sec-Fetch-Site": "same-origin"})
    assert answer.status_code == 204
    cleared = SimpleCookie(answer.headers["Set-Cookie"])["jwt_auth_session"]
    assert (cleared.value, cleared["max-age"]) == ("", "0")
    assert_problem(client.get("/v1/auth", headers=cookie), 401, "session_not_found")
    assert_problem(client.get("/v1/sessions/current", headers=cookie), 404, "session_not_found")
    assert_problem(client.get("/v1/sessions/current"), 404, "session_not_found")
    # again, or with no cookie at all: still 204, still clearing
    again = client.delete("/v1/sessions/current")
    assert again.status_code == 204
    assert "Max-Age=0" in again.headers["Set-Cookie"]


def test_a_backend_logs_the_browser_out_with_its_cookie_origin_and_url(
    browser_app: Flask, key_pair: KeyPair
) -> None:
    """The app's backend calls the verifier for the browser: the browser's Origin is the site's,
    so the backend also says which URL of the site the browser posted to."""
    session_id, _ = _login(browser_app, key_pair)
    client = browser_app.test_client()
    cookie = {"Cookie": f"jwt_auth_session={session_id}"}
    # without that URL the verifier judges the Origin against its own address
    assert_problem(client.delete("/v1/sessions/current", headers={**cookie, "Origin": SITE}),
                   403, "csrf_refused")
    assert client.get("/v1/auth", headers=cookie).status_code == 200
    answer = client.delete("/v1/sessions/current", headers={
        **cookie, "Origin": SITE, "X-Original-URL": f"{SITE}/logout"})
    assert answer.status_code == 204
    assert "Max-Age=0" in answer.headers["Set-Cookie"]
    assert_problem(client.get("/v1/auth", headers=cookie), 401, "session_not_found")


def test_current_is_no_session_id(browser_app: Flask, key_pair: KeyPair) -> None:
    """/v1/sessions/current is the cookie's session, not a session called "current": OPTIONS
    names its own methods, as the API description does, while any other id keeps its GET and
    DELETE."""
    client = browser_app.test_client()
    assert set(client.options("/v1/sessions/current").headers["Allow"].split(", ")) == {
        "GET", "HEAD", "DELETE", "OPTIONS"}
    assert_problem(client.post("/v1/sessions/current"), 405, "method_not_allowed")
    session_id, _ = _login(browser_app, key_pair)
    for path in (f"/v1/sessions/{session_id}", "/v1/sessions/currently"):
        assert set(client.options(path).headers["Allow"].split(", ")) == {
            "GET", "HEAD", "DELETE", "OPTIONS"}
    assert client.get(f"/v1/sessions/{session_id}").status_code == 200
    assert_problem(client.get("/v1/sessions/currently"), 404, "session_not_found")


def test_no_session_id_reaches_a_log_line(
    browser_app: Flask, key_pair: KeyPair, capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    session_id, _ = _login(browser_app, key_pair)
    client = browser_app.test_client()
    cookie = {"Cookie": f"jwt_auth_session={session_id}"}
    client.get("/v1/auth", headers=cookie)
    client.post("/v1/auth", headers={**cookie, **TRAEFIK, "Origin": "https://evil.example"})
    client.delete("/v1/sessions/current", headers={**cookie, "Origin": "http://localhost"})
    logged = capfd.readouterr()
    written = logged.out + logged.err + caplog.text
    assert "/v1/sessions/current" in written  # the access lines were captured
    assert session_id not in written


@pytest.mark.parametrize(("env", "message"), [
    ({"VERIFIER_SESSION_COOKIE": "a b"}, "expected a cookie name"),
    ({"VERIFIER_REDIRECT_HOSTS": "https://app.example.com"}, "is not a host name"),
    ({"VERIFIER_LOGIN_URL": "/login"}, "expected an http:// or https:// URL"),
    ({"VERIFIER_LOGIN_URL": "https://[login/"}, "expected an http:// or https:// URL"),
    ({"VERIFIER_LOGIN_URL": "https://例え.jp/login"}, "in ASCII"),
    ({"VERIFIER_LOGIN_URL": "https://login.example.com/#/signin"}, "without #"),
    ({"VERIFIER_SESSION_COOKIE_SECURE": "false", "VERIFIER_REDIRECT_HOSTS": "app.example.com"},
     "false is for local http only, and app.example.com is not local"),
    ({"VERIFIER_SESSION_COOKIE_SECURE": "false", "VERIFIER_SESSION_COOKIE_DOMAIN": "corp.com"},
     "corp.com is not local"),
])
def test_browser_settings_that_cannot_be_right_stop_the_start(
    key_pair: KeyPair, env: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        VerifierSettings.from_env({"VERIFIER_PUBLIC_KEY_FILE": str(key_pair.public_path), **env})
    assert message in str(caught.value)


def test_local_http_may_go_without_secure(key_pair: KeyPair) -> None:
    settings = VerifierSettings.from_env({
        "VERIFIER_PUBLIC_KEY_FILE": str(key_pair.public_path),
        "VERIFIER_SESSION_COOKIE_SECURE": "false",
        "VERIFIER_REDIRECT_HOSTS": "localhost:8080,127.0.0.1,app.localhost",
        "VERIFIER_LOGIN_URL": "http://localhost:8080/login",
    })
    assert "Secure" not in settings.browser.set_cookie("x", 60)
    assert settings.browser.redirect_hosts == ("localhost:8080", "127.0.0.1", "app.localhost")


def test_url_headers_nothing_can_read_are_no_rd_and_no_error(
    browser_app: Flask, key_pair: KeyPair
) -> None:
    client = browser_app.test_client()
    # an unclosed "[" (urlsplit refuses it), and a backslash a browser reads as the end of the
    # host ("evil.com\.example.org" is evil.com to a browser, under example.org to Python)
    for headers in ({"X-Original-URL": "https://[/"},
                    {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "[app.example.com"},
                    {"X-Original-URL": "https://evil.com\\.example.org/"},
                    {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "evil.com\\.example.org"}):
        answer = client.get("/v1/auth", headers={**BROWSER, **headers})
        assert answer.status_code in (302, 401), headers
        assert answer.headers["Location"] == LOGIN, headers
    session_id, _ = _login(browser_app, key_pair)
    cookie = {"Cookie": f"jwt_auth_session={session_id}"}
    for origin, target in (("https://[x", f"{SITE}/orders"), ("http://[", "https://[/"),
                           ("http://a:port", "http://b:other")):
        forged = client.post("/v1/auth", headers={**cookie, "Origin": origin,
                                                  "X-Original-URL": target})
        assert_problem(forged, 403, "csrf_refused")
    assert_problem(client.delete("/v1/sessions/current", headers={**cookie, "Origin": "http://["}),
                   403, "csrf_refused")
