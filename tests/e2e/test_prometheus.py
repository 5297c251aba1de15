"""A real Prometheus scraping a real issuer and verifier, with deploy/prometheus's configuration
and rules: every query of the dashboard and of the alerts finds its series (no metric name or
label misspelt), the rules evaluate without error and stay quiet on a healthy stack, and a Redis
outage fires the Redis alert, which resolves once Redis is back.

Prometheus runs as the current user on a free port of 127.0.0.1, with its own temporary storage,
scraping and evaluating every second. The issuer signs with a keys folder (so the key metrics
exist); the verifier trusts its JWKS (so the JWKS metrics exist) and uses a Redis of this
module's own, which the outage test kills.
"""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from shared.apikeys import add_client
from tests.forge import private_key, sign
from tests.keypairs import KeyPair
from tests.procs import RedisServer, ServiceProcess, free_port, run_cli, wait_until
from tests.promql import (
    ALERTS_FILE,
    INSTALL_HINT,
    PROMETHEUS_CONFIG,
    alert_rules,
    dashboard,
    dashboard_queries,
    selectors,
    variable_queries,
)

pytestmark = pytest.mark.e2e

ISSUER_JOB = "jwt-auth-issuer"
VERIFIER_JOB = "jwt-auth-verifier"


class Prometheus:
    """``prometheus`` in the foreground on 127.0.0.1:``port``, its storage and log in ``root``."""

    def __init__(self, root: Path, config: dict[str, Any]) -> None:
        binary = shutil.which("prometheus") or (
            "/usr/bin/prometheus" if Path("/usr/bin/prometheus").exists() else None)
        if binary is None:
            pytest.fail(f"prometheus is not installed: {INSTALL_HINT}")
        self.root = root
        self.port = free_port()
        self.config = root / "prometheus.yml"
        self.config.write_text(yaml.safe_dump(config, sort_keys=False))
        self.command = [
            binary,
            f"--config.file={self.config}",
            f"--storage.tsdb.path={root / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--log.level=warn",
        ]
        self.log_path = root / "prometheus.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self._log = self.log_path.open("ab")
        self.process = subprocess.Popen(self.command, stdout=self._log, stderr=subprocess.STDOUT,
                                        start_new_session=True)

        def ready() -> bool:
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(f"prometheus exited ({self.process.returncode}):\n"
                                     f"{self.log()}")
            try:
                return requests.get(f"{self.url}/-/ready", timeout=1).status_code == 200
            except requests.RequestException:
                return False

        wait_until(ready, timeout=30, what=f"prometheus on port {self.port}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def api(self, path: str, **params: str) -> Any:
        answer = requests.get(f"{self.url}/api/v1/{path}", params=params, timeout=10)
        body = answer.json()
        if body.get("status") != "success":
            raise AssertionError(f"{path} {params}: {body.get('errorType')}: {body.get('error')}")
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        data = self.api("query", query=expr)
        assert data["resultType"] == "vector", (expr, data["resultType"])
        result: list[dict[str, Any]] = data["result"]
        return result

    def alerts(self) -> list[dict[str, Any]]:
        """The pending and firing alerts."""
        alerts: list[dict[str, Any]] = self.api("alerts")["alerts"]
        return alerts

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self._log.close()
        self.process = None


def quick_rules(folder: Path) -> Path:
    """alerts.yml with every ``for:`` at 1 s, so an alert fires within seconds of its condition
    (the expressions are the shipped ones; only how long they must hold changes)."""
    text, count = re.subn(r"(?m)^(\s+)for: \S+$", r"\1for: 1s", ALERTS_FILE.read_text())
    assert count == len(alert_rules()), "every alert has a `for:` to shorten"
    path = folder / "alerts.yml"
    path.write_text(text)
    return path


def scrape_config(rules: Path, targets: dict[str, str]) -> dict[str, Any]:
    """deploy/prometheus/prometheus.yml, scraping and evaluating every second, its static
    targets pointed at this test's services, its rules the quick ones."""
    config: dict[str, Any] = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    config["global"] = {"scrape_interval": "1s", "scrape_timeout": "1s",
                        "evaluation_interval": "1s"}
    config["rule_files"] = [str(rules)]
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert set(jobs) == set(targets), f"the example's jobs are {sorted(jobs)}"
    for name, target in targets.items():
        jobs[name]["static_configs"] = [{"targets": [target]}]
    return config


@dataclass
class Monitored:
    redis: RedisServer
    issuer: ServiceProcess
    verifier: ServiceProcess
    prometheus: Prometheus
    client_key: str


@pytest.fixture(scope="module")
def monitored(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Monitored]:
    folder = tmp_path_factory.mktemp("prometheus")
    redis_server = RedisServer(folder / "redis", durable=False)
    keys_dir, passphrase = folder / "keys", folder / "passphrase.txt"
    passphrase.write_text("monitored passphrase\n")
    clients = folder / "clients.json"
    client_key = add_client(clients, "webapp", admin=False, variable="ISSUER_CLIENTS_FILE")
    # the folder's first key: active, made now (so JwtAuthSigningKeyOld stays quiet)
    made = run_cli("keys", "rotate", "--bits", "2048", env={
        "ISSUER_KEYS_DIR": str(keys_dir), "ISSUER_KEY_PASSPHRASE_FILE": str(passphrase)})
    assert made.returncode == 0, made.stderr
    issuer = ServiceProcess("issuer", {
        "ISSUER_KEYS_DIR": str(keys_dir),
        "ISSUER_KEY_PASSPHRASE_FILE": str(passphrase),
        "ISSUER_CLIENTS_FILE": str(clients),
        "ISSUER_RATE_LIMIT": "0",
    }, folder / "issuer.log", workers=1, threads=2)
    verifier = ServiceProcess("verifier", {
        "VERIFIER_JWKS_URL": f"{issuer.url}/.well-known/jwks.json",
        "REDIS_URL": redis_server.url,
    }, folder / "verifier.log", workers=2, threads=2)
    prometheus = Prometheus(folder, scrape_config(quick_rules(folder), {
        ISSUER_JOB: f"127.0.0.1:{issuer.port}", VERIFIER_JOB: f"127.0.0.1:{verifier.port}"}))
    started: list[Any] = []
    try:
        for part in (redis_server, issuer, verifier, prometheus):
            part.start()
            started.append(part)
        stack = Monitored(redis_server, issuer, verifier, prometheus, client_key)

        def both_scraped() -> bool:
            return len(prometheus.query("jwt_auth_ready == 1")) == 2

        wait_until(both_scraped, timeout=30, what="prometheus to scrape both services, ready")
        yield stack
    finally:
        for part in reversed(started):
            part.stop()


def _evaluated_since(prometheus: Prometheus, moment: float) -> bool:
    """Whether every rule was evaluated after ``moment`` (unix seconds), each without error."""
    rules = [rule for group in prometheus.api("rules")["groups"] for rule in group["rules"]]
    assert len(rules) == len(alert_rules())
    for rule in rules:
        assert rule["health"] in {"ok", "unknown"}, f"{rule['name']}: {rule.get('lastError')}"
    return all(rule["health"] == "ok" and _timestamp(rule["lastEvaluation"]) > moment
               for rule in rules)


def _timestamp(rfc3339: str) -> float:
    # Prometheus gives nanoseconds; datetime takes microseconds
    trimmed = re.sub(r"(\.\d{6})\d*", r"\1", rfc3339).replace("Z", "+00:00")
    return datetime.fromisoformat(trimmed).timestamp()


def _active(prometheus: Prometheus) -> dict[str, str]:
    """The active alerts: ``name`` or ``name instance`` -> pending or firing."""
    return {" ".join(filter(None, (alert["labels"]["alertname"],
                                   alert["labels"].get("instance")))): alert["state"]
            for alert in prometheus.alerts()}


def _wait_quiet(stack: Monitored, what: str) -> None:
    """Until every rule has been evaluated on fresh samples and no alert is pending or firing."""
    since = time.time() + 1.5  # a scrape after now, then an evaluation after that

    def quiet() -> bool:
        return _evaluated_since(stack.prometheus, since) and not _active(stack.prometheus)

    try:
        wait_until(quiet, timeout=45, what=what)
    except TimeoutError:
        raise AssertionError(f"{what}; still active: {_active(stack.prometheus)}") from None


def _exercise(stack: Monitored, other_key_pair: KeyPair) -> None:
    """Traffic that makes every series the queries read: tokens issued and refused,
    verifications of each kind, a session, and a short Redis outage (503s, store failures, the
    breakers)."""
    issuer, verifier = stack.issuer.url, stack.verifier.url
    issued = requests.post(f"{issuer}/v1/tokens", json={"userId": "alice"}, timeout=10,
                           headers={"Authorization": f"Bearer {stack.client_key}"})
    assert issued.status_code == 201, issued.text
    token = issued.json()["token"]
    refused = requests.post(f"{issuer}/v1/tokens", json={"userId": "alice"}, timeout=10,
                            headers={"Authorization": "Bearer not-a-client-key"})
    assert refused.status_code == 401, refused.text

    assert requests.post(f"{verifier}/v1/verify", json={"token": token},
                         timeout=10).status_code == 200
    unknown = sign({"userId": "mallory", "exp": int(time.time()) + 600},
                   private_key(other_key_pair), kid="a-kid-nobody-published")
    answer = requests.post(f"{verifier}/v1/verify", json={"token": unknown}, timeout=10)
    assert (answer.status_code, answer.json()["code"]) == (401, "key_unknown"), answer.text
    login = requests.post(f"{verifier}/v1/sessions", json={"token": token}, timeout=10)
    assert login.status_code == 201, login.text
    ended = requests.delete(f"{verifier}/v1/sessions/{login.json()['sessionId']}", timeout=10)
    assert ended.status_code == 204, ended.text

    stack.redis.kill()
    try:
        down = requests.post(f"{verifier}/v1/sessions", json={"token": token}, timeout=30)
        assert down.status_code == 503, down.text
    finally:
        stack.redis.start()


def test_every_dashboard_and_alert_query_finds_its_series(
    monitored: Monitored, other_key_pair: KeyPair
) -> None:
    prometheus = monitored.prometheus
    _exercise(monitored, other_key_pair)
    board = dashboard()
    panels = {**dashboard_queries(board), **variable_queries(board)}
    rules = {f"alert {rule.name}": rule.expr for rule in alert_rules()}
    wanted = {selector for expr in [*panels.values(), *rules.values()]
              for selector in selectors(expr)}

    def missing() -> list[str]:
        return sorted(selector for selector in wanted
                      if not prometheus.query(f"count({selector})"))

    def empty() -> list[str]:
        return [name for name, expr in panels.items() if not prometheus.query(expr)]

    # each series shows at the next scrape, and a rate once two scrapes have it: seconds
    try:
        wait_until(lambda: not missing(), timeout=20, what="every selector to find a series")
    except TimeoutError:
        raise AssertionError(f"selectors that find no series: {missing()}") from None
    # each query is valid PromQL as Prometheus parses it (api() fails on an error), and the
    # dashboard's return series; the alerts' return none on a healthy stack, as they should
    try:
        wait_until(lambda: not empty(), timeout=20, what="every dashboard query to find series")
    except TimeoutError:
        raise AssertionError(f"dashboard queries that return no series: {empty()}") from None
    for expr in rules.values():
        prometheus.query(expr)


def test_a_healthy_stack_fires_nothing_and_a_redis_outage_fires_the_redis_alert(
    monitored: Monitored,
) -> None:
    prometheus = monitored.prometheus
    _wait_quiet(monitored, "a healthy stack to fire no alert")

    verifier = f"127.0.0.1:{monitored.verifier.port}"
    monitored.redis.kill()
    try:
        def firing() -> bool:
            active = _active(prometheus)
            return (active.get(f"JwtAuthRedisUnavailable {verifier}") == "firing"
                    # closed mode: a verifier without Redis is not ready
                    and active.get(f"JwtAuthVerifierNotReady {verifier}") == "firing")

        try:
            wait_until(firing, timeout=45, what="the Redis alert to fire")
        except TimeoutError:
            raise AssertionError(f"the Redis alert did not fire: {_active(prometheus)}") from None
        alert = next(alert for alert in prometheus.alerts()
                     if alert["labels"]["alertname"] == "JwtAuthRedisUnavailable")
        assert alert["labels"] == {"alertname": "JwtAuthRedisUnavailable", "job": VERIFIER_JOB,
                                   "instance": verifier, "severity": "critical"}
        assert verifier in alert["annotations"]["summary"]
    finally:
        monitored.redis.start()
    _wait_quiet(monitored, "every alert to resolve once Redis is back")
