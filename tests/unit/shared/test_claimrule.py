"""The one admin rule both services read: JWT_* names, VERIFIER_* aliases, conflicts refused."""

from __future__ import annotations

from typing import Any

import pytest

from issuer.config import IssuerSettings
from shared.claimrule import ClaimRule, json_equal
from shared.errors import ConfigError
from verifier.config import VerifierSettings

KEY = {"VERIFIER_PUBLIC_KEY": "x", "ISSUER_PRIVATE_KEY": "x"}


def test_defaults_are_the_seed_payload() -> None:
    rule = ClaimRule.from_env({})
    assert rule == ClaimRule("userId", "isAdmin", True)
    assert rule.grants_admin({"userId": "1", "isAdmin": True})
    assert not rule.grants_admin({"userId": "1", "isAdmin": "true"})
    assert not rule.grants_admin({"userId": "1"})


def test_both_services_read_the_jwt_names() -> None:
    env = {**KEY, "JWT_USER_ID_FIELD": "sub", "JWT_IS_ADMIN_FIELD": "role",
           "JWT_IS_ADMIN_VALUE": '"superuser"'}
    expected = ClaimRule("sub", "role", "superuser")
    assert IssuerSettings.from_env(env).claim_rule == expected
    assert VerifierSettings.from_env(env).claim_rule == expected


def test_verifier_names_are_aliases_for_both_services() -> None:
    env = {**KEY, "VERIFIER_IS_ADMIN_FIELD": "role", "VERIFIER_IS_ADMIN_VALUE": "1"}
    assert IssuerSettings.from_env(env).claim_rule == ClaimRule("userId", "role", 1)
    assert VerifierSettings.from_env(env).claim_rule == ClaimRule("userId", "role", 1)


def test_both_spellings_with_the_same_value_are_fine() -> None:
    env = {"JWT_IS_ADMIN_VALUE": "1", "VERIFIER_IS_ADMIN_VALUE": "1.0",
           "JWT_IS_ADMIN_FIELD": "role", "VERIFIER_IS_ADMIN_FIELD": "role"}
    assert ClaimRule.from_env(env) == ClaimRule("userId", "role", 1)


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"JWT_IS_ADMIN_FIELD": "role", "VERIFIER_IS_ADMIN_FIELD": "admin"}, "JWT_IS_ADMIN_FIELD"),
        ({"JWT_USER_ID_FIELD": "sub", "VERIFIER_USER_ID_FIELD": "uid"}, "JWT_USER_ID_FIELD"),
        ({"JWT_IS_ADMIN_VALUE": "true", "VERIFIER_IS_ADMIN_VALUE": '"true"'},
         "JWT_IS_ADMIN_VALUE"),
        ({"JWT_IS_ADMIN_VALUE": "1", "VERIFIER_IS_ADMIN_VALUE": "true"}, "JWT_IS_ADMIN_VALUE"),
        ({"JWT_IS_ADMIN_VALUE": "superuser"}, "JWT_IS_ADMIN_VALUE"),
        ({"JWT_IS_ADMIN_FIELD": "userId"}, "JWT_IS_ADMIN_FIELD"),
    ],
)
def test_conflicts_and_bad_values_stop_both_services(env: dict[str, str], named: str) -> None:
    for settings in (IssuerSettings, VerifierSettings):
        with pytest.raises(ConfigError) as raised:
            settings.from_env({**KEY, **env})
        assert raised.value.variable == named
        assert "\n" not in str(raised.value)


@pytest.mark.parametrize("value", ["superuser", 1, 2.5, True, False, None, [1, "a"], {"a": 1}])
def test_strict_equality_in_every_json_type(value: Any) -> None:
    rule = ClaimRule("userId", "role", value)
    assert rule.grants_admin({"role": value})
    near_misses = [str(value), [value], {"v": value}, "", 0]
    for other in near_misses:
        if not json_equal(other, value):
            assert not rule.grants_admin({"role": other}), other


def test_differences_name_each_member() -> None:
    rule = ClaimRule("userId", "role", "superuser")
    assert rule.differences(rule.describe()) == []
    assert rule.differences({"userIdField": "userId", "isAdminField": "isAdmin",
                             "isAdminValue": True}) == [
        'isAdminField is "isAdmin" there, "role" here',
        'isAdminValue is true there, "superuser" here',
    ]
    assert rule.differences(None) == ["the published rule is not a JSON object"]
