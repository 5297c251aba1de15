"""Small web applications and checks shared by the integration tests of tests/client."""

from __future__ import annotations

import importlib.util
import json
import sys
from types import ModuleType
from typing import Any

import pytest
from starlette.requests import Request
from starlette.responses import JSONResponse

from jwt_auth_client import Identity
from jwt_auth_client.wsgi import ENVIRON_KEY
from tests.procs import REPO

EXAMPLES = REPO / "clients" / "python" / "examples"


def load_example(name: str, verifier_url: str, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """Import an example file as it is, with VERIFIER_URL naming the test's verifier."""
    monkeypatch.setenv("VERIFIER_URL", verifier_url)
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)
    spec.loader.exec_module(module)
    return module


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def assert_problem(
    status: int, headers: Any, body: bytes, expected_status: int, code: str,
    challenge: str | None,
) -> None:
    assert status == expected_status, body
    assert headers["Content-Type"] == "application/problem+json"
    document = json.loads(body)
    assert (document["status"], document["code"]) == (expected_status, code)
    assert document["type"].endswith(code.replace("_", "-"))
    assert document["title"]
    assert document["detail"]
    authenticate = headers["WWW-Authenticate"]
    assert authenticate.startswith('Bearer realm="api"')
    if challenge is None:
        assert "error=" not in authenticate
    else:
        assert f'error="{challenge}"' in authenticate


def bare_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    identity = environ.get(ENVIRON_KEY)
    body = json.dumps({"userId": identity.user_id if isinstance(identity, Identity) else None})
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body.encode()]


async def whoami(request: Request) -> JSONResponse:
    identity: Identity | None = getattr(request.state, "identity", None)
    if identity is None:  # an exempt path
        return JSONResponse({"userId": None})
    return JSONResponse({"userId": identity.user_id, "isAdmin": identity.is_admin,
                         "session": identity.session})
