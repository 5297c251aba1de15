"""How the verifier reaches Redis: one server, a Sentinel-watched master, or a Redis Cluster.

Every operation the verifier runs touches keys of one hash slot (``verifier.layout``), so the
store talks to one node at a time, the node that owns the slot, through an ordinary
``redis.Redis`` for that node. ``Connector`` is the only code that knows the mode:

- ``standalone``: one ``REDIS_URL``; the node is always that server.
- ``sentinel``: ``REDIS_URL`` lists the sentinels; the node is the master they name
  (``VERIFIER_REDIS_SENTINEL_MASTER``), found again after a failover.
- ``cluster``: ``REDIS_URL`` lists seed nodes; the node is the master of the key's slot, from
  redis-py's map of the cluster, which is refreshed after a connection fails or a slot moved.

Passwords come from the URLs or from ``REDIS_PASSWORD_FILE``; ``rediss://`` turns TLS on.
Sentinels are asked with the same scheme and password as the URLs that name them.
"""

from __future__ import annotations

import os
import threading
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.cluster import ClusterNode, RedisCluster
from redis.connection import parse_url
from redis.retry import Retry
from redis.sentinel import Sentinel, SentinelConnectionPool

from shared.config import env_choice, env_int, env_str
from shared.errors import ConfigError

MODES = ("standalone", "cluster", "sentinel")
REDIS_VARIABLES = frozenset({
    "REDIS_URL", "REDIS_PASSWORD_FILE", "VERIFIER_REDIS_MODE", "VERIFIER_REDIS_SENTINEL_MASTER",
    "VERIFIER_REDIS_MIN_REPLICAS", "VERIFIER_REDIS_TIMEOUT_MS", "VERIFIER_REDIS_PREFIX",
})
"""What ``RedisSettings.from_env`` reads (the verifier and ``jwt-auth redis``)."""
DEFAULT_URL = "redis://127.0.0.1:6379/0"
MIN_REPLICAS_DEFAULT = {"standalone": 0, "cluster": 1, "sentinel": 1}
"""Replicas that must confirm a revocation, cut-off or logout before it is acknowledged, when
``VERIFIER_REDIS_MIN_REPLICAS`` is unset: the modes that exist for failover have replicas, and
an acknowledgement that the promoted replica never received would be a lie."""


@dataclass(frozen=True)
class RedisSettings:
    """Where Redis is and how writes are confirmed (the verifier and ``jwt-auth redis``)."""

    url: str = DEFAULT_URL
    mode: str = "standalone"
    sentinel_master: str = "mymaster"
    min_replicas: int | None = None  # None: MIN_REPLICAS_DEFAULT[mode]
    timeout_ms: int = 250
    prefix: str = "jwtauth:"
    password: str | None = None  # from REDIS_PASSWORD_FILE; a URL may carry its own

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> RedisSettings:
        mode = env_choice(env, "VERIFIER_REDIS_MODE", "standalone", MODES)
        master = env_str(env, "VERIFIER_REDIS_SENTINEL_MASTER")
        if master is not None and mode != "sentinel":
            raise ConfigError(
                "VERIFIER_REDIS_SENTINEL_MASTER",
                f"only used with VERIFIER_REDIS_MODE=sentinel (the mode is {mode})",
            )
        replicas = env.get("VERIFIER_REDIS_MIN_REPLICAS", "").strip()
        settings = cls(
            url=env_str(env, "REDIS_URL", DEFAULT_URL) or DEFAULT_URL,
            mode=mode,
            sentinel_master=master or "mymaster",
            min_replicas=(
                env_int(env, "VERIFIER_REDIS_MIN_REPLICAS", 0, minimum=0, maximum=16)
                if replicas else None
            ),
            timeout_ms=env_int(env, "VERIFIER_REDIS_TIMEOUT_MS", 250, minimum=10,
                               maximum=10_000),
            prefix=env_str(env, "VERIFIER_REDIS_PREFIX", "jwtauth:") or "jwtauth:",
            password=_read_password_file(env_str(env, "REDIS_PASSWORD_FILE")),
        )
        settings.check()
        return settings

    @property
    def replicas_to_confirm(self) -> int:
        if self.min_replicas is not None:
            return self.min_replicas
        return MIN_REPLICAS_DEFAULT[self.mode]

    @property
    def urls(self) -> list[str]:
        return [part.strip() for part in self.url.split(",") if part.strip()]

    def check(self) -> None:
        """Refuse what cannot work; each error names a variable."""
        if self.mode not in MODES:
            raise ConfigError("VERIFIER_REDIS_MODE", f"expected one of {', '.join(MODES)}")
        urls = self.urls
        if not urls:
            raise ConfigError("REDIS_URL", "no Redis URL")
        schemes = set()
        for url in urls:
            scheme = url.partition("://")[0]
            if scheme not in ("redis", "rediss", "unix") or "://" not in url:
                raise ConfigError("REDIS_URL", "expected redis://, rediss:// or unix:// URLs")
            schemes.add(scheme)
        if len(schemes) > 1:
            raise ConfigError("REDIS_URL", "mixes schemes; use rediss:// for all or for none")
        if self.mode == "standalone" and len(urls) > 1:
            raise ConfigError(
                "REDIS_URL",
                "lists several servers; set VERIFIER_REDIS_MODE=cluster (seed nodes) or "
                "sentinel (sentinels), or give one URL",
            )
        if self.mode != "standalone" and "unix" in schemes:
            raise ConfigError("REDIS_URL", f"{self.mode} mode needs redis:// or rediss:// "
                                           "host:port URLs, not unix://")
        for url in urls:
            database = _check_url(url)
            if self.mode == "cluster" and database not in (None, 0):
                raise ConfigError("REDIS_URL", "Redis Cluster has only database 0")
        # in sentinel mode the URLs name the sentinels: their password may differ from the
        # master's, which the file then gives
        urls_with_password = any(urllib.parse.urlparse(u).password for u in urls)
        if self.password is not None and urls_with_password and self.mode != "sentinel":
            raise ConfigError(
                "REDIS_PASSWORD_FILE", "REDIS_URL carries a password too; give it in one place"
            )
        if "{" in self.prefix or "}" in self.prefix:
            raise ConfigError(
                "VERIFIER_REDIS_PREFIX",
                "must not contain { or }: they would change which keys Redis Cluster keeps "
                "together",
            )

    def described(self) -> str:
        """The URLs as they may appear in a log line: passwords hidden."""
        return ",".join(without_password(url) for url in self.urls)


def _check_url(url: str) -> int | None:
    """Refuse a URL redis-py would misread or fail on later; its database number, if any.

    One line naming REDIS_URL, never the URL (it may hold a password): a port that is not a
    number (a traceback from redis-py otherwise), a missing host, a database that is not a
    number (``/abc`` quietly meant database 0).
    """
    try:
        parsed = urllib.parse.urlparse(url)
    except ValueError:  # an unclosed "[" in the host
        raise ConfigError("REDIS_URL", "a URL cannot be read (an unclosed [ ?)") from None
    query = urllib.parse.parse_qs(parsed.query)
    if parsed.scheme == "unix":
        if not parsed.path:
            raise ConfigError("REDIS_URL", "a unix:// URL needs the socket's path")
        database = query.get("db", [None])[-1]
    else:
        try:
            port = parsed.port
        except ValueError:
            raise ConfigError("REDIS_URL", "a URL has a port that is not a number from 1 to "
                                           "65535") from None
        if port == 0:
            raise ConfigError("REDIS_URL", "a URL has port 0")
        if not parsed.hostname:
            raise ConfigError("REDIS_URL", "every URL needs a host")
        path = parsed.path.strip("/")
        database = path or query.get("db", [None])[-1]
    if database is None:
        return None
    if not database.isdigit() or not database.isascii():
        raise ConfigError("REDIS_URL", f"the database must be a number (the path /0 or "
                                       f"?db=0), not {database[:16]!r}")
    return int(database)


def _read_password_file(path: str | None) -> str | None:
    if path is None:
        return None
    try:
        content = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError("REDIS_PASSWORD_FILE", f"cannot read {path}: {exc.strerror}") from None
    content = content.removesuffix("\n").removesuffix("\r")
    if not content:
        raise ConfigError("REDIS_PASSWORD_FILE", f"{path} is empty")
    return content


def without_password(url: str) -> str:
    """A Redis URL as it may appear in a log line: no userinfo, and no ``password=`` in the
    query (redis-py takes the password from either)."""
    scheme, separator, rest = url.partition("://")
    if separator and "@" in rest:
        rest = "***@" + rest.rsplit("@", 1)[1]
    base, question, query = rest.partition("?")
    return f"{scheme}{separator}{base}{question}{without_query_password(query)}"


def without_query_password(query: str, mask: str = "***") -> str:
    """A URL's query with the value of ``password=`` hidden (redis-py reads it as one)."""
    if not query:
        return query
    return "&".join(f"password={mask}" if pair.split("=", 1)[0].lower() == "password" else pair
                    for pair in query.split("&"))


class Connector:
    """This process's way to the node that holds a key, in whichever mode Redis runs.

    Clients are made lazily in the process that uses them: the gunicorn master builds the app
    before forking, and no socket it opened may be shared by two workers.
    """

    def __init__(self, settings: RedisSettings) -> None:
        self.settings = settings
        self.mode = settings.mode
        self.timeout = settings.timeout_ms / 1000
        self._lock = threading.Lock()
        self._pid = 0
        self._client: Any = None
        self._sentinel: Sentinel | None = None

    # the clients ------------------------------------------------------------------------------

    def _options(self) -> dict[str, Any]:
        options: dict[str, Any] = {
            "socket_connect_timeout": self.timeout,
            "socket_timeout": self.timeout,
            # one immediate retry heals a connection Redis closed while it was away; redis-py's
            # default (several retries with backoff) would be a retry storm against a dead Redis.
            # Not on a timeout: a hung Redis would cost every request twice the timeout
            "retry": Retry(NoBackoff(), 1, supported_errors=(redis.ConnectionError,)),
        }
        if self.settings.password is not None:
            options["password"] = self.settings.password
        return options

    def client(self) -> Any:
        """The mode's client for this process: Redis, RedisCluster, or the master's Redis."""
        pid = os.getpid()
        if self._client is None or self._pid != pid:
            with self._lock:
                if self._client is None or self._pid != pid:
                    self._client = self._make_client()
                    self._pid = pid
        return self._client

    def _make_client(self) -> Any:
        urls = self.settings.urls
        if self.mode == "standalone":
            return redis.Redis.from_url(urls[0], **self._options())
        if self.mode == "cluster":
            return RedisCluster(
                startup_nodes=[
                    ClusterNode(*_host_port(url))  # type: ignore[no-untyped-call]
                    for url in urls
                ],
                # a dead master costs one fast failure, not several: the store's breaker and
                # the caller's retry do the rest, and the map is refreshed on the next request
                cluster_error_retry_attempts=1,
                **self._node_options(),
            )
        self._sentinel = self._make_sentinel()
        return self._sentinel.master_for(  # type: ignore[no-untyped-call]
            self.settings.sentinel_master, **self._node_options()
        )

    def _make_sentinel(self) -> Sentinel:
        # the sentinels are asked with what their URLs say (password, TLS and its options)
        sentinel_options = {**_url_options(self.settings.urls[0]),
                            "socket_connect_timeout": self.timeout,
                            "socket_timeout": self.timeout}
        sentinel_options.pop("db", None)
        return Sentinel(  # type: ignore[no-untyped-call]
            [_host_port(url) for url in self.settings.urls],
            sentinel_kwargs=sentinel_options,
            **self._node_options(),
        )

    def _node_options(self) -> dict[str, Any]:
        """What every data node is connected with: the first URL's options (password, TLS and
        its ``ssl_*`` query options, database), then the timeouts, retry and password file."""
        return {**_url_options(self.settings.urls[0]), **self._options()}


    def node_for(self, key: str) -> redis.Redis:
        """A client of the one node that holds ``key`` (and every key of its hash slot)."""
        client = self.client()
        if self.mode != "cluster":
            return client  # type: ignore[no-any-return]  # a redis.Redis in these modes
        node = client.get_node_from_key(key)
        connection: redis.Redis = node.redis_connection
        return connection

    def masters(self) -> list[redis.Redis]:
        """A client of every master: where keys are scanned, configuration read."""
        client = self.client()
        if self.mode != "cluster":
            return [client]
        return [node.redis_connection for node in client.get_primaries()]

    def forget_topology(self) -> None:
        """After a failure or a moved slot: ask the cluster again which node holds what.

        Sentinel and standalone clients find the master again by themselves on reconnection.
        """
        if self.mode == "cluster" and self._client is not None and self._pid == os.getpid():
            self._client.nodes_manager.initialize()

    def tracking_pool(self) -> redis.ConnectionPool | None:
        """A RESP3 pool to the master for the revocation mirror's own connection, or None.

        None in cluster mode: the keys are spread over several masters, each of which would
        need its own tracking connection and load, re-done on every slot migration; there the
        verifier reads Redis per request (``Store`` logs that once).
        """
        if self.mode == "cluster":
            return None
        options: dict[str, Any] = {
            "socket_connect_timeout": self.timeout,
            "socket_timeout": self.timeout,
            "protocol": 3,
        }
        if self.mode == "standalone":
            if self.settings.password is not None:
                options["password"] = self.settings.password
            return redis.ConnectionPool.from_url(self.settings.urls[0], **options)
        self.client()  # makes the Sentinel manager of this process
        assert self._sentinel is not None
        master = {**self._node_options(), **options}
        master.pop("retry", None)
        return SentinelConnectionPool(  # type: ignore[no-untyped-call]
            self.settings.sentinel_master, self._sentinel, **master
        )

    def close(self) -> None:
        """Drop this process's connections (tests, shutdown)."""
        if self._client is not None and self._pid == os.getpid():
            self._client.close()
        self._client = None
        self._sentinel = None


def _url_options(url: str) -> dict[str, Any]:
    """The client options a URL carries, as redis-py reads them, without its address."""
    options: dict[str, Any] = dict(parse_url(url))  # type: ignore[no-untyped-call]
    for name in ("host", "port", "path", "connection_class"):
        options.pop(name, None)
    if url.startswith("rediss://"):
        options["ssl"] = True  # what the Cluster and Sentinel clients take instead of a class
    return options


def _host_port(url: str) -> tuple[str, int]:
    parsed = urllib.parse.urlparse(url)
    return parsed.hostname or "127.0.0.1", parsed.port or 6379
