"""Soak: minutes of mixed load on the issuer and the verifier, watching what must not grow.

Starts a redis-server of its own (AOF, ``appendfsync always``), the issuer and the verifier as
shipped (``python -m jwt_auth serve``: gunicorn, its default workers and threads, access log on,
metrics on), then runs ``--concurrency`` client threads, each with keep-alive sessions, looping
over one cycle: issue a token (``POST /v1/tokens?expires_in=60``), verify it twice (the second
from the verifier's in-process cache), forward-auth with it, log in, forward-auth with the
session id, log out, forward-auth with the ended session (401); every ``--revoke-every``-th
cycle also revokes the token and verifies it again (401 ``token_revoked``; a 200 there is a
failure), and every 10th reads the user record with the admin key. Every answer is counted by
route and status; an unexpected status is a failure.

Samples are taken at the start, after ``--warmup`` seconds and every 30 s to the end: resident
memory (VmRSS) of each gunicorn worker (the master's children) and master, their open file
descriptors, Redis ``DBSIZE`` (by kind of key, each key's TTL checked against its documented
lifetime) and ``used_memory``, and each service's metrics folder (bytes and files). The verdict
compares the end to the warm-up sample: growth within 10% passes. Redis keys are judged by the
lifetimes docs/verifier.md documents (a revocation lives until the token's ``exp`` + 3600 s, so
during a run shorter than an hour every revocation is still there by design): the keys of every
other kind must plateau, revocations must not exceed the revocations acknowledged, and no key
may outlive its documented lifetime. Exit status 0 only when everything passes. A script, not a
test.

    .venv/bin/python bench/soak.py [--duration 600] [--warmup 60] [--concurrency 8]
        [--revoke-every 5] [--bits 2048] [--json PATH] [--env NAME=VALUE ...]
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(REPO))

from bench.processes import (  # noqa: E402
    Processes,
    children_of,
    free_port,
    log_tail,
    open_fds,
    rss_kib,
    start_redis_server,
    wait_answering,
)

PASSPHRASE = "soak passphrase"
TOKEN_TTL = 60  # ?expires_in of every token: the shortest lifetime that is still realistic
SESSION_TTL = 60  # VERIFIER_SESSION_TTL: its minimum, so sessions left open expire in the run
REVOCATION_MARGIN = 3600  # docs/verifier.md: a revocation lives until exp + 3600 s
PROBE_TTL = 2  # docs/verifier.md: the mirror's probe keys live 2 s
# a fixed pool: one permanent user record, one session index and one login-rate window per user
# at most; large enough that no user nears VERIFIER_LOGIN_RATE (30 logins a minute)
USERS = 1000
LOGIN_WINDOW = 60  # verifier/store.py: the VERIFIER_LOGIN_RATE window key lives 60 s
SAMPLE_EVERY = 30.0
GROWTH_LIMIT = 0.10
FD_SLACK = 3  # open fds are small counts that move with connections: 10% or 3, whichever is more
# Redis stores a small key with a TTL in well under this; more per added key is a leak
BYTES_PER_KEY = 300
PREFIX = "jwtauth:"
TIMEOUT = 10.0


# --- the load ---------------------------------------------------------------------------------


@dataclass
class Tally:
    """Every answer by route and status, the failures, and what the key bound needs."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    answers: collections.Counter[tuple[str, int]] = field(default_factory=collections.Counter)
    failures: collections.Counter[str] = field(default_factory=collections.Counter)
    examples: list[str] = field(default_factory=list)
    revocations: int = 0
    open_sessions: int = 0

    def count(self, route: str, status: int) -> None:
        with self.lock:
            self.answers[(route, status)] += 1

    def fail(self, route: str, what: str) -> None:
        with self.lock:
            self.failures[route] += 1
            if len(self.examples) < 5:
                self.examples.append(f"{route}: {what}")

    def total(self) -> int:
        with self.lock:
            return sum(self.answers.values())


@dataclass(frozen=True)
class Target:
    issuer: str
    verifier: str
    client_key: str
    admin_key: str
    revoke_every: int


def _call(tally: Tally, session: Any, method: str, url: str, route: str,
          expected: tuple[int, ...], **kwargs: Any) -> Any:
    import requests

    try:
        response = session.request(method, url, timeout=TIMEOUT, **kwargs)
    except requests.RequestException as exc:
        tally.fail(route, f"no answer: {type(exc).__name__}: {exc}")
        return None
    tally.count(route, response.status_code)
    if response.status_code not in expected:
        tally.fail(route, f"status {response.status_code} (expected {expected}): "
                          f"{response.text[:200]!r}")
        return None
    return response


def run_cycle(tally: Tally, target: Target, issuer: Any, verifier: Any, user: str,
              cycle: int) -> None:
    """One pass of the mix for one user; stops at the first unexpected answer."""
    issued = _call(tally, issuer, "POST", f"{target.issuer}/v1/tokens?expires_in={TOKEN_TTL}",
                   "issuer POST /v1/tokens", (201,), json={"userId": user},
                   headers={"Authorization": f"Bearer {target.client_key}"})
    if issued is None:
        return
    token = issued.json()["token"]
    v = target.verifier
    for _ in range(2):  # the second one is answered from the in-process cache
        if _call(tally, verifier, "POST", f"{v}/v1/verify", "POST /v1/verify", (200,),
                 json={"token": token}) is None:
            return
    if _call(tally, verifier, "GET", f"{v}/v1/auth", "GET /v1/auth (token)", (200,),
             headers={"Authorization": f"Bearer {token}"}) is None:
        return
    login = _call(tally, verifier, "POST", f"{v}/v1/sessions", "POST /v1/sessions", (201,),
                  json={"token": token})
    if login is None:
        return
    session_id = login.json()["sessionId"]
    with tally.lock:
        tally.open_sessions += 1
    if _call(tally, verifier, "GET", f"{v}/v1/auth", "GET /v1/auth (session)", (200,),
             headers={"Authorization": f"Bearer {session_id}"}) is None:
        return
    if _call(tally, verifier, "DELETE", f"{v}/v1/sessions/{session_id}",
             "DELETE /v1/sessions/<id>", (204,)) is None:
        return
    with tally.lock:
        tally.open_sessions -= 1
    if _call(tally, verifier, "GET", f"{v}/v1/auth", "GET /v1/auth (ended session)", (401,),
             headers={"Authorization": f"Bearer {session_id}"}) is None:
        return
    if cycle % 10 == 0 and _call(
        tally, verifier, "GET", f"{v}/v1/users/{user}", "GET /v1/users/<id> (admin)", (200,),
        headers={"Authorization": f"Bearer {target.admin_key}"},
    ) is None:
        return
    if cycle % target.revoke_every == 0:
        if _call(tally, verifier, "POST", f"{v}/v1/revocations", "POST /v1/revocations", (204,),
                 json={"token": token}) is None:
            return
        with tally.lock:
            tally.revocations += 1
        refused = _call(tally, verifier, "POST", f"{v}/v1/verify", "POST /v1/verify (revoked)",
                        (401,), json={"token": token})
        if refused is not None and refused.json().get("code") != "token_revoked":
            tally.fail("POST /v1/verify (revoked)", f"code {refused.json().get('code')!r}")
        _call(tally, verifier, "GET", f"{v}/v1/auth", "GET /v1/auth (revoked)", (401,),
              headers={"Authorization": f"Bearer {token}"})


def client_thread(index: int, stop: threading.Event, tally: Tally, target: Target) -> None:
    import requests

    with requests.Session() as issuer, requests.Session() as verifier:
        # http://127.0.0.1 only: no proxy variable may send the load elsewhere
        issuer.trust_env = verifier.trust_env = False
        cycle = 0
        while not stop.is_set():
            cycle += 1
            user = f"soak-user-{(index * 31 + cycle) % USERS}"
            try:
                run_cycle(tally, target, issuer, verifier, user, cycle)
            except (ValueError, KeyError) as exc:  # an answer that is not the JSON promised
                tally.fail("decode", f"{type(exc).__name__}: {exc}")


# --- the samples ------------------------------------------------------------------------------


def key_kind(key: str) -> str:
    rest = key[len(PREFIX):] if key.startswith(PREFIX) else key
    for start, kind in (("v2:revoked:probe:", "probe"), ("v2:revoked:", "revocation"),
                        ("v2:sessions:", "session index"), ("v2:session:", "session"),
                        ("v2:user:", "user"), ("v2:logins:", "login window"),
                        ("v2:cutoff:", "cutoff"), ("v2:fence:", "fence"), ("layout", "layout")):
        if rest.startswith(start):
            return kind
    return "other"


# the longest TTL each kind may have (None: permanent, as documented)
LIFETIME: dict[str, int | None] = {
    "revocation": TOKEN_TTL + REVOCATION_MARGIN,
    "session": SESSION_TTL,
    "session index": SESSION_TTL,
    "probe": PROBE_TTL,
    "login window": LOGIN_WINDOW,
    "fence": 1,
    "user": None,
    "cutoff": None,
    "layout": None,
}


def redis_figures(client: Any) -> dict[str, Any]:
    kinds: collections.Counter[str] = collections.Counter()
    violations: list[str] = []
    keys = [key.decode() if isinstance(key, bytes) else key
            for key in client.scan_iter(match="*", count=1000)]
    ttls: list[int] = []
    pipe = client.pipeline(transaction=False)
    for start in range(0, len(keys), 1000):
        for key in keys[start:start + 1000]:
            pipe.ttl(key)
        ttls += pipe.execute()
    for key, ttl in zip(keys, ttls, strict=True):
        if ttl == -2:  # expired between SCAN and TTL
            continue
        kind = key_kind(key)
        kinds[kind] += 1
        lifetime = LIFETIME.get(kind, 0)
        # -1: no expiry. Permanent kinds must be documented so; the others need a TTL within
        # their documented lifetime
        if (lifetime is None and ttl != -1) or (lifetime is not None and not 0 <= ttl <= lifetime):
            if len(violations) < 5:
                violations.append(f"{kind} {key[:60]} ttl {ttl}")
            kinds["ttl violations"] += 1
    info = client.info("memory")
    server = client.info("server")
    return {
        "dbsize": int(client.dbsize()),
        "used_memory": int(info["used_memory"]),
        "kinds": dict(kinds),
        "violations": violations,
        "pid": int(server["process_id"]),
    }


def folder_figures(folder: Path) -> dict[str, int]:
    files = [path for path in folder.iterdir() if path.is_file()] if folder.is_dir() else []
    return {"bytes": sum(path.stat().st_size for path in files), "files": len(files)}


def service_figures(master: int, metrics: Path) -> dict[str, Any]:
    workers = {str(pid): {"rss_kib": rss_kib(pid), "fds": open_fds(pid)}
               for pid in children_of(master)}
    return {"master": master, "master_rss_kib": rss_kib(master), "master_fds": open_fds(master),
            "workers": workers, "metrics": folder_figures(metrics)}


# --- the verdict ------------------------------------------------------------------------------


@dataclass
class Figure:
    name: str
    start: float | None
    warm: float | None
    end: float | None
    verdict: str
    note: str = ""

    def growth(self) -> str:
        if self.warm is None or self.end is None:
            return "-"
        if self.warm == 0:
            return "0%" if self.end == 0 else "+inf"
        return f"{(self.end - self.warm) / self.warm * 100:+.1f}%"


def _within(warm: float | None, end: float | None, slack: float = 0.0) -> bool:
    if warm is None or end is None:
        return False
    return end <= warm * (1 + GROWTH_LIMIT) or end - warm <= slack


def judge(samples: list[dict[str, Any]], tally: Tally, concurrency: int,
          verifier_processes: int) -> list[Figure]:
    first, warm, last = samples[0], samples[1], samples[-1]
    figures: list[Figure] = []
    for service in ("issuer", "verifier"):
        s, w, e = (sample["services"][service] for sample in (first, warm, last))
        for pid, end_worker in e["workers"].items():
            start_worker = s["workers"].get(pid, {})
            warm_worker = w["workers"].get(pid)
            if warm_worker is None:
                figures.append(Figure(f"{service} worker {pid} RSS KiB", None, None,
                                      end_worker["rss_kib"], "FAIL",
                                      "a worker that was not there after warm-up: one died"))
                continue
            for figure, slack in (("rss_kib", 0.0), ("fds", float(FD_SLACK))):
                ok = _within(warm_worker[figure], end_worker[figure], slack)
                figures.append(Figure(
                    f"{service} worker {pid} {'RSS KiB' if figure == 'rss_kib' else 'open fds'}",
                    start_worker.get(figure), warm_worker[figure], end_worker[figure],
                    "PASS" if ok else "FAIL"))
        for figure, label, slack in (("master_rss_kib", "master RSS KiB", 0.0),
                                     ("master_fds", "master open fds", float(FD_SLACK))):
            figures.append(Figure(f"{service} {label}", s[figure], w[figure], e[figure],
                                  "PASS" if _within(w[figure], e[figure], slack) else "FAIL"))
        for figure in ("bytes", "files"):
            start_value, warm_value, end_value = (x["metrics"][figure] for x in (s, w, e))
            figures.append(Figure(f"{service} metrics folder {figure}", start_value, warm_value,
                                  end_value, "PASS" if _within(warm_value, end_value) else "FAIL"))
    rs, rw, re_ = (sample["redis"] for sample in (first, warm, last))
    figures.append(Figure("redis open fds", rs["fds"], rw["fds"], re_["fds"],
                          "PASS" if _within(rw["fds"], re_["fds"], FD_SLACK) else "FAIL"))
    # keys: every kind but revocations must plateau; revocations live exp + 3600 s by design
    revocations = [sample["redis"]["kinds"].get("revocation", 0) for sample in (first, warm, last)]
    others = [sample["redis"]["dbsize"] - count
              for sample, count in zip((first, warm, last), revocations, strict=True)]
    bound_others = 3 * USERS + concurrency + verifier_processes * 10 + 1
    ok = _within(others[1], others[2], 5) and others[2] <= bound_others
    figures.append(Figure("redis keys other than revocations", others[0], others[1], others[2],
                          "PASS" if ok else "FAIL",
                          f"bound {bound_others}: {USERS} user records + {USERS} session "
                          f"indexes + {USERS} login windows + open sessions (<= {concurrency})"
                          " + probes + layout"))
    violations = re_["kinds"].get("ttl violations", 0)
    ok = revocations[2] <= tally.revocations and violations == 0
    if re_["violations"]:
        print("keys outside their documented lifetime, e.g.: " + "; ".join(re_["violations"]))
    steady = tally.revocations / max(last["elapsed"], 1) * (TOKEN_TTL + REVOCATION_MARGIN)
    figures.append(Figure("redis revocation keys", revocations[0], revocations[1],
                          revocations[2], "PASS" if ok else "FAIL",
                          f"{tally.revocations} acknowledged, each lives exp + {REVOCATION_MARGIN}"
                          f" s = {TOKEN_TTL + REVOCATION_MARGIN} s: at this rate they level off "
                          f"at about {steady:.0f} after {TOKEN_TTL + REVOCATION_MARGIN} s; "
                          f"TTL violations {violations}"))
    figures.append(Figure("redis DBSIZE", rs["dbsize"], rw["dbsize"], re_["dbsize"],
                          "PASS" if all(f.verdict == "PASS" for f in figures[-2:]) else "FAIL",
                          "judged by the two rows above"))
    added = re_["dbsize"] - rw["dbsize"]
    grown = re_["used_memory"] - rw["used_memory"]
    if _within(rw["used_memory"], re_["used_memory"]):
        verdict, note = "PASS", ""
    elif added > 0 and grown / added <= BYTES_PER_KEY:
        verdict, note = "PASS", (f"{grown / added:.0f} bytes per key added "
                                 f"(<= {BYTES_PER_KEY}): the keys above, within their bound")
    else:
        verdict, note = "FAIL", f"{grown} bytes for {added} keys added"
    figures.append(Figure("redis used_memory bytes", rs["used_memory"], rw["used_memory"],
                          re_["used_memory"], verdict, note))
    return figures


# --- the run ----------------------------------------------------------------------------------


def _service_env() -> dict[str, str]:
    return {name: value for name, value in os.environ.items()
            if not name.startswith(("VERIFIER_", "ISSUER_", "REDIS_", "PROMETHEUS_", "JWT_"))
            and name != "LOG_LEVEL"}


def prepare(scratch: Path, bits: int) -> tuple[str, str]:
    from shared.apikeys import add_client
    from shared.keys import generate_key_pair

    print(f"generating an encrypted {bits}-bit RSA key...", flush=True)
    private_pem, public_pem = generate_key_pair(bits, PASSPHRASE.encode())
    (scratch / "private.pem").write_bytes(private_pem)
    (scratch / "public.pem").write_bytes(public_pem)
    (scratch / "passphrase").write_text(PASSPHRASE)
    client_key = add_client(scratch / "clients.json", "soak", admin=False,
                            variable="ISSUER_CLIENTS_FILE")
    admin_key = add_client(scratch / "admins.json", "ops", admin=True,
                           variable="VERIFIER_ADMIN_KEYS_FILE")
    return client_key, admin_key


def take_sample(label: str, started: float, tally: Tally, masters: dict[str, int],
                scratch: Path, redis_client: Any) -> dict[str, Any]:
    redis = redis_figures(redis_client)
    redis["fds"] = open_fds(redis["pid"])
    redis["rss_kib"] = rss_kib(redis["pid"])
    sample = {
        "label": label,
        "elapsed": round(time.monotonic() - started, 1),
        "answers": tally.total(),
        "failures": sum(tally.failures.values()),
        "services": {name: service_figures(pid, scratch / f"metrics-{name}")
                     for name, pid in masters.items()},
        "redis": redis,
    }
    workers = "  ".join(
        f"{name} " + "/".join(f"{w['rss_kib'] // 1024 if w['rss_kib'] else '?'}M"
                              for w in figures["workers"].values())
        for name, figures in sample["services"].items())
    print(f"[{sample['elapsed']:6.0f} s] {label:8} answers {sample['answers']:7d} "
          f"failures {sample['failures']:3d}  workers RSS {workers}  redis keys "
          f"{redis['dbsize']} ({redis['kinds'].get('revocation', 0)} revocations) "
          f"{redis['used_memory'] // 1024} KiB", flush=True)
    return sample


def print_report(samples: list[dict[str, Any]], figures: list[Figure], tally: Tally,
                 seconds: float) -> None:
    print("\nanswers by route and status:")
    for (route, status), count in sorted(tally.answers.items()):
        print(f"  {route:34} {status}  {count:8d}  ({count / seconds:.1f}/s)")
    print(f"  total {sum(tally.answers.values())} in {seconds:.0f} s "
          f"({sum(tally.answers.values()) / seconds:.0f}/s)")
    if tally.failures:
        print("failures:")
        for route, count in tally.failures.most_common():
            print(f"  {route}: {count}")
        for example in tally.examples:
            print(f"    e.g. {example}")
    print(f"\n| figure | start | after warm-up ({samples[1]['elapsed']:.0f} s) | end "
          f"({samples[-1]['elapsed']:.0f} s) | growth after warm-up | verdict |")
    print("| --- | --- | --- | --- | --- | --- |")
    for figure in figures:
        cells = ["-" if value is None else f"{value:.0f}"
                 for value in (figure.start, figure.warm, figure.end)]
        note = f" ({figure.note})" if figure.note else ""
        print(f"| {figure.name} | {' | '.join(cells)} | {figure.growth()} | "
              f"{figure.verdict}{note} |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=600.0, help="seconds of load")
    parser.add_argument("--warmup", type=float, default=60.0,
                        help="seconds after which growth is measured")
    parser.add_argument("--concurrency", type=int, default=8, help="client threads")
    parser.add_argument("--revoke-every", type=int, default=5,
                        help="revoke the token (and check the 401) every N-th cycle")
    parser.add_argument("--bits", type=int, default=2048, help="RSA key size of the issuer")
    parser.add_argument("--json", type=Path, help="write the samples and the verdict here")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                        help="a setting for both services, to diagnose a figure (repeatable); "
                             "without it they run as shipped")
    args = parser.parse_args()
    if not 0 < args.warmup < args.duration:
        parser.error("--warmup must be above 0 and below --duration")
    if any("=" not in setting for setting in args.env):
        parser.error("--env takes NAME=VALUE")
    extra = dict(setting.split("=", 1) for setting in args.env)

    import redis

    cores = ",".join(str(core) for core in sorted(os.sched_getaffinity(0)))
    with tempfile.TemporaryDirectory(prefix="jwt-auth-soak-") as directory:
        scratch = Path(directory)
        (scratch / "logs").mkdir()
        processes = Processes(scratch / "logs")
        try:
            client_key, admin_key = prepare(scratch, args.bits)
            redis_port = free_port()
            start_redis_server(processes, scratch / "redis", redis_port, cpu=cores)
            base = {**_service_env(), **extra}
            envs = {
                "issuer": {**base, "ISSUER_PRIVATE_KEY_FILE": str(scratch / "private.pem"),
                           "ISSUER_KEY_PASSPHRASE_FILE": str(scratch / "passphrase"),
                           "ISSUER_CLIENTS_FILE": str(scratch / "clients.json"),
                           # one client sends all the load: the limiter stays on, never refusing
                           "ISSUER_RATE_LIMIT": "1000000000"},
                "verifier": {**base, "VERIFIER_PUBLIC_KEY_FILE": str(scratch / "public.pem"),
                             "REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
                             "VERIFIER_ADMIN_KEYS_FILE": str(scratch / "admins.json"),
                             "VERIFIER_SESSION_TTL": str(SESSION_TTL)},
            }
            masters: dict[str, int] = {}
            urls: dict[str, str] = {}
            for name, env in envs.items():
                port = free_port()
                metrics = scratch / f"metrics-{name}"
                metrics.mkdir()
                env["PROMETHEUS_MULTIPROC_DIR"] = str(metrics)
                log = scratch / "logs" / f"{name}.log"
                # as shipped: jwt-auth serve's default workers and threads, access log on
                process = processes.start([sys.executable, "-m", "jwt_auth", "serve", name,
                                           "--bind", f"127.0.0.1:{port}"], env, log, cpu=cores)
                wait_answering(process, port, "/readyz", log, name)
                masters[name] = process.pid
                urls[name] = f"http://127.0.0.1:{port}"
                print(f"{name} on {urls[name]}: master {process.pid}, workers "
                      f"{children_of(process.pid)}", flush=True)
            target = Target(urls["issuer"], urls["verifier"], client_key, admin_key,
                            args.revoke_every)
            redis_client = redis.Redis(port=redis_port, socket_timeout=30)
            tally = Tally()
            stop = threading.Event()
            threads = [threading.Thread(target=client_thread, args=(i, stop, tally, target),
                                        daemon=True) for i in range(args.concurrency)]
            print(f"soak: {args.duration:.0f} s with {args.concurrency} client threads, "
                  f"warm-up {args.warmup:.0f} s, sample every {SAMPLE_EVERY:.0f} s", flush=True)
            started = time.monotonic()
            samples = [take_sample("start", started, tally, masters, scratch, redis_client)]
            for thread in threads:
                thread.start()
            moments = [("warm-up", args.warmup)]
            moment = args.warmup + SAMPLE_EVERY
            while moment < args.duration:
                moments.append(("sample", moment))
                moment += SAMPLE_EVERY
            moments.append(("end", args.duration))
            for label, at in moments:
                remaining = at - (time.monotonic() - started)
                if remaining > 0:
                    time.sleep(remaining)
                samples.append(take_sample(label, started, tally, masters, scratch,
                                           redis_client))
            stop.set()
            for thread in threads:
                thread.join(timeout=TIMEOUT * 2)
            seconds = time.monotonic() - started
            workers = len(samples[-1]["services"]["verifier"]["workers"])
            figures = judge(samples, tally, args.concurrency, workers + 1)
            print_report(samples, figures, tally, seconds)
            failed = [figure.name for figure in figures if figure.verdict != "PASS"]
            if tally.failures:
                failed.append(f"{sum(tally.failures.values())} unexpected answers")
            verdict = "PASS" if not failed else "FAIL"
            print(f"\nverdict: {verdict}" + (f" ({'; '.join(failed)})" if failed else ""))
            if args.json:
                args.json.write_text(json.dumps({
                    "arguments": {k: str(v) if isinstance(v, Path) else v
                                  for k, v in vars(args).items()},
                    "samples": samples,
                    "answers": {f"{route} {status}": count
                                for (route, status), count in sorted(tally.answers.items())},
                    "failures": dict(tally.failures), "examples": tally.examples,
                    "revocations": tally.revocations,
                    "figures": [{**vars(f), "growth": f.growth()} for f in figures],
                    "verdict": verdict,
                }, indent=2))
            return 0 if verdict == "PASS" else 1
        except BaseException:
            for name in ("issuer", "verifier", "redis"):
                print(f"{name} log: {log_tail(scratch / 'logs' / f'{name}.log')}",
                      file=sys.stderr)
            raise
        finally:
            processes.stop_all()


if __name__ == "__main__":
    raise SystemExit(main())
