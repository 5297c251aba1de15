"""A real verifier (gunicorn) on the session's real Redis, and a real issuer of the same key
pair, for every client test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from jwt_auth_client import VerifierClient
from shared.apikeys import add_client
from tests.client.clientnet import CountingProxy, Issuer, Verifier
from tests.keypairs import KeyPair
from tests.procs import RedisServer, ServiceProcess, issuer_env, verifier_env


@pytest.fixture(scope="module")
def verifier(
    key_pair: KeyPair, redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Verifier]:
    folder = tmp_path_factory.mktemp("client-verifier")
    admins = folder / "verifier-admins.json"
    admin_key = add_client(admins, "ops", admin=True, variable="VERIFIER_ADMIN_KEYS_FILE")
    redis_server.emptied()
    service = ServiceProcess(
        "verifier",
        # no revocation mirror: every verification reads Redis, so a Redis outage is a 503 at
        # once (the retry tests rely on it)
        verifier_env(key_pair, redis_server.url, admins, VERIFIER_MIRROR_MAX_KEYS="0"),
        folder / "verifier.log",
        workers=1,
    )
    service.start()
    try:
        yield Verifier(service, admin_key)
    finally:
        service.stop()


@pytest.fixture(scope="module")
def issuer(key_pair: KeyPair, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Issuer]:
    """The issuer without a rate limit (the rate-limit test starts one of its own)."""
    folder = tmp_path_factory.mktemp("client-issuer")
    clients = folder / "clients.json"
    client_key = add_client(clients, "webapp", admin=False, variable="ISSUER_CLIENTS_FILE")
    admin_key = add_client(clients, "backoffice", admin=True, variable="ISSUER_CLIENTS_FILE")
    service = ServiceProcess("issuer", issuer_env(key_pair, clients, ISSUER_RATE_LIMIT="0"),
                             folder / "issuer.log", workers=1)
    service.start()
    try:
        yield Issuer(service, client_key, admin_key)
    finally:
        service.stop()


@pytest.fixture
def client(verifier: Verifier) -> Iterator[VerifierClient]:
    with VerifierClient(verifier.url, timeout=5, retries=2, backoff=0.05) as made:
        yield made


@pytest.fixture
def proxy(verifier: Verifier) -> Iterator[CountingProxy]:
    """A counting TCP proxy in front of the module's verifier."""
    with CountingProxy(verifier.service.port) as made:
        yield made
