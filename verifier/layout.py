"""The names of the verifier's Redis keys (layout 2): every key of a user in one hash slot.

Redis Cluster runs a multi-key command or a script only when all its keys hash to one slot, and
hashes only the part of a key between the first ``{`` and the next ``}`` when there is one.
Every key that belongs to a user carries the same *user tag* ``{<8 hex of sha256(userId)>}``,
so a user's revocations, cut-off, sessions, session index and record live together: the
revocation check (one MGET), a login, a logout and a user-wide logout each run in one slot, on
one node, atomically. The tag is a hash, not the id itself: an id may hold braces, and a
fixed-size tag is what a session id carries (below). Two users whose tags collide merely share a
slot; the user id still follows the tag, so their keys never mix.

A session is found by its id alone: the id ends with ``~<user tag>`` (``<43 random
characters>~<8 hex>``), which routes it to its user's slot. ``~`` is one of the characters a
bearer credential and a URL path may hold unescaped, and never appears in a JWT, whose dots are
what tells forward-auth the two apart. Ids from layout 1 (43 characters alone) are found
through a pointer ``migrate`` leaves beside each migrated session.

``P`` is ``VERIFIER_REDIS_PREFIX`` (default ``jwtauth:``); docs/verifier.md has this table too.

=====================================  ====================================================
key                                    value
=====================================  ====================================================
``P v2:revoked:{T}:jti:<jti>``         ``1``: the token is revoked (``sha256:<hash>`` in
                                       place of ``jti:`` for a token without one)
``P v2:cutoff:{T}:<userId>``           unix seconds: tokens issued up to then are refused
``P v2:session:{T}:<sha256(id)>``      the session, JSON
``P v2:sessions:{T}:<userId>``         sorted set of the user's session hashes, scored by
                                       creation time (a set in data from before: the
                                       next login converts it)
``P v2:logins:{T}:<userId>``           sorted set of the user's logins of the last minute
                                       (session hash, scored by time), for
                                       ``VERIFIER_LOGIN_RATE``; lives 60 s
``P v2:user:{T}:<userId>``             hash: the user record
``P v2:revoked:{legacy}:<rev id>``     a revocation migrated from layout 1 (no user known)
``P v2:legacy-session:<sha256(id)>``   the user tag of a session migrated from layout 1
``P v2:fence:{T}``                     ``1`` for 1 s: what a confirmed write always writes
``P layout``                           hash: ``version`` 2, ``legacy-revocations`` 0/1
=====================================  ====================================================

The ``v2:`` segment keeps these names apart from every layout-1 name (``P revoked:``,
``P cutoff:``, ``P session:``, ``P user-sessions:``, ``P user:``), whatever a user id holds, so
``jwt-auth redis migrate`` can tell the two apart and the verifier can refuse to start on
unmigrated data instead of ignoring revocations it cannot see.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from shared.digest import sha256_hex

VERSION = 2
TAG_LENGTH = 8
LEGACY_TAG = "legacy"

V1_KINDS = ("revoked:", "cutoff:", "session:", "user-sessions:", "user:")
"""The first word after the prefix of every layout-1 key."""


@functools.lru_cache(maxsize=4096)  # a verification names its user's keys twice
def user_tag(user_id: str) -> str:
    """The hash-tag body shared by every key of this user."""
    return sha256_hex(user_id)[:TAG_LENGTH]


def is_user_tag(text: str) -> bool:
    return len(text) == TAG_LENGTH and all(ch in "0123456789abcdef" for ch in text)


@dataclass(frozen=True)
class KeyLayout:
    """Key names under one prefix."""

    prefix: str

    @property
    def revoked_prefix(self) -> str:
        return f"{self.prefix}v2:revoked:"

    @property
    def cutoff_prefix(self) -> str:
        return f"{self.prefix}v2:cutoff:"

    @property
    def marker(self) -> str:
        return f"{self.prefix}layout"

    def revocation(self, user_id: str, rev_id: str) -> str:
        return f"{self.revoked_prefix}{{{user_tag(user_id)}}}:{rev_id}"

    def legacy_revocation(self, rev_id: str) -> str:
        return f"{self.revoked_prefix}{{{LEGACY_TAG}}}:{rev_id}"

    def cutoff(self, user_id: str) -> str:
        return f"{self.cutoff_prefix}{{{user_tag(user_id)}}}:{user_id}"

    def session(self, tag: str, session_hash: str) -> str:
        return f"{self.prefix}v2:session:{{{tag}}}:{session_hash}"

    def session_prefix(self, tag: str) -> str:
        return f"{self.prefix}v2:session:{{{tag}}}:"

    def sessions(self, user_id: str) -> str:
        return f"{self.prefix}v2:sessions:{{{user_tag(user_id)}}}:{user_id}"

    def logins(self, user_id: str) -> str:
        """The user's logins of the last minute (``VERIFIER_LOGIN_RATE``)."""
        return f"{self.prefix}v2:logins:{{{user_tag(user_id)}}}:{user_id}"

    def user(self, user_id: str) -> str:
        return f"{self.prefix}v2:user:{{{user_tag(user_id)}}}:{user_id}"

    def fence(self, key: str) -> str:
        """A short-lived key in ``key``'s slot that a confirmed write always writes.

        Since Redis 7.2, WAIT counts replicas up to the connection's own latest write: a retried
        logout that finds nothing left to delete would be confirmed at once, while the deletion
        the first try made may be on no replica. Writing this key makes every confirmed change
        end at the master's current offset, which covers every earlier write.
        """
        tag = key[key.index("{") + 1:key.index("}")]
        return f"{self.prefix}v2:fence:{{{tag}}}"

    def legacy_session(self, session_hash: str) -> str:
        return f"{self.prefix}v2:legacy-session:{session_hash}"

    def v1_patterns(self) -> list[str]:
        """SCAN patterns matching every layout-1 key (and nothing of layout 2)."""
        escaped = glob_escape(self.prefix)
        return [f"{escaped}{kind}*" for kind in V1_KINDS]

    def v1(self, kind: str, rest: str) -> str:
        return f"{self.prefix}{kind}{rest}"


SESSION_TAG_SEPARATOR = "~"


def session_id_tag(session_id: str) -> str | None:
    """The user tag a layout-2 session id ends with, or None for a layout-1 id."""
    body, separator, tag = session_id.rpartition(SESSION_TAG_SEPARATOR)
    if separator and body and is_user_tag(tag):
        return tag
    return None


def glob_escape(text: str) -> str:
    return "".join("\\" + ch if ch in "*?[]\\" else ch for ch in text)
