"""The verifier's Redis state: revocations, user cut-offs, sessions and user records.

The key names are in ``verifier.layout`` (every key of a user in one hash slot, so each
operation below runs on one node, atomically, in every mode); how the node is reached, in
standalone, Sentinel or Cluster mode, is in ``verifier.redisconn``. Lifetimes:

- a revocation lives until the token's ``exp`` plus the largest leeway (1 h); permanent for a
  token without ``exp``;
- a cut-off is permanent (one small key per user), like the user record;
- a session and its user's index live ``VERIFIER_SESSION_TTL`` (the index from the latest
  login);
- the mirror's probe key lives 2 s (it proves that Redis pushes changes).

Session ids are stored hashed: read access to Redis does not hand out live sessions.

There is deliberately no verification cache in Redis. Measured here: with ``appendfsync always``
(what makes a revocation survive ``kill -9``) a cache write costs about 4 ms and blocks Redis for
every other client while it fsyncs, over an order of magnitude more than the RSA verification it
would save (docs/verifier.md); writing one per fresh token cut fresh-token throughput to about
260 requests/s. The verified results are cached in each process instead
(``verifier.service.LocalCache``); the revocations and cut-offs each request must check come
from the process's mirror of Redis (``verifier.mirror``), or from one MGET while the mirror is
out of sync or off (Redis Cluster).

Writes that take a token or a session away (revoke, logout, user-wide logout) are acknowledged
only once ``VERIFIER_REDIS_MIN_REPLICAS`` replicas confirm them (``WAIT``); otherwise the caller
gets 503 and may retry (each of them can be repeated harmlessly).

Connections: short connect and socket timeouts, one immediate retry (a pooled connection left
over from before a Redis restart fails once, and the retry reconnects), and a short circuit
breaker per node so that a dead node costs a fast 503 instead of a timeout per request, with
one probe at a time so that a node that came back is used again at once.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any, NoReturn

import redis
from redis.commands.core import Script
from redis.exceptions import (
    AskError,
    ClusterDownError,
    MovedError,
    OutOfMemoryError,
    ReadOnlyError,
    RedisClusterException,
    TryAgainError,
)

from shared.digest import sha256_hex
from shared.errors import StartupError
from verifier.config import VerifierSettings
from verifier.errors import LoginRateExceeded, StoreUnavailable
from verifier.issuers import SUBJECT_SEPARATOR
from verifier.layout import (
    SESSION_TAG_SEPARATOR,
    V1_KINDS,
    VERSION,
    KeyLayout,
    glob_escape,
    session_id_tag,
    user_tag,
)
from verifier.metrics import SESSIONS, redis_command_timer
from verifier.mirror import Mirror, Snapshot, read_cutoff
from verifier.redisconn import Connector

log = logging.getLogger(__name__)

REVOCATION_MARGIN = 3600
"""Seconds a revocation outlives its token's ``exp``: the largest VERIFIER_LEEWAY allowed, so a
revocation never lapses while some verifier would still accept the token."""

REVOCATION_TTL_MAX = 100 * 365 * 24 * 3600
"""A revocation that would outlive its token by longer than this is kept for good, as one for a
token without ``exp``: Redis refuses an expiry of about 2^63 ms or more (a token, or an admin's
``expiresAt``, can claim 1e300), and a century is, for a revocation, forever."""

BREAKER_SECONDS = 0.5
"""After a Redis failure, requests to that node fail fast for this long (no retry storm against
a dead Redis), except for one probe at a time, every ``PROBE_INTERVAL``: the first that succeeds
closes the breaker, so a Redis that came back is used again within that interval."""

PROBE_INTERVAL = 0.05

REDIS_FAILURES = (redis.RedisError, RedisClusterException)
"""What a failing Redis raises through redis-py (a cluster with no reachable node raises the
second, which is not a RedisError)."""

LOGIN_WINDOW = 60
"""Seconds over which ``VERIFIER_LOGIN_RATE`` counts a user's logins (a sliding window)."""

_INDEX_MEMBERS = """
local function index_members(index)
  local kind = redis.call('TYPE', index).ok
  if kind == 'zset' then return redis.call('ZRANGE', index, 0, -1) end
  if kind == 'set' then return redis.call('SMEMBERS', index) end
  return {}
end
"""
# the session index is a sorted set scored by creation time; layout-2 data written before the
# login limits (and ``jwt-auth redis migrate``) holds a plain set, which the next login converts:
# every script reads both

_LOGIN = _INDEX_MEMBERS + """
local cutoff = redis.call('GET', KEYS[1])
if cutoff and (ARGV[1] == '' or tonumber(ARGV[1]) <= tonumber(cutoff)) then
  return {0}
end
local now = tonumber(ARGV[9])
local rate, window = tonumber(ARGV[11]), tonumber(ARGV[12])
local since = '(' .. tostring(now - window)
if rate > 0 and redis.call('ZCOUNT', KEYS[5], since, '+inf') >= rate then
  local oldest = redis.call('ZRANGEBYSCORE', KEYS[5], since, '+inf', 'WITHSCORES', 'LIMIT', 0, 1)
  local wait = math.ceil(tonumber(oldest[2]) + window - now)
  if wait < 1 then wait = 1 end
  if wait > window then wait = window end
  return {2, wait}
end
-- the first write may grow memory: under maxmemory Redis refuses it, and with it the script,
-- before anything changed (it refuses only a script's first write: never write before it)
redis.call('SET', KEYS[2], ARGV[2], 'EX', ARGV[3])
if redis.call('TYPE', KEYS[3]).ok == 'set' then
  local scored = {}
  for _, member in ipairs(redis.call('SMEMBERS', KEYS[3])) do
    local raw = redis.call('GET', ARGV[5] .. member)
    if raw then
      local ok, session = pcall(cjson.decode, raw)
      local created = 0
      if ok and type(session) == 'table' and type(session.createdAt) == 'number' then
        created = session.createdAt
      end
      table.insert(scored, {created, member})
    end
  end
  redis.call('DEL', KEYS[3])
  for _, entry in ipairs(scored) do
    redis.call('ZADD', KEYS[3], entry[1], entry[2])
  end
end
for _, member in ipairs(index_members(KEYS[3])) do
  if redis.call('EXISTS', ARGV[5] .. member) == 0 then
    redis.call('ZREM', KEYS[3], member)
  end
end
local reply = {1}
local excess = redis.call('ZCARD', KEYS[3]) - tonumber(ARGV[10]) + 1
if excess > 0 then
  for _, member in ipairs(redis.call('ZRANGE', KEYS[3], 0, excess - 1)) do
    redis.call('DEL', ARGV[5] .. member)
    redis.call('ZREM', KEYS[3], member)
    table.insert(reply, member)
  end
end
redis.call('ZADD', KEYS[3], ARGV[9], ARGV[4])
redis.call('EXPIRE', KEYS[3], ARGV[3])
if rate > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[5], '-inf', tostring(now - window))
  redis.call('ZADD', KEYS[5], ARGV[9], ARGV[4])
  redis.call('EXPIRE', KEYS[5], window)
end
redis.call('HSETNX', KEYS[4], 'createdAt', ARGV[9])
redis.call('HSET', KEYS[4], 'userId', ARGV[6], 'isAdmin', ARGV[7], 'provider', ARGV[8],
           'lastLoginAt', ARGV[9])
return reply
"""
# atomic with the cut-off script below: a login racing a user-wide logout either sees the
# cut-off and is refused, or is registered in the index before the cut-off ends every session.
# The session keys it builds (ARGV[5] .. member) carry the user's tag: they are in this slot.
# The limits are checked in the same step: a login over VERIFIER_LOGIN_RATE writes nothing
# ({2, seconds until the oldest login of the window leaves it}); one that would put the user
# over VERIFIER_MAX_SESSIONS_PER_USER ends the oldest sessions first, as their logouts would
# (session key and index entry), and returns their hashes after the 1.

_LOGOUT = """
local raw = redis.call('GET', KEYS[1])
if not raw then return 0 end
redis.call('DEL', KEYS[1])
local ok, session = pcall(cjson.decode, raw)
-- a user of a provider other than the primary one is named by its subject in Redis
local owner = ok and type(session) == 'table' and (session.subject or session.userId)
if type(owner) == 'string' then
  local index = ARGV[1] .. owner
  local kind = redis.call('TYPE', index).ok
  if kind == 'zset' then
    redis.call('ZREM', index, ARGV[2])
  elseif kind == 'set' then
    redis.call('SREM', index, ARGV[2])
  end
end
return 1
"""

_END_USER = _INDEX_MEMBERS + """
local current = redis.call('GET', KEYS[1])
local cutoff = ARGV[1]
if current and tonumber(current) and tonumber(current) > tonumber(ARGV[1]) then
  cutoff = current
else
  redis.call('SET', KEYS[1], ARGV[1])
end
local ended = 0
for _, member in ipairs(index_members(KEYS[2])) do
  ended = ended + redis.call('DEL', ARGV[2] .. member)
end
redis.call('DEL', KEYS[2])
return {cutoff, ended}
"""
# the cut-off only moves forward: a second user-wide logout never re-admits older tokens


def usable_jti(jti: Any) -> bool:
    """Whether a ``jti`` can name a revocation: a short printable string (keys stay bounded)."""
    return isinstance(jti, str) and 0 < len(jti) <= 128 and jti.isprintable()


def revocation_id(jti: Any, token_hash: str, scope: str | None = None) -> str:
    """What a revocation is keyed by: the ``jti`` when usable, else the token's hash.

    Seed-style tokens have no ``jti``; their hash is their identity. A ``jti`` that is not
    ``usable_jti`` is ignored in favour of the hash. ``scope`` (a provider other than the
    primary one, ``verifier.issuers``) tells one issuer's jti from another's.
    """
    name = f"jti:{jti}" if usable_jti(jti) else f"sha256:{token_hash}"
    return name if scope is None else f"{scope}{SUBJECT_SEPARATOR}{name}"


class LayoutError(StartupError):
    """Raised when Redis holds keys this verifier must not ignore: an earlier or later layout."""


class NotConfirmed(Exception):
    """Raised when fewer replicas than required confirmed a write in time."""


class _Breaker:
    """Fail fast while a node is down; let one probe at a time through."""

    def __init__(self) -> None:
        self.down_until = 0.0
        self.next_probe = 0.0
        self.probe = threading.Lock()

    def admit(self) -> bool:
        """Whether the call may go ahead, and as the probe; raises while the node is down."""
        now = time.monotonic()
        if now >= self.down_until:
            return False
        if now < self.next_probe or not self.probe.acquire(blocking=False):
            raise StoreUnavailable("Redis is unreachable; try again shortly.")
        self.next_probe = now + PROBE_INTERVAL
        return True

    def open(self) -> None:
        failed = time.monotonic()
        self.down_until = failed + BREAKER_SECONDS
        self.next_probe = failed + PROBE_INTERVAL

    def close(self) -> None:
        self.down_until = 0.0


class Store:
    """The verifier's keys behind small methods; raises StoreUnavailable when Redis fails."""

    def __init__(self, settings: VerifierSettings) -> None:
        self.redis_settings = settings.redis
        self.connector = Connector(self.redis_settings)
        self.keys = KeyLayout(settings.redis_prefix)
        self.session_ttl = settings.session_ttl
        self.max_sessions = settings.max_sessions_per_user
        self.login_rate = settings.login_rate
        self.replicas = self.redis_settings.replicas_to_confirm
        # WAIT must give up before the socket does, or a slow confirmation reads as a dead node
        self.wait_ms = max(1, settings.redis_timeout_ms * 3 // 5)
        self._scripts = {
            # bound to no client: each call names the node (or pipeline) it runs on
            name: Script(None, source.encode())  # type: ignore[arg-type]
            for name, source in (("login", _LOGIN), ("logout", _LOGOUT), ("end_user", _END_USER))
        }
        self._breakers: dict[str, _Breaker] = {}
        self._layout_checked = False
        self.legacy_revocations = False
        tracking = settings.mirror_max_keys > 0 and self.connector.mode != "cluster"
        self.mirror = (
            Mirror(
                pool=self.connector.tracking_pool,
                revoked_prefix=self.keys.revoked_prefix,
                cutoff_prefix=self.keys.cutoff_prefix,
                timeout=self.redis_settings.timeout_ms / 1000,
                max_keys=settings.mirror_max_keys,
                reader=self.connector.client,
                on_sync=self._close_breakers,
            )
            if tracking
            else None
        )

    @property
    def mirror_off_reason(self) -> str | None:
        """Why every verification reads Redis, when it does by configuration."""
        if self.mirror is not None:
            return None
        if self.connector.mode == "cluster":
            return ("Redis Cluster mode: the revocation mirror is not used; each verification "
                    "reads its user's slot (one MGET)")
        return "VERIFIER_MIRROR_MAX_KEYS=0: each verification reads Redis (one MGET)"

    # running commands -------------------------------------------------------------------------

    def _run(
        self, what: str, key: str, action: Callable[[redis.Redis], Any], *, repeatable: bool = True
    ) -> Any:
        """``action`` on the node that holds ``key``; a failure is StoreUnavailable.

        A failure to reach the node opens its breaker; a slot that moved (Cluster) refreshes
        the map and is tried once more at once; too few replicas confirming a write is 503
        without opening the breaker: the node answers, reads go on. ``repeatable`` says whether
        the action may run twice (all but a login, which would open a second session).
        """
        if not self._layout_checked:
            self._check_layout_lazily()
        for attempt in (1, 2):
            try:
                name, node = self._node(key)
            except REDIS_FAILURES as exc:
                log.warning("redis %s failed: %s", what, type(exc).__name__)
                raise StoreUnavailable("Redis is unreachable; try again shortly.") from None
            breaker = self._breakers.setdefault(name, _Breaker())
            probing = breaker.admit()
            started = time.perf_counter()
            try:
                result = action(node)
            except (MovedError, AskError):
                with contextlib.suppress(*REDIS_FAILURES):
                    self.connector.forget_topology()
                if attempt == 1:
                    continue
                raise StoreUnavailable("Redis Cluster is moving slots; try again shortly.") \
                    from None
            except NotConfirmed as exc:
                log.warning("redis %s: %s", what, exc)
                raise StoreUnavailable(
                    f"Redis did not confirm the change on {self.replicas} replica(s) in time; "
                    "it may not survive a failover. Send the request again."
                ) from None
            except redis.ConnectionError as exc:
                if attempt == 1 and repeatable and not probing:
                    # a connection Redis dropped (restart, CLIENT KILL, idle timeout) can fail
                    # twice in redis-py: once in use, once more when the pool's stale-connection
                    # check trips on its replacement (outside redis-py's own retry); a second
                    # try on a fresh connection costs nothing when Redis is up, and one fast
                    # failure more when it is down. In Cluster mode the node may be a master
                    # that failed over while this process sent it nothing (its map is as old
                    # as its last failure): the second try asks the cluster again first, or
                    # it would fail on the same dead node and answer 503 long after the failover
                    log.info("redis %s: %s; trying once more", what, exc)
                    with contextlib.suppress(*REDIS_FAILURES):
                        self.connector.forget_topology()
                    continue
                self._failed(breaker, what, name, exc)
            except (ClusterDownError, TryAgainError) as exc:
                self._failed(breaker, what, name, exc)
            except redis.ResponseError as exc:
                # Redis answered: it refused this command (full under maxmemory noeviction, a
                # disk it cannot write to); reads may still work, so the breaker stays closed
                refusal = _refusal(exc)
                log.warning("redis %s refused on %s: %s", what, name, refusal)
                raise StoreUnavailable(f"{refusal}; try again later.") from None
            except REDIS_FAILURES as exc:
                self._failed(breaker, what, name, exc)
            finally:
                if probing:
                    breaker.probe.release()
                # every attempt, a failed one too: a command that times out is a slow one
                redis_command_timer(what).observe(time.perf_counter() - started)
            if probing:
                breaker.close()
            return result
        raise AssertionError("unreachable")  # pragma: no cover

    def _failed(self, breaker: _Breaker, what: str, name: str, exc: Exception) -> NoReturn:
        breaker.open()
        log.warning("redis %s failed on %s: %s: %s", what, name, type(exc).__name__, exc)
        with contextlib.suppress(*REDIS_FAILURES):  # else the next request asks again
            self.connector.forget_topology()
        raise StoreUnavailable("Redis is unreachable; try again shortly.") from None

    def _node(self, key: str) -> tuple[str, redis.Redis]:
        node = self.connector.node_for(key)
        if self.connector.mode != "cluster":
            return "redis", node
        kwargs = node.connection_pool.connection_kwargs
        return f"{kwargs.get('host')}:{kwargs.get('port')}", node

    def _confirmed(self, node: redis.Redis, slot_key: str, write: Callable[[Any], Any]) -> Any:
        """Run ``write`` and return its result once Redis has made it safe to acknowledge.

        Safe means two things. Replicas: with ``VERIFIER_REDIS_MIN_REPLICAS`` > 0 the write, a
        fence key in its slot (``KeyLayout.fence``: a write even when the change itself finds
        nothing to do) and a ``WAIT`` go down one connection, so the WAIT counts replicas that
        hold this write and every one before it; fewer than required raise NotConfirmed.
        Mirrors: Redis writes a change's invalidation pushes in the same pass over its clients
        as the writer's reply, and not necessarily first (it serves the newest output first), so
        a mirror could answer "not revoked" after the acknowledgement. A command answered in a
        later pass ends the write: the WAIT blocks until a replica acknowledges, which is always
        a later pass; without replicas a PING sent after the reply arrived does the same (never
        pipeline that PING: it would be answered in the same pass). docs/verifier.md, "Consistency".
        """
        if self.replicas == 0:
            result = write(node)
            node.ping()
            return result
        pipe = node.pipeline(transaction=False)
        write(pipe)
        pipe.set(self.keys.fence(slot_key), "1", px=1000)  # verifier.layout.KeyLayout.fence
        pipe.execute_command("WAIT", self.replicas, self.wait_ms)  # type: ignore[no-untyped-call]
        *results, _, acknowledged = pipe.execute()
        if int(acknowledged) < self.replicas:
            raise NotConfirmed(
                f"{acknowledged} of {self.replicas} replica(s) confirmed within {self.wait_ms} ms"
            )
        return results[-1]

    def _script(self, name: str, client: Any, keys: list[str], args: list[Any]) -> Any:
        return self._scripts[name](keys, args, client)

    def close(self) -> None:
        """Drop this process's connections (tests, shutdown)."""
        if self.mirror is not None:
            self.mirror.stop()
        self.connector.close()

    def breakers_open(self) -> dict[str, bool]:
        """Each node this process has called, and whether its breaker is open (metrics)."""
        now = time.monotonic()
        return {name: now < breaker.down_until for name, breaker in self._breakers.items()}

    def _close_breakers(self) -> None:
        for breaker in self._breakers.values():
            breaker.close()

    def ping(self) -> bool:
        """Whether every master answers right now (readiness); an answer closes the breakers.

        A probe, not a request: it asks Redis even while a breaker is open, so readiness
        reports a Redis that came back at once, and requests use it again from then on.
        """
        try:
            answered = all(bool(master.ping()) for master in self.connector.masters())
        except REDIS_FAILURES:
            return False
        if answered:
            self._close_breakers()
        return answered

    # start-up checks --------------------------------------------------------------------------

    def check_layout(self) -> None:
        """Make sure Redis holds no keys this verifier would ignore; raises LayoutError.

        The marker ``P layout`` says which layout the keys are in. Without it, Redis is either
        new (then the marker is written) or holds layout-1 keys an earlier verifier wrote:
        starting on those would ignore their revocations, so the verifier refuses to, until
        ``jwt-auth redis migrate`` moved them.
        """
        marker_key = self.keys.marker
        marker = self.connector.node_for(marker_key).hgetall(marker_key)
        if b"version" not in marker:
            # new, or a migration that has not finished (it flags legacy revocations first)
            found = find_v1_key(self.connector, self.keys)
            if found is not None:
                raise LayoutError(
                    f"Redis holds keys of an earlier verifier's layout (for example {found}); "
                    "stop the old verifiers, run `jwt-auth redis migrate` once, then start"
                )
            node = self.connector.node_for(marker_key)
            node.hsetnx(marker_key, "version", VERSION)
            node.hsetnx(marker_key, "legacy-revocations", 0)
            marker = node.hgetall(marker_key)
        version = _text(marker.get(b"version", b"?"))
        if version != str(VERSION):
            raise LayoutError(
                f"Redis holds keys in layout {version} ({marker_key}); this verifier reads "
                f"layout {VERSION}: upgrade it, or point it at another Redis"
            )
        self.legacy_revocations = _text(marker.get(b"legacy-revocations", b"0")) == "1"
        self._layout_checked = True

    def _check_layout_lazily(self) -> None:
        """The layout check of a process that could not reach Redis when it started."""
        try:
            self.check_layout()
        except REDIS_FAILURES:
            raise StoreUnavailable("Redis is unreachable; try again shortly.") from None
        except LayoutError as exc:
            log.error("%s", exc)
            raise StoreUnavailable(str(exc)) from None

    def durability_warnings(self) -> list[str]:
        """Why an acknowledged revocation could be lost, one line per reason.

        Revocations are only as durable as Redis: without AOF and ``appendfsync always`` a
        crash forgets the last writes, and a revoked token becomes valid again. Managed Redis
        services often forbid CONFIG; then nothing can be said and nothing is reported.
        """
        warnings = []
        try:
            masters = self.connector.masters()
        except REDIS_FAILURES:
            return []
        for master in masters:
            where = _where(master)
            try:
                config = master.config_get("appendonly", "appendfsync")
                replicas = int(master.info("replication").get("connected_slaves", 0))
            except REDIS_FAILURES:
                continue
            settings = {_text(name): _text(value) for name, value in config.items()}
            appendonly, appendfsync = settings.get("appendonly"), settings.get("appendfsync")
            if appendonly != "yes" or appendfsync != "always":
                warnings.append(
                    f"Redis at {where} runs with appendonly={appendonly} "
                    f"appendfsync={appendfsync}: a Redis crash can lose acknowledged "
                    "revocations and logouts; configure appendonly yes and appendfsync always"
                )
            if replicas < self.replicas:
                warnings.append(
                    f"Redis at {where} has {replicas} connected replica(s) and "
                    f"VERIFIER_REDIS_MIN_REPLICAS is {self.replicas}: revocations and logouts "
                    "answer 503 until enough replicas confirm them"
                )
        return warnings

    # verification -----------------------------------------------------------------------------

    def lookup_in_memory(self, rev_id: str, user_id: str) -> Snapshot | None:
        """``lookup`` from the mirror alone, or None when only Redis can answer: the mirror is
        off, out of sync or unsure of these keys, or this process has not yet checked the
        layout of the Redis it would mirror."""
        if self.mirror is None or not self._layout_checked:
            return None
        legacy_key = self.keys.legacy_revocation(rev_id) if self.legacy_revocations else None
        return self.mirror.lookup(self.keys.revocation(user_id, rev_id),
                                  self.keys.cutoff(user_id), legacy_key)

    def lookup(self, rev_id: str, user_id: str) -> Snapshot:
        """Whether the token is revoked, and its user's cut-off: from the mirror when it is in
        sync, else in one round trip to the user's slot (an MGET)."""
        if not self._layout_checked:
            # before the mirror too: a process that started without Redis must not answer
            # from a mirror of keys it has not yet proven to be the layout it reads
            self._check_layout_lazily()
        revocation_key = self.keys.revocation(user_id, rev_id)
        cutoff_key = self.keys.cutoff(user_id)
        legacy_key = self.keys.legacy_revocation(rev_id) if self.legacy_revocations else None
        if self.mirror is not None:
            snapshot = self.mirror.lookup(revocation_key, cutoff_key, legacy_key)
            if snapshot is not None:
                return snapshot
        revoked, cutoff = self._run(
            "lookup", revocation_key, lambda node: node.mget([revocation_key, cutoff_key])
        )
        if legacy_key is not None and revoked is None:
            # a revocation migrated from layout 1 names no user: it has a slot of its own
            revoked = self._run("lookup", legacy_key, lambda node: node.get(legacy_key))
        return Snapshot(revoked=revoked is not None, cutoff=read_cutoff(cutoff))

    def revoke(self, rev_id: str, user_id: str, ttl: int | None) -> None:
        """Refuse the token from now on; ``ttl`` None keeps the revocation (token without exp)."""
        if ttl is not None and ttl > REVOCATION_TTL_MAX:
            ttl = None
        key = self.keys.revocation(user_id, rev_id)
        self._run("revoke", key, lambda node: self._confirmed(
            node, key, lambda client: client.set(key, "1", ex=ttl)))

    # sessions and users -----------------------------------------------------------------------

    def new_session_id(self, secret: str, user_id: str) -> str:
        """A session id that routes to its user's slot (``verifier.layout``)."""
        return f"{secret}{SESSION_TAG_SEPARATOR}{user_tag(user_id)}"

    def create_session(
        self,
        session_id: str,
        session: dict[str, Any],
        *,
        issued_at: float | None,
        now: float,
        subject: str | None = None,
    ) -> bool:
        """Store a session and update the user record; False when the user's cut-off refuses it.

        ``subject`` is who the user is in Redis (``verifier.issuers``): the user id (the
        default), scoped by its provider unless that is the primary one; the session keeps it
        when it differs, so a logout finds the user's index.

        In the same step, the login limits: over ``VERIFIER_LOGIN_RATE`` logins of the user in
        the last minute it raises LoginRateExceeded and writes nothing; at
        ``VERIFIER_MAX_SESSIONS_PER_USER`` live sessions the user's oldest are ended first,
        exactly as their logouts would end them.
        """
        user_id = session["userId"]
        if subject is None:
            subject = user_id
        elif subject != user_id:
            session = {**session, "subject": subject}
        session_hash = sha256_hex(session_id)
        tag = user_tag(subject)
        keys = [
            self.keys.cutoff(subject),
            self.keys.session(tag, session_hash),
            self.keys.sessions(subject),
            self.keys.user(subject),
            self.keys.logins(subject),
        ]
        args = [
            "" if issued_at is None else repr(float(issued_at)),
            json.dumps(session, separators=(",", ":")),
            self.session_ttl,
            session_hash,
            self.keys.session_prefix(tag),
            user_id,
            "true" if session["isAdmin"] else "false",
            session["provider"],
            repr(now),
            self.max_sessions,
            self.login_rate,
            LOGIN_WINDOW,
        ]
        reply = self._run("login", keys[0], lambda node: self._script("login", node, keys, args),
                          repeatable=False)
        outcome = int(reply[0])
        if outcome == 2:
            SESSIONS.labels("refused_by_limit").inc()
            raise LoginRateExceeded(
                f"This user logged in {self.login_rate} times in the last {LOGIN_WINDOW} "
                "seconds (VERIFIER_LOGIN_RATE); try again after Retry-After seconds.",
                retry_after=int(reply[1]),
            )
        ended = [_text(member) for member in reply[1:]]
        if ended:
            self._forget_legacy_pointers(ended)
            SESSIONS.labels("ended_by_limit").inc(len(ended))
            log.info("login ended the %d oldest session(s) of a user at "
                     "VERIFIER_MAX_SESSIONS_PER_USER=%d", len(ended), self.max_sessions)
        return outcome == 1

    def _forget_legacy_pointers(self, session_hashes: list[str]) -> None:
        """What a logout of a layout-1 session id also deletes: its pointer (another slot).

        The session itself is gone already; a pointer left behind names no session and expires
        with it, so a failure here is logged, not answered: the login did succeed.
        """
        for session_hash in session_hashes:
            pointer = self.keys.legacy_session(session_hash)

            def forget(node: redis.Redis, key: str = pointer) -> Any:
                return node.delete(key)

            try:
                self._run("login", pointer, forget)
            except StoreUnavailable:
                log.warning("a session pointer was left to expire on its own")

    def _session_tag(self, session_hash: str, session_id: str) -> str | None:
        """The user tag of a session: from its id, or for a layout-1 id from its pointer."""
        tag = session_id_tag(session_id)
        if tag is not None:
            return tag
        pointer = self.keys.legacy_session(session_hash)
        raw = self._run("session", pointer, lambda node: node.get(pointer))
        return None if raw is None else _text(raw)

    def get_session(self, session_id: str) -> dict[str, Any] | None:
        """The live session with this id, or None."""
        session_hash = sha256_hex(session_id)
        tag = self._session_tag(session_hash, session_id)
        if tag is None:
            return None
        key = self.keys.session(tag, session_hash)
        raw = self._run("session", key, lambda node: node.get(key))
        if raw is None:
            return None
        session: dict[str, Any] = json.loads(raw)
        return session

    def delete_session(self, session_id: str) -> bool:
        """End one session; False when it did not exist."""
        session_hash = sha256_hex(session_id)
        tag = self._session_tag(session_hash, session_id)
        if tag is None:
            return False
        keys = [self.keys.session(tag, session_hash)]
        args = [f"{self.keys.prefix}v2:sessions:{{{tag}}}:", session_hash]
        ended = bool(self._run("logout", keys[0], lambda node: self._confirmed(
            node, keys[0], lambda client: self._script("logout", client, keys, args))))
        if session_id_tag(session_id) is None:
            pointer = self.keys.legacy_session(session_hash)
            self._run("logout", pointer, lambda node: node.delete(pointer))
        return ended

    def end_user(self, user_id: str, now: float) -> tuple[float, int]:
        """Set the user's cut-off to ``now`` (never backwards) and end every session."""
        keys = [self.keys.cutoff(user_id), self.keys.sessions(user_id)]
        args = [repr(now), self.keys.session_prefix(user_tag(user_id))]
        cutoff, ended = self._run("end_user", keys[0], lambda node: self._confirmed(
            node, keys[0], lambda client: self._script("end_user", client, keys, args)))
        return float(cutoff), int(ended)

    def list_sessions(self, user_id: str) -> list[tuple[str, dict[str, Any]]]:
        """The user's live sessions, oldest first: (the hash of each id, the session).

        Only the hashes: a session id is a bearer credential, and Redis never held one.
        """
        index = self.keys.sessions(user_id)
        tag = user_tag(user_id)

        def read(node: redis.Redis) -> list[tuple[str, Any]]:
            kind = _text(node.type(index))
            if kind == "zset":
                members = [_text(member) for member in node.zrange(index, 0, -1)]
            elif kind == "set":  # written before the login limits: the next login converts it
                members = sorted(_text(member) for member in node.smembers(index))
            else:
                return []
            values = node.mget([self.keys.session(tag, member) for member in members]) \
                if members else []
            return list(zip(members, values, strict=True))

        found = []
        for session_hash, raw in self._run("sessions", index, read):
            if raw is None:
                continue  # ended or expired; the next login prunes the index
            found.append((session_hash, json.loads(raw)))
        # the index is scored by the login's exact time; a stable sort on the whole seconds of
        # createdAt keeps that order (and orders a plain set written before the login limits)
        found.sort(key=lambda item: item[1].get("createdAt", 0))
        return found

    def get_user(self, user_id: str) -> tuple[dict[str, str] | None, float | None]:
        """The user record (None if never logged in) and the user's cut-off."""
        user_key, cutoff_key = self.keys.user(user_id), self.keys.cutoff(user_id)

        def read(node: redis.Redis) -> list[Any]:
            pipe = node.pipeline(transaction=False)
            pipe.hgetall(user_key)
            pipe.get(cutoff_key)
            result: list[Any] = pipe.execute()
            return result

        record, cutoff = self._run("user", user_key, read)
        decoded = {k.decode(): v.decode() for k, v in record.items()} if record else None
        return decoded, read_cutoff(cutoff)


def _refusal(error: redis.ResponseError) -> str:
    """What Redis's refusal means, in words a caller can act on (never the command).

    redis-py strips the code of the errors it has a class for (OOM, READONLY); a script's
    error carries it inside its message.
    """
    text = str(error)
    if isinstance(error, OutOfMemoryError) or "OOM " in text:
        return "Redis is full (maxmemory reached) and refused the change"
    if isinstance(error, ReadOnlyError) or "READONLY " in text:
        return "Redis is a read-only replica and refused the change"
    if "MISCONF " in text:
        return "Redis cannot persist to disk and refused the change"
    return "Redis refused the command"


def find_v1_key(connector: Connector, keys: KeyLayout) -> str | None:
    """One layout-1 key, or None; scans every master once (the mirror's old probes excepted)."""
    pattern = glob_escape(keys.prefix) + "*"
    for master in connector.masters():
        for raw in master.scan_iter(match=pattern, count=1000):
            key = _text(raw)
            rest = key[len(keys.prefix):]
            if rest.startswith(V1_KINDS) and not rest.startswith("revoked:probe:"):
                return key
    return None


def _where(node: redis.Redis) -> str:
    kwargs = node.connection_pool.connection_kwargs
    if "path" in kwargs:
        return f"unix://{kwargs['path']}"
    return f"{kwargs.get('host')}:{kwargs.get('port')}"


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
