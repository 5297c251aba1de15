"""How VerifierClient talks to the verifier: kept-alive connections, and which calls it retries.

Requests and connections are counted by a TCP proxy between the client and the real verifier,
not by the client itself: what is asserted is what crossed the wire.
"""

from __future__ import annotations

import threading
import time

import pytest

from jwt_auth_client import (
    SignatureInvalid,
    StoreUnavailable,
    TokenExpired,
    VerifierClient,
    VerifierUnavailable,
)
from tests.client.clientnet import CountingProxy, Verifier, store_down
from tests.forge import fresh
from tests.keypairs import KeyPair
from tests.procs import RedisServer, free_port, wait_until

pytestmark = pytest.mark.e2e


def test_one_connection_carries_every_call(
    proxy: CountingProxy, key_pair: KeyPair, other_key_pair: KeyPair
) -> None:
    with VerifierClient(proxy.url) as client:
        for _ in range(3):
            client.verify(fresh(key_pair))
        with pytest.raises(SignatureInvalid):
            client.verify(fresh(other_key_pair))
        session = client.login(fresh(key_pair))
        client.session(session.session_id)
        client.logout(session.session_id)
    assert proxy.requests == 7
    assert proxy.connections == 1


def test_each_thread_keeps_its_own_connection(proxy: CountingProxy, key_pair: KeyPair) -> None:
    with VerifierClient(proxy.url) as client:
        def work() -> None:
            for _ in range(3):
                client.verify(fresh(key_pair))

        threads = [threading.Thread(target=work) for _ in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
    assert proxy.requests == 9
    assert proxy.connections == 3


def test_a_connection_the_server_closed_while_idle_is_replaced(
    proxy: CountingProxy, key_pair: KeyPair
) -> None:
    """As when the verifier's keep-alive timeout ends an idle connection between two calls."""
    with VerifierClient(proxy.url, retries=0) as client:
        client.verify(fresh(key_pair))
        proxy.drop_connections()
        # retries=0: the new connection is not a retry of a verifier that failed
        assert client.verify(fresh(key_pair)).user_id == "123"
    assert proxy.connections == 2
    assert proxy.requests == 2


def test_a_401_is_never_retried(proxy: CountingProxy, key_pair: KeyPair) -> None:
    with VerifierClient(proxy.url, retries=5, backoff=0.01) as client, \
            pytest.raises(TokenExpired):
        client.verify(fresh(key_pair, lifetime=-3600))
    assert proxy.requests == 1


def test_connection_refused_is_retried_then_unavailable_within_the_budget() -> None:
    port = free_port()  # nothing listens there
    with VerifierClient(f"http://127.0.0.1:{port}", retries=3, backoff=0.05,
                        retry_budget=2) as client:
        started = time.monotonic()
        with pytest.raises(VerifierUnavailable) as raised:
            client.verify("a.b.c", request_id="no-answer-1")
        elapsed = time.monotonic() - started
    assert raised.value.attempts == 4
    assert raised.value.status == 0
    assert raised.value.request_id == "no-answer-1"  # the id the caller can find in its own logs
    assert "ConnectionRefusedError" in raised.value.detail
    # three waits of at least half of 0.05, 0.1 and 0.2 seconds, and far less than the budget
    assert 0.175 <= elapsed < 2.5


def test_the_retry_budget_bounds_the_total_time() -> None:
    port = free_port()
    with VerifierClient(f"http://127.0.0.1:{port}", retries=100, backoff=0.05,
                        max_backoff=0.2, retry_budget=0.5) as client:
        started = time.monotonic()
        with pytest.raises(VerifierUnavailable) as raised:
            client.verify("a.b.c")
        elapsed = time.monotonic() - started
    assert raised.value.attempts < 100
    assert elapsed < 1.5


def test_a_connection_closed_without_an_answer_is_retried() -> None:
    with CountingProxy(None) as dead, \
            VerifierClient(dead.url, retries=2, backoff=0.01) as client, \
            pytest.raises(VerifierUnavailable) as raised:
        client.verify("a.b.c")
    assert raised.value.attempts == 3
    assert dead.connections == 3


def test_a_503_is_retried_then_raised_as_store_unavailable(
    proxy: CountingProxy, key_pair: KeyPair, redis_server: RedisServer, verifier: Verifier
) -> None:
    token = fresh(key_pair)
    with store_down(redis_server, verifier, key_pair), \
            VerifierClient(proxy.url, retries=2, backoff=0.01) as client, \
            pytest.raises(StoreUnavailable) as raised:
        client.verify(token)
    assert isinstance(raised.value, VerifierUnavailable)
    assert (raised.value.status, raised.value.code) == (503, "store_unavailable")
    assert raised.value.attempts == 3
    assert proxy.requests == 3
    # every attempt was the same call: the verifier logged each under the call's one id
    request_id = raised.value.request_id
    assert request_id is not None
    wait_until(lambda: verifier.access_lines(request_id) == 3, timeout=10,
               what="three access lines under the call's id")
