"""Fixtures for the verifier app through Flask's test client, and a client of the test's Redis.

``make_app`` builds verifier apps against the test's own (emptied) Redis and closes each one's
revocation mirror afterwards; ``client`` is one such app's test client; ``admin_keys`` is the
admin keys file it reads (one admin key, one without the permission); ``db`` is a plain redis
client on the same Redis, for looking at the keys the verifier writes. A test module that
defines a fixture of the same name uses its own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient

from shared.apikeys import add_client
from tests.keypairs import KeyPair
from verifier.app import create_app
from verifier.config import VerifierSettings


@pytest.fixture
def admin_keys(tmp_path: Path) -> tuple[Path, str, str]:
    """A keys file with one admin key and one key without the admin permission."""
    path = tmp_path / "verifier-admins.json"
    admin = add_client(path, "ops", admin=True, variable="VERIFIER_ADMIN_KEYS_FILE")
    plain = add_client(path, "reader", admin=False, variable="VERIFIER_ADMIN_KEYS_FILE")
    return path, admin, plain


@pytest.fixture
def make_app(
    key_pair: KeyPair, redis_url: str, admin_keys: tuple[Path, str, str]
) -> Iterator[Callable[..., Flask]]:
    built: list[Flask] = []

    def build(**overrides: Any) -> Flask:
        settings = VerifierSettings(**{
            "public_key_file": str(key_pair.public_path),
            "redis_url": redis_url,
            "admin_keys_file": str(admin_keys[0]),
            **overrides,
        })
        built.append(create_app(settings))
        return built[-1]

    yield build
    for app in built:  # each app's revocation mirror has a thread and a connection
        app.extensions["verifier"].store.close()


@pytest.fixture
def client(make_app: Callable[..., Flask]) -> FlaskClient:
    return make_app().test_client()


@pytest.fixture
def db(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()
