"""``jwt-auth redis migrate``: move an earlier verifier's keys (layout 1) to layout 2.

Layout 1 named keys by kind alone (``P revoked:jti:..``, ``P cutoff:<userId>``, ...), which
Redis Cluster cannot run together; layout 2 (``verifier.layout``) puts every key of a user in
one hash slot. Each key is copied to its new name with its remaining lifetime, and only then
deleted, so an interrupted run loses nothing and a second run finishes the job:

- a revocation names no user, so it moves to the ``{legacy}`` slot, which the verifier checks
  as well as the user's own for as long as the marker says legacy revocations exist;
- a cut-off keeps the later of the old and any new value (it only ever moves forward);
- a session moves into its user's slot, joins the user's session index, and leaves a pointer
  so that its old id (no ``.tag``) still finds it;
- a user record fills in the fields a newer login has not written yet;
- the old session indexes are rebuilt from the sessions, then dropped.

The marker ``P layout`` is written last: verifiers refuse to start while layout-1 keys exist
and no marker says they were migrated.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator

import click
import redis

from shared.startup import exit_on_startup_error
from verifier.layout import VERSION, KeyLayout, glob_escape, user_tag
from verifier.redisconn import Connector, RedisSettings
from verifier.store import REDIS_FAILURES

PROGRESS_EVERY = 2.0

_RAISE_CUTOFF = """
local current = redis.call('GET', KEYS[1])
if not current or not tonumber(current) or tonumber(current) < tonumber(ARGV[1]) then
  redis.call('SET', KEYS[1], ARGV[1])
end
return 1
"""

_ADD_SESSION = """
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('SADD', KEYS[2], ARGV[3])
if redis.call('PTTL', KEYS[2]) < tonumber(ARGV[2]) then
  redis.call('PEXPIRE', KEYS[2], ARGV[2])
end
return 1
"""
# the index lives as long as its longest session, as a login leaves it


class Migration:
    """One run over every master: copy, then delete, each layout-1 key."""

    def __init__(self, connector: Connector, keys: KeyLayout, *, dry_run: bool) -> None:
        self.connector = connector
        self.keys = keys
        self.dry_run = dry_run
        self.counts: Counter[str] = Counter()
        self.legacy_revocations = False

    def run(self, progress: Callable[[Counter[str]], None]) -> Counter[str]:
        # sessions before indexes: an index is rebuilt from the sessions, then dropped
        for kind in ("revoked:", "cutoff:", "session:", "user:", "user-sessions:"):
            for key in self._scan(kind):
                self._move(kind, key)
                progress(self.counts)
        if not self.dry_run:
            marker = self.keys.marker
            node = self.connector.node_for(marker)
            node.hsetnx(marker, "legacy-revocations", 0)  # 1 stays 1, from this run or another
            node.hset(marker, "version", VERSION)  # last: from here on the data reads as layout 2
        return self.counts

    def _scan(self, kind: str) -> Iterator[str]:
        pattern = glob_escape(self.keys.v1(kind, "")) + "*"
        for master in self.connector.masters():
            for raw in master.scan_iter(match=pattern, count=1000):
                key = raw.decode("utf-8", "surrogateescape")
                # "user:*" does not match "user-sessions:*", but a prefix could end oddly
                if key.startswith(self.keys.v1(kind, "")):
                    yield key

    def _move(self, kind: str, key: str) -> None:
        rest = key[len(self.keys.v1(kind, "")):]
        source = self.connector.node_for(key)
        if kind == "revoked:":
            if rest.startswith("probe:"):  # an earlier mirror's 2-second probe: nothing to keep
                self._delete(source, key, "probes")
                return
            value, ttl = source.get(key), source.pttl(key)
            if value is None:
                return  # expired meanwhile
            target = self.keys.legacy_revocation(rest)
            if not self.dry_run and not self.legacy_revocations:
                # flagged before the first one moves: a run that stops after moving them, or
                # a verifier started before the marker's version is written, still checks them
                marker = self.keys.marker
                self.connector.node_for(marker).hset(marker, "legacy-revocations", 1)
            self.legacy_revocations = True
            if not self.dry_run:
                node = self.connector.node_for(target)
                node.set(target, value, px=ttl if ttl > 0 else None)
            self._delete(source, key, "revocations")
        elif kind == "cutoff:":
            value = source.get(key)
            if value is None:
                return
            target = self.keys.cutoff(rest)
            if not self.dry_run:
                node = self.connector.node_for(target)
                node.eval(_RAISE_CUTOFF, 1, target, value)
            self._delete(source, key, "cut-offs")
        elif kind == "session:":
            self._move_session(source, key, rest)
        elif kind == "user:":
            record = source.hgetall(key)
            if record and not self.dry_run:
                target = self.keys.user(rest)
                node = self.connector.node_for(target)
                pipe = node.pipeline(transaction=True)
                for field, value in record.items():
                    pipe.hsetnx(target, field, value)
                pipe.execute()
            self._delete(source, key, "user records")
        else:  # user-sessions: rebuilt from the sessions above
            self._delete(source, key, "session indexes rebuilt")

    def _move_session(self, source: redis.Redis, key: str, session_hash: str) -> None:
        raw, ttl = source.get(key), source.pttl(key)
        if raw is None or ttl == -2:
            return
        user_id = _session_user(raw)
        if user_id is None:
            # no user to file it under: it could never be found by its user again, and the
            # verifier never wrote such a session; say so rather than drop it quietly
            self._delete(source, key, "unreadable sessions dropped")
            return
        tag = user_tag(user_id)
        if ttl <= 0:
            ttl = 30 * 24 * 3600 * 1000  # layout 1 always set a lifetime; keep one
        if not self.dry_run:
            node = self.connector.node_for(self.keys.session(tag, session_hash))
            node.eval(_ADD_SESSION, 2, self.keys.session(tag, session_hash),
                      self.keys.sessions(user_id), raw, ttl, session_hash)
            pointer = self.keys.legacy_session(session_hash)
            self.connector.node_for(pointer).set(pointer, tag, px=ttl)
        self._delete(source, key, "sessions")

    def _delete(self, node: redis.Redis, key: str, what: str) -> None:
        if not self.dry_run:
            node.delete(key)
        self.counts[what] += 1


def _session_user(raw: bytes | str) -> str | None:
    try:
        session = json.loads(raw)
    except ValueError:
        return None
    user_id = session.get("userId") if isinstance(session, dict) else None
    return user_id if isinstance(user_id, str) and user_id else None


def _progress() -> Callable[[Counter[str]], None]:
    started = time.monotonic()
    last = [started]

    def show(counts: Counter[str]) -> None:
        now = time.monotonic()
        if now - last[0] >= PROGRESS_EVERY:
            last[0] = now
            click.echo(f"  {sum(counts.values())} keys so far ({now - started:.0f}s)", err=True)

    return show


@click.group()
def redis_group() -> None:
    """The verifier's data in Redis (REDIS_URL, VERIFIER_REDIS_* variables)."""


@redis_group.command()
@click.option("--dry-run", is_flag=True, help="Count what would move; change nothing.")
def migrate(dry_run: bool) -> None:
    """Move keys an earlier verifier wrote (layout 1) to layout 2; run once, verifiers stopped.

    Safe to run again: a run that was interrupted is finished by the next one.
    """
    settings = exit_on_startup_error("redis", lambda: RedisSettings.from_env(os.environ))
    connector = Connector(settings)
    migration = Migration(connector, KeyLayout(settings.prefix), dry_run=dry_run)
    try:
        counts = migration.run(_progress())
    except REDIS_FAILURES as exc:
        click.echo(f"jwt-auth redis migrate: Redis at {settings.described()} failed: "
                   f"{type(exc).__name__}: {exc}; nothing is lost, run it again", err=True)
        sys.exit(1)
    finally:
        connector.close()
    done = ", ".join(f"{count} {what}" for what, count in sorted(counts.items())) or "no keys"
    verb = "would move" if dry_run else "moved"
    click.echo(f"layout {VERSION}: {verb} {done}")

