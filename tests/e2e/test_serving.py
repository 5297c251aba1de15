"""The serving model (``shared.web``) against real services under gunicorn's asgi worker.

The issuer's token endpoint and the verifier's verify and forward-auth are answered on the event
loop; what must wait on Redis or sign with RSA runs in the app's thread pool; every other route
is Flask, through a2wsgi. Each answer must be right, counted once and logged once, whoever gave
it. A client that stops reading its answers, and a Redis that stops answering, must not hold the
loop, which serves every other connection.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
import swagger_ui
from prometheus_client.parser import text_string_to_metric_families

from shared.apikeys import add_client
from tests.forge import fresh
from tests.keypairs import KeyPair
from tests.procs import (
    JWT_AUTH,
    REPO,
    RedisServer,
    ServiceProcess,
    issuer_env,
    one_verifier,
    service_environment,
    service_pair,
    wait_until,
)

pytestmark = pytest.mark.e2e


@dataclass
class Services:
    issuer: ServiceProcess
    verifier: ServiceProcess
    client_key: str
    key_pair: KeyPair


@pytest.fixture(scope="module")
def services(
    key_pair: KeyPair, redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Services]:
    folder = tmp_path_factory.mktemp("serving")
    with service_pair(key_pair, redis_server, folder, LOG_FORMAT="json",
                      LOG_LEVEL="info") as pair:
        # verifications are answered from memory once the revocation mirror, which a worker
        # starts on its first verification, is in sync
        requests.post(f"{pair.verifier.url}/v1/verify", json={"token": fresh(key_pair, "first")},
                      timeout=10)
        wait_until(lambda: _mirror_synced(pair.verifier), timeout=15, what="the mirror in sync")
        yield Services(pair.issuer, pair.verifier, pair.client_key, key_pair)


def _mirror_synced(verifier: ServiceProcess) -> bool:
    return "revocation mirror in sync" in verifier.output()


def _requests_counted(service: ServiceProcess, route: str, status: str) -> float:
    text = requests.get(f"{service.url}/metrics", timeout=10).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "http_requests_total"
        and sample.labels.get("route") == route and sample.labels.get("status") == status
    )


def _json_lines(service: ServiceProcess) -> list[dict[str, Any]]:
    return [json.loads(line) for line in service.output().splitlines() if line.startswith("{")]


def _access_lines(service: ServiceProcess, request_ids: set[str]) -> dict[str, int]:
    """How many access lines each of these request ids has."""
    counts = dict.fromkeys(request_ids, 0)
    for line in _json_lines(service):
        if line.get("logger") == "gunicorn.access" and line.get("request_id") in counts:
            counts[line["request_id"]] += 1
    return counts


def _ids(count: int) -> list[str]:
    return [f"loop-{uuid.uuid4().hex}" for _ in range(count)]


def test_hot_answers_are_right_and_each_is_counted_and_logged_once(services: Services) -> None:
    token = fresh(services.key_pair, "alice")
    verifier, issuer = services.verifier, services.issuer
    before = (_requests_counted(verifier, "/v1/verify", "200"),
              _requests_counted(verifier, "/v1/auth", "200"),
              _requests_counted(issuer, "/v1/tokens", "201"))
    verify_ids, auth_ids, issue_ids = _ids(40), _ids(40), _ids(40)
    with requests.Session() as http:  # one keep-alive connection per service, as a backend has
        for request_id in verify_ids:
            answer = http.post(f"{verifier.url}/v1/verify", json={"token": token},
                               headers={"X-Request-Id": request_id}, timeout=10)
            assert answer.status_code == 200, answer.text
            assert answer.json()["claims"]["userId"] == "alice"
            assert answer.headers["X-Request-Id"] == request_id
        for request_id in auth_ids:
            answer = http.get(f"{verifier.url}/v1/auth", timeout=10, headers={
                "Authorization": f"Bearer {token}", "X-Request-Id": request_id})
            assert answer.status_code == 200, answer.text
            assert answer.headers["X-Auth-User-Id"] == "alice"
        for request_id in issue_ids:
            answer = http.post(f"{issuer.url}/v1/tokens", json={"userId": "bob"}, timeout=10,
                               headers={"Authorization": f"Bearer {services.client_key}",
                                        "X-Request-Id": request_id})
            assert answer.status_code == 201, answer.text
            assert answer.headers["Cache-Control"] == "no-store"
            checked = http.post(f"{verifier.url}/v1/verify", json={"token": answer.json()["token"]},
                                timeout=10)
            assert checked.json()["claims"]["userId"] == "bob"
    after = (_requests_counted(verifier, "/v1/verify", "200"),
             _requests_counted(verifier, "/v1/auth", "200"),
             _requests_counted(issuer, "/v1/tokens", "201"))
    # the issued tokens' checks are verifications too
    assert (after[0] - before[0], after[1] - before[1], after[2] - before[2]) == (80, 40, 40)

    def logged_once() -> bool:
        return (set(_access_lines(verifier, {*verify_ids, *auth_ids}).values()) == {1}
                and set(_access_lines(issuer, set(issue_ids)).values()) == {1})

    wait_until(logged_once, timeout=10, what="one access line per request")


def test_a_session_at_forward_auth_waits_on_redis_in_a_thread_once(services: Services) -> None:
    """A session id needs a Redis read: it runs in the pool, and is answered and logged once."""
    verifier = services.verifier
    login = requests.post(f"{verifier.url}/v1/sessions",
                          json={"token": fresh(services.key_pair, "carol")}, timeout=10)
    assert login.status_code == 201, login.text
    session_id = login.json()["sessionId"]
    before = _requests_counted(verifier, "/v1/auth", "200")
    (request_id,) = _ids(1)
    with requests.Session() as http:
        answer = http.get(f"{verifier.url}/v1/auth", timeout=10, headers={
            "Authorization": f"Bearer {session_id}", "X-Request-Id": request_id})
        assert answer.status_code == 200, answer.text
        assert answer.headers["X-Auth-User-Id"] == "carol"
        # the same connection goes on being answered after the wait
        again = http.get(f"{verifier.url}/v1/auth", timeout=10,
                         headers={"Authorization": f"Bearer {session_id}"})
        assert again.status_code == 200
    assert _requests_counted(verifier, "/v1/auth", "200") - before == 2
    wait_until(lambda: _access_lines(verifier, {request_id}) == {request_id: 1}, timeout=10,
               what="one access line for the request that waited")


def test_a_client_that_stops_reading_does_not_hold_the_loop(services: Services) -> None:
    """A client pipelines verifications and never reads an answer. gunicorn stops reading it
    once its answers back up (or drops it); every other client goes on being answered."""
    verifier = services.verifier
    token = fresh(services.key_pair, "dave")
    body = json.dumps({"token": token}).encode()
    request = (b"POST /v1/verify HTTP/1.1\r\nHost: 127.0.0.1\r\n"
               b"Content-Type: application/json\r\nContent-Length: "
               + str(len(body)).encode() + b"\r\n\r\n" + body)
    stuck = socket.socket()
    # a small receive window: the answers pile up in the server's send buffer at once
    stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stuck.settimeout(30)
    stuck.connect(("127.0.0.1", verifier.port))
    stop = threading.Event()
    sent = [0]

    def flood() -> None:
        # pipelined requests, ten at a time, never reading an answer, until the server stops
        # reading them (sendall blocks) or drops the connection; ends when the socket closes
        with contextlib.suppress(OSError):
            while not stop.is_set():
                stuck.sendall(request * 10)
                sent[0] += 10
                time.sleep(0.001)

    sender = threading.Thread(target=flood, daemon=True)
    sender.start()
    try:
        wait_until(lambda: sent[0] >= 100, timeout=30, what="the flood to start")
        with requests.Session() as http:
            for _ in range(30):
                answer = http.post(f"{verifier.url}/v1/verify", json={"token": token},
                                   timeout=5)
                assert answer.status_code == 200
                time.sleep(0.05)
            issued = http.post(f"{services.issuer.url}/v1/tokens", json={"userId": "erin"},
                               headers={"Authorization": f"Bearer {services.client_key}"},
                               timeout=5)
            assert issued.status_code == 201
        assert requests.get(f"{verifier.url}/healthz", timeout=5).status_code == 200
    finally:
        stop.set()
        # wakes the sender blocked in sendall (unless the server closed the connection)
        with contextlib.suppress(OSError):
            stuck.shutdown(socket.SHUT_RDWR)
        stuck.close()
        sender.join(timeout=30)
    assert not sender.is_alive()
    assert requests.post(f"{verifier.url}/v1/verify", json={"token": token},
                         timeout=5).status_code == 200


def test_large_answers_from_threads_come_through_whole(services: Services) -> None:
    """Flask's answers stream through a2wsgi: a static file and a large document arrive whole,
    and the next answer on the connection starts where they end."""
    bundle = Path(swagger_ui.__file__).parent / "static" / "swagger-ui-bundle.js"
    with requests.Session() as http:  # one connection: a misordered answer would break the next
        for _ in range(2):
            served = http.get(f"{services.verifier.url}/docs/static/swagger-ui-bundle.js",
                              timeout=10)
            assert served.status_code == 200
            assert served.content == bundle.read_bytes()
            document = http.get(f"{services.verifier.url}/openapi.json", timeout=10)
            assert document.status_code == 200
            assert len(document.content) > 64 * 1024
            assert "/v1/verify" in document.json()["paths"]


def test_a_malformed_request_is_refused_by_gunicorn_and_the_service_goes_on(
        services: Services) -> None:
    """gunicorn's parser refuses a head it cannot read, with its own short 400 (the app never
    sees the request, so it is no problem document) and closes the connection."""
    verifier = services.verifier
    with socket.create_connection(("127.0.0.1", verifier.port), timeout=5) as sock:
        sock.sendall(b"POST /v1/verify HTTP/1.1\r\nHost: 127.0.0.1\r\nNo colon here\r\n"
                     b"Content-Length: 2\r\n\r\n{}")
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 400 "), answer
    head, _, body = answer.partition(b"\r\n\r\n")
    assert b"\r\nConnection: close" in head
    assert b"No colon" not in body  # the request's bytes are not echoed
    token = fresh(services.key_pair, "frank")
    assert requests.post(f"{verifier.url}/v1/verify", json={"token": token},
                         timeout=5).status_code == 200


def test_the_loop_answers_while_the_pool_waits_on_a_stopped_redis(
        key_pair: KeyPair, redis_server: RedisServer, tmp_path: Path) -> None:
    """With the mirror off every verification reads Redis, in the pool. While a stopped Redis
    holds those reads for their timeout, the loop goes on answering: refusals decided from the
    token alone, and Flask's routes."""
    with one_verifier(key_pair, redis_server, tmp_path, threads=2, VERIFIER_MIRROR_MAX_KEYS="0",
                      VERIFIER_REDIS_TIMEOUT_MS="3000") as verifier:
        _verify_while_redis_is_stopped(verifier, redis_server, fresh(key_pair, "gina"))


def _verify_while_redis_is_stopped(verifier: ServiceProcess, redis_server: RedisServer,
                                   token: str) -> None:
    assert requests.post(f"{verifier.url}/v1/verify", json={"token": token},
                         timeout=10).status_code == 200
    assert redis_server.process is not None
    waiting: list[requests.Response] = []
    os.kill(redis_server.process.pid, signal.SIGSTOP)
    try:
        def verify() -> None:
            waiting.append(requests.post(f"{verifier.url}/v1/verify", json={"token": token},
                                         timeout=30))

        # more than the pool's two threads: the others queue behind them
        held = [threading.Thread(target=verify) for _ in range(6)]
        for thread in held:
            thread.start()
        time.sleep(0.5)
        assert not waiting, "a verification answered although Redis is stopped"
        started = time.monotonic()
        refused = requests.post(f"{verifier.url}/v1/verify", json={"token": "not.a.token"},
                                timeout=10)
        health = requests.get(f"{verifier.url}/healthz", timeout=10)
        elapsed = time.monotonic() - started
        assert (refused.status_code, health.status_code) == (401, 200)
        # answered while the pool's reads wait out their 3 s timeout (generous: a loop that
        # blocked would take at least that)
        assert elapsed < 2.0, elapsed
        assert not waiting
    finally:
        os.kill(redis_server.process.pid, signal.SIGCONT)
    for thread in held:
        thread.join(timeout=60)
    assert {answer.status_code for answer in waiting} <= {200, 503}
    assert len(waiting) == 6


# -- raw requests -------------------------------------------------------------------------------

def _exchange(sock: socket.socket, request: bytes) -> tuple[str, dict[str, str], bytes]:
    """Sends one request and reads one answer: status line, headers, body."""
    sock.sendall(request)
    received = b""
    while b"\r\n\r\n" not in received:
        chunk = sock.recv(65536)
        assert chunk, f"closed before an answer: {received!r}"
        received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    status, *lines = head.decode("latin-1").split("\r\n")
    headers = {name.lower(): value for name, _, value in (line.partition(": ") for line in lines)}
    length = int(headers.get("content-length", "0"))
    while len(body) < length and "head" not in request[:5].decode().lower():
        chunk = sock.recv(65536)
        assert chunk, "closed mid-answer"
        body += chunk
    return status, headers, body


def _chunked(body: bytes) -> bytes:
    return f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n"


def test_chunked_and_measured_bodies_get_the_same_answers(services: Services) -> None:
    """The same requests, once with a Content-Length body and once chunked (or with one more
    header), answered on one connection: the same status, headers, body."""
    token = fresh(services.key_pair, "grace")
    verify = json.dumps({"token": token}).encode()
    verifier, issuer = services.verifier, services.issuer
    cases = [
        (verifier, b"POST /v1/verify HTTP/1.1\r\nHost: v\r\nContent-Type: application/json\r\n"
                   b"X-Request-Id: same-1\r\n", verify),
        (verifier, b"POST /v1/verify HTTP/1.1\r\nHost: v\r\nContent-Type: application/json\r\n"
                   b"X-Request-Id: same-2\r\n", b'{"token": "not.a.token"}'),
        (verifier, b"GET /v1/auth/app/x?y=1 HTTP/1.1\r\nHost: v\r\nX-Request-Id: same-3\r\n"
                   b"Authorization: Bearer " + token.encode() + b"\r\n", None),
        (verifier, b"GET /v1/auth HTTP/1.1\r\nHost: v\r\nX-Request-Id: same-4\r\n", None),
        (verifier, b"PUT /v1/verify HTTP/1.1\r\nHost: v\r\nX-Request-Id: same-5\r\n", b"{}"),
        (issuer, b"POST /v1/tokens?expires_in=60 HTTP/1.1\r\nHost: i\r\nX-Request-Id: same-6\r\n"
                 b"Content-Type: application/json\r\nAuthorization: Bearer "
                 + services.client_key.encode() + b"\r\n", b'{"userId": "123", "isAdmin": true}'),
        (issuer, b"POST /v1/tokens HTTP/1.1\r\nHost: i\r\nX-Request-Id: same-7\r\n"
                 b"Content-Type: application/json\r\n", b'{"userId": "123"}'),
    ]
    for service, head, body in cases:
        if body is None:
            plain_request = head + b"\r\n"
            judged_request = head + b"X-Unrelated: 1\r\n\r\n"
        else:
            plain_request = head + f"Content-Length: {len(body)}\r\n\r\n".encode() + body
            judged_request = head + b"Transfer-Encoding: chunked\r\n\r\n" + _chunked(body)
        with socket.create_connection(("127.0.0.1", service.port), timeout=10) as sock:
            plain = _exchange(sock, plain_request)
            judged = _exchange(sock, judged_request)
        assert plain[0] == judged[0], (head, plain, judged)
        for answer in (plain, judged):
            answer[1].pop("date")
        if service is issuer and plain[0].startswith("HTTP/1.1 201"):
            # a new token each time: the same members, each a token for the same user
            assert plain[1] == judged[1]
            for answer in (plain, judged):
                issued = json.loads(answer[2])
                assert set(issued) == {"token", "tokenType", "expiresAt", "jti", "kid"}
            continue
        assert plain == judged, head


def test_answers_keep_or_close_the_connection_as_asked(services: Services) -> None:
    token = fresh(services.key_pair, "heidi").encode()
    verifier = services.verifier
    ask = b"GET /v1/auth HTTP/1.%d\r\nHost: v\r\nAuthorization: Bearer " + token + b"\r\n"
    closes = {
        b"HTTP/1.1 with Connection: close": ask % 1 + b"Connection: close\r\n\r\n",
        b"HTTP/1.0 (nginx auth_request)": ask % 0 + b"\r\n",
    }
    for name, request in closes.items():
        with socket.create_connection(("127.0.0.1", verifier.port), timeout=10) as sock:
            status, headers, _ = _exchange(sock, request)
            assert status.endswith("200 OK"), name
            assert headers["connection"] == "close", name
            assert sock.recv(1) == b"", f"{name!r}: the connection stays open"
    keeps = {
        b"HTTP/1.1": ask % 1 + b"\r\n",
        b"HTTP/1.0 with Connection: keep-alive": ask % 0 + b"Connection: keep-alive\r\n\r\n",
    }
    for name, request in keeps.items():
        with socket.create_connection(("127.0.0.1", verifier.port), timeout=10) as sock:
            for _ in range(3):  # three answers on one connection
                status, headers, _ = _exchange(sock, request)
                assert status.endswith("200 OK"), name
                assert headers.get("connection", "keep-alive") == "keep-alive", name


def test_a_head_request_gets_the_head_alone(services: Services) -> None:
    token = fresh(services.key_pair, "ivan").encode()
    with socket.create_connection(("127.0.0.1", services.verifier.port), timeout=10) as sock:
        head = b"HEAD /v1/auth HTTP/1.1\r\nHost: v\r\nAuthorization: Bearer " + token + b"\r\n\r\n"
        status, headers, body = _exchange(sock, head)
        assert status.endswith("200 OK")
        assert headers["x-auth-user-id"] == "ivan"
        assert body == b""
        # the next answer on the connection starts where the head ended: no stray body bytes
        status, headers, _ = _exchange(sock, head.replace(b"HEAD", b"GET"))
        assert status == "HTTP/1.1 200 OK"
        assert headers["x-auth-user-id"] == "ivan"


def test_an_issuer_on_a_unix_socket_answers(key_pair: KeyPair, tmp_path: Path) -> None:
    """A unix socket has no (host, port) addresses: the access line and the answers do without."""
    clients = tmp_path / "clients.json"
    client_key = add_client(clients, "webapp", admin=False, variable="ISSUER_CLIENTS_FILE")
    path = tmp_path / "issuer.sock"
    log_path = tmp_path / "issuer.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [*JWT_AUTH, "serve", "issuer", "--bind", f"unix:{path}", "--workers", "1",
             "--threads", "2"],
            env=service_environment(issuer_env(key_pair, clients, ISSUER_RATE_LIMIT="0")),
            cwd=REPO, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    def ask(request: bytes) -> tuple[str, dict[str, str], bytes]:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(10)
            sock.connect(str(path))
            return _exchange(sock, request)

    def healthy() -> bool:
        try:
            return ask(b"GET /healthz HTTP/1.1\r\nHost: issuer\r\n\r\n")[0].endswith("200 OK")
        except OSError:
            return False

    try:
        wait_until(healthy, timeout=30, what="the issuer on its unix socket")
        body = b'{"userId": "123"}'
        request = (b"POST /v1/tokens HTTP/1.1\r\nHost: issuer\r\nContent-Type: application/json"
                   b"\r\nAuthorization: Bearer " + client_key.encode() + b"\r\n"
                   + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
        for _ in range(2):  # the second on a new connection: the worker is still there
            status, _, answer = ask(request)
            assert status.startswith("HTTP/1.1 201 "), answer
            assert json.loads(answer)["token"].count(".") == 2
        assert "Traceback" not in log_path.read_text(errors="replace")
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
