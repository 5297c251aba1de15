"""The metrics folder under real gunicorn: a worker killed with SIGKILL leaves no files behind and
no hole in the totals; a restart on the same folder starts from a clean one."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from shared.apikeys import add_client
from tests.keypairs import KeyPair
from tests.procs import ServiceProcess, http_ok, verifier_env, wait_until

pytestmark = pytest.mark.e2e

REQUESTS = 40


def children(pid: int) -> set[int]:
    """gunicorn's workers: the master's children, from /proc."""
    found: set[int] = set()
    for listing in Path(f"/proc/{pid}/task").glob("*/children"):
        try:
            found |= {int(word) for word in listing.read_text().split()}
        except OSError:
            continue
    return found


def files_of(folder: Path, pid: int | str) -> list[str]:
    return sorted(path.name for path in folder.glob(f"*_{pid}.db"))


def owners(folder: Path) -> set[str]:
    return {path.name.rsplit("_", 1)[1].removesuffix(".db") for path in folder.glob("*.db")}


def verify_requests(url: str) -> float:
    """``http_requests_total`` of ``POST /v1/verify`` as ``/metrics`` reports it."""
    text = requests.get(f"{url}/metrics", timeout=10).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "http_requests_total" and sample.labels.get("route") == "/v1/verify"
    )


def send_verifications(url: str, count: int) -> None:
    # a new connection each time, so that both workers answer some
    for _ in range(count):
        answer = requests.post(f"{url}/v1/verify", json={"token": "not-a-token"}, timeout=10)
        assert answer.status_code == 401


def test_a_killed_worker_is_folded_and_a_restart_starts_clean(
    key_pair: KeyPair, redis_url: str, tmp_path: Path
) -> None:
    folder = tmp_path / "metrics"
    folder.mkdir()
    admins = tmp_path / "admins.json"
    add_client(admins, "ops", admin=True, variable="VERIFIER_ADMIN_KEYS_FILE")
    env = {**verifier_env(key_pair, redis_url, admins), "PROMETHEUS_MULTIPROC_DIR": str(folder)}

    service = ServiceProcess("verifier", env, tmp_path / "verifier.log", workers=2, threads=2)
    service.start()
    try:
        assert service.process is not None
        master = service.process.pid
        wait_until(lambda: len(children(master)) == 2, timeout=30, what="two workers")
        send_verifications(service.url, REQUESTS)
        assert verify_requests(service.url) == REQUESTS

        counted = [pid for pid in sorted(children(master)) if files_of(folder, pid)]
        assert counted, f"no worker has metrics files: {sorted(folder.iterdir())}"
        victim = counted[0]
        os.kill(victim, signal.SIGKILL)
        wait_until(lambda: victim not in children(master) and len(children(master)) == 2,
                   timeout=60, what="gunicorn to replace the killed worker")
        wait_until(lambda: not files_of(folder, victim), timeout=30,
                   what=f"the files of worker {victim} to be folded")
        wait_until(lambda: http_ok(f"{service.url}/healthz"), timeout=30, what="the verifier")

        assert verify_requests(service.url) == REQUESTS  # nothing lost, nothing twice
        assert (folder / "counter_archive.db").is_file()
        assert (folder / "histogram_archive.db").is_file()
        send_verifications(service.url, REQUESTS)
        assert verify_requests(service.url) == 2 * REQUESTS
        # the folder holds the living processes and the archives, nothing of the dead one
        alive = {str(pid) for pid in children(master)} | {str(master), "archive"}
        assert owners(folder) <= alive, f"files of gone processes: {owners(folder) - alive}"
    finally:
        service.stop()

    # a restart on the operator's folder: the files of the processes that are gone go with them
    # (counters start again from zero, as Prometheus expects of a restarted service)
    assert owners(folder), "the stopped service left nothing to clean: the test proves nothing"
    restarted = ServiceProcess("verifier", env, tmp_path / "restarted.log", workers=2, threads=2)
    restarted.start()
    try:
        assert restarted.process is not None
        assert verify_requests(restarted.url) == 0
        alive = {str(pid) for pid in children(restarted.process.pid)} | {
            str(restarted.process.pid)}
        assert owners(folder) <= alive, f"files of gone processes: {owners(folder) - alive}"
    finally:
        restarted.stop()


def _gauges(url: str) -> dict[str, float]:
    text = requests.get(f"{url}/metrics", timeout=10).text
    return {
        sample.name + "".join(f"|{key}={value}" for key, value in sorted(sample.labels.items())):
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_state_gauges_combine_the_workers_and_the_master_counts_for_none(
    key_pair: KeyPair, redis_url: str, tmp_path: Path
) -> None:
    # the master builds the app (and so makes every gauge) before forking: its zeros must not
    # read as "Redis down" in a livemin gauge while every worker sees Redis up
    admins = tmp_path / "admins.json"
    add_client(admins, "ops", admin=True, variable="VERIFIER_ADMIN_KEYS_FILE")
    service = ServiceProcess("verifier", verifier_env(key_pair, redis_url, admins),
                             tmp_path / "verifier.log", workers=2, threads=2)
    service.start()
    try:
        assert service.process is not None
        master = service.process.pid
        wait_until(lambda: len(children(master)) == 2, timeout=30, what="two workers")

        def settled() -> bool:
            gauges = _gauges(service.url)
            return (gauges.get("verifier_redis_up") == 1
                    and gauges.get("verifier_revocation_mirror_in_sync") == 1
                    and gauges.get("jwt_auth_ready|service=verifier") == 1)

        # each worker samples at start and every few seconds; the mirror syncs in the background
        wait_until(settled, timeout=30, what="every worker to report Redis up and in sync")
        gauges = _gauges(service.url)
        assert gauges["verifier_trusted_keys|provider=jwt"] == 1
        assert any(name.startswith("jwt_auth_build_info|") for name in gauges)
    finally:
        service.stop()
