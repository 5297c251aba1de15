"""The verifier's operations called directly, Flask-free, against a real redis-server.

``VerifierService`` is built the way ``verifier.app`` builds it (settings, key set, policy,
store), so these tests see what an HTTP test cannot: the verdict itself, the exception a
refusal raises, and the keys each operation leaves in Redis. Two services on one Redis stand
for two verifier processes, each with its own cache and revocation mirror. The Redis outage
tests kill the session's redis-server and start it again on the same port and data.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis

from shared.claims import USER_ID_MAX_LENGTH
from shared.errors import Problem
from tests.forge import fresh, sign
from tests.integration.verifier_http import cutoff_key, revoked_key, session_key, user_tag
from tests.keypairs import KeyPair
from tests.procs import RedisServer, wait_until
from verifier.config import VerifierSettings
from verifier.errors import SignatureInvalid, StoreUnavailable, TokenExpired, TokenRevoked
from verifier.issuers import TrustedIssuers
from verifier.service import VerifierService
from verifier.store import REVOCATION_MARGIN, Store

P = "jwtauth:"


class Clock:
    """Wall-clock seconds that move only when a test says so."""

    def __init__(self) -> None:
        self.now = float(int(time.time()))

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def make_service(
    key_pair: KeyPair, redis_url: str
) -> Iterator[Callable[..., VerifierService]]:
    """Build services as ``verifier.app._build`` does; each one's store is closed afterwards."""
    built: list[VerifierService] = []

    def build(clock: Callable[[], float] = time.time, **overrides: Any) -> VerifierService:
        settings = VerifierSettings(
            public_key_file=str(key_pair.public_path), redis_url=redis_url, **overrides
        )
        service = VerifierService(
            settings,
            TrustedIssuers.from_settings(settings),
            Store(settings),
            clock=clock,
        )
        built.append(service)
        return service

    yield build
    for service in built:
        service.store.close()


def _revocation_keys(db: redis.Redis) -> list[str]:
    # the mirror's own short-lived probe keys name no token
    return sorted(key.decode() for key in db.keys(f"{P}v2:revoked:*") if b":probe:" not in key)


# verification and revocation -----------------------------------------------------------------


def test_a_good_token_is_verified_with_its_revocation_checked(
    make_service: Callable[..., VerifierService], key_pair: KeyPair, other_key_pair: KeyPair
) -> None:
    service = make_service()
    token = fresh(key_pair, "alice", isAdmin=True, team="blue", jti="j-alice")
    for _ in range(2):  # verified, then answered from the process's cache: the same verdict
        verdict = service.verify(token)
        assert verdict.revocation_checked is True
        assert (verdict.token.user_id, verdict.token.is_admin) == ("alice", True)
        assert (verdict.token.jti, verdict.token.claims["team"]) == ("j-alice", "blue")
    with pytest.raises(SignatureInvalid):
        service.verify(fresh(other_key_pair, "alice"))


def test_a_revoked_token_is_refused_by_every_process_even_from_its_cache(
    make_service: Callable[..., VerifierService], key_pair: KeyPair, db: redis.Redis
) -> None:
    first, second = make_service(), make_service()
    token = fresh(key_pair, "frank", jti="j-frank", lifetime=600)
    for service in (first, first, second, second):
        assert service.verify(token).revocation_checked

    second.revoke(token)

    for service in (first, second):
        with pytest.raises(TokenRevoked):
            service.verify(token)
    # kept until the token would expire, plus the largest leeway a verifier may use
    assert _revocation_keys(db) == [revoked_key("frank", "jti:j-frank")]
    assert 600 + REVOCATION_MARGIN - 5 <= db.ttl(revoked_key("frank", "jti:j-frank")) <= (
        600 + REVOCATION_MARGIN + 1
    )
    # revoking it again has nothing left to do
    first.revoke(token)
    assert _revocation_keys(db) == [revoked_key("frank", "jti:j-frank")]


def test_a_token_without_exp_or_jti_is_revoked_by_its_hash_for_good(
    make_service: Callable[..., VerifierService], key_pair: KeyPair, db: redis.Redis
) -> None:
    service = make_service()
    seed_style = sign({"userId": "seed", "isAdmin": True, "iat": int(time.time())}, key_pair)
    assert service.verify(seed_style).token.expires_at is None
    service.revoke(seed_style)
    key = revoked_key("seed", f"sha256:{hashlib.sha256(seed_style.encode()).hexdigest()}")
    assert _revocation_keys(db) == [key]
    assert db.ttl(key) == -1
    with pytest.raises(TokenRevoked):
        service.verify(seed_style)


def test_an_expired_token_is_refused_and_revoking_it_writes_nothing(
    make_service: Callable[..., VerifierService], key_pair: KeyPair, db: redis.Redis
) -> None:
    service = make_service()
    now = int(time.time())
    expired = sign({"userId": "old", "iat": now - 900, "exp": now - 600, "jti": "j-old"},
                   key_pair)
    with pytest.raises(TokenExpired):
        service.verify(expired)
    service.revoke(expired)  # it can never be accepted again: nothing to do, and no error
    assert _revocation_keys(db) == []


def test_revoking_needs_a_token_that_verifies(
    make_service: Callable[..., VerifierService], other_key_pair: KeyPair, db: redis.Redis
) -> None:
    with pytest.raises(SignatureInvalid):
        make_service().revoke(fresh(other_key_pair, "mallory"))
    assert _revocation_keys(db) == []


def test_the_cache_never_outlives_the_token(
    make_service: Callable[..., VerifierService], key_pair: KeyPair
) -> None:
    clock = Clock()
    service = make_service(clock=clock, leeway=0)
    now = int(clock.now)
    token = sign({"userId": "ivan", "iat": now, "exp": now + 2}, key_pair)
    assert service.verify(token).revocation_checked
    assert service.verify(token).revocation_checked  # from the cache
    clock.now = now + 3
    with pytest.raises(TokenExpired):
        service.verify(token)


# sessions and users ----------------------------------------------------------------------------


def test_login_opens_a_session_that_logout_ends(
    make_service: Callable[..., VerifierService], key_pair: KeyPair, db: redis.Redis
) -> None:
    service, other = make_service(session_ttl=3600), make_service(session_ttl=3600)
    session = service.login(fresh(key_pair, "dave", isAdmin=True))
    session_id = session["sessionId"]
    # 43 random characters, then "~" and the tag that routes the id to its user's keys
    assert len(session_id) == 43 + 1 + 8
    assert session_id.endswith("~" + user_tag("dave"))
    assert (session["userId"], session["isAdmin"], session["provider"]) == ("dave", True, "jwt")
    assert session["expiresAt"] - session["createdAt"] == 3600
    assert abs(session["createdAt"] - time.time()) < 60

    # any process finds it: it lives in Redis, under the hash of its id, for the session TTL
    assert other.session(session_id) == session
    key = session_key("dave", hashlib.sha256(session_id.encode()).hexdigest())
    assert 3595 <= db.ttl(key) <= 3600
    record = other.user("dave")
    assert record is not None
    assert (record["userId"], record["isAdmin"], record["provider"]) == ("dave", True, "jwt")
    assert record["lastLoginAt"] >= record["createdAt"]
    assert record["tokensRevokedBefore"] is None

    assert other.logout(session_id) is True
    assert service.session(session_id) is None
    assert not db.exists(key)
    assert service.logout(session_id) is False
    assert service.user("dave") is not None  # the user record outlives its sessions


def test_login_with_a_revoked_token_opens_no_session(
    make_service: Callable[..., VerifierService], key_pair: KeyPair, db: redis.Redis
) -> None:
    service = make_service()
    token = fresh(key_pair, "erin")
    service.revoke(token)
    with pytest.raises(TokenRevoked):
        service.login(token)
    assert db.keys(f"{P}v2:session:*") == []
    assert service.user("erin") is None


def test_ending_a_user_ends_sessions_and_refuses_tokens_issued_until_then(
    make_service: Callable[..., VerifierService], key_pair: KeyPair, db: redis.Redis
) -> None:
    clock = Clock()
    service, other = make_service(clock=clock), make_service(clock=clock)
    start = int(clock.now)
    old = sign({"userId": "judy", "iat": start - 10, "exp": start + 600, "jti": "j-old"},
               key_pair)
    no_iat = sign({"userId": "judy"}, key_pair)
    bystander = fresh(key_pair, "kim")
    sessions = [service.login(old)["sessionId"] for _ in range(2)]
    for process in (service, other):
        assert process.verify(old).revocation_checked  # now in both caches
        assert process.verify(no_iat).revocation_checked

    clock.now = start + 1.5
    assert service.end_user_sessions("judy") == {
        "userId": "judy", "provider": "jwt", "sessionsEnded": 2,
        "tokensRevokedBefore": start + 1.5,
    }

    assert [service.session(session_id) for session_id in sessions] == [None, None]
    for process in (service, other):
        for token in (old, no_iat):  # a token without iat cannot prove it came later
            with pytest.raises(TokenRevoked):
                process.verify(token)
        with pytest.raises(TokenRevoked):
            process.login(old)
        assert process.verify(bystander).token.user_id == "kim"
    assert db.get(cutoff_key("judy")) == repr(start + 1.5).encode()
    assert db.ttl(cutoff_key("judy")) == -1

    # a token issued after the cut-off is accepted again, and may log in
    clock.now = start + 3
    newer = sign({"userId": "judy", "iat": start + 2}, key_pair)
    assert other.verify(newer).revocation_checked
    assert other.login(newer)["userId"] == "judy"
    record = service.user("judy")
    assert record is not None
    assert record["tokensRevokedBefore"] == start + 1.5


@pytest.mark.parametrize("user_id", ["", "a" * (USER_ID_MAX_LENGTH + 1), "judy\x00", "judy\n"])
def test_a_user_id_no_token_could_carry_is_refused_before_redis(
    make_service: Callable[..., VerifierService], redis_server: RedisServer, user_id: str
) -> None:
    service = make_service()
    redis_server.kill()  # not needed to refuse: the 400 comes first
    for call in (service.end_user_sessions, service.user):
        with pytest.raises(Problem) as caught:
            call(user_id)
        assert (caught.value.status, caught.value.code) == (400, "request_invalid")


# Redis down ------------------------------------------------------------------------------------


def test_session_ids_that_cannot_be_ours_never_reach_redis(
    make_service: Callable[..., VerifierService], redis_server: RedisServer
) -> None:
    service = make_service()
    redis_server.kill()
    for not_ours in ("short", "a" * 42 + "!", "a" * 44, "é" * 43):
        assert service.session(not_ours) is None
        assert service.logout(not_ours) is False
    # one that could be ours has to ask Redis, which is down
    with pytest.raises(StoreUnavailable):
        service.session("a" * 43)


def test_closed_mode_refuses_while_redis_is_down_and_recovers_by_itself(
    make_service: Callable[..., VerifierService],
    key_pair: KeyPair,
    other_key_pair: KeyPair,
    redis_server: RedisServer,
) -> None:
    service = make_service(redis_failure_mode="closed")
    token = fresh(key_pair, "mia", isAdmin=True)
    session_id = service.login(token)["sessionId"]
    assert service.verify(token).revocation_checked  # cached from here on

    redis_server.kill()
    with pytest.raises(StoreUnavailable):  # the cache never skips the revocation check
        service.verify(token)
    with pytest.raises(SignatureInvalid):  # a bad token is still told so
        service.verify(fresh(other_key_pair, "mia"))
    for operation in (
        lambda: service.login(token),
        lambda: service.revoke(token),
        lambda: service.end_user_sessions("mia"),
        lambda: service.session(session_id),
    ):
        with pytest.raises(StoreUnavailable):
            operation()
    assert service.readiness() == {"keys": True, "redis": False}

    redis_server.start()  # same port, same data: the AOF is replayed
    wait_until(lambda: service.readiness()["redis"], timeout=10, what="Redis to answer again")
    assert service.verify(token).revocation_checked
    session = service.session(session_id)
    assert session is not None
    assert session["userId"] == "mia"


def test_open_mode_accepts_by_signature_alone_and_says_so(
    make_service: Callable[..., VerifierService],
    key_pair: KeyPair,
    other_key_pair: KeyPair,
    redis_server: RedisServer,
) -> None:
    service = make_service(redis_failure_mode="open")
    token = fresh(key_pair, "ned", isAdmin=True)
    session_id = service.login(token)["sessionId"]

    redis_server.kill()
    verdict = service.verify(token)
    assert verdict.revocation_checked is False
    assert (verdict.token.user_id, verdict.token.is_admin) == ("ned", True)
    with pytest.raises(SignatureInvalid):
        service.verify(fresh(other_key_pair, "ned"))
    # what needs Redis still says it is unavailable: nothing is written or read by guess
    for operation in (
        lambda: service.login(token),
        lambda: service.revoke(token),
        lambda: service.end_user_sessions("ned"),
        lambda: service.user("ned"),
        lambda: service.session(session_id),
        lambda: service.logout(session_id),
    ):
        with pytest.raises(StoreUnavailable):
            operation()

    redis_server.start()
    wait_until(lambda: service.verify(token).revocation_checked, timeout=10,
               what="revocation checks to resume")
    assert service.session(session_id) is not None
