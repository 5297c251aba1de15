"""Both live services against their own OpenAPI documents, with schemathesis.

Real gunicorn processes and a real Redis. schemathesis reads each service's /openapi.json and
sends generated requests, hostile ones included (its ``all`` mode: values outside the schema,
wrong types, missing fields, odd headers and paths), in its coverage, fuzzing and, where the
document links operations (log in, then read the session, then log out), stateful phases. Every
answer must be no 5xx and exactly what the document says: a documented status code, content
type, headers and body schema.

The command each test runs is the one to run by hand against any deployment (see docs/).
"""

from __future__ import annotations

import base64
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from shared.apikeys import add_client
from tests.keypairs import KeyPair
from tests.procs import RedisServer, ServiceProcess, free_port, issuer_env

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

SCHEMATHESIS = str(Path(sys.executable).parent / "schemathesis")
CHECKS = "all"  # every check schemathesis has, the negative-data and method ones included
EXAMPLES = 40  # per operation and phase; a fixed seed makes every run the same requests
SEED = 20261129


@dataclass
class Services:
    issuer: ServiceProcess
    verifier: ServiceProcess
    client_key: str
    admin_key: str
    introspection_key: str
    folder: Path


@pytest.fixture(scope="module")
def services(
    key_pair: KeyPair, redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Services]:
    folder = tmp_path_factory.mktemp("schemathesis")
    clients, admins = folder / "clients.json", folder / "admins.json"
    client_key = add_client(clients, "fuzz", admin=True, variable="ISSUER_CLIENTS_FILE")
    admin_key = add_client(admins, "ops", admin=True, variable="VERIFIER_ADMIN_KEYS_FILE")
    introspectors = folder / "clients-of-the-verifier.json"
    introspection_key = add_client(introspectors, "orders-api", admin=False,
                                   variable="VERIFIER_CLIENT_KEYS_FILE")
    if redis_server.process is None or redis_server.process.poll() is not None:
        redis_server.start()
    port = free_port()
    # its own URL as its identifier: the discovery documents answer, and are checked too
    issuer = ServiceProcess("issuer", issuer_env(key_pair, clients, ISSUER_RATE_LIMIT="0",
                                                 ISSUER_ISSUER=f"http://127.0.0.1:{port}"),
                            folder / "issuer.log", workers=1, threads=2, port=port)
    issuer.start()
    verifier = ServiceProcess("verifier", {
        "VERIFIER_JWKS_URL": f"{issuer.url}/.well-known/jwks.json",
        "REDIS_URL": redis_server.url,
        "VERIFIER_ADMIN_KEYS_FILE": str(admins),
        "VERIFIER_CLIENT_KEYS_FILE": str(introspectors),
    }, folder / "verifier.log", workers=1, threads=2)
    verifier.start()
    try:
        yield Services(issuer, verifier, client_key, admin_key, introspection_key, folder)
    finally:
        verifier.stop()
        issuer.stop()


def schemathesis(services: Services, base_url: str, credential: str, *options: str,
                 scheme: str = "Bearer") -> str:
    """``schemathesis run`` against a live service; its report, after checking it passed."""
    command = [
        SCHEMATHESIS, "run", f"{base_url}/openapi.json", "--checks", CHECKS, "--mode", "all",
        "--max-examples", str(EXAMPLES), "--seed", str(SEED),
        "--header", f"Authorization: {scheme} {credential}", *options,
    ]
    # run in the test's folder: schemathesis keeps a cache (.schemathesis/) where it runs
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False,
                            cwd=services.folder)
    report = result.stdout + result.stderr
    assert result.returncode == 0, report[-6000:]
    generated = re.search(r"(\d+) generated, (\d+) passed", report)
    assert generated, report[-3000:]
    assert int(generated.group(1)) == int(generated.group(2)) > 0
    return report


def test_the_issuer_answers_exactly_as_documented(services: Services) -> None:
    report = schemathesis(services, services.issuer.url, services.client_key)
    # every operation the issuer documents was tried, none skipped
    document = requests.get(f"{services.issuer.url}/openapi.json", timeout=10).json()
    # schemathesis counts /docs and /docs/ as one operation
    operations = len({(path.rstrip("/"), method) for path, item in document["paths"].items()
                      for method in item
                      if method in ("get", "head", "post", "put", "patch", "delete", "options")})
    assert f"Operations:       {operations} selected / {operations} total" in report, \
        report[:2000]


def test_the_verifier_answers_exactly_as_documented(services: Services) -> None:
    # a real token as the bearer credential, so verify, forward-auth and log in (then the
    # linked session lookup and logout) get past the signature check
    issued = requests.post(
        f"{services.issuer.url}/v1/tokens", json={"userId": "fuzz"},
        headers={"Authorization": f"Bearer {services.client_key}"}, timeout=10,
    )
    token = issued.json()["token"]
    report = schemathesis(services, services.verifier.url, token,
                          "--exclude-path-regex", "^/v1/users")
    assert "Stateful" in report


def test_the_verifier_admin_routes_answer_exactly_as_documented(services: Services) -> None:
    schemathesis(services, services.verifier.url, services.admin_key,
                 "--include-path-regex", "^/v1/users", "--phases", "examples,coverage,fuzzing")


def test_introspection_for_an_rfc_7662_client_answers_exactly_as_documented(
    services: Services
) -> None:
    """An OAuth resource server's credentials: HTTP Basic, its name and key."""
    basic = base64.b64encode(f"orders-api:{services.introspection_key}".encode()).decode()
    report = schemathesis(services, services.verifier.url, basic, "--include-path-regex",
                          "^/v1/introspect", "--phases", "examples,coverage,fuzzing",
                          scheme="Basic")
    assert "Authentication failed" not in report
