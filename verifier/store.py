"""The verifier's Redis state: revocations, user cut-offs, sessions and user records.

Key layout (``P`` is ``VERIFIER_REDIS_PREFIX``, default ``jwtauth:``); docs/verifier.md has the
same table for operators:

==============================  ==========================  ====================================
key                             value                       lifetime
==============================  ==========================  ====================================
``P revoked:jti:<jti>``         ``1``                       until the token's ``exp`` plus the
``P revoked:sha256:<hash>``     (token without a ``jti``)   largest leeway (1 h); permanent for
                                                            a token without ``exp``
``P cutoff:<userId>``           unix seconds (float)        permanent (one small key per user)
``P session:<sha256(id)>``      session JSON                VERIFIER_SESSION_TTL
``P user-sessions:<userId>``    set of session hashes       VERIFIER_SESSION_TTL from the
                                                            user's latest login
``P user:<userId>``             hash: the user record       permanent, like a user database
``P revoked:probe:<random>``    ``1``, set by the mirror    2 s (proves Redis pushes changes)
==============================  ==========================  ====================================

Session ids are stored hashed: read access to Redis does not hand out live sessions.

There is deliberately no verification cache in Redis. Measured here: with ``appendfsync always``
(what makes a revocation survive ``kill -9``) a cache write costs about 4 ms and blocks Redis for
every other client while it fsyncs, over an order of magnitude more than the RSA verification it
would save (docs/verifier.md); writing one per fresh token cut fresh-token throughput to about
260 requests/s. The verified results are cached in each process instead
(``verifier.service.LocalCache``); the revocations and cut-offs each request must check come
from the process's mirror of Redis (``verifier.mirror``), or from one MGET while the mirror is
out of sync.

Connections: redis-py with short connect and socket timeouts, one immediate retry (a pooled
connection left over from before a Redis restart fails once, and the retry reconnects), and a
short circuit breaker so that a dead Redis costs a fast 503 instead of a timeout per request.
The client is created lazily in the process that uses it, so nothing made in the gunicorn
master (the app is preloaded before fork) carries a socket into a worker.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from shared.digest import sha256_hex
from verifier.config import VerifierSettings
from verifier.errors import StoreUnavailable
from verifier.mirror import Mirror, Snapshot, read_cutoff

log = logging.getLogger(__name__)

REVOCATION_MARGIN = 3600
"""Seconds a revocation outlives its token's ``exp``: the largest VERIFIER_LEEWAY allowed, so a
revocation never lapses while some verifier would still accept the token."""

BREAKER_SECONDS = 0.5
"""After a Redis failure, requests fail fast for this long (no retry storm against a dead
Redis), except for one probe at a time, every ``PROBE_INTERVAL``: the first that succeeds closes
the breaker, so a Redis that came back is used again within that interval, not the window."""

PROBE_INTERVAL = 0.05

_LOGIN = """
local cutoff = redis.call('GET', KEYS[1])
if cutoff and (ARGV[1] == '' or tonumber(ARGV[1]) <= tonumber(cutoff)) then
  return 0
end
redis.call('SET', KEYS[2], ARGV[2], 'EX', ARGV[3])
for _, member in ipairs(redis.call('SMEMBERS', KEYS[3])) do
  if redis.call('EXISTS', ARGV[5] .. member) == 0 then
    redis.call('SREM', KEYS[3], member)
  end
end
redis.call('SADD', KEYS[3], ARGV[4])
redis.call('EXPIRE', KEYS[3], ARGV[3])
redis.call('HSETNX', KEYS[4], 'createdAt', ARGV[9])
redis.call('HSET', KEYS[4], 'userId', ARGV[6], 'isAdmin', ARGV[7], 'provider', ARGV[8],
           'lastLoginAt', ARGV[9])
return 1
"""
# atomic with the cut-off script below: a login racing a user-wide logout either sees the
# cut-off and is refused, or is registered in the index before the cut-off ends every session

_LOGOUT = """
local raw = redis.call('GET', KEYS[1])
if not raw then return 0 end
redis.call('DEL', KEYS[1])
local ok, session = pcall(cjson.decode, raw)
if ok and type(session) == 'table' and type(session.userId) == 'string' then
  redis.call('SREM', ARGV[1] .. session.userId, ARGV[2])
end
return 1
"""

_END_USER = """
local current = redis.call('GET', KEYS[1])
local cutoff = ARGV[1]
if current and tonumber(current) and tonumber(current) > tonumber(ARGV[1]) then
  cutoff = current
else
  redis.call('SET', KEYS[1], ARGV[1])
end
local ended = 0
for _, member in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  ended = ended + redis.call('DEL', ARGV[2] .. member)
end
redis.call('DEL', KEYS[2])
return {cutoff, ended}
"""
# the cut-off only moves forward: a second user-wide logout never re-admits older tokens


def revocation_id(jti: Any, token_hash: str) -> str:
    """What a revocation is keyed by: the ``jti`` when usable, else the token's hash.

    Seed-style tokens have no ``jti``; their hash is their identity. A ``jti`` that is not a
    short printable string is ignored in favour of the hash, so keys stay bounded.
    """
    if isinstance(jti, str) and 0 < len(jti) <= 128 and jti.isprintable():
        return f"jti:{jti}"
    return f"sha256:{token_hash}"


class Store:
    """The verifier's Redis keys behind small methods; raises StoreUnavailable when Redis fails."""

    def __init__(self, settings: VerifierSettings) -> None:
        self.url = settings.redis_url
        self.prefix = settings.redis_prefix
        self.timeout = settings.redis_timeout_ms / 1000
        self.session_ttl = settings.session_ttl
        self._client: redis.Redis | None = None
        self._scripts: dict[str, Any] = {}
        self._pid = 0
        self._lock = threading.Lock()
        self._down_until = 0.0
        self._next_probe = 0.0
        self._probe = threading.Lock()
        self.mirror = (
            Mirror(
                url=self.url,
                revoked_prefix=f"{self.prefix}revoked:",
                cutoff_prefix=f"{self.prefix}cutoff:",
                timeout=self.timeout,
                max_keys=settings.mirror_max_keys,
                reader=self._redis,
                on_sync=self._close_breaker,
            )
            if settings.mirror_max_keys > 0
            else None
        )

    # keys -----------------------------------------------------------------------------------

    def revocation_key(self, rev_id: str) -> str:
        return f"{self.prefix}revoked:{rev_id}"

    def cutoff_key(self, user_id: str) -> str:
        return f"{self.prefix}cutoff:{user_id}"

    def session_key(self, session_hash: str) -> str:
        return f"{self.prefix}session:{session_hash}"

    def index_key(self, user_id: str) -> str:
        return f"{self.prefix}user-sessions:{user_id}"

    def user_key(self, user_id: str) -> str:
        return f"{self.prefix}user:{user_id}"

    # connection -----------------------------------------------------------------------------

    def _redis(self) -> redis.Redis:
        """This process's client; a forked worker makes its own instead of sharing the master's."""
        pid = os.getpid()
        if self._client is None or self._pid != pid:
            with self._lock:
                if self._client is None or self._pid != pid:
                    client = redis.Redis.from_url(
                        self.url,
                        socket_connect_timeout=self.timeout,
                        socket_timeout=self.timeout,
                        # one immediate retry heals a connection Redis closed while it was away;
                        # redis-py's default (10 retries with backoff) would be a retry storm
                        retry=Retry(NoBackoff(), 1),
                    )
                    self._scripts = {
                        "login": client.register_script(_LOGIN),
                        "logout": client.register_script(_LOGOUT),
                        "end_user": client.register_script(_END_USER),
                    }
                    self._client = client
                    self._pid = pid
                    self._down_until = 0.0
        assert self._client is not None
        return self._client

    def _run(self, what: str, action: Any) -> Any:
        """Call ``action(client)``; a Redis failure is StoreUnavailable and opens the breaker."""
        probing = False
        now = time.monotonic()
        if now < self._down_until:
            # open: fail fast, but let one request at a time try Redis every PROBE_INTERVAL
            if now < self._next_probe or not self._probe.acquire(blocking=False):
                raise StoreUnavailable("Redis is unreachable; try again shortly.")
            probing = True
            self._next_probe = now + PROBE_INTERVAL
        try:
            result = action(self._redis())
        except redis.RedisError as exc:
            failed = time.monotonic()
            self._down_until = failed + BREAKER_SECONDS
            self._next_probe = failed + PROBE_INTERVAL
            log.warning("redis %s failed: %s", what, type(exc).__name__)
            raise StoreUnavailable("Redis is unreachable; try again shortly.") from None
        finally:
            if probing:
                self._probe.release()
        if probing:
            self._close_breaker()
        return result

    def close(self) -> None:
        """Drop this process's connections (tests, shutdown)."""
        if self.mirror is not None:
            self.mirror.stop()
        if self._client is not None and self._pid == os.getpid():
            self._client.close()
        self._client = None

    def durability_warning(self) -> str | None:
        """Why an acknowledged revocation could be lost in a Redis crash, or None.

        Revocations are only as durable as Redis: without AOF and ``appendfsync always`` a
        crash forgets the last writes, and a revoked token becomes valid again. Managed Redis
        services often forbid CONFIG; then nothing can be said and nothing is reported.
        """
        try:
            config = self._run(
                "config", lambda client: client.config_get("appendonly", "appendfsync")
            )
        except (StoreUnavailable, redis.RedisError):
            return None
        settings = {_text(name): _text(value) for name, value in config.items()}
        appendonly, appendfsync = settings.get("appendonly"), settings.get("appendfsync")
        if appendonly == "yes" and appendfsync == "always":
            return None
        return (
            f"Redis at {_without_password(self.url)} runs with appendonly={appendonly} "
            f"appendfsync={appendfsync}: a Redis crash can lose acknowledged revocations and "
            "logouts; configure appendonly yes and appendfsync always"
        )

    def ping(self) -> bool:
        """Whether Redis answers right now (readiness); an answer closes the breaker.

        A probe, not a request: it asks Redis even while the breaker is open, so readiness
        reports a Redis that came back at once, and requests use it again from then on.
        """
        try:
            answered = bool(self._redis().ping())
        except redis.RedisError:
            return False
        if answered:
            self._close_breaker()
        return answered

    def _close_breaker(self) -> None:
        self._down_until = 0.0

    # verification ---------------------------------------------------------------------------

    def lookup(self, rev_id: str, user_id: str | None) -> Snapshot:
        """Whether the token is revoked, and its user's cut-off: from the mirror when it is in
        sync, else in one round trip (an MGET)."""
        revocation_key = self.revocation_key(rev_id)
        cutoff_key = self.cutoff_key(user_id) if user_id is not None else None
        if self.mirror is not None:
            snapshot = self.mirror.lookup(revocation_key, cutoff_key)
            if snapshot is not None:
                return snapshot
        keys = [revocation_key, cutoff_key or self.prefix + "cutoff:-"]
        revoked, cutoff = self._run("lookup", lambda client: client.mget(keys))
        return Snapshot(
            revoked=revoked is not None,
            cutoff=read_cutoff(cutoff) if cutoff_key is not None else None,
        )

    def revoke(self, rev_id: str, ttl: int | None) -> None:
        """Refuse the token from now on; ``ttl`` None keeps the revocation (token without exp)."""
        key = self.revocation_key(rev_id)
        self._run("revoke", lambda client: _fenced(client, client.set(key, "1", ex=ttl)))

    # sessions and users ---------------------------------------------------------------------

    def create_session(
        self,
        session_id: str,
        session: dict[str, Any],
        *,
        issued_at: float | None,
        now: float,
    ) -> bool:
        """Store a session and update the user record; False when the user's cut-off refuses it."""
        user_id = session["userId"]
        session_hash = sha256_hex(session_id)
        keys = [
            self.cutoff_key(user_id),
            self.session_key(session_hash),
            self.index_key(user_id),
            self.user_key(user_id),
        ]
        args = [
            "" if issued_at is None else repr(float(issued_at)),
            json.dumps(session, separators=(",", ":")),
            self.session_ttl,
            session_hash,
            self.prefix + "session:",
            user_id,
            "true" if session["isAdmin"] else "false",
            session["provider"],
            repr(now),
        ]
        created = self._run("login", lambda client: self._scripts["login"](keys, args, client))
        return bool(created)

    def get_session(self, session_id: str) -> dict[str, Any] | None:
        """The live session with this id, or None."""
        key = self.session_key(sha256_hex(session_id))
        raw = self._run("session", lambda client: client.get(key))
        if raw is None:
            return None
        session: dict[str, Any] = json.loads(raw)
        return session

    def delete_session(self, session_id: str) -> bool:
        """End one session; False when it did not exist."""
        session_hash = sha256_hex(session_id)
        keys = [self.session_key(session_hash)]
        args = [self.prefix + "user-sessions:", session_hash]
        return bool(
            self._run("logout", lambda client: self._scripts["logout"](keys, args, client))
        )

    def end_user(self, user_id: str, now: float) -> tuple[float, int]:
        """Set the user's cut-off to ``now`` (never backwards) and end every session."""
        keys = [self.cutoff_key(user_id), self.index_key(user_id)]
        args = [repr(now), self.prefix + "session:"]
        cutoff, ended = self._run(
            "end_user",
            lambda client: _fenced(client, self._scripts["end_user"](keys, args, client)),
        )
        return float(cutoff), int(ended)

    def get_user(self, user_id: str) -> tuple[dict[str, str] | None, float | None]:
        """The user record (None if never logged in) and the user's cut-off."""

        def read(client: redis.Redis) -> list[Any]:
            pipe = client.pipeline(transaction=False)
            pipe.hgetall(self.user_key(user_id))
            pipe.get(self.cutoff_key(user_id))
            result: list[Any] = pipe.execute()
            return result

        record, cutoff = self._run("user", read)
        decoded = {k.decode(): v.decode() for k, v in record.items()} if record else None
        return decoded, read_cutoff(cutoff)


def _fenced(client: redis.Redis, result: Any) -> Any:
    """``result`` of a write the revocation mirrors must see, once Redis has sent it to them.

    Redis writes a change's invalidation pushes in the same pass over its clients as the
    writer's reply, and not necessarily first (it serves the newest output first): a mirror
    could answer "not revoked" after the acknowledgement. A command sent after the write's reply
    arrived is answered in a later pass, when the pushes of that pass have been written to every
    mirror's socket; so the PING (on whichever pooled connection) ends the write. Never pipeline
    the two: they would be answered in the same pass. If Redis fails the PING, the revocation
    itself has happened; the caller's retry is harmless (docs/verifier.md, "Consistency").
    """
    client.ping()
    return result


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _without_password(url: str) -> str:
    """The Redis URL as it may appear in a log line."""
    scheme, separator, rest = url.partition("://")
    if separator and "@" in rest:
        rest = "***@" + rest.rsplit("@", 1)[1]
    return f"{scheme}{separator}{rest}"
