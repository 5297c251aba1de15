"""One rule for who a token names and when it makes them an admin, read by both services.

The issuer decides which clients may mint admin tokens and the verifier decides which tokens
are admin: if the two read the admin flag differently, a client the issuer holds to non-admin
tokens could mint one the verifier treats as admin. So the rule is read here, from
``JWT_USER_ID_FIELD``, ``JWT_IS_ADMIN_FIELD`` and ``JWT_IS_ADMIN_VALUE``. The verifier's older
names (``VERIFIER_USER_ID_FIELD``, ...) are accepted as aliases by both services, and giving
both spellings different values stops the service at start.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from marshmallow import Schema

from shared.claims import claims_schema
from shared.errors import ConfigError

_MISSING: Any = object()


def json_equal(left: Any, right: Any) -> bool:
    """Equality of JSON values with their types: ``"true" != true``, ``1 != true``, ``1 == 1.0``."""
    if isinstance(left, bool) or isinstance(right, bool):
        return isinstance(left, bool) and isinstance(right, bool) and left is right
    if isinstance(left, int | float) or isinstance(right, int | float):
        # JSON has one number type: 1 and 1.0 are the same number, as in the reference (===)
        return (
            isinstance(left, int | float) and isinstance(right, int | float) and left == right
        )
    if isinstance(left, str) or isinstance(right, str):
        return isinstance(left, str) and isinstance(right, str) and left == right
    if left is None or right is None:
        return left is None and right is None
    if isinstance(left, list) and isinstance(right, list):
        return len(left) == len(right) and all(
            json_equal(a, b) for a, b in zip(left, right, strict=True)
        )
    if isinstance(left, dict) and isinstance(right, dict):
        return left.keys() == right.keys() and all(json_equal(left[k], right[k]) for k in left)
    return False


@dataclass(frozen=True)
class ClaimRule:
    """Where the user id and the admin flag live in a payload, and the value that grants admin."""

    user_id_field: str = "userId"
    is_admin_field: str = "isAdmin"
    is_admin_value: Any = True

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> ClaimRule:
        """The rule from ``JWT_*`` (or the ``VERIFIER_*`` aliases); a conflict is a ConfigError."""
        user_id_field = _field(environ, "USER_ID_FIELD", "userId")
        is_admin_field = _field(environ, "IS_ADMIN_FIELD", "isAdmin")
        is_admin_value = _value(environ, "IS_ADMIN_VALUE", True)
        if user_id_field == is_admin_field:
            raise ConfigError(
                "JWT_IS_ADMIN_FIELD",
                f"{is_admin_field!r} is also the user id field; use two different fields",
            )
        return cls(user_id_field, is_admin_field, is_admin_value)

    @property
    def is_admin_is_boolean(self) -> bool:
        """Whether the admin field must be a JSON boolean (it must when the admin value is one)."""
        return isinstance(self.is_admin_value, bool)

    @property
    def schema(self) -> Schema:
        """The shared claim schema for these field names."""
        return claims_schema(
            self.user_id_field, self.is_admin_field, is_admin_is_boolean=self.is_admin_is_boolean
        )

    def grants_admin(self, payload: Mapping[str, Any]) -> bool:
        """Whether the payload's admin field strictly equals the admin value."""
        return json_equal(payload.get(self.is_admin_field, _MISSING), self.is_admin_value)

    def describe(self) -> dict[str, Any]:
        """The rule as published in ``/.well-known/jwt-auth.json``."""
        return {
            "userIdField": self.user_id_field,
            "isAdminField": self.is_admin_field,
            "isAdminValue": self.is_admin_value,
        }

    def differences(self, published: Any) -> list[str]:
        """How a published rule (``describe()`` of another service) differs from this one."""
        if not isinstance(published, dict):
            return ["the published rule is not a JSON object"]
        differences = []
        for name, mine in self.describe().items():
            theirs = published.get(name, _MISSING)
            if theirs is _MISSING:
                differences.append(f"{name} is not published")
            elif not json_equal(theirs, mine):
                differences.append(
                    f"{name} is {json.dumps(theirs)} there, {json.dumps(mine)} here"
                )
        return differences


CLAIM_RULE_VARIABLES = frozenset(
    f"{prefix}_{suffix}" for prefix in ("JWT", "VERIFIER")
    for suffix in ("USER_ID_FIELD", "IS_ADMIN_FIELD", "IS_ADMIN_VALUE")
)
"""The admin rule's variables, in both spellings (``ClaimRule.from_env``)."""


def _spellings(environ: Mapping[str, str], suffix: str) -> list[tuple[str, str]]:
    names = (f"JWT_{suffix}", f"VERIFIER_{suffix}")
    return [(name, environ[name].strip()) for name in names if environ.get(name, "").strip()]


def _field(environ: Mapping[str, str], suffix: str, default: str) -> str:
    given = _spellings(environ, suffix)
    if len(given) == 2 and given[0][1] != given[1][1]:
        raise ConfigError(
            given[0][0],
            f"{given[0][1]!r} differs from {given[1][0]}={given[1][1]!r}; "
            f"set only {given[0][0]}",
        )
    return given[0][1] if given else default


def _value(environ: Mapping[str, str], suffix: str, default: Any) -> Any:
    parsed: list[tuple[str, Any]] = []
    for name, raw in _spellings(environ, suffix):
        try:
            parsed.append((name, json.loads(raw)))
        except ValueError:
            raise ConfigError(
                name, f"expected a JSON value (a string needs quotes: '\"admin\"'), got {raw!r}"
            ) from None
    if len(parsed) == 2 and not json_equal(parsed[0][1], parsed[1][1]):
        raise ConfigError(
            parsed[0][0],
            f"{json.dumps(parsed[0][1])} differs from {parsed[1][0]}="
            f"{json.dumps(parsed[1][1])}; set only {parsed[0][0]}",
        )
    return parsed[0][1] if parsed else default
