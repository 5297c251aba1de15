"""Real Redis Cluster and Sentinel topologies for tests, on free ports of 127.0.0.1.

Built like ``RedisServer`` in procs.py: every data node persists with AOF (appendfsync always),
every wait is bounded, and a wait that times out says what it last saw and shows the tail of the
nodes' logs (each process logs to ``redis.log`` in its own directory).
"""

from __future__ import annotations

import shutil
import signal
import subprocess
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from tests.procs import free_port, wait_until

CLUSTER_SLOTS = 16384
_START_TIMEOUT = 15.0
_STOP_TIMEOUT = 10.0
_LOG_TAIL_LINES = 12

DOWN_AFTER_MS = 3000
"""How long a node must stay silent before Sentinel or the Cluster fails it over.

Production keeps these at 30 s or more; the tests want failovers in seconds. At 1 s a busy
machine made a live master miss one second of pings (an fsync or the scheduler, while a
restarted replica synced) and the sentinels failed it over behind the test's back: the
"old" master came back a master, and the set was not ready 15 s later. 3 s is longer than any
stall seen here and still keeps a failover under 5 s."""


def _require(binary: str) -> None:
    if shutil.which(binary) is None:
        raise RuntimeError(f"{binary} is not installed; run scripts/test (it installs it)")


def _distinct_free_ports(count: int) -> list[int]:
    """``count`` different free ports: ``free_port`` alone may hand out the same port twice."""
    ports: list[int] = []
    for _ in range(count * 20):
        port = free_port()
        if port not in ports:
            ports.append(port)
        if len(ports) == count:
            return ports
    raise RuntimeError(f"could not find {count} distinct free ports on 127.0.0.1")


def _durable_data_node_options(port: int, data_dir: Path) -> list[str]:
    return [
        "--port", str(port),
        "--bind", "127.0.0.1",
        "--dir", str(data_dir),
        # an acknowledged write is on disk before the reply, as in production
        "--appendonly", "yes",
        "--appendfsync", "always",
        "--save", "",
        # a replica (re)joining is sent the data at once, not after the default 5 s spent
        # waiting for more replicas to share the transfer
        "--repl-diskless-sync-delay", "0",
        "--daemonize", "no",
        # notice level: failovers and replication handshakes show in the logs of a failure
        "--loglevel", "notice",
    ]


class _RedisProcess:
    """One redis-server process (data node or sentinel) with its own directory and log."""

    def __init__(self, name: str, port: int, data_dir: Path) -> None:
        self.name = name
        self.port = port
        self.data_dir = data_dir
        self.log_path = data_dir / "redis.log"
        self.process: subprocess.Popen[bytes] | None = None
        # no retries: a probe of a dead or restarting node must fail now, the caller polls again
        self.client = redis.Redis(
            host="127.0.0.1", port=port, socket_timeout=1, socket_connect_timeout=1,
            decode_responses=True, protocol=3, retry=Retry(NoBackoff(), 0),
        )

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self, command: Sequence[str]) -> None:
        """Run ``command`` and wait until the process answers on its port."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        # the child keeps its own copy of the descriptor
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
            )
        _wait_for(self._answers, timeout=_START_TIMEOUT, what=f"{self.name} to answer",
                  processes=[self])

    def _answers(self) -> str | None:
        try:
            server: object = self.client.info("server")
        except redis.RedisError as error:
            return f"{self.name}: {error}"
        assert isinstance(server, dict), server
        assert self.process is not None
        # another test's server may have taken the port between free_port() and our bind
        if server["process_id"] != self.process.pid:
            return f"{self.name}: port {self.port} is served by process {server['process_id']}"
        return None

    def command(self, *args: str | int) -> object:
        """The raw reply: commands are sent word by word, so redis-py parses none of them."""
        reply: object = self.client.execute_command(*args)  # type: ignore[no-untyped-call]
        return reply

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Send ``sig`` (default ``kill -9``) and wait until the process is gone."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(sig)
            self.process.wait(timeout=_STOP_TIMEOUT)
        self.client.connection_pool.disconnect()

    def terminate(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()

    def wait_stopped(self) -> None:
        """After ``terminate``: wait a bounded time, then ``kill -9``."""
        if self.process is not None:
            try:
                self.process.wait(timeout=_STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=_STOP_TIMEOUT)
        self.client.close()

    def log_tail(self) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except FileNotFoundError:
            return "(no log)"
        return "\n".join(lines[-_LOG_TAIL_LINES:])


def _stop_all(processes: Iterable[_RedisProcess]) -> None:
    """Terminate every process first, then wait for each: one shutdown time, not one each."""
    processes = list(processes)
    for process in processes:
        process.terminate()
    for process in processes:
        process.wait_stopped()


def _wait_for(
    problem: Callable[[], str | None],
    *,
    timeout: float,
    what: str,
    processes: Iterable[_RedisProcess],
) -> None:
    """Poll ``problem`` until it returns None (nothing wrong any more).

    On timeout, or as soon as one of ``processes`` has exited on its own, raise with the last
    problem seen and the tail of each process's log.
    """
    processes = list(processes)
    last_problem = "not checked yet"

    def settled() -> bool:
        nonlocal last_problem
        for process in processes:
            if process.process is not None and process.process.poll() is not None:
                raise RuntimeError(
                    f"{process.name} exited (status {process.process.returncode}) while "
                    f"waiting for {what}\n{_log_tails(processes)}"
                )
        found = problem()
        if found is None:
            return True
        last_problem = found
        return False

    try:
        wait_until(settled, timeout=timeout, what=what)
    except TimeoutError as error:
        raise TimeoutError(
            f"{error}; last seen: {last_problem}\n{_log_tails(processes)}"
        ) from None


def _log_tails(processes: Iterable[_RedisProcess]) -> str:
    return "\n".join(
        f"--- {process.name}, {process.log_path}:\n{process.log_tail()}" for process in processes
    )


def _fields(text: object) -> dict[str, str]:
    """The ``key:value`` lines of CLUSTER INFO as a dict."""
    assert isinstance(text, str), text
    pairs = (line.split(":", 1) for line in text.splitlines() if ":" in line)
    return {key: value.strip() for key, value in pairs}


@dataclass(frozen=True)
class _ClusterNodeView:
    """One line of CLUSTER NODES: one node as another node sees it."""

    port: int
    flags: frozenset[str]
    connected: bool
    slots: tuple[tuple[int, int], ...]

    @classmethod
    def parse(cls, line: str) -> _ClusterNodeView:
        # <id> <ip:port@cport> <flags> <master> <ping> <pong> <epoch> <link> <slot> ...
        fields = line.split()
        address = fields[1].split("@", 1)[0]
        slots = []
        for slot in fields[8:]:
            if slot.startswith("["):  # a slot being migrated or imported, not served yet
                continue
            first, _, last = slot.partition("-")
            slots.append((int(first), int(last or first)))
        return cls(
            port=int(address.rsplit(":", 1)[1]),
            flags=frozenset(fields[2].split(",")),
            connected=fields[7] == "connected",
            slots=tuple(slots),
        )

    @property
    def failing(self) -> bool:
        return bool(self.flags & {"fail", "fail?"})

    @property
    def is_master(self) -> bool:
        return "master" in self.flags

    def serves(self, slot: int) -> bool:
        return any(first <= slot <= last for first, last in self.slots)


class RedisClusterSet:
    """A Redis Cluster of ``masters`` masters with ``replicas_per_master`` replicas each."""

    def __init__(
        self,
        data_dir: Path,
        *,
        masters: int = 3,
        replicas_per_master: int = 1,
        node_timeout_ms: int = DOWN_AFTER_MS,
    ) -> None:
        _require("redis-server")
        _require("redis-cli")
        if masters < 3:
            raise ValueError("redis-cli --cluster create needs at least 3 masters")
        self.data_dir = data_dir
        self.master_count = masters
        self.replicas_per_master = replicas_per_master
        self.node_timeout_ms = node_timeout_ms
        count = masters * (1 + replicas_per_master)
        # the bus port is chosen too: the default, port + 10000, may be taken or above 65535
        ports = _distinct_free_ports(2 * count)
        self._bus_ports = dict(zip(ports[:count], ports[count:], strict=True))
        self._nodes = {
            port: _RedisProcess(f"cluster node {port}", port, data_dir / f"node-{port}")
            for port in ports[:count]
        }

    @property
    def ports(self) -> list[int]:
        return list(self._nodes)

    @property
    def urls(self) -> list[str]:
        return [f"redis://127.0.0.1:{port}" for port in self._nodes]

    @property
    def url(self) -> str:
        """Every node as a seed, comma-separated: the product's REDIS_URL for a cluster."""
        return ",".join(self.urls)

    def start(self) -> None:
        try:
            for port in self._nodes:
                self._start_node(port)
            ports = [f"127.0.0.1:{port}" for port in self._nodes]
            result = subprocess.run(
                [
                    "redis-cli", "--cluster", "create", *ports,
                    "--cluster-replicas", str(self.replicas_per_master), "--cluster-yes",
                ],
                stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60,
                check=False,
            )
            if result.returncode != 0:
                raise RuntimeError(
                    f"redis-cli --cluster create failed ({result.returncode}):\n"
                    f"{result.stdout}\n{result.stderr}"
                )
            self.wait_healthy(timeout=30)
            # redis-cli makes the replicas with CLUSTER REPLICATE, and the other nodes learn it
            # by gossip: until then a node can still see six masters (seen once in CI)
            _wait_for(self._layout_problem, timeout=30, what="the replicas to be known",
                      processes=self._live_nodes())
        except BaseException:
            self.stop()
            raise

    def _layout_problem(self) -> str | None:
        for node in self._live_nodes():
            try:
                view = self._view(node)
            except redis.RedisError as error:
                return f"{node.name}: {error}"
            masters = [entry.port for entry in view if entry.is_master]
            if len(masters) != self.master_count:
                return f"{node.name} sees {len(masters)} masters: {sorted(masters)}"
        return None

    def _start_node(self, port: int) -> None:
        node = self._nodes[port]
        node.start([
            "redis-server",
            *_durable_data_node_options(port, node.data_dir),
            "--cluster-enabled", "yes",
            # relative to --dir: a restarted node finds its identity and epoch again
            "--cluster-config-file", "nodes.conf",
            "--cluster-node-timeout", str(self.node_timeout_ms),
            "--cluster-port", str(self._bus_ports[port]),
        ])

    def _live_nodes(self) -> list[_RedisProcess]:
        return [node for node in self._nodes.values() if node.alive]

    def _node(self, port: int) -> _RedisProcess:
        try:
            return self._nodes[port]
        except KeyError:
            raise ValueError(f"port {port} is not a node of this cluster") from None

    def _view(self, node: _RedisProcess) -> list[_ClusterNodeView]:
        """CLUSTER NODES as ``node`` sees the cluster."""
        text = node.command("CLUSTER", "NODES")
        assert isinstance(text, str), text
        return [_ClusterNodeView.parse(line) for line in text.splitlines() if line.strip()]

    def _any_view(self) -> list[_ClusterNodeView]:
        problems = []
        for node in self._live_nodes():
            try:
                return self._view(node)
            except redis.RedisError as error:
                problems.append(f"{node.name}: {error}")
        raise RuntimeError(f"no live cluster node answers: {problems or 'none is running'}")

    def masters(self) -> list[int]:
        """Ports of the nodes a live node sees as masters that are not failing."""
        return sorted(view.port for view in self._any_view()
                      if view.is_master and not view.failing)

    def master_for_key(self, key: str) -> int:
        """Port of the master serving ``key``'s slot, as a live node sees it."""
        live = self._live_nodes()
        if not live:
            raise RuntimeError("no live cluster node")
        slot = live[0].command("CLUSTER", "KEYSLOT", key)
        assert isinstance(slot, int), slot
        owners = [view.port for view in self._view(live[0])
                  if view.is_master and view.serves(slot)]
        if len(owners) != 1:
            raise RuntimeError(f"slot {slot} of {key!r} has masters {owners}")
        return owners[0]

    def kill_node(self, port: int, sig: int = signal.SIGKILL) -> None:
        """Send ``sig`` (default ``kill -9``) to one node and wait for it to be gone."""
        self._node(port).kill(sig)

    def restart_node(self, port: int) -> None:
        """Start a stopped node again with its directory and nodes.conf.

        It rejoins by itself (as a replica if its slots moved while it was down); use
        ``wait_healthy`` to wait for that.
        """
        if self._node(port).alive:
            raise RuntimeError(f"cluster node {port} is still running")
        self._start_node(port)

    def wait_healthy(self, timeout: float) -> None:
        """Until every live node says cluster_state:ok, every slot is served by a live master,
        the live nodes see each other connected, and every live replica's link is up."""
        _wait_for(self._health_problem, timeout=timeout, what="a healthy cluster",
                  processes=self._live_nodes())

    def wait_failover(self, old_master_port: int, timeout: float) -> None:
        """Until every live node sees the slots of ``old_master_port`` served by another live
        master and the cluster is healthy again."""

        def problem() -> str | None:
            for node in self._live_nodes():
                try:
                    view = self._view(node)
                except redis.RedisError as error:
                    return f"{node.name}: {error}"
                for entry in view:
                    if entry.port == old_master_port and entry.slots:
                        return f"{node.name} still sees {old_master_port} serving {entry.slots}"
            return self._health_problem()

        _wait_for(problem, timeout=timeout, what=f"the slots of {old_master_port} to fail over",
                  processes=self._live_nodes())

    def _health_problem(self) -> str | None:
        live = self._live_nodes()
        if not live:
            return "no cluster node is running"
        live_ports = {node.port for node in live}
        slot_owners: dict[str, dict[int, tuple[tuple[int, int], ...]]] = {}
        masters_seen: dict[str, list[int]] = {}
        for node in live:
            try:
                info = _fields(node.command("CLUSTER", "INFO"))
                view = self._view(node)
                role = node.command("ROLE")
            except redis.RedisError as error:
                return f"{node.name}: {error}"
            if info.get("cluster_state") != "ok":
                return f"{node.name}: cluster_state:{info.get('cluster_state')}"
            if info.get("cluster_slots_ok") != str(CLUSTER_SLOTS):
                return f"{node.name}: cluster_slots_ok:{info.get('cluster_slots_ok')}"
            for entry in view:
                if entry.slots and entry.port not in live_ports:
                    return f"{node.name} sees slots served by {entry.port}, which is down"
                if entry.port in live_ports and (entry.failing or not entry.connected):
                    return f"{node.name} sees {entry.port} as {sorted(entry.flags)}"
            missing = live_ports - {entry.port for entry in view}
            if missing:
                return f"{node.name} does not know {sorted(missing)}"
            problem = _replication_problem(node, role)
            if problem is not None:
                return problem
            slot_owners[node.name] = {entry.port: entry.slots for entry in view if entry.slots}
            masters_seen[node.name] = sorted(
                entry.port for entry in view if entry.is_master and entry.port in live_ports)
        # a restarted master claims its old slots until gossip tells it they moved
        first, *others = slot_owners.values()
        if any(owners != first for owners in others):
            return f"the nodes disagree on who serves which slots: {slot_owners}"
        # a role change (a new replica, a promotion) reaches the other nodes by gossip
        first_masters, *other_masters = masters_seen.values()
        if any(seen != first_masters for seen in other_masters):
            return f"the nodes disagree on which are masters: {masters_seen}"
        return None

    def stop(self) -> None:
        """Stop every node still running; safe after kills and after a failed start."""
        _stop_all(self._nodes.values())


def _replication_problem(node: _RedisProcess, role: object) -> str | None:
    """Why ``node``, given its ROLE reply, is a replica not yet in sync and durable."""
    assert isinstance(role, list), role
    if role[0] != "slave":
        return None
    if role[3] != "connected":
        return f"{node.name}: replica of {role[2]} in state {role[3]}"
    # after a full sync a replica rewrites its AOF from the data it received: until then that
    # data would not survive kill -9, and SIGTERM is refused ("Writing initial AOF, can't exit")
    try:
        persistence: object = node.client.info("persistence")
    except redis.RedisError as error:
        return f"{node.name}: {error}"
    assert isinstance(persistence, dict), persistence
    if persistence["aof_rewrite_in_progress"] or persistence["aof_rewrite_scheduled"]:
        return f"{node.name}: rewriting its AOF after a sync"
    return None


class SentinelSet:
    """A master, one replica and three sentinels (quorum 2) watching them as ``mymaster``."""

    master_name = "mymaster"

    def __init__(self, data_dir: Path) -> None:
        _require("redis-server")
        self.data_dir = data_dir
        master_port, replica_port, *sentinel_ports = _distinct_free_ports(5)
        self._initial_master = master_port
        self._data_nodes = {
            port: _RedisProcess(f"redis {port}", port, data_dir / f"redis-{port}")
            for port in (master_port, replica_port)
        }
        self._sentinels = [
            _RedisProcess(f"sentinel {port}", port, data_dir / f"sentinel-{port}")
            for port in sentinel_ports
        ]

    @property
    def ports(self) -> list[int]:
        """The data nodes' ports (master and replica)."""
        return list(self._data_nodes)

    @property
    def sentinel_urls(self) -> list[str]:
        return [f"redis://127.0.0.1:{sentinel.port}" for sentinel in self._sentinels]

    @property
    def sentinel_addresses(self) -> list[tuple[str, int]]:
        """For ``redis.sentinel.Sentinel(...)``."""
        return [("127.0.0.1", sentinel.port) for sentinel in self._sentinels]

    @property
    def url(self) -> str:
        """The sentinels, comma-separated."""
        return ",".join(self.sentinel_urls)

    def start(self) -> None:
        try:
            for port in self._data_nodes:
                replica_of = None if port == self._initial_master else self._initial_master
                self._start_data_node(port, replica_of)
            for sentinel in self._sentinels:
                self._start_sentinel(sentinel)
            self.wait_ready(timeout=30)
        except BaseException:
            self.stop()
            raise

    def _start_data_node(self, port: int, replica_of: int | None) -> None:
        node = self._data_nodes[port]
        replication = [] if replica_of is None else ["--replicaof", "127.0.0.1", str(replica_of)]
        node.start(["redis-server", *_durable_data_node_options(port, node.data_dir),
                    *replication])

    def _start_sentinel(self, sentinel: _RedisProcess) -> None:
        # each sentinel rewrites its own file (its id, the other sentinels, the current master)
        conf = sentinel.data_dir / "sentinel.conf"
        sentinel.data_dir.mkdir(parents=True, exist_ok=True)
        conf.write_text(
            f"port {sentinel.port}\n"
            "bind 127.0.0.1\n"
            f'dir "{sentinel.data_dir}"\n'
            f"sentinel monitor {self.master_name} 127.0.0.1 {self._initial_master} 2\n"
            f"sentinel down-after-milliseconds {self.master_name} {DOWN_AFTER_MS}\n"
            f"sentinel failover-timeout {self.master_name} 5000\n"
            f"sentinel parallel-syncs {self.master_name} 1\n"
        )
        # redis-sentinel, where installed, is only a link to redis-server
        sentinel.start(["redis-server", str(conf), "--sentinel"])

    def _data_node(self, port: int) -> _RedisProcess:
        try:
            return self._data_nodes[port]
        except KeyError:
            raise ValueError(f"port {port} is not a data node of this set") from None

    def _master_seen_by(self, sentinel: _RedisProcess) -> int:
        reply = sentinel.command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.master_name)
        assert isinstance(reply, list), reply
        return int(reply[1])

    def current_master(self) -> int:
        """Port of the master, as the first sentinel that answers reports it."""
        problems = []
        for sentinel in self._sentinels:
            if not sentinel.alive:
                continue
            try:
                return self._master_seen_by(sentinel)
            except redis.RedisError as error:
                problems.append(f"{sentinel.name}: {error}")
        raise RuntimeError(f"no sentinel answers: {problems or 'none is running'}")

    def kill_master(self) -> int:
        """``kill -9`` the current master; its port."""
        port = self.current_master()
        self._data_node(port).kill()
        return port

    def restart(self, port: int) -> None:
        """Start a stopped data node again, as a replica of the master the sentinels report.

        That is how an operator brings back a failed-over master: started as it was, it comes
        back as a second master, taking writes, until Sentinel demotes it (about 10 s later).
        """
        if self._data_node(port).alive:
            raise RuntimeError(f"redis {port} is still running")
        master = self.current_master()
        self._start_data_node(port, None if master == port else master)

    def wait_failover(self, old_port: int, timeout: float) -> None:
        """Until every live sentinel reports the same master, not ``old_port``, and that node
        answers as a master."""

        def problem() -> str | None:
            seen = self._masters_seen()
            if isinstance(seen, str):
                return seen
            if seen == old_port:
                return f"the sentinels still report {old_port}"
            return self._role_problem(seen, "master")

        _wait_for(problem, timeout=timeout, what=f"a failover away from {old_port}",
                  processes=self._live())

    def wait_ready(self, timeout: float) -> None:
        """Until the sentinels agree on a master that answers as one, every other live data node
        is its replica, in sync, and every sentinel sees the other two and those replicas.

        Ready means ready for a failover: with no replica running it never is.
        """
        _wait_for(self._readiness_problem, timeout=timeout, what="a ready sentinel set",
                  processes=self._live())

    def _live(self) -> list[_RedisProcess]:
        return [node for node in [*self._data_nodes.values(), *self._sentinels] if node.alive]

    def _masters_seen(self) -> int | str:
        """The master all live sentinels agree on, or what is wrong."""
        seen = {}
        for sentinel in self._sentinels:
            if not sentinel.alive:
                continue
            try:
                seen[sentinel.name] = self._master_seen_by(sentinel)
            except redis.RedisError as error:
                return f"{sentinel.name}: {error}"
        if len(set(seen.values())) != 1:
            return f"the sentinels report masters {seen}"
        return next(iter(seen.values()))

    def _role_problem(self, port: int, expected: str) -> str | None:
        node = self._data_nodes.get(port)
        if node is None or not node.alive:
            return f"{port} is not a running data node"
        try:
            role = node.command("ROLE")
        except redis.RedisError as error:
            return f"{node.name}: {error}"
        assert isinstance(role, list), role
        if role[0] != expected:
            return f"{node.name} answers ROLE {role[0]}"
        return None

    def _readiness_problem(self) -> str | None:
        master = self._masters_seen()
        if isinstance(master, str):
            return master
        problem = self._role_problem(master, "master")
        if problem is not None:
            return problem
        replicas = {port for port, node in self._data_nodes.items()
                    if port != master and node.alive}
        for port in replicas:
            node = self._data_nodes[port]
            try:
                role = node.command("ROLE")
            except redis.RedisError as error:
                return f"{node.name}: {error}"
            assert isinstance(role, list), role
            if role[0] != "slave" or int(role[2]) != master:
                return f"{node.name} answers ROLE {role}, not a replica of {master}"
            problem = _replication_problem(node, role)
            if problem is not None:
                return problem
        for sentinel in self._sentinels:
            if sentinel.alive:
                problem = self._sentinel_problem(sentinel, replicas)
                if problem is not None:
                    return problem
        return None

    def _sentinel_problem(self, sentinel: _RedisProcess, replicas: set[int]) -> str | None:
        """What ``sentinel`` does not see yet: the other sentinels, ``replicas`` in sync."""
        try:
            state = _pairs(sentinel.command("SENTINEL", "MASTER", self.master_name))
            replies = sentinel.command("SENTINEL", "REPLICAS", self.master_name)
        except redis.RedisError as error:
            return f"{sentinel.name}: {error}"
        assert isinstance(replies, list), replies
        if state["flags"] != "master":
            return f"{sentinel.name} flags the master {state['flags']}"
        if state["num-other-sentinels"] != str(len(self._sentinels) - 1):
            return f"{sentinel.name} knows {state['num-other-sentinels']} other sentinels"
        # num-slaves counts replicas that are down too: a failover needs one that is up
        in_sync = {
            int(replica["port"]) for replica in map(_pairs, replies)
            if replica["flags"] == "slave" and replica["master-link-status"] == "ok"
        }
        if not replicas <= in_sync or not in_sync:
            wanted = sorted(replicas) or "at least one"
            return f"{sentinel.name} sees replicas {sorted(in_sync)} in sync, wants {wanted}"
        return None

    def stop(self) -> None:
        """Stop every process still running; safe after kills and after a failed start."""
        _stop_all([*self._sentinels, *self._data_nodes.values()])


def _pairs(reply: object) -> dict[str, str]:
    """A RESP3 map reply (SENTINEL MASTER, each of SENTINEL REPLICAS) with its types checked."""
    assert isinstance(reply, dict), reply
    return {str(key): str(value) for key, value in reply.items()}
