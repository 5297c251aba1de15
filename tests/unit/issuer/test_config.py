"""The issuer's settings that decide discovery and sub (issuer/config.py)."""

from __future__ import annotations

import pytest

from issuer.config import IssuerSettings
from shared.errors import ConfigError


@pytest.mark.parametrize(("value", "url"), [
    (None, None),
    ("auth-service", None),
    ("urn:example:auth", None),
    ("ftp://auth.example.com", None),
    ("https://auth.example.com", "https://auth.example.com"),
    ("http://127.0.0.1:8001", "http://127.0.0.1:8001"),
    ("https://example.com/tenants/blue/", "https://example.com/tenants/blue/"),
])
def test_only_an_http_url_is_an_issuer_url(value: str | None, url: str | None) -> None:
    env = {"ISSUER_ISSUER": value} if value else {}
    assert IssuerSettings.from_env(env).issuer_url == url


@pytest.mark.parametrize(("env", "subject_from", "named"), [
    ({}, "userId", True),
    ({"ISSUER_SET_SUBJECT": "false"}, None, False),
    ({"ISSUER_SET_SUBJECT": "0"}, None, False),
    ({"JWT_USER_ID_FIELD": "uid"}, "uid", True),
    # the user id is sub itself: nothing to copy, and every token names its user in it
    ({"JWT_USER_ID_FIELD": "sub"}, None, True),
    ({"JWT_USER_ID_FIELD": "sub", "ISSUER_SET_SUBJECT": "false"}, None, True),
])
def test_subject_follows_the_setting_and_the_user_id_field(
    env: dict[str, str], subject_from: str | None, named: bool
) -> None:
    settings = IssuerSettings.from_env(env)
    assert settings.subject_from == subject_from
    assert settings.tokens_name_their_user_in_sub is named


@pytest.mark.parametrize(("value", "problem"), [
    ("https://", "names no host"),
    ("http://:8001", "names no host"),
    ("http://[::1", "not a valid URL"),
    ("http://auth.example.com:port", "not a valid URL"),
    ("https://auth.example.com/?tenant=1", "no query or fragment"),
    ("https://auth.example.com/?", "no query or fragment"),
    ("https://auth.example.com/#top", "no query or fragment"),
])
def test_a_url_that_clients_could_not_discover_stops_the_start(value: str, problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        IssuerSettings.from_env({"ISSUER_ISSUER": value})
    assert str(caught.value).startswith("ISSUER_ISSUER: ")
    assert problem in str(caught.value)
