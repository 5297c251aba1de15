"""The Flask extension, the WSGI and the ASGI middleware, each in front of the real verifier.

The Flask app is the README's example file itself; the ASGI middleware runs under a real
uvicorn server, in a Starlette app and in the README's FastAPI example.
"""

from __future__ import annotations

from collections.abc import Iterator
from types import ModuleType

import pytest
import requests
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import Route
from werkzeug.test import Client

from jwt_auth_client import VerifierClient
from jwt_auth_client.asgi import VerifierMiddleware as AsgiMiddleware
from jwt_auth_client.wsgi import VerifierMiddleware as WsgiMiddleware
from tests.client.apps import EXAMPLES, assert_problem, bare_app, bearer, load_example, whoami
from tests.client.clientnet import Verifier, uvicorn_serving
from tests.forge import fresh
from tests.keypairs import KeyPair
from tests.procs import REPO, free_port, wait_until

pytestmark = pytest.mark.e2e

# -- Flask: the README example --------------------------------------------------------------


@pytest.fixture
def flask_example(verifier: Verifier, monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    module = load_example("flask_app", verifier.url, monkeypatch)
    yield module
    module.app.extensions["jwt_auth_client"].client.close()


def test_flask_require_token_sets_g_identity(
    flask_example: ModuleType, key_pair: KeyPair
) -> None:
    answer = flask_example.app.test_client().get(
        "/me", headers=bearer(fresh(key_pair, "erin", isAdmin=True)))
    assert answer.status_code == 200, answer.text
    assert answer.json == {"userId": "erin", "isAdmin": True}


def test_flask_refusals_are_problems_with_a_challenge(
    flask_example: ModuleType, key_pair: KeyPair, other_key_pair: KeyPair
) -> None:
    http = flask_example.app.test_client()
    cases = [
        ({}, 401, "token_missing", None),
        ({"Authorization": "Basic dXNlcjpwdw=="}, 401, "token_missing", None),
        (bearer(fresh(other_key_pair)), 401, "signature_invalid", "invalid_token"),
        (bearer(fresh(key_pair, lifetime=-3600)), 401, "token_expired", "invalid_token"),
    ]
    for headers, status, code, challenge in cases:
        answer = http.get("/me", headers=headers)
        assert_problem(answer.status_code, answer.headers, answer.data, status, code, challenge)


def test_flask_require_admin(flask_example: ModuleType, key_pair: KeyPair) -> None:
    http = flask_example.app.test_client()
    answer = http.delete("/users/9", headers=bearer(fresh(key_pair, "frank")))
    assert_problem(answer.status_code, answer.headers, answer.data, 403, "admin_required",
                   "insufficient_scope")
    answer = http.delete("/users/9", headers=bearer(fresh(key_pair, "gina", isAdmin=True)))
    assert answer.status_code == 200, answer.text
    assert answer.json == {"deletedBy": "gina", "userId": "9"}
    answer = http.delete("/users/9")
    assert_problem(answer.status_code, answer.headers, answer.data, 401, "token_missing", None)


def test_flask_says_503_when_the_verifier_is_away(
    key_pair: KeyPair, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = load_example("flask_app", f"http://127.0.0.1:{free_port()}", monkeypatch)
    client = module.app.extensions["jwt_auth_client"].client
    client.retries, client.backoff = 1, 0.01
    try:
        answer = module.app.test_client().get("/me", headers=bearer(fresh(key_pair)))
    finally:
        client.close()
    assert answer.status_code == 503
    assert answer.headers["Content-Type"] == "application/problem+json"
    assert answer.headers["Retry-After"] == "1"
    assert answer.json["code"] == "verifier_unavailable"


# -- WSGI -------------------------------------------------------------------------------------


@pytest.fixture
def client(verifier: Verifier) -> Iterator[VerifierClient]:
    with VerifierClient(verifier.url, retries=0) as made:
        yield made


def test_wsgi_middleware(client: VerifierClient, key_pair: KeyPair) -> None:
    http = Client(WsgiMiddleware(bare_app, client, exempt=["/healthz"]))
    answer = http.get("/anything", headers=bearer(fresh(key_pair, "hank")))
    assert (answer.status_code, answer.json) == (200, {"userId": "hank"})

    answer = http.get("/anything")
    assert_problem(answer.status_code, answer.headers, answer.data, 401, "token_missing", None)
    answer = http.get("/anything", headers=bearer("not.a.token"))
    assert_problem(answer.status_code, answer.headers, answer.data, 401, "token_malformed",
                   "invalid_token")
    # without a dot it is a session id, as the verifier's forward-auth has it
    answer = http.get("/anything", headers=bearer("not-a-token"))
    assert_problem(answer.status_code, answer.headers, answer.data, 401, "session_not_found",
                   "invalid_token")
    # an exempt path reaches the application without a token
    assert Client(WsgiMiddleware(bare_app, client, exempt=["/healthz"])).get(
        "/healthz").json == {"userId": None}

    admin_only = Client(WsgiMiddleware(bare_app, client, admin=True))
    answer = admin_only.get("/", headers=bearer(fresh(key_pair, "ivy")))
    assert_problem(answer.status_code, answer.headers, answer.data, 403, "admin_required",
                   "insufficient_scope")
    answer = admin_only.get("/", headers=bearer(fresh(key_pair, "ivy", isAdmin=True)))
    assert (answer.status_code, answer.json) == (200, {"userId": "ivy"})


# -- ASGI: Starlette and the README's FastAPI example, under uvicorn -------------------------


def test_asgi_middleware_in_starlette(client: VerifierClient, key_pair: KeyPair) -> None:
    app = Starlette(
        routes=[Route("/me", whoami)],
        middleware=[Middleware(AsgiMiddleware, client=client, admin=True)],
    )
    with uvicorn_serving(app) as url, requests.Session() as http:
        answer = http.get(f"{url}/me", headers=bearer(fresh(key_pair, "jo", isAdmin=True)),
                          timeout=10)
        assert (answer.status_code, answer.json()) == (200, {"userId": "jo", "isAdmin": True,
                                                             "session": False})

        answer = http.get(f"{url}/me", timeout=10)
        assert_problem(answer.status_code, answer.headers, answer.content, 401,
                       "token_missing", None)
        answer = http.get(f"{url}/me", headers=bearer(fresh(key_pair, lifetime=-3600)),
                          timeout=10)
        assert_problem(answer.status_code, answer.headers, answer.content, 401,
                       "token_expired", "invalid_token")
        answer = http.get(f"{url}/me", headers=bearer(fresh(key_pair, "kim")), timeout=10)
        assert_problem(answer.status_code, answer.headers, answer.content, 403,
                       "admin_required", "insufficient_scope")


def test_fastapi_example(verifier: Verifier, key_pair: KeyPair,
                         monkeypatch: pytest.MonkeyPatch) -> None:
    module = load_example("fastapi_app", verifier.url, monkeypatch)
    try:
        with uvicorn_serving(module.app) as url, requests.Session() as http:
            answer = http.get(f"{url}/me", headers=bearer(fresh(key_pair, "lee")), timeout=10)
            assert (answer.status_code, answer.json()) == (200,
                                                           {"userId": "lee", "isAdmin": False})
            answer = http.get(f"{url}/me", headers=bearer("x.y.z"), timeout=10)
            assert_problem(answer.status_code, answer.headers, answer.content, 401,
                           "token_malformed", "invalid_token")
    finally:
        module.verifier.close()


def test_integrations_pass_the_incoming_request_id_on(
        flask_example: ModuleType, client: VerifierClient, verifier: Verifier,
        key_pair: KeyPair) -> None:
    """The app's request and the verifier's check of its token are logged under one id."""
    good = fresh(key_pair, "max")
    flask_answer = flask_example.app.test_client().get(
        "/me", headers={**bearer(good), "X-Request-Id": "flask-in-1"})
    assert flask_answer.status_code == 200
    wsgi_answer = Client(WsgiMiddleware(bare_app, client)).get(
        "/", headers={**bearer(good), "X-Request-Id": "wsgi-in-1"})
    assert wsgi_answer.status_code == 200
    app = Starlette(routes=[Route("/me", whoami)],
                    middleware=[Middleware(AsgiMiddleware, client=client)])
    with uvicorn_serving(app) as url:
        asgi_answer = requests.get(f"{url}/me", timeout=10,
                                   headers={**bearer(good), "X-Request-Id": "asgi-in-1"})
    assert asgi_answer.status_code == 200
    for request_id in ("flask-in-1", "wsgi-in-1", "asgi-in-1"):
        wait_until(lambda rid=request_id: verifier.access_lines(rid) == 1, timeout=10,
                   what=f"the verifier's access line under {request_id}")


def test_examples_are_short() -> None:
    """The README promises ten-line examples: count their lines of code."""
    for name in ("flask_app.py", "fastapi_app.py"):
        lines = [line for line in (EXAMPLES / name).read_text().splitlines()
                 if line.strip() and not line.startswith(("import", "from"))]
        assert len(lines) <= 10, (name, lines)


def test_the_readme_shows_the_example_files_as_they_are() -> None:
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Python client", 1)[1].split("\n## ", 1)[0]
    for name in ("flask_app.py", "fastapi_app.py"):
        code = (EXAMPLES / name).read_text().rstrip()
        assert f"```python\n{code}\n```" in section, name
