"""Fixtures every test layer shares: key pairs made once, a real redis-server, live services."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from shared.keys import EDDSA, ES256
from tests.keypairs import KeyPair, make_key_pair
from tests.procs import RedisServer


@pytest.fixture(scope="session")
def key_pair(tmp_path_factory: pytest.TempPathFactory) -> KeyPair:
    """An encrypted 2048-bit pair: fast to make, and the size most deployments use."""
    return make_key_pair(tmp_path_factory.mktemp("keys"), 2048)


@pytest.fixture(scope="session")
def other_key_pair(tmp_path_factory: pytest.TempPathFactory) -> KeyPair:
    """A second pair, for rotation and for signatures by a key nobody trusts."""
    return make_key_pair(tmp_path_factory.mktemp("other-keys"), 2048)


@pytest.fixture(scope="session")
def es256_key_pair(tmp_path_factory: pytest.TempPathFactory) -> KeyPair:
    """An encrypted P-256 pair: the issuer signs ES256 with it."""
    return make_key_pair(tmp_path_factory.mktemp("es256-keys"), alg=ES256)


@pytest.fixture(scope="session")
def eddsa_key_pair(tmp_path_factory: pytest.TempPathFactory) -> KeyPair:
    """An encrypted Ed25519 pair: the issuer signs EdDSA with it."""
    return make_key_pair(tmp_path_factory.mktemp("eddsa-keys"), alg=EDDSA)


@pytest.fixture(scope="session")
def es_key() -> ec.EllipticCurvePrivateKey:
    """A P-256 key object, unencrypted: for tests that forge and sign ES256 tokens themselves."""
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture(scope="session")
def ed_key() -> ed25519.Ed25519PrivateKey:
    """An Ed25519 key object, unencrypted: for tests that forge and sign EdDSA tokens."""
    return ed25519.Ed25519PrivateKey.generate()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One real redis-server for the session, on a free port, with AOF like production."""
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The session's Redis, emptied before each test (restarted first if a test killed it)."""
    return redis_server.emptied()


@pytest.fixture
def audit_events() -> Iterator[list[dict[str, object]]]:
    """The audit events (logger ``audit``, JSON lines in production) recorded during a test."""
    events: list[dict[str, object]] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if isinstance(record.msg, dict):
                events.append(dict(record.msg))

    logger = logging.getLogger("audit")
    handler = Collect()
    logger.addHandler(handler)
    previous = logger.level
    logger.setLevel(logging.INFO)
    try:
        yield events
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous)
