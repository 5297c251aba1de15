"""The node package jwt-auth-client (clients/node), run by ``node --test`` against real services.

pytest starts what the node tests talk to: a real issuer and verifier under gunicorn on the
session's redis-server, each on a free port of 127.0.0.1, and hands node their URLs, API keys,
log files and a set of tokens through ``JWT_AUTH_*`` environment variables. Each test here runs
one file of ``clients/node/test/`` and fails unless node ran tests, all of them passed and none
was skipped. Tokens node cannot get from the issuer (expired, forged, without a user id) are
made here, by tests/forge.py, the one place tests make tokens.

The verifier runs with ``VERIFIER_MIRROR_MAX_KEYS=0`` (every verification reads Redis, so a
stopped redis-server is a 503 at once), ``VERIFIER_MAX_TOKEN_AGE`` (so ``token_too_old`` can be
answered) and ``VERIFIER_REQUIRED_ATTRIBUTES={"tenant": "acme"}`` (so ``attributes_mismatch``
can): every token the node tests expect to be good carries ``tenant: acme``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
import requests

import issuer.errors
import shared.errors
import verifier.errors
from shared.apikeys import add_client
from tests.forge import fresh, sign
from tests.keypairs import KeyPair
from tests.procs import (
    REPO,
    RedisServer,
    ServiceProcess,
    issuer_env,
    service_environment,
    verifier_env,
    wait_until,
)

pytestmark = pytest.mark.e2e

NODE_CLIENT = REPO / "clients" / "node"
TENANT = {"tenant": "acme"}
# per client and minute: the rate-limit test spends the "burst" client's; the other clients
# issue far fewer tokens than this in the whole module
ISSUER_RATE_LIMIT = 60
MAX_TOKEN_AGE = 86400
# how long one node test file may run, retries and npm pack included
NODE_TIMEOUT = 240


@dataclass
class Stack:
    issuer: ServiceProcess
    verifier: ServiceProcess
    redis_server: RedisServer
    env: dict[str, str]


def _needs_node() -> None:
    if shutil.which("node") is None or not (NODE_CLIENT / "node_modules" / "express").is_dir():
        pytest.fail("node and clients/node/node_modules are needed "
                    "(scripts/bootstrap --for-tests, or npm ci in clients/node)")


@pytest.fixture(scope="module")
def stack(
    key_pair: KeyPair, redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    _needs_node()
    folder = tmp_path_factory.mktemp("node-client")
    clients = folder / "clients.json"
    keys = {
        name: add_client(clients, name, admin=admin, variable="ISSUER_CLIENTS_FILE")
        for name, admin in (("webapp", False), ("backoffice", True), ("burst", False))
    }
    admins = folder / "verifier-admins.json"
    admins.write_text('{"clients": []}')
    resource_servers = folder / "verifier-clients.json"
    introspect_key = add_client(resource_servers, "orders-api", admin=False,
                                variable="VERIFIER_CLIENT_KEYS_FILE")
    if redis_server.process is None or redis_server.process.poll() is not None:
        redis_server.start()
    db = redis.Redis.from_url(redis_server.url)
    db.flushdb()
    db.close()
    issuing = ServiceProcess(
        "issuer", issuer_env(key_pair, clients, ISSUER_RATE_LIMIT=str(ISSUER_RATE_LIMIT)),
        folder / "issuer.log", workers=1, threads=2)
    verifying = ServiceProcess(
        "verifier",
        verifier_env(
            key_pair, redis_server.url, admins,
            VERIFIER_CLIENT_KEYS_FILE=str(resource_servers),
            VERIFIER_MIRROR_MAX_KEYS="0",
            VERIFIER_MAX_TOKEN_AGE=str(MAX_TOKEN_AGE),
            VERIFIER_REQUIRED_ATTRIBUTES=json.dumps(TENANT),
        ),
        folder / "verifier.log", workers=1, threads=2)
    started: list[ServiceProcess] = []
    try:
        for service in (issuing, verifying):
            service.start()
            started.append(service)
        env = {
            "JWT_AUTH_ISSUER_URL": issuing.url,
            "JWT_AUTH_VERIFIER_URL": verifying.url,
            "JWT_AUTH_ISSUER_KEY": keys["webapp"],
            "JWT_AUTH_ISSUER_ADMIN_KEY": keys["backoffice"],
            "JWT_AUTH_ISSUER_BURST_KEY": keys["burst"],
            "JWT_AUTH_ISSUER_RATE_LIMIT": str(ISSUER_RATE_LIMIT),
            "JWT_AUTH_INTROSPECT_KEY": introspect_key,
            "JWT_AUTH_ISSUER_LOG": str(issuing.log_path),
            "JWT_AUTH_VERIFIER_LOG": str(verifying.log_path),
            "JWT_AUTH_TENANT": json.dumps(TENANT),
        }
        yield Stack(issuing, verifying, redis_server, env)
    finally:
        for service in started:
            service.stop()


def tokens(key_pair: KeyPair, other_key_pair: KeyPair) -> dict[str, str]:
    """Tokens for the node tests, made now: each named for what the verifier answers to it."""
    now = int(time.time())
    return {
        "good": fresh(key_pair, "node-user", **TENANT),
        "admin": fresh(key_pair, "node-admin", isAdmin=True, **TENANT),
        "plain": fresh(key_pair, "node-plain", isAdmin=False, plan="gold", **TENANT),
        "to_revoke": fresh(key_pair, "node-revoked", **TENANT),
        "token_expired": fresh(key_pair, "node-user", lifetime=-3600, **TENANT),
        "token_not_yet_valid": fresh(key_pair, "node-user", nbf=now + 3600, **TENANT),
        "token_too_old": sign({"userId": "node-user", "iat": now - 2 * MAX_TOKEN_AGE, **TENANT},
                              key_pair),
        "signature_invalid": fresh(other_key_pair, "node-user", **TENANT),
        "key_unknown": sign({"userId": "node-user", "iat": now, "exp": now + 600, **TENANT},
                            key_pair, kid="nobody"),
        "algorithm_not_allowed": sign({"userId": "node-user", "iat": now, "exp": now + 600},
                                      b"a shared secret", alg="HS256"),
        "token_malformed": "not-a-token",
        "claim_missing": sign({"iat": now, "exp": now + 600, **TENANT}, key_pair),
        "claim_invalid": fresh(key_pair, "node-user", isAdmin="yes", **TENANT),
        "attributes_mismatch": fresh(key_pair, "node-user", tenant="globex"),
    }


def problem_codes() -> dict[str, dict[str, int]]:
    """Every code each service answers, read from its own error classes: a new one fails here."""

    def subclasses(base: type[shared.errors.Problem]) -> list[type[shared.errors.Problem]]:
        found: list[type[shared.errors.Problem]] = []
        for sub in base.__subclasses__():
            found += [sub, *subclasses(sub)]
        return found

    modules = {"verifier": (verifier.errors.__name__, shared.errors.__name__),
               "issuer": (issuer.errors.__name__, shared.errors.__name__)}
    return {
        service: {cls.code: cls.status for cls in subclasses(shared.errors.Problem)
                  if cls.__module__ in names}
        for service, names in modules.items()
    }


@dataclass
class NodeRun:
    returncode: int
    output: str
    counts: dict[str, int]

    def assert_passed(self) -> None:
        assert self.returncode == 0, self.output
        assert self.counts.get("tests", 0) > 0, f"node ran no test:\n{self.output}"
        assert self.counts.get("pass") == self.counts["tests"], self.output
        for outcome in ("fail", "cancelled", "skipped", "todo"):
            assert self.counts.get(outcome, 0) == 0, f"{outcome}:\n{self.output}"


def node_command(test_file: str) -> list[str]:
    # tap: its closing "# pass N" lines are what is counted here; one file at a time
    return ["node", "--test", "--test-reporter=tap", f"test/{test_file}"]


def node_env(stack: Stack, key_pair: KeyPair, other_key_pair: KeyPair,
             **extra: str) -> dict[str, str]:
    return service_environment({
        **stack.env,
        "JWT_AUTH_TOKENS": json.dumps(tokens(key_pair, other_key_pair)),
        "JWT_AUTH_CODES": json.dumps(problem_codes()),
        **extra,
    })


def summary(output: str) -> dict[str, int]:
    """The TAP reporter's closing counts (``# tests 12``, ``# pass 12``, ...)."""
    return {name: int(value) for name, value in
            re.findall(r"^# (tests|suites|pass|fail|cancelled|skipped|todo) (\d+)$", output, re.M)}


def run_node(test_file: str, env: dict[str, str]) -> NodeRun:
    result = subprocess.run(
        node_command(test_file), cwd=NODE_CLIENT, env=env, capture_output=True, text=True,
        timeout=NODE_TIMEOUT, check=False, stdin=subprocess.DEVNULL,
    )
    output = result.stdout + result.stderr
    return NodeRun(result.returncode, output, summary(result.stdout))


@pytest.mark.parametrize("test_file", [
    "errors.test.js",
    "verifier.test.js",
    "issuer.test.js",
    "transport.test.js",
    "express.test.js",
    "fastify.test.js",
])
def test_node_suite(
    stack: Stack, key_pair: KeyPair, other_key_pair: KeyPair, test_file: str
) -> None:
    run_node(test_file, node_env(stack, key_pair, other_key_pair)).assert_passed()


def test_node_packed_tarball_installs_and_works(
    stack: Stack, key_pair: KeyPair, other_key_pair: KeyPair, tmp_path: Path
) -> None:
    """npm pack, then npm install of the tarball in an empty folder, without the registry."""
    env = node_env(stack, key_pair, other_key_pair, JWT_AUTH_SCRATCH=str(tmp_path))
    run_node("pack.test.js", env).assert_passed()


RECOVERS = "node-store-recovers"


def test_node_retries_503_while_redis_is_down(
    stack: Stack, key_pair: KeyPair, other_key_pair: KeyPair, tmp_path: Path
) -> None:
    """redis-server stopped: the verifier answers 503 store_unavailable, which node retries.

    node's last test keeps retrying one call under the id ``node-store-recovers``; once the
    verifier's log shows a 503 for it, redis-server is started again here, and that same call
    must end in a 200 (node checks the log lines). Every wait is bounded.
    """
    env = node_env(stack, key_pair, other_key_pair, JWT_AUTH_RECOVER_ID=RECOVERS)
    good = fresh(key_pair, "node-user", **TENANT)
    stack.redis_server.kill()
    output_path = tmp_path / "node.out"
    process: subprocess.Popen[bytes] | None = None
    try:
        wait_until(lambda: _verify_status(stack.verifier.url, good) == 503, timeout=15,
                   what="the verifier answering 503 without Redis")
        with output_path.open("wb") as output:
            process = subprocess.Popen(
                node_command("store-down.test.js"), cwd=NODE_CLIENT, env=env, stdout=output,
                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )
            try:
                wait_until(lambda: _logged_503(stack.verifier, RECOVERS) or process.poll()
                           is not None, timeout=60, what=f"a 503 logged for {RECOVERS}")
            except TimeoutError:
                raise AssertionError(output_path.read_text(errors="replace")) from None
            stack.redis_server.start()
            returncode = process.wait(timeout=NODE_TIMEOUT)
    finally:
        if process is not None and process.poll() is None:
            process.kill()
            process.wait(timeout=10)
        if stack.redis_server.process is None:
            stack.redis_server.start()
    text = output_path.read_text(errors="replace")
    NodeRun(returncode, text, summary(text)).assert_passed()
    wait_until(lambda: _verify_status(stack.verifier.url, fresh(key_pair, **TENANT)) == 200,
               timeout=15, what="the verifier using Redis again")


def _verify_status(url: str, token: str) -> int:
    try:
        return requests.post(f"{url}/v1/verify", json={"token": token}, timeout=5).status_code
    except requests.RequestException:
        return 0


def _logged_503(service: ServiceProcess, request_id: str) -> bool:
    return any(line.startswith('127.0.0.1 "') and '" 503 ' in line
               and line.endswith(f" request_id={request_id}")
               for line in service.output().splitlines())


def test_node_types_check() -> None:
    """index.d.ts, index.d.mts and test/types/ under ``tsc --noEmit`` (devDependency)."""
    _needs_node()
    tsc = NODE_CLIENT / "node_modules" / "typescript" / "bin" / "tsc"
    assert tsc.is_file(), "npm ci in clients/node installs typescript"
    result = subprocess.run(
        ["node", str(tsc), "--noEmit", "-p", "."], cwd=NODE_CLIENT, capture_output=True,
        text=True, timeout=NODE_TIMEOUT, check=False, env=dict(os.environ),
    )
    assert result.returncode == 0, result.stdout + result.stderr
