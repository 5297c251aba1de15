"""JSON parsing that refuses what lenient parsers accept and attackers exploit.

Python's ``json`` module takes the last of duplicate member names and accepts NaN and Infinity;
two parsers disagreeing on a payload is how signature checks get bypassed, so we refuse both,
and bound nesting so a hostile document cannot exhaust the stack.
"""

from __future__ import annotations

import json
from typing import Any

MAX_DEPTH = 32


class StrictJSONError(ValueError):
    """Raised when a document is not JSON we are willing to interpret."""


def _refuse_constant(name: str) -> Any:
    raise StrictJSONError(f"{name} is not allowed in JSON")


def _object_without_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise StrictJSONError(f"duplicate member name {key!r}")
        result[key] = value
    return result


def _depth(value: Any, limit: int) -> None:
    # iterative so the check itself cannot overflow the stack
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict | list):
            if level > limit:
                raise StrictJSONError(f"nesting deeper than {limit} levels")
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, level + 1) for child in children)


# built once: json.loads with hooks builds a new decoder on every call, half the cost of a
# small document (the verifier parses two per token)
_DECODER = json.JSONDecoder(
    object_pairs_hook=_object_without_duplicates, parse_constant=_refuse_constant
)


def loads_strict(data: str | bytes, *, max_depth: int = MAX_DEPTH) -> Any:
    """Parse JSON, refusing duplicate members, NaN/Infinity, bad UTF-8 and deep nesting."""
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise StrictJSONError("not valid UTF-8") from exc
    try:
        value = _DECODER.decode(data)
    except StrictJSONError:
        raise
    except RecursionError as exc:
        raise StrictJSONError(f"nesting deeper than {max_depth} levels") from exc
    except ValueError as exc:
        raise StrictJSONError(f"not valid JSON ({exc.args[0] if exc.args else exc})") from exc
    # every container needs its own "{" or "[" in the text, so with no more of them than the
    # bound the walk cannot find anything (ordinary tokens and bodies skip it)
    if data.count("{") + data.count("[") > max_depth:
        _depth(value, max_depth)
    return value
