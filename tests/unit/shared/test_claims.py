"""The claim schema: the seed's payload, strict types, other properties passed through."""

from __future__ import annotations

from typing import Any

import pytest
from marshmallow import ValidationError

from shared.claims import (
    USER_ID_MAX_LENGTH,
    check_against,
    claims_schema,
    first_error,
    validate_claims,
)


def _field_of(payload: Any, **kwargs: Any) -> str:
    with pytest.raises(ValidationError) as caught:
        validate_claims(payload, **kwargs)
    return first_error(caught.value.messages)[0]


def test_seed_payload_is_accepted_unchanged() -> None:
    payload = {"userId": "123", "isAdmin": True, "favouriteColour": "green", "nested": {"a": [1]}}
    assert validate_claims(payload) == payload


def test_is_admin_is_optional() -> None:
    assert validate_claims({"userId": "u"}) == {"userId": "u"}


@pytest.mark.parametrize(
    "payload",
    [{}, {"userId": ""}, {"userId": None}, {"userId": 123}, {"userId": True},
     {"userId": "a\nb"}, {"userId": "a\x00b"}, {"userId": "x" * (USER_ID_MAX_LENGTH + 1)}],
)
def test_bad_user_ids_name_the_field(payload: dict[str, Any]) -> None:
    assert _field_of(payload) == "userId"


def test_user_id_at_the_cap_is_fine() -> None:
    validate_claims({"userId": "x" * USER_ID_MAX_LENGTH})


def test_unicode_user_id_is_fine() -> None:
    validate_claims({"userId": "zoë|42"})


@pytest.mark.parametrize("value", ["true", 1, 0, None, "false", [True]])
def test_is_admin_must_be_a_real_boolean(value: Any) -> None:
    assert _field_of({"userId": "u", "isAdmin": value}) == "isAdmin"


@pytest.mark.parametrize("claim", ["exp", "nbf", "iat"])
@pytest.mark.parametrize("value", [True, "1700000000", float("inf"), float("nan"), None])
def test_time_claims_are_finite_numbers(claim: str, value: Any) -> None:
    assert _field_of({"userId": "u", claim: value}) == claim


def test_time_claims_accept_numbers() -> None:
    validate_claims({"userId": "u", "exp": 1_700_000_000, "nbf": 1.5, "iat": 0})


def test_audience_string_or_list_of_strings() -> None:
    validate_claims({"userId": "u", "aud": "a"})
    validate_claims({"userId": "u", "aud": ["a", "b"]})
    assert _field_of({"userId": "u", "aud": ["a", 1]}) == "aud"


def test_payload_must_be_an_object() -> None:
    assert _field_of(["userId", "u"]) == "payload"


def test_configured_field_names() -> None:
    validate_claims({"uid": "u", "admin": False}, "uid", "admin")
    assert _field_of({"userId": "u"}, user_id_field="uid") == "uid"


def test_non_boolean_admin_value_accepts_any_json() -> None:
    validate_claims({"userId": "u", "isAdmin": "yes"}, is_admin_is_boolean=False)


@pytest.mark.parametrize("payload", [
    {"userId": "u"},
    {"userId": "u", "isAdmin": True, "exp": 1.5, "nbf": 0, "iat": 2, "aud": ["a"], "x": None},
    {},
    {"userId": None},
    {"userId": ""},
    {"userId": "a\x00b"},
    {"userId": "x" * 256},
    {"userId": 5},
    {"userId": "u", "isAdmin": None},
    {"userId": "u", "isAdmin": "true"},
    {"userId": "u", "exp": None},
    {"userId": "u", "exp": float("nan")},
    {"userId": "u", "exp": True},
    {"userId": "u", "aud": [1]},
    {"userId": "u", "iss": 3},
])
def test_the_fast_check_refuses_exactly_what_load_refuses(payload: dict[str, object]) -> None:
    schema = claims_schema()
    try:
        schema.load(payload)
        loads = True
    except ValidationError:
        loads = False
    try:
        check_against(schema, payload)
        checks = True
    except ValidationError:
        checks = False
    assert checks == loads
