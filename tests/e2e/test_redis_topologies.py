"""The topologies of tests/redis_topologies.py against redis-py's own cluster and sentinel clients.

A write a replica acknowledged (WAIT) survives ``kill -9`` of its master: after the failover the
same client, never rebuilt, finds the promoted replica and reads the key there.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from redis import Redis
from redis.cluster import ClusterNode, RedisCluster
from redis.sentinel import Sentinel

from tests.redis_topologies import RedisClusterSet, SentinelSet

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

# a failover takes 4-5 s here (node timeout and down-after-milliseconds: DOWN_AFTER_MS, 3 s)
FAILOVER_TIMEOUT = 15


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisClusterSet]:
    topology = RedisClusterSet(tmp_path_factory.mktemp("redis-cluster"))
    topology.start()
    yield topology
    topology.stop()


@pytest.fixture(scope="module")
def sentinels(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SentinelSet]:
    topology = SentinelSet(tmp_path_factory.mktemp("redis-sentinel"))
    topology.start()
    yield topology
    topology.stop()


def _cluster_client(*seed_ports: int) -> RedisCluster:
    return RedisCluster(
        startup_nodes=[ClusterNode("127.0.0.1", port) for port in seed_ports],
        socket_timeout=2, socket_connect_timeout=2,
    )


def test_cluster_names_every_node_and_serves_keys_from_any_seed(
    cluster: RedisClusterSet,
) -> None:
    assert cluster.url.split(",") == cluster.urls
    assert len(cluster.urls) == 6
    assert len(cluster.masters()) == 3
    keys = [f"topology:seeded:{number}" for number in range(20)]
    assert {cluster.master_for_key(key) for key in keys} == set(cluster.masters())
    writer, reader = _cluster_client(cluster.ports[0]), _cluster_client(cluster.ports[-1])
    try:
        for key in keys:
            writer.set(key, key)
        assert [reader.get(key) for key in keys] == [key.encode() for key in keys]
    finally:
        writer.close()
        reader.close()


def test_cluster_write_acknowledged_by_a_replica_survives_its_master_kill(
    cluster: RedisClusterSet,
) -> None:
    key = "topology:cluster:kept"
    client = _cluster_client(*cluster.ports)
    try:
        client.set(key, "kept")
        # WAIT counts the writes of its own connection: the node's pool hands back the one
        # connection the SET just used
        acknowledged = client.execute_command(
            "WAIT", 1, 1000, target_nodes=client.get_node_from_key(key)
        )
        assert acknowledged == 1
        owner = cluster.master_for_key(key)
        assert client.get_node_from_key(key).port == owner

        cluster.kill_node(owner)
        cluster.wait_failover(owner, timeout=FAILOVER_TIMEOUT)

        assert cluster.master_for_key(key) != owner
        assert client.get(key) == b"kept"

        cluster.restart_node(owner)
        cluster.wait_healthy(timeout=FAILOVER_TIMEOUT)
        assert owner not in cluster.masters()
        assert client.get(key) == b"kept"
    finally:
        client.close()


@contextmanager
def _sentinel_clients(sentinels: SentinelSet) -> Iterator[tuple[Sentinel, Redis]]:
    """redis-py's Sentinel over the set's sentinels, and its client for the master."""
    with Sentinel(sentinels.sentinel_addresses, socket_timeout=2) as sentinel:
        master = sentinel.master_for(sentinels.master_name, socket_timeout=2)
        try:
            yield sentinel, master
        finally:
            master.close()


def test_sentinel_url_names_the_sentinels_and_the_master_serves_keys(
    sentinels: SentinelSet,
) -> None:
    assert sentinels.url.split(",") == sentinels.sentinel_urls
    assert len(sentinels.sentinel_urls) == 3
    with _sentinel_clients(sentinels) as (sentinel, master):
        assert sentinel.discover_master(sentinels.master_name) == (
            "127.0.0.1", sentinels.current_master()
        )
        master.set("topology:sentinel:seen", "yes")
        assert master.get("topology:sentinel:seen") == b"yes"


def test_sentinel_write_acknowledged_by_the_replica_survives_a_master_kill(
    sentinels: SentinelSet,
) -> None:
    key = "topology:sentinel:kept"
    with _sentinel_clients(sentinels) as (sentinel, master):
        master.set(key, "kept")
        # WAIT counts the writes of its own connection: the pool hands back the SET's one
        assert master.execute_command("WAIT", 1, 1000) == 1

        old_master = sentinels.kill_master()
        sentinels.wait_failover(old_master, timeout=FAILOVER_TIMEOUT)

        new_master = sentinels.current_master()
        assert new_master != old_master
        assert master.get(key) == b"kept"

        sentinels.restart(old_master)
        sentinels.wait_ready(timeout=FAILOVER_TIMEOUT)
        assert sentinels.current_master() == new_master
        assert ("127.0.0.1", old_master) in sentinel.discover_slaves(sentinels.master_name)
