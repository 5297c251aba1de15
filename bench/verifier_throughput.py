"""Verifier throughput: POST /v1/verify requests/s next to a bare Flask endpoint, in one run.

Starts a redis-server of its own (AOF, appendfsync always, as production), ``jwt-auth serve
verifier`` and a bare Flask JSON endpoint under the very same gunicorn settings
(``shared.serving.run_gunicorn``: gthread, preloaded, same workers and threads), then drives each
from concurrent keep-alive clients for a bounded time:

- bare: ``POST /echo`` parses the same JSON body and answers a small JSON object;
- repeated: one token, again and again (in-process cache hit + the revocation mirror);
- fresh: a token never seen before on every request (RSA verify + the mirror + the cache write).

Prints the figures and their ratios to the bare endpoint. A script, not a test.

    .venv/bin/python bench/verifier_throughput.py [--bits 4096] [--duration 5] [--clients 8]
        [--tokens 8000]
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

PASSPHRASE = "bench passphrase"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def bare_app() -> Any:
    """The baseline: Flask parsing a JSON body and answering JSON, nothing else."""
    from flask import Flask, jsonify, request

    app = Flask("bare")

    @app.post("/echo")
    def echo() -> Any:
        body = request.get_json()
        return jsonify({"ok": True, "length": len(body["token"])})

    return app


def serve_bare(port: int, workers: int, threads: int) -> None:
    from shared.serving import run_gunicorn

    run_gunicorn(bare_app, bind=f"127.0.0.1:{port}", workers=workers, threads=threads,
                 access_log=False)


def wait_ready(url: str, process: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{url}: the server exited with status {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status in (200, 405):
                    return
        except urllib.error.HTTPError as error:
            if error.code == 405:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"{url} did not become ready in time")


def client_loop(
    port: int, path: str, tokens: list[str], start_at: float, stop_at: float
) -> tuple[int, int, float]:
    """One keep-alive connection; cycles through ``tokens`` once (or forever if one token).

    Returns (2xx answers, other answers, seconds spent): a client whose fresh tokens run out
    stops early, and the rate is computed from the time it really ran.
    """
    headers = {"Content-Type": "application/json"}
    bodies = [json.dumps({"token": token}).encode() for token in tokens]
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    ok = failed = 0
    while time.time() < start_at:
        time.sleep(0.001)
    started = time.time()
    index = 0
    while time.time() < stop_at:
        if len(bodies) > 1 and index >= len(bodies):
            break
        connection.request("POST", path, body=bodies[index % len(bodies)], headers=headers)
        response = connection.getresponse()
        response.read()
        if 200 <= response.status < 300:
            ok += 1
        else:
            failed += 1
        index += 1
    elapsed = time.time() - started
    connection.close()
    return ok, failed, elapsed


def rate(port: int, path: str, token_sets: list[list[str]], duration: float) -> tuple[float, int]:
    """Requests/s summed over one client process per token set."""
    start_at = time.time() + 1.0  # every client process starts before the clock runs
    stop_at = start_at + duration
    with multiprocessing.get_context("fork").Pool(len(token_sets)) as pool:
        results = pool.starmap(
            client_loop, [(port, path, tokens, start_at, stop_at) for tokens in token_sets]
        )
    total = sum(ok / elapsed for ok, _, elapsed in results if elapsed > 0)
    return total, sum(failed for _, failed, _ in results)


def _sign_many(private_pem: bytes, count: int, offset: int) -> list[str]:
    import jwt
    from cryptography.hazmat.primitives import serialization

    key = serialization.load_pem_private_key(private_pem, PASSPHRASE.encode())
    now = int(time.time())
    return [
        jwt.encode({"userId": f"user-{(offset + index) % 500}", "iat": now, "exp": now + 3600,
                    "jti": f"bench-{offset + index}"}, key, algorithm="RS256")
        for index in range(count)
    ]


def sign_tokens(private_pem: bytes, count: int, processes: int) -> list[str]:
    share = -(-count // processes)
    with multiprocessing.get_context("fork").Pool(processes) as pool:
        parts = pool.starmap(
            _sign_many, [(private_pem, share, share * index) for index in range(processes)]
        )
    return [token for part in parts for token in part][:count]


def start(command: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(command, env=env, cwd=REPO, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--bits", type=int, default=4096)
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per measurement")
    parser.add_argument("--clients", type=int, default=8, help="concurrent keep-alive clients")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--tokens", type=int, default=8000,
                        help="fresh tokens signed beforehand (the fresh run stops when used up)")
    parser.add_argument("--serve-bare", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_bare:
        serve_bare(args.serve_bare, args.workers, args.threads)
        return
    if shutil.which("redis-server") is None:
        raise SystemExit("redis-server is not installed")

    from shared.keys import generate_key_pair

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    processes: list[subprocess.Popen[bytes]] = []
    with tempfile.TemporaryDirectory(prefix="jwt-auth-bench-") as scratch:
        directory = Path(scratch)
        try:
            print(f"generating an encrypted {args.bits}-bit key...", flush=True)
            private_pem, public_pem = generate_key_pair(args.bits, PASSPHRASE.encode())
            (directory / "public.pem").write_bytes(public_pem)
            print(f"signing {args.tokens} fresh tokens...", flush=True)
            tokens = sign_tokens(private_pem, args.tokens, cores or 1)

            redis_port, verifier_port, bare_port = free_port(), free_port(), free_port()
            processes.append(start(
                ["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1",
                 "--dir", str(directory), "--appendonly", "yes", "--appendfsync", "always",
                 "--save", ""],
                dict(os.environ),
            ))
            env = {
                **{k: v for k, v in os.environ.items()
                   if not k.startswith(("VERIFIER_", "REDIS_", "PROMETHEUS_"))},
                "VERIFIER_PUBLIC_KEY_FILE": str(directory / "public.pem"),
                "REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
                "LOG_LEVEL": "warning",
            }
            gunicorn = ["--workers", str(args.workers), "--threads", str(args.threads)]
            verifier = start([sys.executable, "-m", "jwt_auth", "serve", "verifier",
                              "--bind", f"127.0.0.1:{verifier_port}", *gunicorn,
                              "--no-access-log"], env)
            processes.append(verifier)
            bare = start([sys.executable, str(Path(__file__).resolve()),
                          "--serve-bare", str(bare_port), *gunicorn], env)
            processes.append(bare)
            wait_ready(f"http://127.0.0.1:{verifier_port}/readyz", verifier)
            wait_ready(f"http://127.0.0.1:{bare_port}/echo", bare)

            repeated = [tokens[0]]
            warm = tokens[-50:]  # the last tokens are never reached by the fresh run's clients
            for port, path in ((bare_port, "/echo"), (verifier_port, "/v1/verify")):
                rate(port, path, [warm] * 2, 0.5)

            print(f"{args.clients} keep-alive clients, {args.workers} gunicorn workers x "
                  f"{args.threads} threads (gthread), {args.duration:.0f} s each", flush=True)
            bare_rate, bare_failed = rate(bare_port, "/echo", [repeated] * args.clients,
                                          args.duration)
            print(f"  bare Flask     {bare_rate:8.0f} req/s", flush=True)
            repeated_rate, repeated_failed = rate(
                verifier_port, "/v1/verify", [repeated] * args.clients, args.duration
            )
            print(f"  repeated token {repeated_rate:8.0f} req/s", flush=True)
            usable = tokens[:-50]
            share = len(usable) // args.clients
            fresh_sets = [usable[i * share:(i + 1) * share] for i in range(args.clients)]
            fresh_rate, fresh_failed = rate(verifier_port, "/v1/verify", fresh_sets,
                                            args.duration)
            print(f"  fresh token    {fresh_rate:8.0f} req/s", flush=True)
        finally:
            for process in reversed(processes):
                stop(process)

    report: dict[str, Any] = {
        "key_bits": args.bits,
        "cores": cores,
        "bare_flask_req_per_s": round(bare_rate),
        "verify_repeated_req_per_s": round(repeated_rate),
        "verify_fresh_req_per_s": round(fresh_rate),
        "ratio_repeated_to_bare": round(repeated_rate / bare_rate, 2),
        "ratio_fresh_to_bare": round(fresh_rate / bare_rate, 2),
        "non_2xx_answers": bare_failed + repeated_failed + fresh_failed,
    }
    print()
    for name, value in report.items():
        print(f"{name:28} {value}")


if __name__ == "__main__":
    main()
