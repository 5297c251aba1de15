"""Each service's list of the variables it reads (``VARIABLES``) is the truth: every variable
the code reads is in it, and the README documents every one of them.

The typo check (``shared.config.unknown_variables``) warns about any variable of ours that is
not in the list, so a variable read but missing from it would be reported as unknown (and
refused in strict mode) although the service uses it.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from issuer import config as issuer_config
from verifier import config as verifier_config

REPO = Path(__file__).resolve().parents[2]
NAME = re.compile(r"(ISSUER|VERIFIER|JWT|REDIS)_[A-Z0-9_]+|LOG_LEVEL|LOG_FORMAT")


def _names_in(paths: list[str]) -> set[str]:
    found = set()
    for path in paths:
        for node in ast.walk(ast.parse((REPO / path).read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) \
                    and NAME.fullmatch(node.value):
                found.add(node.value)
    return found


@pytest.mark.parametrize(("variables", "modules"), [
    (issuer_config.VARIABLES, ["issuer/config.py", "shared/claimrule.py", "shared/config.py"]),
    (verifier_config.VARIABLES, ["verifier/config.py", "verifier/redisconn.py",
                                 "verifier/browser.py", "shared/claimrule.py",
                                 "shared/config.py"]),
])
def test_every_variable_the_code_reads_is_listed(variables: frozenset[str],
                                                 modules: list[str]) -> None:
    read = _names_in(modules)
    # the claim rule builds its names from parts (JWT_ + suffix): they are listed by it
    assert read - variables == set()


def test_the_readme_documents_every_variable() -> None:
    readme = (REPO / "README.md").read_text()
    for name in sorted(issuer_config.VARIABLES | verifier_config.VARIABLES):
        assert f"`{name}`" in readme, f"{name} is not in README.md's configuration tables"
