"""Issuer throughput: tokens/s through HTTP against the raw signing rate of the same key.

Starts ``jwt-auth serve issuer`` (real gunicorn, gthread) with a fresh encrypted RSA key, drives
``POST /v1/tokens`` from concurrent keep-alive clients for a fixed time, then measures in this
process how fast the same key signs (``issuer.signing.sign_token``, one core) and prints both
figures and their ratio. A script, not a test: the numbers depend on the machine.

    .venv/bin/python bench/issuer_throughput.py [--bits 4096] [--duration 10] [--clients 8]
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import os
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

from issuer.signing import sign_token  # noqa: E402 - after making the repo importable
from shared.apikeys import add_client  # noqa: E402 - as above
from shared.keys import generate_key_pair, load_private_key  # noqa: E402 - as above

PASSPHRASE = "bench passphrase"
PAYLOAD = {"userId": "bench-user-123", "plan": "gold"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_healthy(url: str, process: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the issuer exited with status {process.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/readyz", timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise SystemExit("the issuer did not become ready in time")


def client_loop(port: int, key: str, start_at: float, stop_at: float) -> tuple[int, int]:
    """One keep-alive connection posting tokens until ``stop_at``: (201 answers, others)."""
    body = json.dumps(PAYLOAD).encode()
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    ok = failed = 0
    while time.time() < start_at:
        time.sleep(0.001)
    while time.time() < stop_at:
        connection.request("POST", "/v1/tokens", body=body, headers=headers)
        response = connection.getresponse()
        response.read()
        if response.status == 201:
            ok += 1
        else:
            failed += 1
    connection.close()
    return ok, failed


def http_rate(port: int, key: str, clients: int, duration: float) -> tuple[float, int]:
    """Tokens/s over HTTP with ``clients`` concurrent connections (one process each)."""
    start_at = time.time() + 1.0  # let every client process start before the clock runs
    stop_at = start_at + duration
    with multiprocessing.get_context("fork").Pool(clients) as pool:
        results = pool.starmap(client_loop, [(port, key, start_at, stop_at)] * clients)
    ok = sum(r[0] for r in results)
    failed = sum(r[1] for r in results)
    return ok / duration, failed


def raw_signing_rate(private_pem: bytes, duration: float) -> float:
    """sign_token calls per second on this one core, the same key, no HTTP."""
    key = load_private_key(private_pem, PASSPHRASE.encode(), source="bench")
    for _ in range(20):  # warm up
        sign_token(PAYLOAD, key, now=time.time(), ttl=3600, issuer=None, audience=None)
    count = 0
    started = time.perf_counter()
    while time.perf_counter() - started < duration:
        sign_token(PAYLOAD, key, now=time.time(), ttl=3600, issuer=None, audience=None)
        count += 1
    return count / (time.perf_counter() - started)


def parallel_signing_rate(private_pem: bytes, duration: float, processes: int) -> float:
    """sign_token calls per second summed over ``processes`` concurrent processes.

    What the cores actually deliver at this moment: on a shared machine it is less than
    cores x the one-core rate, and it is the fair ceiling for the HTTP figure.
    """
    with multiprocessing.get_context("fork").Pool(processes) as pool:
        rates = pool.starmap(raw_signing_rate, [(private_pem, duration)] * processes)
    return sum(rates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bits", type=int, default=4096)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per measurement")
    parser.add_argument("--clients", type=int, default=8, help="concurrent keep-alive clients")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--threads", type=int, default=4)
    args = parser.parse_args()

    load_before = os.getloadavg()[0]
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    with tempfile.TemporaryDirectory(prefix="jwt-auth-bench-") as scratch:
        directory = Path(scratch)
        print(f"generating an encrypted {args.bits}-bit key...", flush=True)
        private_pem, _ = generate_key_pair(args.bits, PASSPHRASE.encode())
        (directory / "private.pem").write_bytes(private_pem)
        (directory / "passphrase").write_text(PASSPHRASE)
        key = add_client(directory / "clients.json", "bench", admin=False,
                         variable="ISSUER_CLIENTS_FILE")
        port = free_port()
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("ISSUER_")},
            "ISSUER_PRIVATE_KEY_FILE": str(directory / "private.pem"),
            "ISSUER_KEY_PASSPHRASE_FILE": str(directory / "passphrase"),
            "ISSUER_CLIENTS_FILE": str(directory / "clients.json"),
            "ISSUER_RATE_LIMIT": "0",
            "LOG_LEVEL": "warning",
        }
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        command = [sys.executable, "-m", "jwt_auth", "serve", "issuer",
                   "--bind", f"127.0.0.1:{port}", "--workers", str(args.workers),
                   "--threads", str(args.threads), "--no-access-log"]
        server = subprocess.Popen(command, env=env, cwd=REPO, start_new_session=True,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_healthy(f"http://127.0.0.1:{port}", server)
            http_client_loop_warmup(port, key)
            # raw signing before and after the HTTP run: on a shared machine the spread shows
            # how much the background load moved while we measured
            print(f"raw signing in this process (one core), {args.duration:.0f} s...", flush=True)
            raw_before = raw_signing_rate(private_pem, args.duration)
            print(f"HTTP: {args.clients} keep-alive clients, {args.workers} gunicorn workers x "
                  f"{args.threads} threads, {args.duration:.0f} s...", flush=True)
            over_http, failed = http_rate(port, key, args.clients, args.duration)
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=30)
        print(f"raw signing in this process (one core) again, {args.duration:.0f} s...", flush=True)
        raw_after = raw_signing_rate(private_pem, args.duration)
        raw = (raw_before + raw_after) / 2
        print(f"raw signing in {cores} processes at once, {args.duration:.0f} s...", flush=True)
        raw_all = parallel_signing_rate(private_pem, args.duration, cores or 1)

    report: dict[str, Any] = {
        "key_bits": args.bits,
        "cores": cores,
        "http_tokens_per_s": round(over_http, 1),
        "http_non_201": failed,
        "raw_sign_token_per_s_one_core": round(raw, 1),
        "raw_one_core_before_after": f"{raw_before:.1f} / {raw_after:.1f}",
        "raw_sign_token_per_s_all_cores": round(raw_all, 1),
        "ratio_http_to_raw_one_core": round(over_http / raw, 2),
        "ratio_http_to_raw_all_cores": round(over_http / raw_all, 2),
        "load_average_before_after": f"{load_before:.2f} / {os.getloadavg()[0]:.2f}",
    }
    print()
    for name, value in report.items():
        print(f"{name:32} {value}")


def http_client_loop_warmup(port: int, key: str) -> None:
    """A few requests so every worker's first-request costs are paid before the clock runs."""
    now = time.time()
    client_loop(port, key, now, now + 0.5)


if __name__ == "__main__":
    main()
