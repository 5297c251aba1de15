"""AsyncVerifierClient and AsyncIssuerClient against the real services, under concurrency.

Each test runs its own event loop (``asyncio.run``); requests and connections are counted by
a TCP proxy in front of the real service, so what is asserted is what crossed the wire.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from jwt_auth_client import (
    AdminNotPermitted,
    ApiKeyInvalid,
    AsyncIssuerClient,
    AsyncVerifierClient,
    Identity,
    IssuerUnavailable,
    SessionNotFound,
    StoreUnavailable,
    TokenExpired,
    TokenMalformed,
    TokenRevoked,
    VerifierUnavailable,
)
from tests.client.clientnet import CountingProxy, Issuer, Verifier, store_down
from tests.forge import fresh
from tests.keypairs import KeyPair
from tests.procs import RedisServer, free_port, wait_until

pytestmark = pytest.mark.e2e


def test_every_verifier_call_awaited(verifier: Verifier, key_pair: KeyPair) -> None:
    async def main() -> None:
        async with AsyncVerifierClient(verifier.url, retries=0) as client:
            identity = await client.verify(fresh(key_pair, "amy", isAdmin=True, plan="gold"))
            assert (identity.user_id, identity.is_admin, identity.session) == ("amy", True, False)
            assert identity.claims["plan"] == "gold"
            with pytest.raises(TokenExpired):
                await client.verify(fresh(key_pair, lifetime=-3600))

            token = fresh(key_pair, "ben")
            session = await client.login(token)
            assert await client.session(session.session_id) == session
            by_session = await client.identify(session.session_id)
            assert (by_session.user_id, by_session.is_admin, by_session.session) == (
                "ben", False, True)
            assert (await client.identify(token)).claims["userId"] == "ben"
            await client.logout(session.session_id)
            with pytest.raises(SessionNotFound):
                await client.session(session.session_id)

            await client.revoke(token)
            with pytest.raises(TokenRevoked):
                await client.verify(token)

    asyncio.run(main())


def test_200_concurrent_verifications_through_one_client(
        proxy: CountingProxy, key_pair: KeyPair) -> None:
    """Each answer is its own token's: no answer crosses to another concurrent call."""
    expected = {f"user-{n}": n % 3 == 0 for n in range(200)}
    tokens = {user: fresh(key_pair, user, isAdmin=admin) for user, admin in expected.items()}

    async def main() -> list[Identity]:
        async with AsyncVerifierClient(proxy.url, retries=0, timeout=30) as client:
            return await asyncio.gather(*(client.verify(token, request_id=f"many-{user}")
                                          for user, token in tokens.items()))

    identities = asyncio.run(main())
    assert {identity.user_id: identity.is_admin for identity in identities} == expected
    assert [identity.user_id for identity in identities] == list(tokens)
    assert proxy.requests == 200
    # the pool keeps its connections alive and reuses them: at most its 100 for 200 calls
    assert proxy.connections <= 100


def test_sequential_calls_share_one_connection(proxy: CountingProxy, key_pair: KeyPair) -> None:
    async def main() -> None:
        async with AsyncVerifierClient(proxy.url) as client:
            for _ in range(3):
                await client.verify(fresh(key_pair))
            with pytest.raises(TokenMalformed):
                await client.verify("not.a.token")

    asyncio.run(main())
    assert (proxy.requests, proxy.connections) == (4, 1)


def test_a_503_is_retried_then_store_unavailable(
    proxy: CountingProxy, key_pair: KeyPair, redis_server: RedisServer, verifier: Verifier
) -> None:
    async def main() -> None:
        async with AsyncVerifierClient(proxy.url, retries=2, backoff=0.01) as client:
            await client.verify(fresh(key_pair), request_id="async-503")

    with store_down(redis_server, verifier, key_pair), \
            pytest.raises(StoreUnavailable) as raised:
        asyncio.run(main())
    assert (raised.value.status, raised.value.attempts) == (503, 3)
    assert raised.value.request_id == "async-503"
    assert proxy.requests == 3
    wait_until(lambda: verifier.access_lines("async-503") == 3, timeout=10,
               what="three access lines under the call's id")


def test_backoff_waits_without_blocking_the_event_loop() -> None:
    """While a call waits to retry, other tasks run: the waits are asyncio.sleep."""
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    async def main() -> float:
        ticker = asyncio.create_task(tick())
        started = time.monotonic()
        try:
            async with AsyncVerifierClient(dead.url, retries=3, backoff=0.2,
                                           max_backoff=0.4) as client:
                await client.verify("a.b.c", request_id="no-answer-3")
        finally:
            ticker.cancel()
            elapsed = time.monotonic() - started
        return elapsed

    with CountingProxy(None) as dead, pytest.raises(VerifierUnavailable) as raised:
        asyncio.run(main())
    error = raised.value
    assert (error.attempts, error.status, error.request_id) == (4, 0, "no-answer-3")
    assert dead.connections == 4
    # three waits of at least 0.1 + 0.2 + 0.2 seconds, in which the ticker ran on
    assert ticks >= 10


def test_the_retry_budget_bounds_the_total_time() -> None:
    async def main() -> None:
        async with AsyncVerifierClient(f"http://127.0.0.1:{free_port()}", retries=100,
                                       backoff=0.05, max_backoff=0.2,
                                       retry_budget=0.5) as client:
            await client.verify("a.b.c")

    started = time.monotonic()
    with pytest.raises(VerifierUnavailable) as raised:
        asyncio.run(main())
    assert raised.value.attempts < 100
    assert "ConnectError" in raised.value.detail
    assert time.monotonic() - started < 1.5


def test_request_ids_reach_the_verifiers_log(verifier: Verifier) -> None:
    async def main() -> None:
        async with AsyncVerifierClient(verifier.url) as client:
            with pytest.raises(TokenMalformed) as raised:
                await client.verify("not.a.token", request_id="async-id-1")
            assert raised.value.request_id == "async-id-1"
            with pytest.raises(TokenMalformed) as unnamed:
                await client.verify("not.a.token", request_id="has space")
            assert unnamed.value.request_id is not None
            assert len(unnamed.value.request_id) == 24  # a new id, in the services' own form

    asyncio.run(main())
    wait_until(lambda: verifier.access_lines("async-id-1") == 1, timeout=10,
               what="the verifier's access line of the call")


def test_a_closed_client_stays_closed(verifier: Verifier, key_pair: KeyPair) -> None:
    async def main() -> None:
        async with AsyncVerifierClient(verifier.url) as client:
            await client.verify(fresh(key_pair))
        with pytest.raises(RuntimeError):
            await client.verify(fresh(key_pair))

    asyncio.run(main())


# -- AsyncIssuerClient --------------------------------------------------------------------------


def test_async_issuer_client(issuer: Issuer, verifier: Verifier) -> None:
    async def main() -> None:
        async with AsyncIssuerClient(issuer.url, issuer.client_key) as webapp, \
                AsyncIssuerClient(issuer.url, issuer.admin_key) as backoffice, \
                AsyncIssuerClient(issuer.url, "wrong-key") as stranger, \
                AsyncVerifierClient(verifier.url) as checker:
            issued = await asyncio.gather(*(webapp.issue(f"u{n}", claims={"n": n},
                                                         request_id=f"async-issue-{n}")
                                            for n in range(20)))
            identities = await asyncio.gather(*(checker.verify(one.token) for one in issued))
            assert [(i.user_id, i.claims["n"], i.claims["jti"]) for i in identities] == [
                (f"u{n}", n, one.jti) for n, one in enumerate(issued)]

            admin = await backoffice.issue("root", is_admin=True, expires_in=60)
            assert (await checker.verify(admin.token)).is_admin is True
            with pytest.raises(AdminNotPermitted):
                await webapp.issue("root", is_admin=True)
            with pytest.raises(ApiKeyInvalid) as raised:
                await stranger.issue("1", request_id="async-issue-refused")
            assert raised.value.request_id == "async-issue-refused"

    asyncio.run(main())
    for request_id in ("async-issue-0", "async-issue-19", "async-issue-refused"):
        wait_until(lambda rid=request_id: issuer.access_lines(rid) == 1, timeout=10,
                   what=f"the issuer's access line under {request_id}")


def test_async_issuer_unavailable() -> None:
    async def main() -> None:
        async with AsyncIssuerClient(f"http://127.0.0.1:{free_port()}", "key", retries=1,
                                     backoff=0.01) as client:
            await client.issue("1")

    with pytest.raises(IssuerUnavailable) as raised:
        asyncio.run(main())
    assert raised.value.attempts == 2
