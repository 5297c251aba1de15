"""The state gauges as an operator's Prometheus reads them from ``/metrics``.

Each scrape samples the state first (``shared.statemetrics``), so what a test changes shows in
the next scrape: a key promoted, a Redis gone, a login refused by the limits.
"""

from __future__ import annotations

import platform
import time
from collections.abc import Callable
from pathlib import Path

from flask import Flask
from flask.testing import FlaskClient
from prometheus_client.parser import text_string_to_metric_families

from shared.statemetrics import version
from tests.forge import fresh
from tests.integration.test_issuer_keys_reload import kid_of, promote_in, start
from tests.keypairs import KeyPair, make_keys_dir
from tests.procs import RedisServer

Labels = tuple[tuple[str, str], ...]


def scrape(client: FlaskClient) -> dict[tuple[str, Labels], float]:
    """Every sample of ``/metrics`` by name and labels."""
    response = client.get("/metrics")
    assert response.status_code == 200
    samples = {}
    for family in text_string_to_metric_families(response.get_data(as_text=True)):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: dict[tuple[str, Labels], float], name: str, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


def test_the_issuer_reports_its_keys_readiness_and_version(
    tmp_path: Path, key_pair: KeyPair, other_key_pair: KeyPair,
) -> None:
    keys_dir = tmp_path / "keys"
    make_keys_dir(keys_dir, key_pair, other_key_pair)
    made = int(time.time()) - 3600  # make_keys_dir's keys were made an hour ago
    issuer = start(tmp_path, key_pair.passphrase_path, keys_dir=str(keys_dir))
    old, new = kid_of(key_pair), kid_of(other_key_pair)

    samples = scrape(issuer.client)
    assert abs(value(samples, "issuer_signing_key_created_timestamp_seconds") - made) <= 2
    assert value(samples, "issuer_next_key_present") == 1
    assert value(samples, "issuer_signing_key_info", kid=old, alg="RS256", role="active") == 1
    assert value(samples, "issuer_signing_key_info", kid=new, alg="RS256", role="next") == 1
    assert value(samples, "jwt_auth_ready", service="issuer") == 1
    assert value(samples, "jwt_auth_build_info", service="issuer", version=version(),
                 python=platform.python_version()) == 1

    promote_in(keys_dir)
    assert issuer.reloader.check() == 1
    samples = scrape(issuer.client)
    assert value(samples, "issuer_next_key_present") == 0
    assert value(samples, "issuer_signing_key_info", kid=new, alg="RS256", role="active") == 1
    # the old key's earlier role is shown as gone, its new one as present
    assert value(samples, "issuer_signing_key_info", kid=old, alg="RS256", role="active") == 0
    assert value(samples, "issuer_signing_key_info", kid=old, alg="RS256", role="retiring") == 1


def test_the_verifier_reports_redis_the_mirror_its_keys_and_sessions(
    make_app: Callable[..., Flask], key_pair: KeyPair,
) -> None:
    client = make_app(login_rate=1).test_client()
    token = fresh(key_pair, "rita")
    before = scrape(client)
    # series whose labels are known are there from the start: rate() sees their first event
    for result in ("ok", "key_unknown", "token_expired", "store_unavailable", "token_missing"):
        assert value(before, "verifications_total", result=result) is not None, result
    assert value(before, "verifier_store_failures_total", mode="closed") is not None
    assert value(before, "verifier_redis_breaker_open", node="redis") == 0
    refused_before = value(before, "verifier_sessions_total", event="refused_by_limit")
    assert refused_before is not None
    assert client.post("/v1/sessions", json={"token": token}).status_code == 201
    assert client.post("/v1/sessions", json={"token": token}).status_code == 429
    assert client.post("/v1/revocations", json={"token": token}).status_code == 204

    samples = scrape(client)
    assert value(samples, "verifier_sessions_total", event="refused_by_limit") == \
        refused_before + 1
    assert value(samples, "verifier_redis_up") == 1
    assert value(samples, "jwt_auth_ready", service="verifier") == 1
    assert value(samples, "verifier_redis_command_duration_seconds_count", command="revoke") >= 1
    assert value(samples, "verifier_revocation_mirror_enabled") == 1
    assert value(samples, "verifier_trusted_keys", provider="jwt") == 1
    assert value(samples, "verifier_trusted_key_info", provider="jwt", kid=kid_of(key_pair),
                 alg="RS256", source="pem") == 1
    # the mirror syncs in the background: in sync, holding the revocation, within seconds
    deadline = time.monotonic() + 10
    while True:
        samples = scrape(client)
        if value(samples, "verifier_revocation_mirror_in_sync") == 1 and \
                (value(samples, "verifier_revocation_mirror_entries") or 0) >= 1:
            break
        assert time.monotonic() < deadline, "the mirror did not sync within 10 s"
        time.sleep(0.1)


def test_a_verifier_that_loses_redis_says_so_and_recovers(
    make_app: Callable[..., Flask], key_pair: KeyPair, tmp_path: Path,
) -> None:
    own = RedisServer(tmp_path / "redis")
    own.start()
    try:
        client = make_app(redis_url=own.url).test_client()
        token = fresh(key_pair)
        assert client.post("/v1/sessions", json={"token": token}).status_code == 201
        own.kill()
        assert client.post("/v1/sessions", json={"token": token}).status_code == 503
        samples = scrape(client)
        assert value(samples, "verifier_redis_up") == 0
        assert value(samples, "jwt_auth_ready", service="verifier") == 0
        # one Redis (not a Cluster) is one node to the breaker
        assert value(samples, "verifier_redis_breaker_open", node="redis") == 1
        own.start()
        samples = scrape(client)  # the sample pings Redis: an answer closes the breaker
        assert value(samples, "verifier_redis_up") == 1
        assert value(samples, "verifier_redis_breaker_open", node="redis") == 0
        assert value(samples, "jwt_auth_ready", service="verifier") == 1
    finally:
        own.stop()
