"""Scale-out: verifier req/s against the number of verifier processes, on one Redis and a Cluster.

For N in 1, 2 and 4 verifier processes (each ``jwt-auth serve verifier --workers 1 --threads 2``,
N separate gunicorn processes standing in for N replicas behind a load balancer) on

- ``standalone``: one redis-server (AOF, ``appendfsync always``, as production); every process
  answers revocation checks from its mirror of Redis, kept current by invalidation pushes;
- ``cluster``: a real Redis Cluster of 3 masters + 3 replicas (``tests.redis_topologies``, every
  node AOF ``appendfsync always``); the mirror is off there, each verification reads Redis (one
  MGET on the master of the user's slot),

all N processes are driven at once, one ``wrk -t1`` per process (``side_by_side.lua``), and the
req/s of the N are summed. Two token mixes: ``repeated`` (a few tokens again and again: the
in-process cache, then the mirror or the MGET) and ``fresh`` (a token the process has not seen on
every request, from a pool of pre-signed tokens for many users: RSA verification too). Redis's
own CPU (``used_cpu_sys`` + ``used_cpu_user`` from INFO cpu, summed over every master) is read
before and after each timed run and reported per 1000 requests.

Pinning, as in ``side_by_side.py``: every verifier and every redis-server on CPU 0, the wrk
processes on CPU 1. On a 2-core machine they all share it: absolute figures say little, compare
setups within one run. Rounds are interleaved (each round runs every setup and N, the setup
order alternating) and the report gives medians. A script, not a test.

    .venv/bin/python bench/scaleout.py [--duration 5] [--rounds 2] [--connections 4]
        [--tokens 20000] [--bits 4096] [--quick]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

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
from tests.redis_topologies import RedisClusterSet  # noqa: E402 - after making the repo importable

LUA_SCRIPT = BENCH / "side_by_side.lua"
PASSPHRASE = "bench passphrase"
LOAD_CPU = "1"
PROCESS_COUNTS = (1, 2, 4)
SETUPS = ("standalone", "cluster")
MIXES = ("repeated", "fresh")
REPEATED_TOKENS = 8  # "the same few tokens", one user each
FRESH_USERS = 2000  # the fresh pool's tokens belong to this many users (spread over the slots)
WARM_UP_SECONDS = 1
IDLE_SECONDS = 2
SIGN_CHUNK = 200
START_TIMEOUT = 90.0
# a 1-minute load average above this before the run means other work is on the machine
BUSY_LOAD = 0.5
RESULT_LINE = re.compile(r"^SBS_RESULT (\{.*\})$", re.MULTILINE)
# lines of a verifier's log worth showing: not access-log lines of 2xx answers
PROBLEM_LINE = re.compile(r"error|exception|traceback|unavailable|timeout|\" 5\d\d |warning",
                          re.IGNORECASE)


# --- processes ------------------------------------------------------------------------------


def problem_lines(path: Path, limit: int = 8) -> list[str]:
    if not path.exists():
        return []
    text = path.read_text(encoding="utf-8", errors="replace").splitlines()
    return [line.strip() for line in text if PROBLEM_LINE.search(line)][:limit]


# --- tokens ---------------------------------------------------------------------------------

def _sign_chunk(job: tuple[str, int, int, int]) -> list[str]:
    import jwt

    prefix, first, last, users = job
    now = int(time.time())
    return [
        jwt.encode({"userId": f"{prefix}-user-{number % users}", "iat": now,
                    "exp": now + 6 * 3600, "jti": f"scaleout-{prefix}-{number}"},
                   bench_processes.signing_key, algorithm="RS256")
        for number in range(first, last)
    ]


def sign_tokens(private_pem: bytes, prefix: str, count: int, users: int) -> list[str]:
    jobs = [(prefix, start, min(start + SIGN_CHUNK, count), users)
            for start in range(0, count, SIGN_CHUNK)]
    with multiprocessing.get_context("fork").Pool(
        len(os.sched_getaffinity(0)), initializer=load_signing_key,
        initargs=(private_pem, PASSPHRASE.encode()),
    ) as pool:
        return [token for chunk in pool.map(_sign_chunk, jobs) for token in chunk]


# --- Redis ----------------------------------------------------------------------------------


@dataclass
class Setup:
    """One Redis topology and how the verifier is pointed at it."""

    name: str
    env: dict[str, str]
    masters: list[int]
    clients: dict[int, redis.Redis] = field(default_factory=dict)

    def cpu_seconds(self) -> float:
        """used_cpu_sys + used_cpu_user, summed over every master."""
        total = 0.0
        for port in self.masters:
            if port not in self.clients:
                self.clients[port] = redis.Redis(host="127.0.0.1", port=port, socket_timeout=5,
                                                 decode_responses=True)
            info: Any = self.clients[port].info("cpu")
            total += float(info["used_cpu_sys"]) + float(info["used_cpu_user"])
        return total

    def close(self) -> None:
        for client in self.clients.values():
            client.close()


def start_standalone(processes: Processes, scratch: Path) -> int:
    """A redis-server of its own, durable as production asks (AOF, fsync on every write)."""
    port = free_port()
    start_redis_server(processes, scratch / "standalone", port)
    return port


def pin_to_server_cpu(ports: list[int]) -> None:
    """The cluster's nodes are started by tests.redis_topologies: pin them (all threads) here."""
    for port in ports:
        client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=2,
                             decode_responses=True)
        try:
            info: Any = client.info("server")
        finally:
            client.close()
        subprocess.run(["taskset", "-a", "-p", "-c", SERVER_CPU, str(info["process_id"])],
                       check=True, capture_output=True, timeout=10)


# --- verifiers and wrk ----------------------------------------------------------------------


def _service_env() -> dict[str, str]:
    """This environment without any service setting that would change what is measured."""
    return {name: value for name, value in os.environ.items()
            if not name.startswith(("VERIFIER_", "ISSUER_", "REDIS_", "PROMETHEUS_"))
            and name != "LOG_LEVEL"}


@dataclass
class Verifier:
    port: int
    process: subprocess.Popen[bytes]
    log: Path


def start_verifiers(count: int, setup: Setup, processes: Processes, scratch: Path,
                    label: str) -> list[Verifier]:
    """``count`` verifier processes started at once, then waited for (all ready or an error)."""
    verifiers = []
    for index in range(count):
        port = free_port()
        metrics = scratch / "metrics" / f"{label}-{index}"
        metrics.mkdir(parents=True)
        env = {**setup.env, "PROMETHEUS_MULTIPROC_DIR": str(metrics)}
        log = processes.logs / f"verifier-{label}-{index}.log"
        argv = [sys.executable, "-m", "jwt_auth", "serve", "verifier", "--workers", "1",
                "--threads", "2", "--bind", f"127.0.0.1:{port}"]
        verifiers.append(Verifier(port, processes.start(argv, env, log, SERVER_CPU), log))
    deadline = time.monotonic() + START_TIMEOUT
    waiting = list(verifiers)
    while waiting:
        for verifier in list(waiting):
            if verifier.process.poll() is not None:
                raise RuntimeError(f"a verifier exited with status {verifier.process.returncode}"
                                   f": {log_tail(verifier.log)}")
            if answers(verifier.port, "/readyz"):
                waiting.remove(verifier)
        if time.monotonic() > deadline:
            raise RuntimeError(f"a verifier was not ready after {START_TIMEOUT:.0f} s: "
                               f"{log_tail(waiting[0].log)}")
        time.sleep(0.1)
    return verifiers


@dataclass
class Measurement:
    requests: int  # every answer, whatever its status
    ok_rate: float  # answers below 400 per second, summed over the processes
    non_2xx: int
    socket_errors: int
    wraps: int
    redis_cpu_s: float
    processes: int

    @property
    def cpu_ms_per_1000(self) -> float:
        return self.redis_cpu_s * 1000 / (self.requests / 1000) if self.requests else 0.0

    @property
    def errors(self) -> int:
        return self.non_2xx + self.socket_errors


def run_wrks(verifiers: list[Verifier], token_files: list[Path], connections: int,
             seconds: int, processes: Processes) -> list[dict[str, Any]]:
    """One ``wrk -t1`` per verifier, all at once; the figures ``side_by_side.lua`` prints."""
    started = []
    try:
        for index, verifier in enumerate(verifiers):
            log = processes.logs / f"wrk-{verifier.port}-{index}.log"
            log.unlink(missing_ok=True)  # one result line per file
            argv = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "-s", str(LUA_SCRIPT),
                    f"http://127.0.0.1:{verifier.port}/v1/verify"]
            env = {**os.environ, "SBS_TOKENS": str(token_files[index]), "SBS_SHAPE": "verify"}
            started.append((processes.start(argv, env, log, LOAD_CPU), log))
        for process, _ in started:
            process.wait(timeout=seconds + 60)
    finally:
        # none may outlive this measurement and load the next one
        for process, _ in started:
            processes.stop(process)
    figures = []
    for process, log in started:
        found = RESULT_LINE.search(log.read_text(encoding="utf-8", errors="replace"))
        if found is None:
            raise RuntimeError(f"wrk printed no result (status {process.returncode}): "
                               f"{log_tail(log, 3)}")
        figures.append(json.loads(found.group(1)))
    return figures


def measure(setup: Setup, verifiers: list[Verifier], token_files: list[Path], fresh: bool,
            connections: int, seconds: int, processes: Processes) -> Measurement:
    before = setup.cpu_seconds()
    figures = run_wrks(verifiers, token_files, connections, seconds, processes)
    cpu = setup.cpu_seconds() - before
    return Measurement(
        requests=sum(f["requests"] for f in figures),
        ok_rate=sum((f["requests"] - f["status"]) / (f["duration_us"] / 1e6)
                    for f in figures if f["duration_us"]),
        non_2xx=sum(f["status"] for f in figures),
        socket_errors=sum(f[name] for f in figures
                          for name in ("connect", "read", "write", "timeout")),
        # the repeated tokens wrap around by design; a fresh pool that does sends cached ones
        wraps=sum(f["wraps"] for f in figures) if fresh else 0,
        redis_cpu_s=cpu,
        processes=len(verifiers),
    )


# --- the run --------------------------------------------------------------------------------

Key = tuple[str, int, str]  # setup, processes, mix


@dataclass
class Bench:
    args: argparse.Namespace
    scratch: Path
    processes: Processes
    setups: dict[str, Setup] = field(default_factory=dict)
    repeated_files: list[Path] = field(default_factory=list)
    fresh_files: list[Path] = field(default_factory=list)
    results: dict[Key, list[Measurement]] = field(default_factory=dict)
    failures: dict[Key, list[str]] = field(default_factory=dict)
    problems: dict[str, list[str]] = field(default_factory=dict)
    idle_cpu_ms_per_s: dict[str, float] = field(default_factory=dict)
    cluster: RedisClusterSet | None = None

    def prepare_tokens(self) -> None:
        from shared.keys import generate_key_pair

        print(f"generating an encrypted {self.args.bits}-bit RSA key...", flush=True)
        private_pem, public_pem = generate_key_pair(self.args.bits, PASSPHRASE.encode())
        (self.scratch / "public.pem").write_bytes(public_pem)
        started = time.monotonic()
        repeated = sign_tokens(private_pem, "repeated", REPEATED_TOKENS, REPEATED_TOKENS)
        fresh = sign_tokens(private_pem, "fresh", self.args.tokens, FRESH_USERS)
        print(f"signed {len(repeated)} repeated + {len(fresh)} fresh tokens "
              f"({FRESH_USERS} users) in {time.monotonic() - started:.1f} s", flush=True)
        # process k starts its pool at its own offset: at any moment the N processes verify
        # tokens of different users, as N replicas behind a load balancer would
        for index in range(max(PROCESS_COUNTS)):
            shift = index * len(fresh) // max(PROCESS_COUNTS)
            path = self.scratch / f"fresh-{index}.txt"
            path.write_text("\n".join(fresh[shift:] + fresh[:shift]) + "\n", encoding="ascii")
            self.fresh_files.append(path)
            shift = index % len(repeated)
            path = self.scratch / f"repeated-{index}.txt"
            path.write_text("\n".join(repeated[shift:] + repeated[:shift]) + "\n",
                            encoding="ascii")
            self.repeated_files.append(path)

    def start_redis(self) -> None:
        base = {**_service_env(), "VERIFIER_PUBLIC_KEY_FILE": str(self.scratch / "public.pem")}
        print("starting a standalone redis-server and a 3 + 3 node Redis Cluster...", flush=True)
        port = start_standalone(self.processes, self.scratch)
        self.setups["standalone"] = Setup(
            "standalone",
            {**base, "VERIFIER_REDIS_MODE": "standalone",
             "REDIS_URL": f"redis://127.0.0.1:{port}/0"},
            [port])
        # kept before start(): whatever fails after this, run() stops the nodes (a start that
        # fails stops its own)
        self.cluster = cluster = RedisClusterSet(self.scratch / "cluster")
        cluster.start()
        pin_to_server_cpu(cluster.ports)
        self.setups["cluster"] = Setup(
            "cluster", {**base, "VERIFIER_REDIS_MODE": "cluster", "REDIS_URL": cluster.url},
            cluster.masters())

    def measure_idle(self) -> None:
        """Redis CPU with no verifier at all: the floor under every figure (cluster cron)."""
        before = {name: setup.cpu_seconds() for name, setup in self.setups.items()}
        time.sleep(IDLE_SECONDS)
        for name, setup in self.setups.items():
            self.idle_cpu_ms_per_s[name] = (setup.cpu_seconds() - before[name]) * 1000 \
                / IDLE_SECONDS

    def run_rounds(self) -> None:
        for number in range(self.args.rounds):
            order = SETUPS if number % 2 == 0 else tuple(reversed(SETUPS))
            print(f"round {number + 1}/{self.args.rounds}", flush=True)
            for name in order:
                for count in PROCESS_COUNTS:
                    self.run_block(self.setups[name], count, number)

    def run_block(self, setup: Setup, count: int, number: int) -> None:
        """Start ``count`` verifiers, warm them up, measure both mixes, stop them."""
        label = f"{setup.name}-{count}-r{number + 1}"
        verifiers: list[Verifier] = []
        try:
            verifiers = start_verifiers(count, setup, self.processes, self.scratch, label)
            # not counted: the repeated tokens reach every cache, the mirror gets in sync
            run_wrks(verifiers, self.repeated_files, self.args.connections, WARM_UP_SECONDS,
                     self.processes)
            for mix in MIXES:
                key = (setup.name, count, mix)
                files = self.repeated_files if mix == "repeated" else self.fresh_files
                try:
                    result = measure(setup, verifiers, files, mix == "fresh",
                                     self.args.connections,
                                     self.args.duration, self.processes)
                except (RuntimeError, subprocess.TimeoutExpired, redis.RedisError) as error:
                    self.failures.setdefault(key, []).append(str(error))
                    print(f"  {setup.name:10} {count} x {mix:8} FAILED: {error}", flush=True)
                    continue
                self.results.setdefault(key, []).append(result)
                print(f"  {setup.name:10} {count} x {mix:8} {_line(result)}", flush=True)
        except (RuntimeError, subprocess.TimeoutExpired, redis.RedisError) as error:
            for mix in MIXES:
                self.failures.setdefault((setup.name, count, mix), []).append(str(error))
            print(f"  {setup.name:10} {count} processes FAILED: {error}", flush=True)
        finally:
            for verifier in verifiers:
                self.processes.stop(verifier.process)
            for verifier in verifiers:
                found = problem_lines(verifier.log)
                if found:
                    self.problems[verifier.log.name] = found


def _line(result: Measurement) -> str:
    text = (f"{result.ok_rate:8.0f} req/s  {result.ok_rate / result.processes:7.0f}/process  "
            f"Redis CPU {result.cpu_ms_per_1000:7.2f} ms/1000 req")
    if result.errors:
        text += f"  ERRORS: {result.non_2xx} non-2xx, {result.socket_errors} socket"
    if result.wraps:
        text += "  WARNING: the fresh tokens ran out and wrapped around (raise --tokens)"
    return text


# --- the report -----------------------------------------------------------------------------


def _median(values: list[float]) -> float:
    return statistics.median(values)


def _ratio(value: float | None, base: float | None) -> str:
    if value is None or not base:
        return "n/a"
    return f"{value / base:.2f}"


def report(bench: Bench, load_before: float) -> None:
    args = bench.args
    print(f"\n## scale-out, {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
    print(f"machine: {os.cpu_count()} cores; load average (1 min) {load_before:.2f} before, "
          f"{os.getloadavg()[0]:.2f} after")
    if load_before > BUSY_LOAD:
        print(f"WARNING: the machine was busy before the run (load average {load_before:.2f}): "
              "other work shared both CPUs and moved the figures; run it again on a quiet "
              "machine")
    print(f"pinning: every verifier process and every redis-server (1 standalone, 6 cluster "
          f"nodes) on CPU {SERVER_CPU}; wrk (one -t1 -c{args.connections} per verifier process)"
          f" on CPU {LOAD_CPU}. Everything shares this machine: absolute figures are not "
          "meaningful, compare the setups within this run")
    print(f"method: RSA-{args.bits} RS256; each verifier `jwt-auth serve verifier --workers 1 "
          f"--threads 2` (access log on); {WARM_UP_SECONDS} s warm-up with the repeated tokens, "
          f"then {args.duration} s per mix; {args.rounds} interleaved round(s), medians; "
          f"repeated = {REPEATED_TOKENS} tokens of {REPEATED_TOKENS} users, fresh = a pool of "
          f"{args.tokens} tokens of {FRESH_USERS} users, none seen by the process before")
    print("Redis CPU: used_cpu_sys + used_cpu_user deltas over the timed run, summed over "
          "every master, per 1000 requests; idle floor (no verifier running): "
          + ", ".join(f"{name} {value:.1f} ms/s" for name, value in
                      bench.idle_cpu_ms_per_s.items()))
    header = ("| setup | processes | mix | req/s total | req/s per process | "
              "Redis CPU ms / 1000 req | cluster/standalone req/s | "
              "cluster/standalone Redis CPU |")
    print()
    print(header)
    print("|" + "|".join(" --- " for _ in range(header.count("|") - 1)) + "|")
    medians: dict[Key, tuple[float, float]] = {}
    for key, rounds in bench.results.items():
        medians[key] = (_median([r.ok_rate for r in rounds]),
                        _median([r.cpu_ms_per_1000 for r in rounds]))
    for count in PROCESS_COUNTS:
        for mix in MIXES:
            for name in SETUPS:
                key = (name, count, mix)
                if key not in medians:
                    reason = (bench.failures.get(key) or ["not run"])[-1]
                    print(f"| {name} | {count} | {mix} | failed: {reason[:120]} | - | - | - "
                          "| - |")
                    continue
                rate, cpu = medians[key]
                errors = sum(r.errors for r in bench.results[key])
                flag = f" **({errors} errors)**" if errors else ""
                ratios = "- | -"
                if name == "cluster":
                    base = medians.get(("standalone", count, mix))
                    ratios = (f"{_ratio(rate, base[0] if base else None)} | "
                              f"{_ratio(cpu, base[1] if base else None)}")
                print(f"| {name} | {count} | {mix} | {rate:.0f}{flag} | {rate / count:.0f} | "
                      f"{cpu:.2f} | {ratios} |")
    _print_problems(bench)


def _print_problems(bench: Bench) -> None:
    lines = []
    for key, rounds in sorted(bench.results.items()):
        errors = sum(r.errors for r in rounds)
        if errors:
            lines.append(f"- {' / '.join(map(str, key))}: "
                         f"{sum(r.non_2xx for r in rounds)} non-2xx answers, "
                         f"{sum(r.socket_errors for r in rounds)} socket errors over all rounds")
        if any(r.wraps for r in rounds):
            lines.append(f"- {' / '.join(map(str, key))}: the fresh tokens ran out and wrapped "
                         "around (cached answers counted): raise --tokens")
    for key, reasons in sorted(bench.failures.items()):
        lines.append(f"- {' / '.join(map(str, key))}: {len(reasons)} failed round(s): "
                     f"{reasons[-1][:300]}")
    print("\n### errors\n")
    print("\n".join(lines) if lines else "none: every answer was 2xx, no socket errors")
    if bench.problems:
        print("\n### verifier log lines worth a look (first lines of each log)\n")
        for name, found in bench.problems.items():
            print(f"- {name}:")
            for line in found:
                print(f"    {line[:300]}")


# --- entry point ----------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--duration", type=int, default=5, help="seconds per measurement")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds (median)")
    parser.add_argument("--connections", type=int, default=4,
                        help="wrk connections per verifier process")
    parser.add_argument("--tokens", type=int, default=20000,
                        help="fresh tokens signed beforehand (each process cycles through them)")
    parser.add_argument("--bits", type=int, default=4096, help="RSA key size")
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run of about a minute: 1 round of 2 s, 8000 tokens")
    args = parser.parse_args()
    if args.quick:
        args.duration, args.rounds, args.tokens = 2, 1, 8000
    if args.duration < 1 or args.rounds < 1 or args.connections < 1 or args.tokens < 1:
        parser.error("--duration, --rounds, --connections and --tokens must be at least 1")
    return args


def check_machine() -> None:
    missing = [tool for tool in ("redis-server", "redis-cli", "wrk", "taskset")
               if shutil.which(tool) is None]
    if missing:
        raise SystemExit(f"missing on PATH: {', '.join(missing)}")
    usable = os.sched_getaffinity(0)
    if not {int(SERVER_CPU), int(LOAD_CPU)} <= usable:
        raise SystemExit(f"needs CPUs {SERVER_CPU} and {LOAD_CPU}; this process may use "
                         f"{sorted(usable)}")


def _interrupt(signum: int, frame: Any) -> None:
    del signum, frame
    raise KeyboardInterrupt


def run(args: argparse.Namespace) -> None:
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="jwt-auth-scaleout-") as scratch:
        logs = Path(scratch) / "logs"
        logs.mkdir()
        bench = Bench(args, Path(scratch), Processes(logs))
        try:
            bench.prepare_tokens()
            bench.start_redis()
            bench.measure_idle()
            bench.run_rounds()
        finally:
            bench.processes.stop_all()
            for setup in bench.setups.values():
                setup.close()
            if bench.cluster is not None:
                bench.cluster.stop()
        report(bench, load_before)


def main() -> None:
    args = parse_args()
    check_machine()
    # a plain kill must stop the servers too: they run in their own process groups
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        run(args)
    except KeyboardInterrupt:
        print("\ninterrupted: every process this run started was stopped", file=sys.stderr)
        raise SystemExit(130) from None


if __name__ == "__main__":
    main()
