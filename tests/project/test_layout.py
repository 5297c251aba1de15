"""Domain code does not know how it is served.

The token core (verification, revocation, sessions, keys, issuance, signing) imports nothing of
the serving layer (``shared.web``), of gunicorn, of the ASGI adapter or of Flask, directly or
through another module of ours: a change of server is then a change of ``shared.web`` and the
route modules (``*/app.py``, ``*/hotpath.py``) only.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOMAIN = [
    "verifier.service", "verifier.verification", "verifier.store", "verifier.keyset",
    "verifier.mirror", "verifier.issuers", "verifier.redisconn",
    "issuer.issuance", "issuer.signing", "issuer.keyring", "issuer.ratelimit",
]
SERVING = ("shared.web", "gunicorn", "a2wsgi", "asgiref", "uvloop", "flask", "werkzeug")
OURS = ("shared", "issuer", "verifier", "jwt_auth")


def _imports(module: str) -> set[str]:
    """The modules ``module``'s source imports (absolute names, any depth in the file)."""
    path = REPO / (module.replace(".", "/") + ".py")
    if not path.exists():
        path = REPO / module.replace(".", "/") / "__init__.py"
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            # "from shared import web" names a module too
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def _is_module_of_ours(name: str) -> bool:
    if name.split(".")[0] not in OURS:
        return False
    path = REPO / name.replace(".", "/")
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


def _reached(start: str) -> dict[str, str]:
    """Every module reached from ``start`` through our own modules, with who imported it."""
    seen = {start: ""}
    todo = [start]
    while todo:
        module = todo.pop()
        for name in _imports(module):
            if name in seen:
                continue
            seen[name] = module
            if _is_module_of_ours(name):
                todo.append(name)
    return seen


@pytest.mark.parametrize("module", DOMAIN)
def test_a_domain_module_reaches_no_serving_code(module: str) -> None:
    reached = _reached(module)
    serving = {name: by for name, by in reached.items()
               if any(name == s or name.startswith(s + ".") for s in SERVING)}
    assert not serving, f"{module} reaches serving code: " + ", ".join(
        f"{name} (imported by {by})" for name, by in sorted(serving.items()))


def test_the_check_sees_an_import_of_serving_code() -> None:
    # the route modules do import it: the walk must find that, or it proves nothing above
    assert "shared.web.hot" in _reached("verifier.hotpath")
    assert any(name.startswith("shared.web") for name in _reached("issuer.app"))
