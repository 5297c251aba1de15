"""The production overlay's Redis pods configure themselves with redis-config.sh: run here as the
init container runs it (the script from the rendered ConfigMap, the variables the init container
sets), and its files given to a real redis-server and sentinel.

What needs a cluster (DNS names of the pods, a sentinel already running that names a master after
a failover) is not exercised; the files' every line is.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.deploy.manifests import Obj, app_containers, named, objects_of, pod_spec
from tests.procs import free_port, wait_until

PASSWORD = "0123456789abcdef"


@pytest.fixture
def production(rendered_overlays: dict[str, list[Obj]]) -> list[Obj]:
    return rendered_overlays["production"]


def _configure(objects: list[Obj], ordinal: int, tmp_path: Path) -> tuple[str, str]:
    """redis.conf and sentinel.conf as pod ``ordinal``'s init container writes them on a fresh
    set (no sentinel answers yet)."""
    redis_set = named(objects, "StatefulSet", "jwt-auth-redis")
    (init,) = pod_spec(redis_set)["initContainers"]
    script_mount = next(mount for mount in init["volumeMounts"] if mount["name"] == "scripts")
    script_name = init["command"][-1].rpartition("/")[2]
    assert init["command"][-1] == f"{script_mount['mountPath']}/{script_name}"
    (scripts,) = [item for item in objects_of(objects, "ConfigMap")
                  if item["metadata"]["name"].startswith("jwt-auth-redis-scripts")]
    script = tmp_path / script_name
    script.write_text(scripts["data"][script_name], encoding="utf-8")
    password = tmp_path / "password"
    password.write_text(PASSWORD + "\n", encoding="utf-8")  # as `openssl rand -hex 32 >` writes
    folder = tmp_path / f"pod-{ordinal}"
    folder.mkdir()
    environment = {variable["name"]: variable["value"] for variable in init["env"]
                   if "value" in variable}
    environment.update(POD_NAME=f"{redis_set['metadata']['name']}-{ordinal}",
                       CONFIG_DIR=str(folder), PASSWORD_FILE=str(password),
                       PATH=os.environ["PATH"])
    subprocess.run([*init["command"][:-1], str(script)], env=environment, check=True,
                   capture_output=True, timeout=60)
    return ((folder / "redis.conf").read_text(encoding="utf-8"),
            (folder / "sentinel.conf").read_text(encoding="utf-8"))


def test_a_fresh_set_makes_pod_0_the_master_and_the_others_its_replicas(
    production: list[Obj], tmp_path: Path
) -> None:
    first_node, first_sentinel = _configure(production, 0, tmp_path)
    second_node, second_sentinel = _configure(production, 1, tmp_path)
    assert "replicaof" not in first_node
    assert "replicaof jwt-auth-redis-0.jwt-auth-redis 6379" in second_node.splitlines()
    for node in (first_node, second_node):
        lines = node.splitlines()
        assert {"appendonly yes", "appendfsync always", 'save ""'} <= set(lines)
        # the file's trailing newline is no part of the password
        assert f'requirepass "{PASSWORD}"' in lines
        assert f'masterauth "{PASSWORD}"' in lines
    verifier = next(app for app in app_containers(production) if app.service == "verifier")
    master_name = verifier.environment(production)["VERIFIER_REDIS_SENTINEL_MASTER"]
    for sentinel in (first_sentinel, second_sentinel):
        assert (f"sentinel monitor {master_name} jwt-auth-redis-0.jwt-auth-redis 6379 2"
                in sentinel.splitlines())


class _Redis:
    """A redis-server started on a configuration file, stopped at the end."""

    def __init__(self, conf: Path, *extra: str) -> None:
        self.port = free_port()
        self.process = subprocess.Popen(["redis-server", str(conf), "--port", str(self.port),
                                         *extra],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, password=PASSWORD, socket_timeout=2,
                           decode_responses=True)


@pytest.fixture
def started() -> Iterator[list[_Redis]]:
    servers: list[_Redis] = []
    yield servers
    for server in servers:
        server.process.kill()
        server.process.wait(timeout=10)


def test_redis_and_sentinel_run_on_the_files_with_the_password(
    production: list[Obj], tmp_path: Path, started: list[_Redis]
) -> None:
    first_node, first_sentinel = _configure(production, 0, tmp_path)
    second_node, _ = _configure(production, 1, tmp_path)
    # this machine has no pod names: the master is 127.0.0.1, and /data a folder of the test's
    data = {name: tmp_path / f"data-{name}" for name in ("master", "replica")}
    for folder in data.values():
        folder.mkdir()
    master_conf = tmp_path / "master.conf"
    master_conf.write_text(first_node.replace("dir /data", f"dir {data['master']}"),
                           encoding="utf-8")
    master = _Redis(master_conf)
    started.append(master)
    wait_until(lambda: _answers(master), timeout=10, what="the master")

    replica_conf = tmp_path / "replica.conf"
    replica_conf.write_text(second_node.replace("dir /data", f"dir {data['replica']}").replace(
        "replicaof jwt-auth-redis-0.jwt-auth-redis 6379", f"replicaof 127.0.0.1 {master.port}"),
        encoding="utf-8")
    replica = _Redis(replica_conf)
    started.append(replica)
    # masterauth: the replica authenticates to the master with the same password
    wait_until(lambda: _answers(master) and
               master.client().info("replication")["connected_slaves"] == 1,
               timeout=15, what="the replica to connect")
    assert master.client().config_get("appendfsync") == {"appendfsync": "always"}

    sentinel_conf = tmp_path / "sentinel.conf"
    sentinel_conf.write_text(first_sentinel.replace(
        "jwt-auth-redis-0.jwt-auth-redis 6379", f"127.0.0.1 {master.port}"), encoding="utf-8")
    sentinel = _Redis(sentinel_conf, "--sentinel")
    started.append(sentinel)
    watcher = redis.Redis(port=sentinel.port, socket_timeout=2, decode_responses=True)
    # auth-pass: the sentinel reaches the master, which it could not without the password
    wait_until(lambda: _sentinel_sees_master(watcher), timeout=15, what="the sentinel")


def _answers(server: _Redis) -> bool:
    try:
        return bool(server.client().ping())
    except redis.ConnectionError:
        return False


def _sentinel_sees_master(watcher: redis.Redis) -> bool:
    try:
        state = watcher.sentinel_master("mymaster")
    except (redis.ConnectionError, redis.ResponseError):
        return False
    return bool(state["is_master"]) and not state["is_disconnected"] and \
        not state["is_sdown"] and state["num-slaves"] >= 1
