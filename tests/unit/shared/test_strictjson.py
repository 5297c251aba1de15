"""Strict JSON: what lenient parsers accept and we refuse."""

from __future__ import annotations

import pytest

from shared.strictjson import MAX_DEPTH, StrictJSONError, loads_strict


def test_plain_json_parses() -> None:
    assert loads_strict(b'{"userId": "123", "n": [1, 2.5, null, true]}') == {
        "userId": "123", "n": [1, 2.5, None, True]
    }


@pytest.mark.parametrize(
    ("document", "reason"),
    [
        ('{"userId": "a", "userId": "b"}', "duplicate"),
        ('{"x": NaN}', "NaN"),
        ('{"x": Infinity}', "Infinity"),
        ('{"x": -Infinity}', "Infinity"),
        ('{"x": 1', "not valid JSON"),
        ("", "not valid JSON"),
    ],
)
def test_refused_documents(document: str, reason: str) -> None:
    with pytest.raises(StrictJSONError, match=reason):
        loads_strict(document)


def test_duplicates_in_nested_objects_are_refused() -> None:
    with pytest.raises(StrictJSONError, match="duplicate"):
        loads_strict('{"a": {"b": 1, "b": 2}}')


def test_invalid_utf8_is_refused() -> None:
    with pytest.raises(StrictJSONError, match="UTF-8"):
        loads_strict(b'{"userId": "\xff"}')


def test_depth_is_bounded() -> None:
    assert loads_strict("[" * MAX_DEPTH + "]" * MAX_DEPTH) is not None
    with pytest.raises(StrictJSONError, match="nesting"):
        loads_strict("[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1))


def test_very_deep_nesting_does_not_crash() -> None:
    with pytest.raises(StrictJSONError, match="nesting"):
        loads_strict("[" * 100_000 + "]" * 100_000)



def test_numbers_that_overflow_read_as_infinity() -> None:
    # valid JSON syntax; the claim schema and the issuer's signing refuse the result instead
    assert loads_strict('{"x": 1e999}') == {"x": float("inf")}
