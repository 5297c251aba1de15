"""This process's copy of every revocation and user cut-off, kept current by Redis itself.

Why: reading Redis on every verification costs a round trip and, through redis-py, more CPU than
the RSA check it guards. With the whole (small) revocation state in the process, a verification
needs no round trip at all, for a repeated token and for one never seen before alike.

How it stays exact (docs/verifier.md, "Consistency"):

1. One dedicated RESP3 connection per process asks Redis to track the revocation and cut-off
   prefixes (``CLIENT TRACKING ON BCAST PREFIX ...``). From then on Redis pushes the name of
   every such key that changes, expires or is evicted, whoever changed it, on that connection;
   a probe key written at each sync proves the pushes reach the handler.
2. Only then are the keys loaded (SCAN): a key written during the load is pushed as changed, so
   once loaded, absence from the mirror means absence from Redis.
3. Before answering from the mirror, a request reads every push already waiting on the
   connection. Redis writes a change's pushes in the same pass over its clients as the writer's
   reply, though not necessarily first, so the verifier's own revocation writes end with a PING
   (``store._fenced``), answered in a later pass: by then the push has been handed to this
   connection's socket. docs/verifier.md says where this still rests on timing (a network that
   delays one connection, a mirror so far behind that Redis holds its pushes back).
4. A pushed key is *unsettled*: a request that needs it reads Redis, and the background thread
   reads it again and settles it (unless it changed once more meanwhile).
5. Whenever the mirror cannot be sure it is current (starting, the connection lost or silent for
   longer than ``MAX_SILENCE``, Redis flushed, restarted or failed over), ``lookup`` answers
   None and the caller reads Redis per request (``closed`` mode: 503 if that fails) until the
   background thread has tracked and loaded everything again.
"""

from __future__ import annotations

import logging
import os
import secrets
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import redis

from verifier.layout import glob_escape

log = logging.getLogger(__name__)

HEARTBEAT = 0.1
"""Seconds between the background thread's visits: it drains pushes, pings and settles keys."""

MAX_SILENCE = 1.0
"""The mirror is trusted only while Redis answered a ping sent at most this long ago: a
connection that silently stops delivering (a network partition) is noticed within this time."""

LOAD_BATCH = 1000

PROBE_LIFETIME_MS = 2000
"""How long the key written to prove that pushes arrive lives (it names no token)."""

_INVALIDATION = object()


@dataclass(frozen=True)
class Snapshot:
    """What the state says of a token: whether it is revoked, and its user's cut-off."""

    revoked: bool
    cutoff: float | None


def read_cutoff(raw: bytes | str | None) -> float | None:
    """A stored cut-off as a number; an unreadable one refuses every token of the user."""
    if raw is None:
        return None
    try:
        return float(raw)
    except ValueError:
        # only the verifier writes cut-offs; failing shut is the safe reading of a damaged one
        return float("inf")


def _key(raw: bytes | str) -> str:
    # lossless: a key Redis names must compare equal to the str the verifier would ask for
    return raw.decode("utf-8", "surrogateescape") if isinstance(raw, bytes) else raw


class Mirror:
    """Every revocation and cut-off under two key prefixes, or None when it cannot be sure."""

    def __init__(
        self,
        *,
        pool: Callable[[], redis.ConnectionPool | None],
        revoked_prefix: str,
        cutoff_prefix: str,
        timeout: float,
        max_keys: int,
        reader: Callable[[], redis.Redis],
        on_sync: Callable[[], None] = lambda: None,
    ) -> None:
        self._pool = pool  # a RESP3 pool to the master, made anew for each sync
        self.revoked_prefix = revoked_prefix
        # the probe keys each sync writes under the revoked prefix; no revocation is named so
        # (those are "{tag}:..."), and none is mirrored or settled (the load's bound still
        # counts the few alive while it scans)
        self._probe_prefix = f"{revoked_prefix}probe:"
        self.cutoff_prefix = cutoff_prefix
        self.timeout = timeout
        self.max_keys = max_keys
        self._reader = reader  # the store's ordinary client, for loading and settling
        self._on_sync = on_sync  # a sync proves Redis answers again
        self._lock = threading.Lock()
        self._pid = 0
        self._stop = threading.Event()  # the running thread's own; a new thread gets a new one
        self._disabled = False
        # never reset: a settle that read keys before a resync can never match a later push
        self._pushes = 0
        self._reset()

    def _reset(self) -> None:
        self._conn: Any = None
        self._synced = False
        self._flushed = False
        self._revoked: set[str] = set()
        self._cutoffs: dict[str, float] = {}
        self._unsettled: dict[str, int] = {}
        self._confirmed = 0.0  # when the newest ping Redis answered was sent
        self._ping_sent: float | None = None

    # the hot path -----------------------------------------------------------------------------

    def lookup(
        self, revocation_key: str, cutoff_key: str | None, legacy_key: str | None = None
    ) -> Snapshot | None:
        """The state of these keys as Redis holds it now, or None: read Redis instead.

        ``legacy_key`` is a second name the token's revocation may have (migrated data).
        """
        if self._pid != os.getpid():
            self._start()
        with self._lock:
            if not self._synced or time.monotonic() - self._confirmed > MAX_SILENCE:
                return None
            if not self._drain():
                return None
            unsettled = self._unsettled
            if revocation_key in unsettled or (cutoff_key is not None and cutoff_key in unsettled):
                return None
            if legacy_key is not None and legacy_key in unsettled:
                return None
            return Snapshot(
                revoked=revocation_key in self._revoked
                or (legacy_key is not None and legacy_key in self._revoked),
                cutoff=self._cutoffs.get(cutoff_key) if cutoff_key is not None else None,
            )

    @property
    def synced(self) -> bool:
        """Whether lookups are answered from the mirror right now."""
        return self._synced

    def state(self) -> tuple[bool, bool, int]:
        """(on, in sync and recently confirmed, keys held), for the metrics; starts this
        process's thread if no lookup has yet, so an idle worker is in sync too."""
        if self._pid != os.getpid():
            self._start()
        with self._lock:
            in_sync = self._synced and time.monotonic() - self._confirmed <= MAX_SILENCE
            return not self._disabled, in_sync, len(self._revoked) + len(self._cutoffs)

    def _drain(self) -> bool:
        """Read every push and reply waiting on the tracking connection; False if it is lost.

        Called with the lock held: the connection is read by one thread at a time.
        """
        conn = self._conn
        try:
            while conn.can_read(timeout=0):
                reply = conn.read_response(push_request=True)
                if reply is _INVALIDATION:
                    continue
                if reply not in (b"PONG", "PONG"):
                    # only pings are sent here: anything else means pushes are not reaching
                    # the handler (a parser that returns them as replies), so nothing is known
                    self._lose("an unexpected reply on the tracking connection")
                    return False
                if self._ping_sent is not None:
                    self._confirmed = self._ping_sent
                self._ping_sent = None
        except (redis.RedisError, OSError, ValueError) as exc:
            self._lose(f"the tracking connection failed ({type(exc).__name__})")
            return False
        if self._flushed:
            self._lose("Redis was flushed")
            return False
        if len(self._revoked) + len(self._cutoffs) + len(self._unsettled) > self.max_keys:
            self._disable(f"more than VERIFIER_MIRROR_MAX_KEYS={self.max_keys} keys")
            return False
        return True

    def _on_invalidation(self, push: list[Any]) -> object:
        """redis-py's callback for an ``invalidate`` push, run inside ``_drain``."""
        keys = push[1] if len(push) > 1 else None
        if keys is None:  # FLUSHDB/FLUSHALL: everything may have changed
            self._flushed = True
            return _INVALIDATION
        for raw in keys:
            key = _key(raw)
            if key.startswith(self._probe_prefix):
                continue  # a sync's probe coming or going: no revocation
            self._pushes += 1
            self._unsettled[key] = self._pushes
            self._revoked.discard(key)
            self._cutoffs.pop(key, None)
        return _INVALIDATION

    def _lose(self, reason: str) -> None:
        """Stop answering from the mirror (lock held); the background thread syncs again."""
        if self._synced:
            log.warning("revocation mirror out of sync: %s; reading Redis per request", reason)
        conn = self._conn
        self._reset()
        if conn is not None:
            conn.disconnect()

    def _disable(self, reason: str) -> None:
        self._lose(reason)
        self._disabled = True
        self._stop.set()
        log.warning("revocation mirror off for this process: %s", reason)

    # the background thread ------------------------------------------------------------------

    def _start(self) -> None:
        """Start this process's thread (a forked worker starts its own; the parent's is gone)."""
        with self._lock:
            if self._pid == os.getpid():
                return
            self._reset()
            self._pid = os.getpid()
            self._stop = threading.Event()
            if self._disabled:
                return
            thread = threading.Thread(target=self._run, args=(self._stop,),
                                      name="revocation-mirror", daemon=True)
            thread.start()

    def stop(self) -> None:
        """Stop the background thread and drop the connection (tests, shutdown)."""
        self._stop.set()
        with self._lock:
            self._lose("stopped")
            self._pid = 0  # a later lookup starts it again

    def _run(self, stop: threading.Event) -> None:
        """The background thread: sync, then drain, ping and settle every beat, until ``stop``.

        ``stop`` is this thread's own event: a stop() followed by a lookup starts a new thread
        with a new event, and this one ends instead of running beside it.
        """
        backoff = HEARTBEAT
        failures = 0
        while not stop.is_set():
            try:
                if self._synced:
                    stop.wait(HEARTBEAT)
                    pending = self._beat()
                    if pending:
                        self._settle(pending)
                else:
                    self._sync(stop)
                backoff, failures = HEARTBEAT, 0
            except MirrorUnsupported as exc:
                with self._lock:
                    self._disable(str(exc))
                return
            except (redis.RedisError, OSError) as exc:
                # a failed settle leaves its keys unsettled (lookups read Redis); a failed sync
                # leaves the mirror out of sync: either way, try again a little later
                failures += 1
                if failures == 1:
                    log.warning("revocation mirror: Redis failed (%s); retrying",
                                type(exc).__name__)
                stop.wait(backoff)
                backoff = min(backoff * 2, 2.0)
            except Exception:  # the thread must outlive any surprise, and say so
                log.exception("revocation mirror failed; reading Redis per request until it syncs")
                with self._lock:
                    self._lose("an unexpected error")
                stop.wait(2.0)

    def _beat(self) -> dict[str, int]:
        """Drain, ping, notice silence; the unsettled keys to read again."""
        with self._lock:
            if not self._synced or not self._drain():
                return {}
            now = time.monotonic()
            if self._ping_sent is None:
                try:
                    self._conn.send_command("PING")
                except (redis.RedisError, OSError) as exc:
                    self._lose(f"the tracking connection failed ({type(exc).__name__})")
                    return {}
                self._ping_sent = now
            elif now - self._ping_sent > MAX_SILENCE:
                self._lose(f"Redis did not answer a ping within {MAX_SILENCE} s")
                return {}
            return dict(list(self._unsettled.items())[:LOAD_BATCH])

    def _settle(self, pending: dict[str, int]) -> None:
        """Read unsettled keys again; keep each value unless the key changed once more since."""
        keys = list(pending)
        values = self._reader().mget(keys)
        with self._lock:
            if not self._synced or not self._drain():
                return
            for key, value in zip(keys, values, strict=True):
                if self._unsettled.get(key) == pending[key]:
                    del self._unsettled[key]
                    self._apply(key, value)

    def _apply(self, key: str, value: bytes | str | None) -> None:
        if key.startswith(self.revoked_prefix):
            if value is None:
                self._revoked.discard(key)
            else:
                self._revoked.add(key)
        else:
            cutoff = read_cutoff(value)
            if cutoff is None:
                self._cutoffs.pop(key, None)
            else:
                self._cutoffs[key] = cutoff

    def _sync(self, stop: threading.Event) -> None:
        """Track both prefixes, prove pushes arrive, then load; the mirror answers from then on."""
        started = time.monotonic()
        pool = self._pool()
        if pool is None:
            raise MirrorUnsupported("this Redis mode has no single master to track")
        conn: Any = pool.make_connection()
        try:
            conn.connect()
            self._track_and_probe(conn)
        except BaseException:
            conn.disconnect()
            raise
        # from here on every change is pushed to the handler, so what the load misses is
        # unsettled, not lost (the pushes before the load are moot: the load reads them)
        conn._parser.set_invalidation_push_handler(self._on_invalidation)
        with self._lock:
            previous, self._conn = self._conn, conn
        if previous is not None and previous is not conn:
            previous.disconnect()
        client = self._reader()
        try:
            revoked = {key for key in self._scan(client, self.revoked_prefix)
                       if not key.startswith(self._probe_prefix)}
            cutoff_keys = list(self._scan(client, self.cutoff_prefix))
        except _TooMany:
            with self._lock:
                self._disable(f"more than VERIFIER_MIRROR_MAX_KEYS={self.max_keys} keys")
            return
        cutoffs: dict[str, float] = {}
        for index in range(0, len(cutoff_keys), LOAD_BATCH):
            batch = cutoff_keys[index:index + LOAD_BATCH]
            for key, raw in zip(batch, client.mget(batch), strict=True):
                value = read_cutoff(raw)
                if value is not None:
                    cutoffs[key] = value
        with self._lock:
            if self._conn is not conn or stop.is_set():
                conn.disconnect()
                return
            self._revoked, self._cutoffs = revoked, cutoffs
            self._confirmed = started
            self._synced = True
            # the pushes that came during the load unsettle what they name
            if not self._drain():
                return
        self._on_sync()
        log.info(
            "revocation mirror in sync: %d revocations, %d cut-offs loaded in %.3f s",
            len(revoked), len(cutoffs), time.monotonic() - started,
        )

    def _track_and_probe(self, conn: Any) -> None:
        """Turn tracking on, then write a short-lived key under the prefix and wait for its push.

        The probe proves, on this Redis and this redis-py and hiredis, that a push reaches the
        handler: a setup that returned pushes as replies, or a Redis that does not track, would
        otherwise leave a mirror that never hears of a revocation. It costs one write per sync.
        """
        probe = f"{self._probe_prefix}{secrets.token_hex(8)}"
        heard: list[str] = []

        def hear(push: list[Any]) -> object:
            heard.extend(_key(raw) for raw in (push[1] or []))
            return _INVALIDATION

        conn._parser.set_invalidation_push_handler(hear)
        conn.send_command(
            "CLIENT", "TRACKING", "ON", "BCAST",
            "PREFIX", self.revoked_prefix, "PREFIX", self.cutoff_prefix,
        )
        if conn.read_response() not in (b"OK", "OK"):
            raise redis.ResponseError("CLIENT TRACKING was refused")
        conn.send_command("SET", probe, "1", "PX", PROBE_LIFETIME_MS)
        acknowledged = False
        deadline = time.monotonic() + max(1.0, 4 * self.timeout)
        while not (acknowledged and probe in heard):
            if time.monotonic() > deadline:
                raise MirrorUnsupported("no invalidation push arrived for a probe key")
            reply = conn.read_response(push_request=True)
            if reply is _INVALIDATION:
                continue
            if reply in (b"OK", "OK"):
                acknowledged = True
                continue
            raise MirrorUnsupported(
                "invalidation pushes come back as replies; this needs redis-py 8.1 or newer "
                "and hiredis 3.2 or newer (or no hiredis)"
            )

    def _scan(self, client: redis.Redis, prefix: str) -> Iterable[str]:
        keys = client.scan_iter(match=glob_escape(prefix) + "*", count=LOAD_BATCH)
        for loaded, raw in enumerate(keys, start=1):
            if loaded > self.max_keys:
                raise _TooMany
            yield _key(raw)


class _TooMany(Exception):
    """Raised when the keys to load pass the configured bound."""


class MirrorUnsupported(Exception):
    """Raised when this Redis and client cannot deliver invalidation pushes to the mirror."""
