"""Scale-out: two verifier processes on one Redis Cluster, and on one Sentinel-watched master.

Each mode gets two verifier services (gunicorn, two workers each) on the same Redis: the whole
flow must work across them (a session opened on one is used and ended on the other, a revocation
or user-wide logout acknowledged by one is refused by the other at once). With the replica that
must confirm a revocation stopped, the revocation answers 503 instead of 204, retried too, while
verification goes on. Last, the Redis master is killed with -9 under load: the verifiers, never
restarted, may answer 503 only while the failover runs, never anything else, and every
revocation they acknowledged, before, during or after the failover, is still refused afterwards.

One cluster and one sentinel set serve the whole module (``deployment``); pytest runs the tests
of one mode together, in file order, so the failover test, which leaves the killed node down, is
the last to use its topology.
"""

from __future__ import annotations

import functools
import os
import signal
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis
import requests
from redis.backoff import NoBackoff
from redis.cluster import ClusterNode, RedisCluster
from redis.retry import Retry

from shared.apikeys import add_client
from shared.digest import sha256_hex
from shared.logs import token_fingerprint
from tests.forge import fresh
from tests.keypairs import KeyPair
from tests.procs import ServiceProcess, http_ok, verifier_env, wait_until
from tests.redis_topologies import RedisClusterSet, SentinelSet
from verifier.layout import KeyLayout, user_tag
from verifier.store import BREAKER_SECONDS

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

LAYOUT = KeyLayout("jwtauth:")
FAILOVER_TIMEOUT = 15.0  # measured here: 2-3 s (node timeout, down-after-milliseconds 1 s)
WAIT_MS = 150  # the verifier's WAIT timeout: 3/5 of VERIFIER_REDIS_TIMEOUT_MS (250 ms)
KEEP_GOING = 2.0  # seconds of load after the failover finished
LOAD_SECONDS_MAX = 60.0  # the load threads stop by themselves even if a test hangs
SETTLE = BREAKER_SECONDS
"""How long after the topology reports the failover done a verifier may still answer 503.

Each worker finds the new master by itself: its breaker lets a probe through every
PROBE_INTERVAL (50 ms); the probe fails on the dead node and refreshes the worker's map
(Cluster) or asks the sentinels again (Sentinel), and the next request goes to the new master.
That is one probe interval and a round trip or two. Measured on a 2-CPU machine, the last 503
ended between 0.04 s before and 0.08 s after the topology reported the failover done (before:
the topology also waits for every node to agree). BREAKER_SECONDS, 0.5 s (ten probe
intervals), leaves room for a slower CI machine without hiding a worker that never recovers."""


# the topologies and the verifiers ------------------------------------------------------------


@dataclass(frozen=True)
class Deployment:
    """A Redis topology as the verifier is pointed at it."""

    mode: str  # VERIFIER_REDIS_MODE
    url: str  # REDIS_URL: every cluster node as a seed, or the three sentinels
    topology: RedisClusterSet | SentinelSet


@pytest.fixture(scope="module", params=["cluster", "sentinel"])
def deployment(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Deployment]:
    """One topology per mode for the module, started when its first test runs."""
    mode: str = request.param
    topology: RedisClusterSet | SentinelSet
    if mode == "cluster":
        topology = RedisClusterSet(tmp_path_factory.mktemp("scaleout-cluster"))
    else:
        topology = SentinelSet(tmp_path_factory.mktemp("scaleout-sentinel"))
    topology.start()
    try:
        yield Deployment(mode, topology.url, topology)
    finally:
        topology.stop()


@dataclass(frozen=True)
class Pair:
    """Two verifier services on the same Redis; ``admin_key`` works on both.

    ``idle`` is a third one, of one worker, that the failover test keeps out of the load: a
    worker that knew the topology before a failover and got no request during it must not
    answer 503 after it (each gunicorn worker has its own map; with two workers, the load's
    few keep-alive connections leave one idle only by chance).
    """

    a: ServiceProcess
    b: ServiceProcess
    idle: ServiceProcess
    admin_key: str
    deployment: Deployment


@pytest.fixture(scope="module")
def pair(
    deployment: Deployment, key_pair: KeyPair, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Pair]:
    folder = tmp_path_factory.mktemp(f"scaleout-{deployment.mode}")
    admins = folder / "admins.json"
    admin_key = add_client(admins, "ops", admin=True, variable="VERIFIER_ADMIN_KEYS_FILE")
    env = verifier_env(
        key_pair, deployment.url, admins,
        VERIFIER_REDIS_MODE=deployment.mode,
        # the default in both modes, spelled out: the durability test depends on it
        VERIFIER_REDIS_MIN_REPLICAS="1",
    )
    services = [
        ServiceProcess("verifier", env, folder / f"{name}.log", workers=workers, threads=2)
        for name, workers in (("a", 2), ("b", 2), ("idle", 1))
    ]
    started: list[ServiceProcess] = []
    try:
        for service in services:  # started in parallel: one start-up time, not three
            service.start(wait=False)
            started.append(service)
        for service in services:
            wait_until(functools.partial(_healthy, service), timeout=30,
                       what=f"the verifier on {service.url}")
        a, b, idle = services
        yield Pair(a, b, idle, admin_key, deployment)
    finally:
        for service in started:
            service.stop()


def _healthy(service: ServiceProcess) -> bool:
    assert service.process is not None
    if service.process.poll() is not None:
        raise AssertionError(f"the verifier exited early:\n{service.output()}")
    return http_ok(f"{service.url}/healthz")


@pytest.fixture
def http() -> Iterator[requests.Session]:
    with requests.Session() as session:
        yield session


# HTTP helpers -----------------------------------------------------------------------------------


def verify(http: requests.Session, service: ServiceProcess, token: str) -> requests.Response:
    return http.post(f"{service.url}/v1/verify", json={"token": token}, timeout=10)


def auth(http: requests.Session, service: ServiceProcess, credential: str) -> requests.Response:
    return http.get(f"{service.url}/v1/auth",
                    headers={"Authorization": f"Bearer {credential}"}, timeout=10)


def login(http: requests.Session, service: ServiceProcess, token: str) -> str:
    response = http.post(f"{service.url}/v1/sessions", json={"token": token}, timeout=10)
    assert response.status_code == 201, response.text
    session_id: str = response.json()["sessionId"]
    return session_id


def revoke(http: requests.Session, service: ServiceProcess, token: str) -> requests.Response:
    return http.post(f"{service.url}/v1/revocations", json={"token": token}, timeout=10)


def end_user(http: requests.Session, pair: Pair, service: ServiceProcess,
             user: str) -> requests.Response:
    return http.delete(f"{service.url}/v1/users/{user}/sessions",
                       headers={"Authorization": f"Bearer {pair.admin_key}"}, timeout=10)


def code_of(response: requests.Response) -> str | None:
    try:
        body: Any = response.json()
    except ValueError:
        return None
    return body.get("code") if isinstance(body, dict) else None


def refused_as_revoked(response: requests.Response) -> bool:
    return response.status_code == 401 and code_of(response) == "token_revoked"


def refused_everywhere(pair: Pair, token: str) -> bool:
    """Whether both services refuse the token as revoked, on three new connections each (new
    connections land on either worker: in sentinel mode each worker has its own mirror)."""
    return not not_refused(pair, token)


def not_refused(pair: Pair, token: str) -> list[tuple[str, int, str | None]]:
    """The answers of ``refused_everywhere`` that were not 401 token_revoked."""
    wrong = []
    for name, service in (("a", pair.a), ("b", pair.b)):
        for _ in range(3):
            response = requests.post(f"{service.url}/v1/verify", json={"token": token},
                                     timeout=10)
            if not refused_as_revoked(response):
                wrong.append((name, response.status_code, code_of(response)))
    return wrong


# 1. the whole flow across two processes -----------------------------------------------------------


def test_two_verifiers_share_sessions_revocations_and_logouts(
    pair: Pair, key_pair: KeyPair, http: requests.Session
) -> None:
    a, b = pair.a, pair.b
    token = fresh(key_pair, "scale-alice")
    for service in (a, b):
        response = verify(http, service, token)
        assert response.status_code == 200, response.text
        assert response.json()["userId"] == "scale-alice"

    # a session opened on A is a credential on B, and ended on B it is gone on A
    session_id = login(http, a, token)
    forwarded = auth(http, b, session_id)
    assert forwarded.status_code == 200, forwarded.text
    assert forwarded.headers["X-Auth-User-Id"] == "scale-alice"
    seen = http.get(f"{b.url}/v1/sessions/{session_id}", timeout=10)
    assert seen.status_code == 200, seen.text
    assert seen.json()["userId"] == "scale-alice"
    assert http.delete(f"{b.url}/v1/sessions/{session_id}", timeout=10).status_code == 204
    assert http.get(f"{a.url}/v1/sessions/{session_id}", timeout=10).status_code == 404
    assert auth(http, a, session_id).status_code == 401

    # a revocation acknowledged by A is refused by B right after the 204
    for _ in range(10):
        revoked_token = fresh(key_pair, "scale-alice")
        assert verify(http, b, revoked_token).status_code == 200  # B has it cached now
        assert revoke(http, a, revoked_token).status_code == 204
        assert refused_as_revoked(verify(http, b, revoked_token))
    assert refused_everywhere(pair, revoked_token)

    # a user-wide logout on B refuses the user's older tokens on A and ends their sessions;
    # nobody else is touched
    bob_old = fresh(key_pair, "scale-bob")
    carol = fresh(key_pair, "scale-carol")
    bob_sessions = [login(http, service, bob_old) for service in (a, b)]
    carol_session = login(http, a, carol)
    for credential in (bob_old, *bob_sessions):
        assert auth(http, a, credential).status_code == 200
    ended = end_user(http, pair, b, "scale-bob")
    assert ended.status_code == 200, ended.text
    assert ended.json()["sessionsEnded"] == 2
    cutoff = ended.json()["tokensRevokedBefore"]
    assert refused_as_revoked(verify(http, a, bob_old))
    assert refused_everywhere(pair, bob_old)
    for session in bob_sessions:
        for service in (a, b):
            assert auth(http, service, session).status_code == 401
            assert http.get(f"{service.url}/v1/sessions/{session}", timeout=10).status_code \
                == 404
    for service in (a, b):
        assert verify(http, service, carol).status_code == 200
        assert verify(http, service, token).status_code == 200
        assert auth(http, service, carol_session).headers["X-Auth-User-Id"] == "scale-carol"

    # bob signs in again (a token issued after the cut-off) and loses one new token: from here
    # every kind of key of his exists (cut-off, session, session index, record, revocation)
    newer = fresh(key_pair, "scale-bob", iat=int(cutoff) + 1)
    assert verify(http, a, newer).status_code == 200
    bob_session = login(http, a, newer)
    assert auth(http, b, bob_session).status_code == 200
    revoked_jti = f"bob-revoked-{time.perf_counter_ns()}"
    assert revoke(http, b, fresh(key_pair, "scale-bob", iat=int(cutoff) + 1,
                                 jti=revoked_jti)).status_code == 204

    if pair.deployment.mode == "cluster":
        assert isinstance(pair.deployment.topology, RedisClusterSet)
        _assert_one_slot(pair.deployment.topology, "scale-bob", {revoked_jti,
                                                                  sha256_hex(bob_session)})
        # the info line of Store.mirror_off_reason, once per service
        for service in (a, b):
            assert "Redis Cluster mode: the revocation mirror is not used" in service.output()
            assert "revocation mirror in sync" not in service.output()
    else:
        # each service's workers that verified something synced their mirror
        wait_until(lambda: all("revocation mirror in sync" in service.output()
                               for service in (a, b)),
                   timeout=10, what="the verifiers' revocation mirrors to sync")
        for service in (a, b):
            assert "the revocation mirror is not used" not in service.output()


def _assert_one_slot(cluster: RedisClusterSet, user: str, marks: set[str]) -> None:
    """Every key of ``user`` (found by content, not by its hash tag) is in one hash slot.

    A key is the user's when its name ends with the user id (cut-off, session index, record) or
    holds one of ``marks`` (the jti of a revoked token, the hash of a session id).
    """
    client = RedisCluster(
        startup_nodes=[
            ClusterNode("127.0.0.1", port)  # type: ignore[no-untyped-call]
            for port in cluster.ports
        ],
        socket_timeout=2, socket_connect_timeout=2, decode_responses=True,
    )
    try:
        found: dict[str, int] = {}
        for primary in client.get_primaries():  # type: ignore[no-untyped-call]
            for key in primary.redis_connection.scan_iter(match="jwtauth:v2:*", count=1000):
                if key.endswith(f":{user}") or any(mark in key for mark in marks):
                    found[key] = primary.port
        kinds = {key.split(":")[2] for key in found}
        assert kinds == {"revoked", "cutoff", "session", "sessions", "user", "logins"}, found
        slots = {client.keyslot(key) for key in found}  # type: ignore[no-untyped-call]
        assert len(slots) == 1, found
        assert len(set(found.values())) == 1, found  # and so on one master
    finally:
        client.close()


# 2. durability: no acknowledgement without the replica -------------------------------------------


def test_a_revocation_is_refused_not_acknowledged_while_the_replica_is_down(
    pair: Pair, key_pair: KeyPair, http: requests.Session
) -> None:
    user = "scale-durable"
    master = _master_of(pair.deployment, user)
    replica = _only_replica(master)
    token, other = fresh(key_pair, user), fresh(key_pair, user)
    bystander = fresh(key_pair, "scale-durable-bystander")
    for candidate in (token, other, bystander):
        assert verify(http, pair.a, candidate).status_code == 200

    _kill_replica(pair.deployment, replica)
    try:
        wait_until(lambda: _connected_replicas(master) == 0, timeout=5,
                   what=f"redis {master} to notice its replica {replica} is gone")
        for _ in range(3):
            refused = revoke(http, pair.a, token)
            assert (refused.status_code, code_of(refused)) == (503, "store_unavailable"), \
                refused.text
            assert "replica" in refused.json()["detail"]
            # the same connection, so the same worker: the node answers, its breaker is closed
            for candidate in (other, bystander):
                assert verify(http, pair.a, candidate).status_code == 200
                assert verify(http, pair.b, candidate).status_code == 200
    finally:
        _restart_replica(pair.deployment, replica)
    # "online" in INFO is not enough: the master streams writes to a replica that just synced
    # only after its first REPLCONF ACK, up to a second later
    wait_until(lambda: _replica_confirms(master, user), timeout=FAILOVER_TIMEOUT,
               what=f"replica {replica} to confirm writes to redis {master} again")
    confirmed = revoke(http, pair.a, token)
    with _node(master) as client:
        info = client.info("replication")
    assert confirmed.status_code == 204, (confirmed.text, info)
    assert refused_everywhere(pair, token)
    for candidate in (other, bystander):
        assert verify(http, pair.b, candidate).status_code == 200


def _master_of(deployment: Deployment, user: str) -> int:
    """The port of the master holding the user's keys."""
    topology = deployment.topology
    if isinstance(topology, RedisClusterSet):
        return topology.master_for_key(LAYOUT.cutoff(user))
    return topology.current_master()


def _node(port: int) -> redis.Redis:
    # no retries: redis-py's default backs off for seconds before a dead node's error
    return redis.Redis(port=port, socket_timeout=1, socket_connect_timeout=1,
                       decode_responses=True, retry=Retry(NoBackoff(), 0))


def _only_replica(master: int) -> int:
    with _node(master) as client:
        role: Any = client.role()
    assert role[0] == "master", role
    replicas = [int(port) for _host, port, _offset in role[2]]
    assert len(replicas) == 1, role
    return replicas[0]


def _connected_replicas(master: int) -> int:
    """Replicas ``master`` lists as online (gone at once when one dies)."""
    with _node(master) as client:
        info: Any = client.info("replication")
    return sum(1 for name, value in info.items()
               if name.startswith("slave") and isinstance(value, dict)
               and value.get("state") == "online")


def _replica_confirms(master: int, user: str) -> bool:
    """Whether a write to ``master`` is confirmed by a replica as fast as the verifier asks.

    The write is to a key of the test's own, in the user's hash slot (a cluster node takes
    only keys of its slots).
    """
    with _node(master) as client:
        pipe = client.pipeline(transaction=False)
        pipe.incr(f"scaleout-probe:{{{user_tag(user)}}}")
        pipe.execute_command("WAIT", 1, WAIT_MS)
        *_, confirmed = pipe.execute()
    return int(confirmed) >= 1


def _kill_replica(deployment: Deployment, port: int) -> None:
    topology = deployment.topology
    if isinstance(topology, RedisClusterSet):
        topology.kill_node(port)
        return
    # SentinelSet kills only masters; the replica is a process this module started
    with _node(port) as client:
        pid = int(client.info("server")["process_id"])
    os.kill(pid, signal.SIGKILL)

    def gone() -> bool:
        try:
            with _node(port) as client:
                client.ping()
        except redis.ConnectionError:
            return True
        return False

    wait_until(gone, timeout=10, what=f"redis {port} to die")


def _restart_replica(deployment: Deployment, port: int) -> None:
    topology = deployment.topology
    if isinstance(topology, RedisClusterSet):
        topology.restart_node(port)  # its nodes.conf makes it the same master's replica again
    else:
        topology.restart(port)  # started as the current master's replica


# 3. failover under load ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    """One request of the load: when it ran, what came back (status 0: no HTTP answer)."""

    started: float
    ended: float
    status: int
    code: str | None
    service: str
    user: str
    detail: str = ""


class Load:
    """Threads verifying the busy users' tokens through both services, recording every answer."""

    def __init__(self, services: dict[str, ServiceProcess], tokens: list[tuple[str, str]],
                 threads_per_service: int = 2) -> None:
        self.stop = threading.Event()
        self.answers: list[Answer] = []
        self._threads = [
            threading.Thread(target=self._run, args=(name, service.url, tokens, offset),
                             daemon=True)
            for name, service in services.items() for offset in range(threads_per_service)
        ]

    def _run(self, name: str, url: str, tokens: list[tuple[str, str]], offset: int) -> None:
        deadline = time.monotonic() + LOAD_SECONDS_MAX
        turn = offset
        with requests.Session() as http:
            while not self.stop.is_set() and time.monotonic() < deadline:
                user, token = tokens[turn % len(tokens)]
                turn += 1
                started = time.monotonic()
                try:
                    response = http.post(f"{url}/v1/verify", json={"token": token}, timeout=5)
                    status, code = response.status_code, code_of(response)
                except requests.RequestException as exc:
                    status, code = 0, type(exc).__name__
                self.answers.append(Answer(started, time.monotonic(), status, code, name, user))
                # paced (about 200 requests/s per thread at most): a 2-CPU machine also runs
                # the Redis nodes, whose failure detection must not starve
                self.stop.wait(0.005)

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def join(self) -> None:
        self.stop.set()
        for thread in self._threads:
            thread.join(timeout=15)
        assert not any(thread.is_alive() for thread in self._threads)


@dataclass(frozen=True)
class Revocation:
    """One revocation through A and, when acknowledged, B's answer for the token right after."""

    answer: Answer
    token: str
    checked: Answer | None


class Revoker:
    """Revokes fresh tokens of the busy users through A, checks each acknowledged one on B."""

    def __init__(self, pair: Pair, key_pair: KeyPair, users: list[str]) -> None:
        self.pair = pair
        self.key_pair = key_pair
        self.users = users
        self.stop = threading.Event()
        self.revocations: list[Revocation] = []
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        deadline = time.monotonic() + LOAD_SECONDS_MAX
        turn = 0
        with requests.Session() as to_a, requests.Session() as to_b:
            while not self.stop.is_set() and time.monotonic() < deadline:
                user = self.users[turn % len(self.users)]
                turn += 1
                token = fresh(self.key_pair, user)
                answer = self._call(to_a, self.pair.a, "revocations", token, "a", user)
                checked = None
                if answer.status == 204:
                    checked = self._call(to_b, self.pair.b, "verify", token, "b", user)
                self.revocations.append(Revocation(answer, token, checked))

    @staticmethod
    def _call(http: requests.Session, service: ServiceProcess, route: str, token: str,
              name: str, user: str) -> Answer:
        started = time.monotonic()
        try:
            response = http.post(f"{service.url}/v1/{route}", json={"token": token}, timeout=5)
            status, code = response.status_code, code_of(response)
            detail = response.text[:300] if status >= 400 else ""
        except requests.RequestException as exc:
            status, code, detail = 0, type(exc).__name__, ""
        return Answer(started, time.monotonic(), status, code, name, user, detail)

    def start(self) -> None:
        self._thread.start()

    def join(self) -> None:
        self.stop.set()
        self._thread.join(timeout=15)
        assert not self._thread.is_alive()

    @property
    def acknowledged(self) -> list[Revocation]:
        return [revocation for revocation in self.revocations if revocation.answer.status == 204]


def _busy_users(deployment: Deployment) -> tuple[list[str], dict[str, int]]:
    """Two users per master (one master in sentinel mode), and each user's master port."""
    masters: dict[str, int] = {}
    topology = deployment.topology
    if isinstance(topology, SentinelSet):
        master = topology.current_master()
        return ["busy-0", "busy-1"], {"busy-0": master, "busy-1": master}
    wanted = {port: 2 for port in topology.masters()}
    for number in range(200):
        user = f"busy-{number}"
        port = topology.master_for_key(LAYOUT.cutoff(user))
        if wanted[port]:
            wanted[port] -= 1
            masters[user] = port
        if not any(wanted.values()):
            break
    assert not any(wanted.values()), wanted
    # the first user's master is the one to kill
    users = sorted(masters, key=lambda user: (masters[user] != masters["busy-0"], user))
    return users, masters


def _descendants(pid: int) -> set[int]:
    """The pids of a process's children, theirs, and so on (the gunicorn workers)."""
    found: set[int] = set()
    pending = [pid]
    while pending:
        parent = pending.pop()
        children = Path(f"/proc/{parent}/task/{parent}/children").read_text().split()
        for child in map(int, children):
            found.add(child)
            pending.append(child)
    return found


def _pids(pair: Pair) -> dict[str, tuple[int, set[int]]]:
    pids = {}
    for name, service in (("a", pair.a), ("b", pair.b), ("idle", pair.idle)):
        assert service.process is not None
        assert service.process.poll() is None
        pids[name] = (service.process.pid, _descendants(service.process.pid))
    return pids


def _ready_for_failover(deployment: Deployment, master: int, user: str) -> None:
    """The master has its replica in sync and the topology is healthy (the tests before this one
    stopped and restarted replicas)."""
    topology = deployment.topology
    if isinstance(topology, RedisClusterSet):
        topology.wait_healthy(timeout=FAILOVER_TIMEOUT)
    else:
        # Sentinel's own view of a restarted replica is refreshed every 10 s, so
        # wait_ready could wait that long; during a failover it asks every second
        wait_until(lambda: topology.current_master() == master, timeout=5,
                   what="the sentinels to agree on the master")
    wait_until(lambda: _replica_confirms(master, user), timeout=FAILOVER_TIMEOUT,
               what=f"redis {master} to have its replica in sync")


def test_failover_under_load_answers_503_only_meanwhile_and_keeps_every_revocation(
    pair: Pair, key_pair: KeyPair
) -> None:
    deployment = pair.deployment
    users, masters = _busy_users(deployment)
    victim = masters[users[0]]
    _ready_for_failover(deployment, victim, users[0])
    tokens = [(user, fresh(key_pair, user)) for user in users for _ in range(2)]
    with requests.Session() as http:
        for _, token in tokens:  # the topology as it is before the kill, in every process
            for service in (pair.a, pair.b, pair.idle):
                assert verify(http, service, token).status_code == 200
    pids = _pids(pair)

    load = Load({"a": pair.a, "b": pair.b}, tokens)
    revoker = Revoker(pair, key_pair, users)
    load.start()
    revoker.start()
    try:
        wait_until(lambda: len(revoker.acknowledged) >= 10 and len(load.answers) >= 200,
                   timeout=20, what="the load to run before the kill")
        killed_at = time.monotonic()
        topology = deployment.topology
        if isinstance(topology, RedisClusterSet):
            topology.kill_node(victim)
            topology.wait_failover(victim, timeout=FAILOVER_TIMEOUT)
        else:
            assert topology.kill_master() == victim
            topology.wait_failover(victim, timeout=FAILOVER_TIMEOUT)
        failed_over_at = time.monotonic()
        settled_at = failed_over_at + SETTLE

        def kept_going() -> bool:
            # long enough, and every user verified after the window, through both services
            late = {(answer.service, answer.user) for answer in list(load.answers)
                    if answer.started > settled_at and answer.status == 200}
            return (time.monotonic() >= failed_over_at + KEEP_GOING
                    and len(late) == 2 * len(users))

        wait_until(kept_going, timeout=KEEP_GOING + 10, what="the load to go on after failover")
    finally:
        load.join()
        revoker.join()

    answers, revocations = load.answers, revoker.revocations
    unavailable = [answer for answer in answers if answer.status == 503]
    report = _summary(deployment.mode, killed_at, failed_over_at, answers, revocations,
                      {user for user in users if masters[user] == victim})
    print(report)  # shown with -s or when the test fails: the measured window

    # the verifications: 200, or 503 while the failover ran; nothing else ever
    assert [answer for answer in answers if answer.status not in (200, 503)] == [], report
    assert [answer for answer in unavailable if answer.code != "store_unavailable"] == []
    assert [answer for answer in unavailable if answer.ended < killed_at] == [], report
    assert [answer for answer in unavailable if answer.started > settled_at] == [], report

    # the revocations: 204 or 503, never another answer
    for revocation in revocations:
        answer = revocation.answer
        assert answer.status in (204, 503), (answer, report)
        if answer.status == 503:
            assert answer.code == "store_unavailable", answer
            assert answer.ended >= killed_at, (answer, report)
            if answer.started > settled_at:
                # after the failover only the promoted replica holds those keys, and it has
                # no replica of its own to confirm a write: refused, never acknowledged
                assert masters[answer.user] == victim, (answer, report)
                assert "replica" in answer.detail, answer
        elif answer.started > settled_at:
            assert masters[answer.user] != victim, (answer, report)
        # B refused every acknowledged token right after the 204 (503 only meanwhile)
        checked = revocation.checked
        if checked is not None:
            if checked.status == 503 and checked.code == "store_unavailable":
                assert killed_at <= checked.ended, checked
                assert checked.started <= settled_at, checked
            else:
                assert (checked.status, checked.code) == (401, "token_revoked"), checked
    acknowledged = revoker.acknowledged
    assert any(r.answer.ended < killed_at for r in acknowledged)
    if deployment.mode == "cluster":
        assert any(r.answer.started > settled_at for r in acknowledged)

    # every acknowledged revocation, before, during and after the failover, survived it
    with ThreadPoolExecutor(max_workers=4) as pool:  # a few hundred tokens, six requests each
        wrong = list(pool.map(lambda r: not_refused(pair, r.token), acknowledged))
    lost = [
        (token_fingerprint(r.token), r.answer.user, round(r.answer.started - killed_at, 3),
         r.checked, wrong_answers)
        for r, wrong_answers in zip(acknowledged, wrong, strict=True) if wrong_answers
    ]
    assert lost == [], report

    # the idle process's first requests since the kill: its map is from before the failover
    with requests.Session() as http:
        first = [(user, verify(http, pair.idle, token)) for user, token in tokens]
    assert [(user, response.status_code, response.text) for user, response in first
            if response.status_code != 200] == []

    assert _pids(pair) == pids, "a verifier process was restarted"
    for service in (pair.a, pair.b, pair.idle):
        assert "Traceback" not in service.output()


def _summary(mode: str, killed_at: float, failed_over_at: float, answers: list[Answer],
             revocations: list[Revocation], victims: set[str]) -> str:
    """What the test measured, for its output: the failover's length, the 503s and when."""
    unavailable = [answer for answer in answers if answer.status == 503]
    on_victim = sum(1 for answer in unavailable if answer.user in victims)
    lines = [f"{mode}: failover took {failed_over_at - killed_at:.2f} s after the kill; "
             f"{len(answers)} verifications, {len(unavailable)} answered 503 ({on_victim} "
             "for users of the killed master)"]
    if unavailable:
        first = min(answer.started for answer in unavailable) - killed_at
        last = max(answer.ended for answer in unavailable) - failed_over_at
        lines.append(f"  503s from {first:+.2f} s after the kill to {last:+.2f} s after the "
                     "failover was reported done")
    statuses: dict[int, int] = {}
    for revocation in revocations:
        statuses[revocation.answer.status] = statuses.get(revocation.answer.status, 0) + 1
    late = sum(1 for revocation in revocations if revocation.answer.status == 503
               and revocation.answer.started > failed_over_at + SETTLE)
    lines.append(f"  revocations through A: {dict(sorted(statuses.items()))}, {late} of the "
                 "503s after the failover (the promoted master has no replica to confirm)")
    return "\n".join(lines)
