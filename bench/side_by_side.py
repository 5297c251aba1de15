"""Side by side: our verifier and issuer next to their peers, in one run, on pinned cores.

Every server (and our verifier's redis-server) runs on CPU 0 under ``taskset -c 0``; the load
generator, ``wrk -t1`` driven by ``side_by_side.lua``, runs on CPU 1. Every Python server is
gunicorn with 1 worker. Ours are started as shipped with ``python -m jwt_auth serve`` (gunicorn's
asgi worker, uvloop, gunicorn's C parser where installed, access log and metrics on); the two
ASGI ceilings run under the same worker settings; the WSGI peers (Flask, PyJWT, jwcrypto) under
gunicorn's gthread worker with 2 threads, where they are at their best. Node peers are one
process each, from ``bench/node`` (installed with ``npm ci`` when needed, skipped without node).

Verifier side: a bare ASGI callable that reads the body and answers a fixed JSON (the server's
own ceiling), a bare ASGI callable that checks a fresh token's RSA signature with
``cryptography`` and decodes its payload (the ceiling for a fresh token), a bare WSGI callable,
a bare Flask JSON endpoint, Flask + PyJWT (repeated and fresh tokens), node http +
jsonwebtoken, node express + jsonwebtoken, and ours (``POST /v1/verify`` repeated and fresh,
``GET /v1/auth`` repeated). Issuer side: ours ``POST /v1/tokens`` and a Flask + jwcrypto
endpoint against the raw signing rate of the same key on CPU 0.

Algorithms: ours ``POST /v1/tokens`` with an ES256 (P-256) and an EdDSA (Ed25519) active key,
and ours ``POST /v1/verify`` with fresh ES256 and EdDSA tokens (``VERIFIER_ALGORITHMS`` allowing
them), against the bare ASGI callable and their RS256 counterparts (``ours-issue``,
``ours-verify-fresh``).

``--baseline DIR`` adds ours from another checkout (an earlier commit, as ``git worktree add``
makes it) as contenders of their own, so a change is measured before and after in one run.

Rounds are interleaved (every contender once per round) and the report gives the median of
rounds; a separate pass at more connections gives p99/p50 for ours. Fresh tokens are signed
before any timed round, a never-seen slice per fresh measurement, and the server is restarted
before each fresh measurement (its in-process cache starts empty). A script, not a test.

    .venv/bin/python bench/side_by_side.py [--only verifier|issuer] [--duration 8] [--rounds 3]
        [--connections 16] [--tail-connections 64] [--bits 4096] [--baseline DIR] [--json PATH]
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hmac
import importlib.metadata
import json
import math
import multiprocessing
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flask import Flask

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(REPO))

import bench.processes as bench_processes  # noqa: E402
from bench.processes import (  # noqa: E402
    SERVER_CPU,
    Processes,
    answers,
    free_port,
    load_signing_key,
    log_tail,
    start_redis_server,
)

NODE_DIR = BENCH / "node"
LUA_SCRIPT = BENCH / "side_by_side.lua"
PASSPHRASE = "bench passphrase"
LOAD_CPU = "1"
WORKERS = 1
THREADS = 2  # the WSGI peers' gthread threads (ours and the ASGI peers: jwt-auth serve's pool)
WARM_UP_SECONDS = 1
PROBE_SECONDS = 2
USERS = 500
# fresh tokens per slice = the fastest fresh-capable rate seen x (duration + 1 s) x this
HEADROOM = 1.25
SIGN_CHUNK = 200
# a 1-minute load average above this before the run means other work is on the machine
BUSY_LOAD = 0.5
START_TIMEOUT = 90.0
# what ``done()`` in the Lua script prints: exact figures instead of wrk's rounded ones
RESULT_LINE = re.compile(r"^SBS_RESULT (\{.*\})$", re.MULTILINE)
RAW_LINE = re.compile(r"^SBS_RAW (\{.*\})$", re.MULTILINE)


# --- the Python peers (run in a child process: ``--serve-peer NAME``) -----------------------


def bare_wsgi_app(directory: Path) -> Any:
    """The server's own ceiling: no framework, reads the body, answers a small JSON object."""
    del directory
    answer = b'{"ok": true}'

    def application(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        if length:
            environ["wsgi.input"].read(length)
        start_response("200 OK", [("Content-Type", "application/json"),
                                  ("Content-Length", str(len(answer)))])
        return [answer]

    return application


def bare_asgi_app(directory: Path) -> Any:
    """The asgi worker's own ceiling: no framework, reads the body, answers a small JSON."""
    del directory
    answer = b'{"ok": true}'
    headers = [(b"content-type", b"application/json"),
               (b"content-length", str(len(answer)).encode())]

    async def application(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await _lifespan(scope, receive, send)
        more = True
        while more:
            more = (await receive()).get("more_body", False)
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": answer})
        return None

    return application


def fresh_ceiling_app(directory: Path) -> Any:
    """The ceiling for a fresh token under the asgi worker: reads the body, checks the token's
    RS256 signature with ``cryptography`` directly, decodes the payload, answers it. No claim,
    header or revocation check: what no verifier can do less than."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding, rsa

    public_key = serialization.load_pem_public_key((directory / "public.pem").read_bytes())
    assert isinstance(public_key, rsa.RSAPublicKey)
    json_headers = [(b"content-type", b"application/json")]

    def b64decode(segment: str) -> bytes:
        return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))

    async def application(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await _lifespan(scope, receive, send)
        body, more = b"", True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        status, answer = 200, b'{"ok": true}'
        if scope["method"] != "POST":  # the readiness probe
            await send({"type": "http.response.start", "status": status, "headers": [
                *json_headers, (b"content-length", str(len(answer)).encode())]})
            await send({"type": "http.response.body", "body": answer})
            return None
        token = json.loads(body)["token"]
        signing_input, _, signature = token.rpartition(".")
        try:
            public_key.verify(b64decode(signature), signing_input.encode(), padding.PKCS1v15(),
                              hashes.SHA256())
            answer = b64decode(signing_input.split(".")[1])
        except (InvalidSignature, ValueError):
            status, answer = 401, b'{"error": "invalid"}'
        await send({"type": "http.response.start", "status": status,
                    "headers": [*json_headers, (b"content-length", str(len(answer)).encode())]})
        await send({"type": "http.response.body", "body": answer})
        return None

    return application


async def _lifespan(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "lifespan":
        return
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        else:
            await send({"type": "lifespan.shutdown.complete"})
            return


def bare_sign_app(directory: Path) -> Any:
    """The server's own ceiling for an issuer: no framework, no checks, one RS256 signature of
    a token-sized input with the same key, the base64url signature as the answer."""
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding, rsa

    key = serialization.load_pem_private_key((directory / "private.pem").read_bytes(),
                                             PASSPHRASE.encode())
    assert isinstance(key, rsa.RSAPrivateKey)
    signing_input = b"eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9." + b"x" * 160

    def application(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        if length:
            environ["wsgi.input"].read(length)
        signature = key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
        answer = b'{"signature": "' + base64.urlsafe_b64encode(signature).rstrip(b"=") + b'"}'
        start_response("200 OK", [("Content-Type", "application/json"),
                                  ("Content-Length", str(len(answer)))])
        return [answer]

    return application


def _flask(name: str) -> Flask:
    from flask import Flask, jsonify

    app = Flask(name)
    app.get("/healthz")(lambda: jsonify({"ok": True}))
    return app


def bare_flask_app(directory: Path) -> Any:
    """Flask parsing the JSON body and answering JSON, nothing else."""
    del directory
    from flask import jsonify, request

    app = _flask("bare_flask")

    @app.post("/verify")
    def verify() -> Any:
        body = request.get_json()
        return jsonify({"ok": True, "length": len(body["token"])})

    return app


def pyjwt_app(directory: Path) -> Any:
    """Flask + PyJWT: what a minimal hand-written verifier looks like."""
    import jwt
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from flask import jsonify, request

    # loaded once, as a long-running service would: a PEM would be parsed on every call
    public_key = serialization.load_pem_public_key((directory / "public.pem").read_bytes())
    assert isinstance(public_key, rsa.RSAPublicKey)
    app = _flask("pyjwt_verify")

    @app.post("/verify")
    def verify() -> Any:
        token = request.get_json()["token"]
        try:
            claims = jwt.decode(token, public_key, algorithms=["RS256"])
        except jwt.PyJWTError as error:
            return jsonify({"error": type(error).__name__}), 401
        return jsonify(claims)

    return app


def jwcrypto_issue_app(directory: Path) -> Any:
    """Flask + jwcrypto: a minimal issuer (API key check, sign, answer the token)."""
    from flask import jsonify, request
    from jwcrypto import jwk, jwt

    key = jwk.JWK.from_pem((directory / "private.pem").read_bytes(), password=PASSPHRASE.encode())
    expected = "Bearer " + (directory / "client-key").read_text().strip()
    app = _flask("jwcrypto_issue")

    @app.post("/issue")
    def issue() -> Any:
        if not hmac.compare_digest(request.headers.get("Authorization", ""), expected):
            return jsonify({"error": "unauthorized"}), 401
        now = int(time.time())
        claims = {"userId": request.get_json()["userId"], "iat": now, "exp": now + 3600,
                  "jti": uuid.uuid4().hex}
        token = jwt.JWT(header={"alg": "RS256", "typ": "JWT"}, claims=claims)
        token.make_signed_token(key)
        return jsonify({"token": token.serialize()}), 201

    return app


PEERS: dict[str, Callable[[Path], Any]] = {
    "bare-wsgi": bare_wsgi_app,
    "bare-flask": bare_flask_app,
    "pyjwt": pyjwt_app,
    "jwcrypto": jwcrypto_issue_app,
    "bare-sign": bare_sign_app,
    "bare-asgi": bare_asgi_app,
    "fresh-ceiling": fresh_ceiling_app,
}
ASGI_PEERS = {"bare-asgi", "fresh-ceiling"}


def serve_peer(name: str, port: int, directory: Path) -> None:
    """A peer under gunicorn: the ASGI ones with ours' worker settings, the WSGI ones gthread."""
    from gunicorn.app.base import BaseApplication

    from shared.web.gunicorn import WORKER_CLASS

    app = PEERS[name](directory)
    if name in ASGI_PEERS:
        # what jwt-auth serve sets, minus the app's own access line (these write none)
        options: dict[str, Any] = {"worker_class": WORKER_CLASS, "asgi_loop": "uvloop",
                                   "http_parser": "auto"}
    else:
        options = {"worker_class": "gthread", "threads": THREADS, "accesslog": "-"}
    options.update({"bind": f"127.0.0.1:{port}", "workers": WORKERS, "keepalive": 5,
                    "preload_app": True, "control_socket_disable": True})

    class _Peer(BaseApplication):  # type: ignore[misc]  # gunicorn has no types
        def load_config(self) -> None:
            for key, value in options.items():
                self.cfg.set(key, value)

        def load(self) -> Any:
            return app

    _Peer().run()


def print_raw_signing_rate(directory: Path, seconds: float) -> None:
    """Signs/s of the bare RSA operation with the same key (run pinned to CPU 0)."""
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding, rsa

    key = serialization.load_pem_private_key((directory / "private.pem").read_bytes(),
                                             PASSPHRASE.encode())
    assert isinstance(key, rsa.RSAPrivateKey)
    # about the size of what the issuer signs: base64url header "." base64url claims
    data = b"eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9." + b"x" * 160
    for _ in range(10):
        key.sign(data, padding.PKCS1v15(), hashes.SHA256())
    count = 0
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        key.sign(data, padding.PKCS1v15(), hashes.SHA256())
        count += 1
    print("SBS_RAW " + json.dumps({"signs_per_s": count / (time.perf_counter() - started)}))


# --- fresh tokens ---------------------------------------------------------------------------

def _sign_chunk(job: tuple[int, int, int, str]) -> tuple[int, list[str]]:
    import jwt

    file_index, first, last, alg = job
    now = int(time.time())
    tokens = [
        jwt.encode({"userId": f"user-{number % USERS}", "iat": now, "exp": now + 3600,
                    "jti": f"sbs-{alg}-{number}"}, bench_processes.signing_key, algorithm=alg)
        for number in range(first, last)
    ]
    return file_index, tokens


def sign_token_files(private_pem: bytes, files: list[Path], per_file: int,
                     alg: str = "RS256") -> None:
    """Fill each file with ``per_file`` tokens never used elsewhere, on every core."""
    jobs = [
        (index, index * per_file + start, index * per_file + min(start + SIGN_CHUNK, per_file),
         alg)
        for index in range(len(files)) for start in range(0, per_file, SIGN_CHUNK)
    ]
    total, done, shown = per_file * len(files), 0, 0.0
    started = time.monotonic()
    handles = [path.open("w", encoding="ascii") for path in files]
    try:
        with multiprocessing.get_context("fork").Pool(
            len(os.sched_getaffinity(0)), initializer=load_signing_key,
            initargs=(private_pem, PASSPHRASE.encode()),
        ) as pool:
            for index, tokens in pool.imap_unordered(_sign_chunk, jobs):
                handles[index].write("\n".join(tokens) + "\n")
                done += len(tokens)
                if done / total >= shown + 0.1 or done == total:
                    shown = done / total
                    elapsed = time.monotonic() - started
                    print(f"  signed {done}/{total} ({done / elapsed:.0f}/s)", flush=True)
    finally:
        for handle in handles:
            handle.close()


# --- processes ------------------------------------------------------------------------------


@dataclass
class Server:
    """One server under test; restartable, on a new port and a fresh metrics folder each time."""

    name: str
    argv: Callable[[int], list[str]]
    env: dict[str, str]
    ready_path: str
    port: int = 0
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0
    failure: str = ""
    log: Path | None = None

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def death(self) -> str:
        status = self.process.returncode if self.process is not None else None
        return f"exited with status {status}: {log_tail(self.log) if self.log else ''}"


def start_server(server: Server, processes: Processes, scratch: Path) -> bool:
    server.starts += 1
    server.port = free_port()
    env = dict(server.env)
    # prometheus_client's multiprocess files must not outlive one server's life
    metrics = scratch / "metrics" / f"{server.name}-{server.starts}"
    metrics.mkdir(parents=True)
    env["PROMETHEUS_MULTIPROC_DIR"] = str(metrics)
    log = processes.logs / f"{server.name}-{server.starts}.log"
    server.log = log
    server.process = processes.start(server.argv(server.port), env, log)
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            server.failure = f"exited with status {server.process.returncode}: {log_tail(log)}"
            server.process = None
            return False
        if answers(server.port, server.ready_path):
            server.failure = ""
            return True
        time.sleep(0.1)
    processes.stop(server.process)
    server.process = None
    server.failure = f"not ready after {START_TIMEOUT:.0f} s: {log_tail(log)}"
    return False


def restart_server(server: Server, processes: Processes, scratch: Path) -> bool:
    if server.process is not None:
        processes.stop(server.process)  # also reaps one that already died
        server.process = None
    return start_server(server, processes, scratch)


def start_redis(processes: Processes, scratch: Path) -> int:
    """A redis-server of its own, durable as production asks (AOF, fsync on every write)."""
    port = free_port()
    start_redis_server(processes, scratch / "redis", port)
    return port


# --- wrk ------------------------------------------------------------------------------------


@dataclass
class Measurement:
    rate: float  # answers below 400 per second
    p50_ms: float | None
    p99_ms: float | None
    requests: int = 0
    non_2xx: int = 0
    socket_errors: int = 0
    wraps: int = 0

    @property
    def errors(self) -> int:
        return self.non_2xx + self.socket_errors


def run_wrk(url: str, tokens: Path, shape: str, connections: int, seconds: int) -> Measurement:
    command = ["taskset", "-c", LOAD_CPU, "wrk", "-t1", f"-c{connections}", f"-d{seconds}s",
               "--latency", "-s", str(LUA_SCRIPT), url]
    env = {**os.environ, "SBS_TOKENS": str(tokens), "SBS_SHAPE": shape}
    completed = subprocess.run(command, env=env, capture_output=True, text=True, check=False,
                               timeout=seconds + 60)
    found = RESULT_LINE.search(completed.stdout)
    if found is None:
        raise RuntimeError(f"wrk printed no result (status {completed.returncode}): "
                           f"{(completed.stderr or completed.stdout).strip()[-300:]}")
    figures = json.loads(found.group(1))
    if figures["requests"] == 0:
        # every request outlived the run: nothing to report, and nothing to call fast
        raise RuntimeError(f"no request completed in {seconds} s")
    seconds_spent = figures["duration_us"] / 1e6
    return Measurement(
        rate=(figures["requests"] - figures["status"]) / seconds_spent,
        p50_ms=figures["p50_us"] / 1000,
        p99_ms=figures["p99_us"] / 1000,
        requests=figures["requests"],
        non_2xx=figures["status"],
        socket_errors=sum(figures[name] for name in ("connect", "read", "write", "timeout")),
        wraps=figures["wraps"],
    )


# --- contenders -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Contender:
    key: str
    label: str
    server: str  # a key of Bench.servers; "" for the raw signing rate
    path: str = "/verify"
    shape: str = "verify"  # see side_by_side.lua
    tokens: str = "repeated"  # repeated | fresh | client-key
    alg: str = "RS256"  # of the server's key and of the fresh tokens


VERIFIER_CONTENDERS = [
    Contender("bare-asgi", "bare ASGI callable (gunicorn asgi: the server's ceiling)",
              "bare-asgi"),
    Contender("fresh-ceiling", "bare ASGI callable, RSA check of a fresh token (its ceiling)",
              "fresh-ceiling", tokens="fresh"),
    Contender("bare-wsgi", "bare WSGI callable (gunicorn gthread)", "bare-wsgi"),
    Contender("bare-flask", "bare Flask JSON endpoint", "bare-flask"),
    Contender("pyjwt-repeated", "Flask + PyJWT verify, repeated token", "pyjwt"),
    Contender("pyjwt-fresh", "Flask + PyJWT verify, fresh tokens", "pyjwt", tokens="fresh"),
    Contender("node-http", "node http + jsonwebtoken", "node-http"),
    Contender("node-express", "node express + jsonwebtoken", "node-express"),
    Contender("ours-verify-repeated", "ours POST /v1/verify, repeated token", "ours-verifier",
              "/v1/verify"),
    Contender("ours-verify-fresh", "ours POST /v1/verify, fresh tokens", "ours-verifier",
              "/v1/verify", tokens="fresh"),
    Contender("ours-auth-repeated", "ours GET /v1/auth (Bearer), repeated token",
              "ours-verifier", "/v1/auth", "auth"),
    Contender("before-verify-repeated", "baseline POST /v1/verify, repeated token",
              "before-verifier", "/v1/verify"),
    Contender("before-verify-fresh", "baseline POST /v1/verify, fresh tokens",
              "before-verifier", "/v1/verify", tokens="fresh"),
    Contender("before-auth-repeated", "baseline GET /v1/auth (Bearer), repeated token",
              "before-verifier", "/v1/auth", "auth"),
]
ISSUER_CONTENDERS = [
    Contender("raw-sign", "raw RSA signing, same key (cryptography, CPU 0)", ""),
    Contender("bare-sign", "bare WSGI callable that only signs (gunicorn gthread)", "bare-sign",
              "/sign", "issue", "client-key"),
    Contender("ours-issue", "ours POST /v1/tokens", "ours-issuer", "/v1/tokens", "issue",
              "client-key"),
    Contender("jwcrypto-issue", "Flask + jwcrypto issue", "jwcrypto", "/issue", "issue",
              "client-key"),
    Contender("before-issue", "baseline POST /v1/tokens", "before-issuer", "/v1/tokens",
              "issue", "client-key"),
]
# ours with a P-256 or Ed25519 key: issuing, and verifying fresh tokens (a cached token costs
# the same whatever its algorithm)
ALGORITHM_CONTENDERS = [
    Contender("ours-issue-es256", "ours POST /v1/tokens, ES256 key (P-256)", "ours-issuer-es256",
              "/v1/tokens", "issue", "client-key", "ES256"),
    Contender("ours-issue-eddsa", "ours POST /v1/tokens, EdDSA key (Ed25519)",
              "ours-issuer-eddsa", "/v1/tokens", "issue", "client-key", "EdDSA"),
    Contender("ours-verify-fresh-es256", "ours POST /v1/verify, fresh ES256 tokens",
              "ours-verifier-es256", "/v1/verify", tokens="fresh", alg="ES256"),
    Contender("ours-verify-fresh-eddsa", "ours POST /v1/verify, fresh EdDSA tokens",
              "ours-verifier-eddsa", "/v1/verify", tokens="fresh", alg="EdDSA"),
]
CURVE_ALGORITHMS = ("ES256", "EdDSA")
# what each algorithm contender is compared with: the same route with the RSA key
RS256_COUNTERPART = {"ours-issue-es256": "ours-issue", "ours-issue-eddsa": "ours-issue",
                     "ours-verify-fresh-es256": "ours-verify-fresh",
                     "ours-verify-fresh-eddsa": "ours-verify-fresh"}
# the WSGI peers under gunicorn gthread, which the bare WSGI callable's rate bounds
GTHREAD_KEYS = {"bare-flask", "pyjwt-repeated", "pyjwt-fresh"}
TAIL_KEYS = ["ours-verify-repeated", "ours-verify-fresh", "ours-auth-repeated", "ours-issue"]
# measured in the tail pass for reference, not goals: the server's own tail under the same
# gunicorn settings, node's, and the baseline's
TAIL_REFERENCE_KEYS = ["bare-asgi", "node-express", "before-verify-repeated", "before-issue"]


@dataclass
class Outcome:
    """Every round of one contender: its measurements and the reasons of failed rounds."""

    rounds: list[Measurement] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    def median(self) -> Measurement | None:
        if not self.rounds:
            return None
        return Measurement(
            rate=statistics.median(m.rate for m in self.rounds),
            p50_ms=_median_or_none([m.p50_ms for m in self.rounds]),
            p99_ms=_median_or_none([m.p99_ms for m in self.rounds]),
            requests=sum(m.requests for m in self.rounds),
            non_2xx=sum(m.non_2xx for m in self.rounds),
            socket_errors=sum(m.socket_errors for m in self.rounds),
            wraps=sum(m.wraps for m in self.rounds),
        )


def _median_or_none(values: list[float | None]) -> float | None:
    present = [value for value in values if value is not None]
    return statistics.median(present) if present else None


# --- the run --------------------------------------------------------------------------------


def _service_env() -> dict[str, str]:
    """This environment without any service setting that would change what is measured."""
    return {name: value for name, value in os.environ.items()
            if not name.startswith(("VERIFIER_", "ISSUER_", "REDIS_", "PROMETHEUS_"))
            and name != "LOG_LEVEL"}


def prepare_node() -> str:
    """Install the node peers when needed; returns why they are skipped, or ""."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        return "node or npm is not installed"
    modules, lock = NODE_DIR / "node_modules", NODE_DIR / "package-lock.json"
    if modules.is_dir() and modules.stat().st_mtime >= lock.stat().st_mtime:
        return ""
    print("installing the node peers' packages (npm ci)...", flush=True)
    completed = subprocess.run(["npm", "ci", "--silent", "--no-audit", "--no-fund"],
                               cwd=NODE_DIR, capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        return f"npm ci failed: {(completed.stderr or completed.stdout).strip()[-300:]}"
    os.utime(modules)  # so the next run sees it newer than the lockfile
    return ""


class Bench:
    def __init__(self, args: argparse.Namespace, scratch: Path) -> None:
        self.args = args
        self.scratch = scratch
        logs = scratch / "logs"
        logs.mkdir()
        self.processes = Processes(logs)
        self.servers: dict[str, Server] = {}
        self.contenders: list[Contender] = []
        self.outcomes: dict[str, Outcome] = {}
        self.tail: dict[str, Measurement | str] = {}
        self.fresh_files: list[Path] = []
        # ES256 and EdDSA slices, as many and as large as the RS256 ones
        self.curve_fresh_files: dict[str, list[Path]] = {}
        self.fresh_per_file = 0
        self.node_skipped = ""
        self.private_pem = b""

    # -- set-up --

    def prepare_keys(self) -> None:
        from shared.apikeys import add_client
        from shared.keys import generate_key_pair

        print(f"generating an encrypted {self.args.bits}-bit RSA key...", flush=True)
        self.private_pem, public_pem = generate_key_pair(self.args.bits, PASSPHRASE.encode())
        (self.scratch / "private.pem").write_bytes(self.private_pem)
        (self.scratch / "public.pem").write_bytes(public_pem)
        (self.scratch / "passphrase").write_text(PASSPHRASE)
        key = add_client(self.scratch / "clients.json", "bench", admin=False,
                         variable="ISSUER_CLIENTS_FILE")
        (self.scratch / "client-key").write_text(key + "\n")
        self._write_repeated_token()
        for alg in CURVE_ALGORITHMS:
            private, public = generate_key_pair(0, PASSPHRASE.encode(), alg=alg)
            (self.scratch / f"private-{alg}.pem").write_bytes(private)
            (self.scratch / f"public-{alg}.pem").write_bytes(public)

    def _write_repeated_token(self) -> None:
        import jwt
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa

        key = serialization.load_pem_private_key(self.private_pem, PASSPHRASE.encode())
        assert isinstance(key, rsa.RSAPrivateKey)
        now = int(time.time())
        token = jwt.encode({"userId": "user-repeated", "iat": now, "exp": now + 6 * 3600,
                            "jti": "sbs-repeated"}, key, algorithm="RS256")
        (self.scratch / "repeated-token").write_text(token + "\n")

    def define_servers(self, redis_port: int) -> None:
        base = _service_env()
        me = [sys.executable, str(Path(__file__).resolve())]

        def peer(name: str) -> Callable[[int], list[str]]:
            return lambda port: [*me, "--serve-peer", name, "--port", str(port),
                                 "--dir", str(self.scratch), "--threads", str(THREADS)]

        def ours(service: str) -> Callable[[int], list[str]]:
            # as shipped: access log on, metrics on, the default failure mode and threads
            return lambda port: [sys.executable, "-m", "jwt_auth", "serve", service, "--bind",
                                 f"127.0.0.1:{port}", "--workers", str(WORKERS)]

        baseline = self.args.baseline

        def before(service: str) -> Callable[[int], list[str]]:
            # the baseline checkout's own code, run with its own defaults, from its folder
            return lambda port: ["env", f"PYTHONPATH={baseline}", "sh", "-c",
                                 f'cd "{baseline}" && exec "$0" "$@"', sys.executable, "-m",
                                 "jwt_auth", "serve", service, "--bind", f"127.0.0.1:{port}",
                                 "--workers", str(WORKERS)]

        def node(script: str) -> Callable[[int], list[str]]:
            return lambda port: ["node", str(NODE_DIR / script), str(port),
                                 str(self.scratch / "public.pem")]

        if self.args.only in (None, "verifier"):
            for name in ("bare-asgi", "fresh-ceiling", "bare-wsgi", "bare-flask", "pyjwt"):
                self.servers[name] = Server(name, peer(name), base, "/healthz")
            if not self.node_skipped:
                self.servers["node-http"] = Server("node-http", node("http_verify.js"), base,
                                                   "/healthz")
                self.servers["node-express"] = Server("node-express", node("express_verify.js"),
                                                      base, "/healthz")
            verifier_env = {**base, "VERIFIER_PUBLIC_KEY_FILE": str(self.scratch / "public.pem"),
                            "REDIS_URL": f"redis://127.0.0.1:{redis_port}/0"}
            self.servers["ours-verifier"] = Server("ours-verifier", ours("verifier"),
                                                   verifier_env, "/readyz")
            if baseline:
                self.servers["before-verifier"] = Server("before-verifier", before("verifier"),
                                                         verifier_env, "/readyz")
            for alg in CURVE_ALGORITHMS:
                name = f"ours-verifier-{alg.lower()}"
                self.servers[name] = Server(name, ours("verifier"), {
                    **verifier_env,
                    "VERIFIER_PUBLIC_KEY_FILE": str(self.scratch / f"public-{alg}.pem"),
                    "VERIFIER_ALGORITHMS": "RS256,ES256,EdDSA"}, "/readyz")
            self.contenders += [c for c in VERIFIER_CONTENDERS
                                if c.server in self.servers]
        if self.args.only in (None, "issuer"):
            issuer_env = {
                **base,
                "ISSUER_PRIVATE_KEY_FILE": str(self.scratch / "private.pem"),
                "ISSUER_KEY_PASSPHRASE_FILE": str(self.scratch / "passphrase"),
                "ISSUER_CLIENTS_FILE": str(self.scratch / "clients.json"),
                # the limiter stays on (its cost is measured) but never refuses a request
                "ISSUER_RATE_LIMIT": "1000000000",
            }
            self.servers["ours-issuer"] = Server("ours-issuer", ours("issuer"), issuer_env,
                                                 "/readyz")
            self.servers["jwcrypto"] = Server("jwcrypto", peer("jwcrypto"), base, "/healthz")
            self.servers["bare-sign"] = Server("bare-sign", peer("bare-sign"), base, "/healthz")
            if baseline:
                self.servers["before-issuer"] = Server("before-issuer", before("issuer"),
                                                       issuer_env, "/readyz")
            for alg in CURVE_ALGORITHMS:
                name = f"ours-issuer-{alg.lower()}"
                self.servers[name] = Server(name, ours("issuer"), {
                    **issuer_env,
                    "ISSUER_PRIVATE_KEY_FILE": str(self.scratch / f"private-{alg}.pem")},
                    "/readyz")
            if "bare-asgi" not in self.servers:
                # the ES256 issuance goal is a share of the server's own ceiling, in this run
                self.servers["bare-asgi"] = Server("bare-asgi", peer("bare-asgi"), base,
                                                   "/healthz")
                self.contenders.append(VERIFIER_CONTENDERS[0])
            self.contenders += [c for c in ISSUER_CONTENDERS
                                if c.server in self.servers or c.key == "raw-sign"]
        self.contenders += [c for c in ALGORITHM_CONTENDERS if c.server in self.servers]
        self.outcomes = {c.key: Outcome() for c in self.contenders}

    def start_servers(self) -> None:
        for server in self.servers.values():
            print(f"starting {server.name}...", flush=True)
            if not start_server(server, self.processes, self.scratch):
                print(f"  {server.name} did not start: {server.failure}", flush=True)

    # -- fresh tokens --

    def sign_fresh_tokens(self) -> None:
        """Size the fresh slices from a short probe, then sign them all before any round."""
        if not any(c.tokens == "fresh" for c in self.contenders):
            return
        rate = self._probe_fresh_ceiling()
        if rate <= 0:
            print("no fresh-capable server answered the probe: fresh runs are skipped")
            return
        self.fresh_per_file = math.ceil(rate * (self.args.duration + 1) * HEADROOM)
        slices = self.args.rounds + (1 if self.args.tail_connections else 0)
        self.fresh_files = [self.scratch / f"fresh-{index}.txt" for index in range(slices)]
        print(f"signing {slices} slices x {self.fresh_per_file} fresh tokens "
              f"(probe ceiling {rate:.0f} req/s x ({self.args.duration} + 1) s x {HEADROOM}) "
              f"on {len(os.sched_getaffinity(0))} cores...", flush=True)
        sign_token_files(self.private_pem, self.fresh_files, self.fresh_per_file)
        for alg in {c.alg for c in self.contenders if c.tokens == "fresh"} - {"RS256"}:
            print(f"signing {slices} slices x {self.fresh_per_file} fresh {alg} tokens...",
                  flush=True)
            files = [self.scratch / f"fresh-{alg}-{index}.txt" for index in range(slices)]
            sign_token_files((self.scratch / f"private-{alg}.pem").read_bytes(), files,
                             self.fresh_per_file, alg)
            self.curve_fresh_files[alg] = files

    def fresh_slice(self, contender: Contender, index: int) -> Path | None:
        """The never-seen tokens of ``contender``'s algorithm for round ``index`` (-1: tail)."""
        files = self.fresh_files if contender.alg == "RS256" else \
            self.curve_fresh_files.get(contender.alg, [])
        return files[index] if files else None

    def _probe_fresh_ceiling(self) -> float:
        """A rate no fresh run can beat: the same servers answering a repeated token.

        PyJWT verifies every request either way; ours does strictly more work for a fresh
        token than for a cached one, and the fresh-token ceiling no more than the bare ASGI
        callable, which stands in when ours cannot be probed. Not a timed round: nothing of it
        is reported.
        """
        ours = self.servers["ours-verifier"]
        if not ours.alive():
            restart_server(ours, self.processes, self.scratch)
        probes = ["pyjwt", "ours-verifier" if ours.alive() else "bare-asgi"]
        best = 0.0
        for name in probes:
            server = self.servers[name]
            if not server.alive():
                continue
            path = "/v1/verify" if name == "ours-verifier" else "/verify"
            try:
                probe = run_wrk(server.url(path), self.scratch / "repeated-token", "verify",
                                max(self.args.connections, self.args.tail_connections),
                                PROBE_SECONDS)
            except (RuntimeError, subprocess.TimeoutExpired) as error:
                print(f"  probe of {name} failed: {error}", flush=True)
                continue
            print(f"  probe of {name}, repeated token: {probe.rate:.0f} req/s", flush=True)
            best = max(best, probe.rate)
        return best

    # -- measuring --

    def measure(self, contender: Contender, connections: int, fresh: Path | None) -> Measurement:
        if contender.key == "raw-sign":
            return self._raw_signing()
        server = self.servers[contender.server]
        # a fresh run starts on a process that has seen none of its tokens (empty cache); a
        # server that died or never started gets another chance here
        needs_start = contender.tokens == "fresh" or not server.alive()
        if needs_start and not restart_server(server, self.processes, self.scratch):
            raise RuntimeError(f"{server.name} did not start: {server.failure}")
        repeated = self.scratch / ("client-key" if contender.tokens == "client-key"
                                   else "repeated-token")
        tokens = fresh if contender.tokens == "fresh" else repeated
        if tokens is None:
            raise RuntimeError("no fresh tokens were signed")
        url = server.url(contender.path)
        # the warm-up is not judged: a server that cannot answer fails the measurement below
        with contextlib.suppress(RuntimeError):
            run_wrk(url, repeated, contender.shape, connections, WARM_UP_SECONDS)
        try:
            return run_wrk(url, tokens, contender.shape, connections, self.args.duration)
        except RuntimeError as error:
            if server.alive():
                raise
            raise RuntimeError(f"{error}; {server.name} {server.death()}") from None

    def _raw_signing(self) -> Measurement:
        argv = [sys.executable, str(Path(__file__).resolve()), "--raw-sign", "--dir",
                str(self.scratch), "--seconds", str(self.args.duration)]
        log = self.processes.logs / "raw-sign.log"
        process = self.processes.start(argv, dict(os.environ), log)
        process.wait(timeout=self.args.duration + 60)
        self.processes.stop(process)
        found = RAW_LINE.search(log.read_text(encoding="utf-8", errors="replace"))
        log.unlink()  # one log per measurement: the next one must not read this one's line
        if found is None:
            raise RuntimeError(f"raw signing printed no result (status {process.returncode})")
        return Measurement(rate=json.loads(found.group(1))["signs_per_s"], p50_ms=None,
                           p99_ms=None)

    def run_rounds(self) -> None:
        for number in range(self.args.rounds):
            print(f"round {number + 1}/{self.args.rounds}", flush=True)
            for contender in self.contenders:
                outcome = self.outcomes[contender.key]
                try:
                    result = self.measure(contender, self.args.connections,
                                          self.fresh_slice(contender, number))
                except (RuntimeError, subprocess.TimeoutExpired) as error:
                    outcome.failures.append(str(error))
                    print(f"  {contender.label:52} FAILED: {error}", flush=True)
                    continue
                outcome.rounds.append(result)
                print(f"  {contender.label:52} {_line(result)}", flush=True)

    def run_tail_pass(self) -> None:
        if not self.args.tail_connections:
            return
        print(f"tail pass, {self.args.tail_connections} connections", flush=True)
        for contender in self.contenders:
            if contender.key not in TAIL_KEYS + TAIL_REFERENCE_KEYS:
                continue
            try:
                result = self.measure(contender, self.args.tail_connections,
                                      self.fresh_slice(contender, -1))
            except (RuntimeError, subprocess.TimeoutExpired) as error:
                self.tail[contender.key] = str(error)
                print(f"  {contender.label:52} FAILED: {error}", flush=True)
                continue
            self.tail[contender.key] = result
            print(f"  {contender.label:52} {_line(result)}", flush=True)


def _line(result: Measurement) -> str:
    text = f"{result.rate:9.0f}/s"
    if result.p50_ms is not None and result.p99_ms is not None:
        text += f"  p50 {result.p50_ms:7.2f} ms  p99 {result.p99_ms:7.2f} ms"
    if result.errors:
        text += f"  ERRORS: {result.non_2xx} non-2xx, {result.socket_errors} socket"
    if result.wraps:
        text += "  WARNING: the fresh tokens ran out and wrapped around"
    return text


# --- the report -----------------------------------------------------------------------------


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _first_line(argv: list[str]) -> str:
    try:
        completed = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "not installed"
    lines = (completed.stdout or completed.stderr).strip().splitlines()
    return lines[0] if lines else "unknown"


def _node_package_version(name: str) -> str:
    try:
        manifest = json.loads((NODE_DIR / "node_modules" / name / "package.json").read_text())
    except (OSError, ValueError):
        return "not installed"
    return str(manifest.get("version", "unknown"))


def versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for label, distribution in (("gunicorn", "gunicorn"), ("flask", "flask"),
                                ("redis-py", "redis"), ("hiredis", "hiredis"),
                                ("jwcrypto", "jwcrypto"), ("cryptography", "cryptography"),
                                ("PyJWT", "PyJWT")):
        try:
            found[label] = importlib.metadata.version(distribution)
        except importlib.metadata.PackageNotFoundError:
            found[label] = "not installed"
    found["node"] = _first_line(["node", "--version"]) if shutil.which("node") else "not installed"
    found["express"] = _node_package_version("express")
    found["jsonwebtoken"] = _node_package_version("jsonwebtoken")
    redis_line = _first_line(["redis-server", "--version"])
    redis_version = re.search(r"v=(\S+)", redis_line)
    found["redis-server"] = redis_version.group(1) if redis_version else redis_line
    # wrk -v prints its version and usage; the version is the first line, before "Copyright"
    found["wrk"] = _first_line(["wrk", "-v"]).split(" Copyright")[0].removeprefix("wrk ")
    return found


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _ratio(value: float | None, base: float | None) -> float | None:
    if value is None or not base:
        return None
    return value / base


def _cell_ratio(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def _label(contender: Contender, result: Measurement | None) -> str:
    if result is not None and result.errors:
        return f"{contender.label} **(FLAGGED: {result.errors} errors)**"
    return contender.label


@dataclass
class Goal:
    name: str
    value: float | None
    target: float
    at_most: bool = False  # True: the value must not exceed the target

    def verdict(self) -> str:
        if self.value is None:
            return "not measured"
        ok = self.value <= self.target if self.at_most else self.value >= self.target
        return "met" if ok else "NOT met"

    def text(self) -> str:
        sign = "<=" if self.at_most else ">="
        value = "n/a" if self.value is None else f"{self.value:.2f}"
        return f"- {self.name}: {value} (goal {sign} {self.target}): {self.verdict()}"


def compute_goals(medians: dict[str, Measurement | None],
                  tail: dict[str, Measurement | str], tail_connections: int) -> list[Goal]:
    """The goal ratios of the sides that ran (a side left out by --only has none)."""

    def rate(key: str) -> float | None:
        result = medians.get(key)
        return result.rate if result is not None else None

    goals = []
    if "ours-verify-repeated" in medians:
        goals += [
            Goal("ours verify repeated / bare ASGI callable (the server's ceiling)",
                 _ratio(rate("ours-verify-repeated"), rate("bare-asgi")), 0.6),
            Goal("ours auth repeated / bare ASGI callable (the server's ceiling)",
                 _ratio(rate("ours-auth-repeated"), rate("bare-asgi")), 0.6),
            Goal("ours verify repeated / node http + jsonwebtoken",
                 _ratio(rate("ours-verify-repeated"), rate("node-http")), 1.2),
            Goal("ours auth repeated / node http + jsonwebtoken",
                 _ratio(rate("ours-auth-repeated"), rate("node-http")), 1.2),
            Goal("ours verify fresh / the fresh-token ceiling",
                 _ratio(rate("ours-verify-fresh"), rate("fresh-ceiling")), 0.8),
            Goal("ours verify fresh / Flask + PyJWT fresh",
                 _ratio(rate("ours-verify-fresh"), rate("pyjwt-fresh")), 2.0),
        ]
    if "ours-issue" in medians:
        goals.append(Goal("issuer tokens/s / raw signing",
                          _ratio(rate("ours-issue"), rate("raw-sign")), 0.9))
    if "ours-issue-es256" in medians:
        goals.append(Goal("ours issue ES256 / bare ASGI callable (the server's ceiling)",
                          _ratio(rate("ours-issue-es256"), rate("bare-asgi")), 0.5))
    if "ours-verify-fresh-es256" in medians:
        goals.append(Goal("ours verify fresh ES256 / ours verify fresh RS256",
                          _ratio(rate("ours-verify-fresh-es256"), rate("ours-verify-fresh")),
                          2.0))
    for key in TAIL_KEYS:
        if key not in tail:
            continue
        result = tail[key]
        value = None
        if isinstance(result, Measurement) and result.p50_ms:
            value = _ratio(result.p99_ms, result.p50_ms)
        goals.append(Goal(f"p99/p50 at {tail_connections} connections, {key}", value, 2.0,
                          at_most=True))
    return goals


def print_table(title: str, header: str, rows: list[str]) -> None:
    print(f"\n### {title}\n")
    print(header)
    print(_separator(header))
    for row in rows:
        print(row)


def _separator(header: str) -> str:
    return "|" + "|".join(" --- " for _ in range(header.count("|") - 1)) + "|"


def report(bench: Bench, machine: dict[str, Any], found_versions: dict[str, str]) -> dict[str, Any]:
    args = bench.args
    medians = {key: outcome.median() for key, outcome in bench.outcomes.items()}
    node_http = medians.get("node-http")
    raw = medians.get("raw-sign")

    def ceiling(contender: Contender) -> Measurement | None:
        # a fresh token's ceiling checks its signature; any other request's is the bare server
        return medians.get("fresh-ceiling" if contender.tokens == "fresh" else "bare-asgi")

    def row(contender: Contender, *bases: Measurement | None) -> str:
        result = medians[contender.key]
        outcome = bench.outcomes[contender.key]
        if result is None:
            reason = outcome.failures[-1] if outcome.failures else "not run"
            return (f"| {contender.label} | failed: {reason[:160]} | - | - |"
                    + " n/a |" * len(bases))
        ratios = "".join(f" {_cell_ratio(_ratio(result.rate, base.rate if base else None))} |"
                         for base in bases)
        return (f"| {_label(contender, result)} | {result.rate:.0f} | {_ms(result.p50_ms)} | "
                f"{_ms(result.p99_ms)} |{ratios}")

    verifier = [c for c in bench.contenders if c in VERIFIER_CONTENDERS]
    issuer = [c for c in bench.contenders if c in ISSUER_CONTENDERS]
    if verifier:
        print_table(f"verifier: RSA-{args.bits} RS256, {args.connections} connections, median of "
                    f"{args.rounds} round(s) x {args.duration} s",
                    "| contender | req/s | p50 ms | p99 ms | vs node http | vs its ceiling |",
                    [row(c, node_http, ceiling(c)) for c in verifier])
        if bench.fresh_per_file:
            print(f"\nfresh tokens: each fresh measurement had its own slice of "
                  f"{bench.fresh_per_file} never-seen tokens, on a server restarted just before")
        if bench.node_skipped:
            print(f"\nnode contenders skipped: {bench.node_skipped}")
    if issuer:
        print_table(f"issuer: RSA-{args.bits} RS256, {args.connections} connections, median of "
                    f"{args.rounds} round(s) x {args.duration} s",
                    "| contender | tokens/s | p50 ms | p99 ms | vs raw signing |",
                    [row(c, raw) for c in issuer])
    algorithms = [c for c in bench.contenders if c in ALGORITHM_CONTENDERS]
    if algorithms:
        print_table(f"algorithms: ours with a P-256 or Ed25519 key, {args.connections} "
                    f"connections, median of {args.rounds} round(s) x {args.duration} s",
                    "| contender | req/s | p50 ms | p99 ms | vs bare ASGI | vs RS256 "
                    f"(RSA-{args.bits}) |",
                    [row(c, medians.get("bare-asgi"), medians.get(RS256_COUNTERPART[c.key]))
                     for c in algorithms])
    tail_rows = []
    for contender in bench.contenders:
        result = bench.tail.get(contender.key)
        if isinstance(result, Measurement):
            ratio = _ratio(result.p99_ms, result.p50_ms)
            tail_rows.append(f"| {_label(contender, result)} | {result.rate:.0f} | "
                             f"{_ms(result.p50_ms)} | {_ms(result.p99_ms)} | "
                             f"{_cell_ratio(ratio)} |")
        elif isinstance(result, str):
            tail_rows.append(f"| {contender.label} | failed: {result[:160]} | - | - | n/a |")
    if tail_rows:
        print_table(f"at {args.tail_connections} connections (one pass; the bare ASGI callable, "
                    "node express and the baseline for reference)",
                    "| contender | req/s | p50 ms | p99 ms | p99/p50 |", tail_rows)

    goals = compute_goals(medians, bench.tail, args.tail_connections)
    print("\n### goals\n")
    for goal in goals:
        print(goal.text())
    _print_problems(bench, medians, machine)
    return {
        "machine": machine,
        "versions": found_versions,
        "settings": {"bits": args.bits, "duration_s": args.duration, "rounds": args.rounds,
                     "connections": args.connections,
                     "tail_connections": args.tail_connections,
                     "fresh_tokens_per_slice": bench.fresh_per_file,
                     "node_skipped": bench.node_skipped},
        "contenders": {
            c.key: {"label": c.label,
                    "median": asdict(m) if (m := medians[c.key]) else None,
                    "rounds": [asdict(r) for r in bench.outcomes[c.key].rounds],
                    "failures": bench.outcomes[c.key].failures}
            for c in bench.contenders
        },
        "tail": {key: asdict(value) if isinstance(value, Measurement) else {"failure": value}
                 for key, value in bench.tail.items()},
        "goals": [{**asdict(goal), "verdict": goal.verdict()} for goal in goals],
    }


def _print_problems(bench: Bench, medians: dict[str, Measurement | None],
                    machine: dict[str, Any]) -> None:
    problems = _error_lines(bench, medians)
    print("\n### errors\n")
    print("\n".join(problems) if problems else "none: every answer was 2xx, no socket errors")
    warnings = _plausibility_lines(medians, machine)
    if warnings:
        print("\n### warnings\n")
        print("\n".join(warnings))


def _error_lines(bench: Bench, medians: dict[str, Measurement | None]) -> list[str]:
    lines = []
    for contender in bench.contenders:
        result = medians[contender.key]
        if result is not None and result.errors:
            lines.append(f"- {contender.label}: {result.non_2xx} non-2xx answers, "
                         f"{result.socket_errors} socket errors over all rounds")
        if result is not None and result.wraps:
            lines.append(f"- {contender.label}: the fresh tokens ran out and wrapped around "
                         f"{result.wraps} time(s): sign more (raise HEADROOM)")
    for key, value in bench.tail.items():
        if isinstance(value, Measurement) and value.errors:
            lines.append(f"- {key} at {bench.args.tail_connections} connections: "
                         f"{value.non_2xx} non-2xx answers, {value.socket_errors} socket errors")
        if isinstance(value, Measurement) and value.wraps:
            lines.append(f"- {key} at {bench.args.tail_connections} connections: the fresh "
                         "tokens ran out and wrapped around")
    return lines


def _plausibility_lines(medians: dict[str, Measurement | None],
                        machine: dict[str, Any]) -> list[str]:
    """Signs that something other than the contenders moved the figures."""
    lines = []
    if machine["load_average_before"] > BUSY_LOAD:
        lines.append(f"- the machine was busy before the run (load average "
                     f"{machine['load_average_before']:.2f}): other work shared CPU 0 and CPU 1 "
                     "and moved the figures; run it again on a quiet machine")
    # nothing does less than its bare callable under the same worker: beating it by more than
    # the noise means some measurement was slowed down by something else
    bounds = {"bare-wsgi": GTHREAD_KEYS,
              "bare-asgi": {"ours-verify-repeated", "ours-auth-repeated", "fresh-ceiling",
                            *RS256_COUNTERPART},
              "fresh-ceiling": {"ours-verify-fresh"}}
    for name, bounded in bounds.items():
        ceiling = medians.get(name)
        if ceiling is None:
            continue
        for key in bounded:
            result = medians.get(key)
            if result is not None and result.rate > ceiling.rate * 1.1:
                lines.append(f"- {key} ({result.rate:.0f} req/s) beat {name} "
                             f"({ceiling.rate:.0f} req/s), its ceiling: some figures were moved "
                             "by other work")
    return lines


def describe(machine: dict[str, Any], found_versions: dict[str, str],
             args: argparse.Namespace) -> None:
    print(f"\n## side by side, {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
    # other work on the machine moves every figure: the load average shows whether there was any
    print(f"machine: {machine['cpu']}, {machine['cores']} cores; load average (1 min) "
          f"{machine['load_average_before']:.2f} before, {machine['load_average_after']:.2f} "
          "after")
    print(f"pinning: every server (gunicorn master + worker, node, redis-server) and the raw "
          f"signing process on CPU {SERVER_CPU} (taskset -c {SERVER_CPU}); wrk on CPU "
          f"{LOAD_CPU} (taskset -c {LOAD_CPU} wrk -t1 -c{args.connections} -d{args.duration}s "
          f"--latency)")
    print(f"servers: Python under gunicorn, {WORKERS} worker; ours as shipped (jwt-auth serve: "
          "the asgi worker, uvloop, access log and metrics on, failure mode closed) and the ASGI "
          "ceilings under the same worker settings (no access log); the WSGI peers under "
          f"gthread x {THREADS} threads, access log on; node one process each; redis-server "
          "with AOF appendfsync always")
    print(f"method: {WARM_UP_SECONDS} s wrk warm-up before each measurement (not counted), "
          f"{args.rounds} interleaved round(s), medians; req/s counts answers below 400")
    print("versions: " + ", ".join(f"{name} {value}" for name, value in found_versions.items()))


# --- entry point ----------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--only", choices=["verifier", "issuer"], help="run one side only")
    parser.add_argument("--duration", type=int, default=8, help="seconds per measurement")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (median)")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--tail-connections", type=int, default=64,
                        help="connections of the p99/p50 pass of ours (0: skip it)")
    parser.add_argument("--bits", type=int, default=4096, help="RSA key size")
    parser.add_argument("--threads", type=int, default=THREADS,
                        help="gthread threads of the WSGI peers")
    parser.add_argument("--baseline", type=Path, metavar="DIR",
                        help="also run ours from this checkout (an earlier commit)")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the results here")
    # the child processes this script starts run the script itself in one of these modes
    parser.add_argument("--serve-peer", choices=sorted(PEERS), help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--dir", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--raw-sign", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--seconds", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.baseline is not None:
        args.baseline = args.baseline.resolve()
        if not (args.baseline / "jwt_auth").is_dir():
            parser.error(f"--baseline {args.baseline}: no jwt_auth/ there")
    if args.duration < 1 or args.rounds < 1 or args.connections < 1:
        parser.error("--duration, --rounds and --connections must be at least 1")
    return args


def check_machine() -> None:
    missing = [tool for tool in ("redis-server", "wrk", "taskset") if shutil.which(tool) is None]
    if missing:
        raise SystemExit(f"missing on PATH: {', '.join(missing)}")
    usable = os.sched_getaffinity(0)
    if not {int(SERVER_CPU), int(LOAD_CPU)} <= usable:
        raise SystemExit(f"needs CPUs {SERVER_CPU} and {LOAD_CPU}; this process may use "
                         f"{sorted(usable)}")


def _interrupt(signum: int, frame: Any) -> None:
    del signum, frame
    raise KeyboardInterrupt


def run(args: argparse.Namespace) -> dict[str, Any]:
    machine: dict[str, Any] = {"cpu": cpu_model(), "cores": os.cpu_count(),
                               "load_average_before": os.getloadavg()[0]}
    with tempfile.TemporaryDirectory(prefix="jwt-auth-side-by-side-") as scratch:
        bench = Bench(args, Path(scratch))
        try:
            bench.prepare_keys()
            if args.only in (None, "verifier"):
                bench.node_skipped = prepare_node()
                redis_port = start_redis(bench.processes, bench.scratch)
            else:
                redis_port = 0
            bench.define_servers(redis_port)
            bench.start_servers()
            bench.sign_fresh_tokens()
            bench.run_rounds()
            bench.run_tail_pass()
        finally:
            bench.processes.stop_all()
        machine["load_average_after"] = os.getloadavg()[0]
        found_versions = versions()
        describe(machine, found_versions, args)
        return report(bench, machine, found_versions)


def main() -> None:
    args = parse_args()
    global THREADS  # one setting for every WSGI peer (subprocesses included)
    THREADS = args.threads
    if args.serve_peer:
        serve_peer(args.serve_peer, args.port, args.dir)
        return
    if args.raw_sign:
        print_raw_signing_rate(args.dir, args.seconds)
        return
    check_machine()
    # a plain kill must stop the servers too: they run in their own process groups
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        results = run(args)
    except KeyboardInterrupt:
        print("\ninterrupted: every process this run started was stopped", file=sys.stderr)
        raise SystemExit(130) from None
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
        print(f"\nresults written to {args.json}")


if __name__ == "__main__":
    main()
