"""docs/deploy.md's "Failure modes" table and the fault-matrix tests agree.

Every test the table names exists (found by parsing the test files with ``ast``, not by
importing them), and every test of tests/e2e/test_fault_matrix*.py is named in the table, so a
row cannot point at a test that was renamed away, and a new fault test cannot go undocumented.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "docs" / "deploy.md"
MATRIX_FILES = sorted((REPO / "tests" / "e2e").glob("test_fault_matrix*.py"))
NODE_ID = re.compile(r"`(tests/[\w/.-]+\.py)::(\w+(?:::\w+)?)(?:\[[^\]`]*\])?`")


def _section(text: str, title: str) -> str:
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start:] if end == -1 else text[start:end]


def _table_rows() -> list[str]:
    section = _section(DEPLOY.read_text(encoding="utf-8"), "Failure modes")
    return [line for line in section.splitlines() if line.startswith("| ")][2:]


def _tests_in(path: Path) -> set[str]:
    """``test_x`` and ``TestY::test_x`` names pytest would collect from the file."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith(
            "test"
        ):
            names.add(node.name)
        elif isinstance(node, ast.ClassDef) and node.name.startswith("Test"):
            names.update(
                f"{node.name}::{item.name}"
                for item in node.body
                if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef)
                and item.name.startswith("test")
            )
    return names


def _named() -> set[tuple[str, str]]:
    return {
        (match.group(1), match.group(2))
        for row in _table_rows()
        for match in NODE_ID.finditer(row.rsplit(" | ", 1)[-1])
    }


def test_every_row_names_a_test() -> None:
    rows = _table_rows()
    assert len(rows) >= 9
    for row in rows:
        assert NODE_ID.search(row.rsplit(" | ", 1)[-1]), f"no test named in: {row}"


def test_every_test_the_table_names_exists() -> None:
    missing = []
    for file, name in sorted(_named()):
        path = REPO / file
        if not path.is_file() or name not in _tests_in(path):
            missing.append(f"{file}::{name}")
    assert missing == []


def test_every_fault_matrix_test_is_in_the_table() -> None:
    assert MATRIX_FILES, "no tests/e2e/test_fault_matrix*.py"
    named = _named()
    undocumented = [
        f"{path.relative_to(REPO)}::{name}"
        for path in MATRIX_FILES
        for name in sorted(_tests_in(path))
        if (str(path.relative_to(REPO)), name) not in named
    ]
    assert undocumented == []
