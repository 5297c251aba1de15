"""Session ids and the session cookie through every integration, and per-route admin rules.

Flask (the README's example), the WSGI middleware, the ASGI middleware (under uvicorn, with
the sync and the async client) and the FastAPI dependencies (the package README's example,
under uvicorn), each in front of the real verifier: the sessions are real logins.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from types import ModuleType
from typing import Annotated, Any

import pytest
import requests
from fastapi import Depends, FastAPI
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import Route
from werkzeug.test import Client

from jwt_auth_client import AsyncVerifierClient, Identity, VerifierClient
from jwt_auth_client.asgi import VerifierMiddleware as AsgiMiddleware
from jwt_auth_client.fastapi import JwtAuth, admin_identity, identity
from jwt_auth_client.wsgi import VerifierMiddleware as WsgiMiddleware
from tests.client.apps import assert_problem, bare_app, bearer, load_example, whoami
from tests.client.clientnet import Verifier, uvicorn_serving
from tests.forge import fresh
from tests.keypairs import KeyPair
from tests.procs import wait_until

pytestmark = pytest.mark.e2e


@dataclass
class Callers:
    """Live sessions of an admin and of a user, a JWT of each, and a session that ended."""

    admin_session: str
    user_session: str
    ended_session: str
    admin_token: str
    user_token: str


@pytest.fixture
def callers(verifier: Verifier, key_pair: KeyPair) -> Iterator[Callers]:
    with VerifierClient(verifier.url) as client:
        admin_token, user_token = fresh(key_pair, "sam", isAdmin=True), fresh(key_pair, "sue")
        ended = client.login(user_token).session_id
        client.logout(ended)
        yield Callers(client.login(admin_token).session_id, client.login(user_token).session_id,
                      ended, admin_token, user_token)


def cookie(session_id: str, name: str = "jwt_auth_session") -> dict[str, str]:
    return {"Cookie": f"theme=dark; {name}={session_id}; lang=en"}


def wsgi_http(app: Any) -> Client:
    """A WSGI test client that sends the Cookie header each request gives (no jar)."""
    return Client(app, use_cookies=False)


@pytest.fixture
def client(verifier: Verifier) -> Iterator[VerifierClient]:
    with VerifierClient(verifier.url, retries=0) as made:
        yield made


# -- Flask: the README example, @require_token on /me and @require_admin on DELETE /users/<id> --


@pytest.fixture
def flask_http(verifier: Verifier, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    module = load_example("flask_app", verifier.url, monkeypatch)
    # without a cookie jar of its own, the test client sends the Cookie header each test gives
    yield module.app.test_client(use_cookies=False)
    module.app.extensions["jwt_auth_client"].client.close()


def test_flask_takes_a_session_id_as_bearer_or_cookie(flask_http: Any, callers: Callers) -> None:
    for headers in (bearer(callers.user_session), cookie(callers.user_session)):
        answer = flask_http.get("/me", headers=headers)
        assert (answer.status_code, answer.json) == (200, {"userId": "sue", "isAdmin": False})
    for headers, code in ((bearer(callers.ended_session), "session_not_found"),
                          (cookie(callers.ended_session), "session_not_found"),
                          # a JWT in the session cookie is no session id: never verified
                          (cookie(callers.user_token), "session_not_found")):
        answer = flask_http.get("/me", headers=headers)
        assert_problem(answer.status_code, answer.headers, answer.data, 401, code,
                       "invalid_token")


def test_flask_require_admin_covers_sessions_and_cookies(
        flask_http: Any, callers: Callers) -> None:
    for headers in (bearer(callers.user_session), cookie(callers.user_session)):
        answer = flask_http.delete("/users/9", headers=headers)
        assert_problem(answer.status_code, answer.headers, answer.data, 403, "admin_required",
                       "insufficient_scope")
    for headers in (bearer(callers.admin_session), cookie(callers.admin_session)):
        answer = flask_http.delete("/users/9", headers=headers)
        assert (answer.status_code, answer.json) == (200, {"deletedBy": "sam", "userId": "9"})
    # Authorization is the caller's explicit choice: it wins over a cookie
    answer = flask_http.delete("/users/9", headers={**bearer(callers.user_session),
                                                    **cookie(callers.admin_session)})
    assert answer.status_code == 403


# -- WSGI: admin_paths beside admin=True and exempt ---------------------------------------------


def test_wsgi_sessions_and_admin_paths(client: VerifierClient, callers: Callers) -> None:
    http = wsgi_http(WsgiMiddleware(bare_app, client, exempt=["/admin/health"],
                                 admin_paths=["/admin", "/ops/"]))
    # a user reaches any path but those under /admin and /ops
    for path in ("/", "/me", "/administrator", "/opsroom"):
        for headers in (bearer(callers.user_session), cookie(callers.user_session),
                        bearer(callers.user_token)):
            answer = http.get(path, headers=headers)
            assert (answer.status_code, answer.json) == (200, {"userId": "sue"}), path
    for path in ("/admin", "/admin/", "/admin/users/9", "/ops", "/ops/restart"):
        for headers in (bearer(callers.user_session), cookie(callers.user_session),
                        bearer(callers.user_token)):
            answer = http.get(path, headers=headers)
            assert_problem(answer.status_code, answer.headers, answer.data, 403,
                           "admin_required", "insufficient_scope")
        for headers in (bearer(callers.admin_session), cookie(callers.admin_session),
                        bearer(callers.admin_token)):
            answer = http.get(path, headers=headers)
            assert (answer.status_code, answer.json) == (200, {"userId": "sam"}), path
    # an exempt path is exempt even under an admin prefix; no credential needed
    assert http.get("/admin/health").json == {"userId": None}
    answer = http.get("/admin/users")
    assert_problem(answer.status_code, answer.headers, answer.data, 401, "token_missing", None)


def test_wsgi_cookie_name(client: VerifierClient, callers: Callers) -> None:
    renamed = wsgi_http(WsgiMiddleware(bare_app, client, cookie_name="sid"))
    assert renamed.get("/", headers=cookie(callers.user_session, "sid")).json == {
        "userId": "sue"}
    answer = renamed.get("/", headers=cookie(callers.user_session))
    assert_problem(answer.status_code, answer.headers, answer.data, 401, "token_missing", None)
    bearer_only = wsgi_http(WsgiMiddleware(bare_app, client, cookie_name=None))
    answer = bearer_only.get("/", headers=cookie(callers.user_session))
    assert_problem(answer.status_code, answer.headers, answer.data, 401, "token_missing", None)
    assert bearer_only.get("/", headers=bearer(callers.user_session)).status_code == 200


def test_path_rules_are_lists_of_absolute_paths(client: VerifierClient) -> None:
    with pytest.raises(TypeError, match="list of paths"):
        WsgiMiddleware(bare_app, client, admin_paths="/admin")
    with pytest.raises(ValueError, match="does not start with /"):
        AsgiMiddleware(whoami, client, admin_paths=["admin"])


# -- ASGI under uvicorn: the sync client in worker threads, the async one awaited ---------------


@contextlib.contextmanager
def starlette_serving(client: VerifierClient | AsyncVerifierClient, **rules: Any) -> Iterator[str]:
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        if isinstance(client, AsyncVerifierClient):
            await client.aclose()  # on the loop that used it

    app = Starlette(routes=[Route("/{path:path}", whoami)], lifespan=lifespan,
                    middleware=[Middleware(AsgiMiddleware, client=client, **rules)])
    with uvicorn_serving(app, lifespan="on") as url:
        yield url


@pytest.mark.parametrize("flavour", ["sync", "async"])
def test_asgi_sessions_and_admin_paths(
        verifier: Verifier, callers: Callers, flavour: str) -> None:
    with contextlib.ExitStack() as stack:
        if flavour == "sync":
            client: VerifierClient | AsyncVerifierClient = stack.enter_context(
                VerifierClient(verifier.url, retries=0))
        else:
            client = AsyncVerifierClient(verifier.url, retries=0)  # closed by the lifespan
        url = stack.enter_context(
            starlette_serving(client, admin_paths=["/admin"], exempt=["/healthz"]))
        check_asgi_routes(url, callers)


def check_asgi_routes(url: str, callers: Callers) -> None:
    """/admin... needs an admin, any other path any caller (test_asgi_sessions_and_admin_paths)."""
    with requests.Session() as http:
        def get(path: str, headers: dict[str, str]) -> requests.Response:
            return http.get(f"{url}{path}", headers=headers, timeout=10)

        for headers in (bearer(callers.user_session), cookie(callers.user_session)):
            answer = get("/me", headers)
            assert (answer.status_code, answer.json()) == (
                200, {"userId": "sue", "isAdmin": False, "session": True})
            answer = get("/admin/users", headers)
            assert_problem(answer.status_code, answer.headers, answer.content, 403,
                           "admin_required", "insufficient_scope")
        for headers in (bearer(callers.admin_session), cookie(callers.admin_session)):
            answer = get("/admin/users", headers)
            assert (answer.status_code, answer.json()) == (
                200, {"userId": "sam", "isAdmin": True, "session": True})
        answer = get("/admin", bearer(callers.admin_token))
        assert (answer.status_code, answer.json()["session"]) == (200, False)
        answer = get("/me", cookie(callers.ended_session))
        assert_problem(answer.status_code, answer.headers, answer.content, 401,
                       "session_not_found", "invalid_token")
        # an exempt path needs no credential
        assert get("/healthz", {}).json() == {"userId": None}


# -- FastAPI: Depends(identity) and Depends(admin_identity) ---------------------------------------


def check_fastapi_routes(url: str, callers: Callers) -> None:
    """/me needs any caller, DELETE /users/<id> an admin (the example's routes)."""
    with requests.Session() as http:
        for headers in (bearer(callers.user_session), cookie(callers.user_session)):
            answer = http.get(f"{url}/me", headers=headers, timeout=10)
            assert (answer.status_code, answer.json()) == (
                200, {"userId": "sue", "isAdmin": False, "session": True})
            answer = http.delete(f"{url}/users/9", headers=headers, timeout=10)
            assert_problem(answer.status_code, answer.headers, answer.content, 403,
                           "admin_required", "insufficient_scope")
        for headers in (bearer(callers.admin_session), cookie(callers.admin_session),
                        bearer(callers.admin_token)):
            answer = http.delete(f"{url}/users/9", headers=headers, timeout=10)
            assert (answer.status_code, answer.json()) == (
                200, {"deletedBy": "sam", "userId": "9"})
        answer = http.get(f"{url}/me", headers=bearer(callers.user_token), timeout=10)
        assert (answer.status_code, answer.json()["session"]) == (200, False)
        for headers, code in (({}, "token_missing"),
                              (cookie(callers.ended_session), "session_not_found"),
                              (bearer("x.y.z"), "token_malformed")):
            answer = http.delete(f"{url}/users/9", headers=headers, timeout=10)
            assert_problem(answer.status_code, answer.headers, answer.content, 401, code,
                           None if code == "token_missing" else "invalid_token")


@pytest.fixture
def fastapi_example(verifier: Verifier, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    return load_example("fastapi_depends", verifier.url, monkeypatch)


def test_fastapi_dependencies_with_the_async_client(
        fastapi_example: ModuleType, callers: Callers) -> None:
    auth = fastapi_example.app.state.jwt_auth
    assert isinstance(auth.client, AsyncVerifierClient)
    with uvicorn_serving(fastapi_example.app, lifespan="on") as url:
        check_fastapi_routes(url, callers)


@pytest.mark.parametrize("given", ["sync client", "url"])
def test_fastapi_dependencies_with_a_sync_client_or_a_url(
        verifier: Verifier, callers: Callers, given: str) -> None:
    app = FastAPI()
    auth = JwtAuth(app, VerifierClient(verifier.url) if given == "sync client" else verifier.url)
    # given a URL, the async client: httpx (the async extra) is installed here
    assert isinstance(auth.client, VerifierClient if given == "sync client"
                      else AsyncVerifierClient)

    @app.get("/me")
    async def me(caller: Annotated[Identity, Depends(identity)]) -> dict[str, Any]:
        return {"userId": caller.user_id, "isAdmin": caller.is_admin, "session": caller.session}

    @app.delete("/users/{user_id}")
    def delete_user(user_id: str,
                    caller: Annotated[Identity, Depends(admin_identity)]) -> dict[str, str]:
        return {"deletedBy": caller.user_id, "userId": user_id}

    with uvicorn_serving(app, lifespan="on") as url:
        check_fastapi_routes(url, callers)


# -- request ids: the app's request and the verifier's check of its session share one id ---------


def test_integrations_pass_the_incoming_request_id_on_for_sessions(
        flask_http: Any, fastapi_example: ModuleType, client: VerifierClient,
        verifier: Verifier, callers: Callers) -> None:
    session = cookie(callers.user_session)
    assert flask_http.get("/me", headers={**session, "X-Request-Id": "flask-s-1"}
                          ).status_code == 200
    assert wsgi_http(WsgiMiddleware(bare_app, client)).get(
        "/", headers={**session, "X-Request-Id": "wsgi-s-1"}).status_code == 200
    with starlette_serving(AsyncVerifierClient(verifier.url)) as url:
        assert requests.get(f"{url}/me", headers={**session, "X-Request-Id": "asgi-s-1"},
                            timeout=10).status_code == 200
    with uvicorn_serving(fastapi_example.app, lifespan="on") as url:
        assert requests.get(f"{url}/me", headers={**session, "X-Request-Id": "fastapi-s-1"},
                            timeout=10).status_code == 200
    for request_id in ("flask-s-1", "wsgi-s-1", "asgi-s-1", "fastapi-s-1"):
        wait_until(lambda rid=request_id: verifier.access_lines(rid) == 1, timeout=10,
                   what=f"the verifier's access line under {request_id}")
