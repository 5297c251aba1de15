"""A real gunicorn verifier with LOG_FORMAT=json: the request id from the caller to the logs."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.keypairs import KeyPair
from tests.procs import RedisServer, ServiceProcess, one_verifier, wait_until

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def verifier(
    key_pair: KeyPair, redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServiceProcess]:
    with one_verifier(key_pair, redis_server, tmp_path_factory.mktemp("request-logs"),
                      threads=2, LOG_FORMAT="json", LOG_LEVEL="info") as service:
        yield service


def _objects(output: str) -> list[dict[str, Any]]:
    """The JSON objects among the output's lines (a line that is not one fails the test)."""
    objects = []
    for line in output.splitlines():
        if line.strip():
            try:
                objects.append(json.loads(line))
            except ValueError:
                raise AssertionError(f"not a JSON line: {line!r}\n{output}") from None
    return objects


def _lines_of(service: ServiceProcess, request_id: str, logger: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []

    def logged() -> bool:
        found[:] = [line for line in _objects(service.output())
                    if line.get("request_id") == request_id and line.get("logger") == logger]
        return bool(found)

    wait_until(logged, timeout=10, what=f"a {logger} line with request_id {request_id}")
    return found


def test_the_callers_request_id_is_on_the_access_line_as_json(verifier: ServiceProcess) -> None:
    response = requests.post(f"{verifier.url}/v1/verify", json={"token": "a.b.c"},
                             headers={"X-Request-Id": "abc-123"}, timeout=10)
    assert response.status_code == 401
    assert response.headers["X-Request-Id"] == "abc-123"

    (access,) = _lines_of(verifier, "abc-123", "gunicorn.access")
    assert {"time", "level", "pid", "message", "remote_addr", "duration_ms"} <= access.keys()
    assert (access["method"], access["path"], access["status"]) == ("POST", "/v1/verify", 401)
    assert access["bytes"] == len(response.content)
    # the app's own line of the same request, from the same worker
    (refusal,) = _lines_of(verifier, "abc-123", "verifier.service")
    assert "refused: token_malformed" in refusal["message"]
    assert refusal["pid"] == access["pid"]


def test_a_request_without_an_id_is_logged_under_the_one_answered(
    verifier: ServiceProcess,
) -> None:
    response = requests.get(f"{verifier.url}/no/such/route",
                            headers={"X-Request-Id": "bad id\twith tab"}, timeout=10)
    assert response.status_code == 404
    request_id = response.headers["X-Request-Id"]
    assert request_id != "bad id\twith tab"
    assert len(request_id) == 24
    (access,) = _lines_of(verifier, request_id, "gunicorn.access")
    assert access["status"] == 404
    assert "with tab" not in verifier.output()


def test_every_line_of_the_service_is_json(verifier: ServiceProcess, tmp_path: Path) -> None:
    objects = _objects(verifier.output())
    # gunicorn's own start-up lines too
    assert any(line["logger"] == "gunicorn.error" for line in objects)
    assert all({"time", "level", "pid", "logger", "message"} <= line.keys()
               for line in objects if "event" not in line)
