"""The verifier when Redis fails or is not durable, through Flask's test client.

Closed mode answers 503 while Redis is down, open mode answers by signature alone and says
so, both recover by themselves; a Redis that can lose revocations is reported at start, and
Redis URLs are logged without their password. The test's own redis-server is killed and
restarted (fixtures in ``conftest.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
import redis
from flask import Flask

from tests.forge import fresh
from tests.integration.verifier_http import admin_headers, assert_problem
from tests.keypairs import KeyPair
from tests.procs import RedisServer, wait_until
from verifier.app import create_app
from verifier.config import VerifierSettings

# Redis failure modes -----------------------------------------------------------------------


def test_closed_mode_answers_503_while_redis_is_down_and_recovers(
    make_app: Callable[..., Flask],
    key_pair: KeyPair,
    other_key_pair: KeyPair,
    redis_server: RedisServer,
    admin_keys: tuple[Path, str, str],
) -> None:
    client = make_app(redis_failure_mode="closed").test_client()
    token = fresh(key_pair, "mia")
    assert client.post("/v1/verify", json={"token": token}).status_code == 200

    redis_server.kill()
    assert_problem(client.post("/v1/verify", json={"token": token}), 503, "store_unavailable")
    # a token that is bad anyway is still told so
    assert_problem(
        client.post("/v1/verify", json={"token": fresh(other_key_pair)}), 401, "signature_invalid"
    )
    assert_problem(client.post("/v1/sessions", json={"token": token}), 503, "store_unavailable")
    assert_problem(client.get("/readyz"), 503, "not_ready")
    assert client.get("/healthz").status_code == 200

    redis_server.start()
    wait_until(
        lambda: client.post("/v1/verify", json={"token": token}).status_code == 200,
        timeout=10, what="the verifier to use Redis again",
    )
    assert client.get("/readyz").status_code == 200


def test_open_mode_answers_by_signature_and_says_so(
    make_app: Callable[..., Flask],
    key_pair: KeyPair,
    redis_server: RedisServer,
    admin_keys: tuple[Path, str, str],
) -> None:
    client = make_app(redis_failure_mode="open").test_client()
    token = fresh(key_pair, "ned", isAdmin=True)
    session_id = client.post("/v1/sessions", json={"token": token}).get_json()["sessionId"]

    redis_server.kill()
    response = client.post("/v1/verify", json={"token": token})
    assert response.status_code == 200
    assert response.get_json()["revocationChecked"] is False
    assert response.headers["X-Revocation-Checked"] == "false"
    auth = client.get("/v1/auth", headers={"Authorization": f"Bearer {token}"})
    assert auth.status_code == 200
    assert auth.headers["X-Auth-User-Id"] == "ned"
    assert auth.headers["X-Revocation-Checked"] == "false"
    # what cannot work without Redis still says so
    for response in (
        client.post("/v1/sessions", json={"token": token}),
        client.get(f"/v1/sessions/{session_id}"),
        client.get("/v1/auth", headers={"Authorization": f"Bearer {session_id}"}),
        client.delete(f"/v1/sessions/{session_id}"),
        client.post("/v1/revocations", json={"token": token}),
        client.delete("/v1/users/ned/sessions", headers=admin_headers(admin_keys)),
        client.get("/v1/users/ned", headers=admin_headers(admin_keys)),
    ):
        assert_problem(response, 503, "store_unavailable")
    metrics = client.get("/metrics").get_data(as_text=True)
    assert 'verifications_total{result="ok_unchecked"}' in metrics

    redis_server.start()

    def checked_again() -> bool:
        answer = client.post("/v1/verify", json={"token": token})
        return answer.status_code == 200 and answer.get_json()["revocationChecked"] is True

    wait_until(checked_again, timeout=10, what="revocation checks to resume")
    # the session survived the outage: redis persists with AOF
    assert client.get(f"/v1/sessions/{session_id}").status_code == 200


# durability and logs ----------------------------------------------------------------------


def test_a_redis_that_can_lose_revocations_is_reported_at_start(
    key_pair: KeyPair, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = VerifierSettings(public_key_file=str(key_pair.public_path))
    forgetful = RedisServer(tmp_path / "forgetful", durable=False)
    forgetful.start()
    try:
        with caplog.at_level("WARNING", logger="verifier.app"):
            create_app(replace(settings, redis_url=forgetful.url))
    finally:
        forgetful.stop()
    assert "can lose acknowledged revocations" in caplog.text
    assert "appendonly=no" in caplog.text


def test_a_durable_redis_and_an_absent_one_start_without_a_durability_warning(
    key_pair: KeyPair, redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    settings = VerifierSettings(public_key_file=str(key_pair.public_path))
    with caplog.at_level("WARNING", logger="verifier.app"):
        create_app(replace(settings, redis_url=redis_url))
        # nothing listens on port 1: the service still starts, and /readyz reports Redis
        create_app(replace(settings, redis_url="redis://127.0.0.1:1/0"))
    assert "revocations" not in caplog.text


@pytest.mark.parametrize(("url", "shown"), [
    ("redis://:s3cret@cache:6379/0", "redis://***@cache:6379/0"),
    ("rediss://user:s3cret@cache:6380/1", "rediss://***@cache:6380/1"),
    ("redis://cache:6379/0", "redis://cache:6379/0"),
    # redis-py takes a password from the query too
    ("redis://cache:6379/0?password=s3cret&db=1", "redis://cache:6379/0?password=***&db=1"),
    ("redis://cache/0?socket_timeout=1&Password=s3cret", "redis://cache/0?socket_timeout=1&password=***"),
])
def test_redis_urls_in_logs_never_carry_the_password(url: str, shown: str) -> None:
    from verifier.redisconn import without_password

    assert without_password(url) == shown


def _fill(db: redis.Redis) -> None:
    """Write until Redis refuses (bounded: 1024 x 4 KiB)."""
    for n in range(1024):
        db.set(f"filler:{n}", "x" * 4096)


def test_a_full_redis_refuses_writes_but_keeps_serving_reads(
    make_app: Callable[..., Flask], key_pair: KeyPair, db: redis.Redis
) -> None:
    """maxmemory reached under noeviction: a login is refused as Redis being full (not
    unreachable), and the verification right after it still reads Redis and answers 200."""
    app = make_app(mirror_max_keys=0)  # every verification reads Redis
    client = app.test_client()
    token = fresh(key_pair, "fay")
    assert client.post("/v1/verify", json={"token": token}).status_code == 200
    used = int(db.info("memory")["used_memory"])
    db.config_set("maxmemory-policy", "noeviction")
    db.config_set("maxmemory", str(used + 256 * 1024))
    try:
        with pytest.raises(redis.exceptions.OutOfMemoryError):
            _fill(db)
        for _ in range(3):
            refused = client.post("/v1/sessions", json={"token": token})
            body = assert_problem(refused, 503, "store_unavailable")
            assert "Redis is full" in body["detail"]
            assert client.post("/v1/verify", json={"token": token}).status_code == 200
        assert client.get("/readyz").status_code == 200
    finally:
        db.config_set("maxmemory", "0")
    assert client.post("/v1/sessions", json={"token": token}).status_code == 201
