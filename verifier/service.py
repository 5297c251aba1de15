"""What the verifier does for a request, Flask-free: verify, log in, look up, log out, revoke.

The hot path (``verify``) parses each token once: a result found in the in-process LRU skips the
RSA work, but never the revocation and cut-off check, which comes from the process's mirror of
Redis (``verifier.mirror``) when it is in sync and from one Redis MGET when it is not. The cache
can only save work, never admit a token Redis refuses. (Why there is no cache in Redis itself:
see ``verifier.store``.)

``verify_from_memory`` is the same verification for a caller that must not wait on a network
peer: it answers from what this process holds (the cache, the keys, the mirror), or None when
only Redis or the issuer's JWKS can settle it; ``verify`` then does, waiting as it must.
"""

from __future__ import annotations

import logging
import math
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from shared.claims import USER_ID_MAX_LENGTH, has_control_character
from shared.digest import sha256_hex
from shared.errors import NotReady, Problem
from shared.logs import token_fingerprint
from verifier.config import VerifierSettings
from verifier.errors import (
    StoreUnavailable,
    TokenError,
    TokenExpired,
    TokenMalformed,
    TokenRevoked,
    TokenTooOld,
)
from verifier.issuers import TrustedIssuers
from verifier.keyset import FetchNeeded, KeysNotLoaded
from verifier.layout import SESSION_TAG_SEPARATOR, is_user_tag
from verifier.metrics import SESSIONS, STORE_FAILURES, VERIFICATIONS
from verifier.mirror import Snapshot
from verifier.store import REVOCATION_MARGIN, Store, revocation_id, usable_jti
from verifier.verification import Step, Trace, VerifiedToken, verify_token

log = logging.getLogger(__name__)

# the label child every good token counts on, resolved once (labels() hashes and locks per call)
_VERIFIED_OK = VERIFICATIONS.labels("ok")

SESSION_ID_BYTES = 32
"""256 random bits per session id (the contract asks for at least 128)."""

CACHE_MAX_TTL = 300
"""Longest life of an in-process cached result (seconds), whatever the token's expiry: bounds
how long a key withdrawn from a JWKS keeps a result alive."""


@dataclass(frozen=True)
class Verdict:
    """A verified token, and whether revocations were consulted (False only in open mode)."""

    token: VerifiedToken
    revocation_checked: bool


class LocalCache:
    """A bounded, thread-safe LRU of verified results, each valid until a wall-clock time.

    Expired entries leave as new ones come in, from the least recently used end: with short-
    lived tokens (a minute) the cache holds the tokens in use, not ``size`` dead ones (measured
    by bench/soak.py: a full cache of expired entries was 10 MB per worker).
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self._entries: OrderedDict[str, tuple[VerifiedToken, float, int]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str, now: float, version: int = 0) -> VerifiedToken | None:
        """The result put under ``key`` with this ``version`` of the trust it was verified
        under (``TrustedIssuers.version``), until its time; None otherwise."""
        if self.size <= 0:
            return None
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            if entry[1] <= now or entry[2] != version:
                del self._entries[key]
                return None
            self._entries.move_to_end(key)
            return entry[0]

    def put(self, key: str, token: VerifiedToken, until: float, now: float,
            version: int = 0) -> None:
        if self.size <= 0:
            return
        with self._lock:
            entries = self._entries
            entries[key] = (token, until, version)
            entries.move_to_end(key)
            while len(entries) > self.size:
                entries.popitem(last=False)
            # a few at most per put: each entry is dropped once
            while entries:
                oldest = next(iter(entries.values()))
                if oldest[1] > now:
                    break
                entries.popitem(last=False)

    def discard(self, key: str) -> None:
        with self._lock:
            self._entries.pop(key, None)


def check_user_id(user_id: str) -> None:
    """Refuse a user id from a URL that no token could carry (400 request_invalid): the claim
    schema's rule, no more (an unassigned or format code point is a user id like any other)."""
    if not user_id or len(user_id) > USER_ID_MAX_LENGTH or has_control_character(user_id):
        raise Problem("The user id is empty, too long or holds control characters.")


class VerifierService:
    """The verifier's operations over the trusted issuers and the Redis store."""

    def __init__(
        self,
        settings: VerifierSettings,
        issuers: TrustedIssuers,
        store: Store,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.issuers = issuers
        self.store = store
        self.clock = clock
        self.open_mode = settings.redis_failure_mode == "open"
        self.local = LocalCache(settings.cache_size)

    # verification ---------------------------------------------------------------------------

    def verify(self, token: str) -> Verdict:
        """Verify a token, its revocation and its user's cut-off; counts the outcome."""
        verdict = self._counted(token, from_memory=False)
        assert verdict is not None  # only a verification from memory declines
        return verdict

    def verify_from_memory(self, token: str) -> Verdict | None:
        """``verify`` without waiting on Redis or the issuer: the verdict, or None when only they
        can give it (nothing is counted then; ``verify`` will be)."""
        return self._counted(token, from_memory=True)

    def _counted(self, token: str, *, from_memory: bool) -> Verdict | None:
        try:
            verdict = self._verify(token, from_memory=from_memory)
        except TokenError as exc:
            VERIFICATIONS.labels(exc.code).inc()
            log.info("token %s refused: %s", token_fingerprint(token), exc.code)
            raise
        except StoreUnavailable:
            VERIFICATIONS.labels("store_unavailable").inc()
            STORE_FAILURES.labels("closed").inc()
            raise
        except KeysNotLoaded as exc:
            VERIFICATIONS.labels("not_ready").inc()
            # the verifier cannot judge the token (its issuer's JWKS was never fetched): a 401
            # would tell the caller the token is bad, when trying again shortly is the answer
            raise NotReady(f"No trusted key is loaded yet: the JWKS of the issuer "
                           f"{exc.provider!r} could not be fetched. Try again shortly.") from None
        if verdict is None:
            return None
        if verdict.revocation_checked:
            _VERIFIED_OK.inc()
        else:
            VERIFICATIONS.labels("ok_unchecked").inc()
            STORE_FAILURES.labels("open").inc()
            log.warning(
                "token %s accepted by signature alone: Redis unreachable, open mode",
                token_fingerprint(token),
            )
        return verdict

    def _verify(self, token: str, *, from_memory: bool) -> Verdict | None:
        if not isinstance(token, str):
            raise TokenMalformed("the token must be a string")
        now = self.clock()
        digest = sha256_hex(token)
        # taken before verifying: a result verified under a policy the file replaced meanwhile
        # is stored under the old version, and never served
        version = self.issuers.version
        verified = self.local.get(digest, now, version)
        # a result is only as good as its key: one the issuer retired since (or whose grace
        # ended) must not keep a cached token alive
        if verified is not None and not self.issuers.trusts(verified.provider, verified.kid,
                                                              fetch=not from_memory):
            verified = None
        if verified is None:
            verified = self._verify_signature(token, now, from_memory=from_memory)
            if verified is None:
                return None
            # cached before the revocation check, which every use of the cache runs again: a
            # verification from memory that must read Redis after all leaves its RSA work here
            self.local.put(digest, verified, self._cache_until(verified, now), now, version)
        rev_id = self._revocation_id(verified)
        subject = self.subject(verified)
        if from_memory:
            snapshot = self.store.lookup_in_memory(rev_id, subject)
            if snapshot is None:
                return None
        else:
            try:
                snapshot = self.store.lookup(rev_id, subject)
            except StoreUnavailable:
                return self._without_store(verified)
        _refuse_if_revoked(verified, snapshot)
        return Verdict(verified, True)

    def _verify_signature(self, token: str, now: float, *, from_memory: bool
                          ) -> VerifiedToken | None:
        """The pipeline (``verify_token``); None when it would have to fetch keys first."""
        if from_memory:
            try:
                return verify_token(token, trust=self.issuers.in_memory(), now=now)
            except FetchNeeded:
                return None
        # raises only TokenError (nothing a caller sends yields a 500), or KeysNotLoaded
        return verify_token(token, trust=self.issuers, now=now)

    def subject(self, verified: VerifiedToken) -> str:
        """Who the token's user is in Redis: scoped by the provider (``verifier.issuers``)."""
        return self.issuers.subject(verified.provider, verified.user_id)

    def _revocation_id(self, verified: VerifiedToken) -> str:
        return token_revocation_id(self.issuers, verified)

    def _without_store(self, verified: VerifiedToken) -> Verdict:
        """Redis failed after the token proved valid: 503 in closed mode, unchecked in open."""
        if self.open_mode:
            return Verdict(verified, False)
        raise StoreUnavailable(
            "Revocations cannot be checked: Redis is unreachable. Try again shortly."
        )

    def _cache_until(self, verified: VerifiedToken, now: float) -> float:
        """When a cached result must be dropped: the token's expiry or age limit, at the latest."""
        limits = [now + CACHE_MAX_TTL]
        if verified.expires_at is not None:
            limits.append(float(verified.expires_at))
        elif self.settings.max_token_age and verified.issued_at is not None:
            limits.append(float(verified.issued_at) + self.settings.max_token_age)
        return min(limits)

    def explain(self, token: str) -> dict[str, Any]:
        """Every step of the pipeline for this token, revocation included (admin only)."""
        return explain_token(token, issuers=self.issuers, now=self.clock(), store=self.store)

    def introspect(self, token: str) -> dict[str, Any]:
        """RFC 7662: the token's state; inactive for any refusal, 503 when Redis must answer.

        The same pipeline as ``verify``: a refused token, whatever the reason, is only
        ``{"active": false}`` (the RFC's answer, which tells a caller nothing it could probe).
        """
        try:
            verdict = self.verify(token)
        except TokenError:
            return {"active": False}
        verified = verdict.token
        claims = verified.claims
        subject = claims.get("sub")
        answer: dict[str, Any] = {
            "active": True,
            # the token's own sub when it has one (RFC 7662 2.2), else the user id
            "sub": subject if isinstance(subject, str) and subject else verified.user_id,
            "username": verified.user_id,
            "userId": verified.user_id,
            "isAdmin": verified.is_admin,
            "provider": verified.provider,
            "token_type": "Bearer",
            "revocationChecked": verdict.revocation_checked,
        }
        issuer = self.issuers.by_provider(verified.provider)
        if "iss" not in claims and issuer is not None and issuer.issuer is not None:
            answer["iss"] = issuer.issuer
        for claim in ("exp", "iat", "nbf", "jti", "iss", "aud"):
            if claim in claims:
                answer[claim] = claims[claim]
        return answer

    # sessions -------------------------------------------------------------------------------

    def login(self, token: str) -> dict[str, Any]:
        """Verify the token, update the user record (admin recomputed) and open a session."""
        verdict = self.verify(token)
        if not verdict.revocation_checked:
            raise StoreUnavailable("Logging in needs Redis, which is unreachable.")
        verified = verdict.token
        now = self.clock()
        subject = self.subject(verified)
        session_id = self.store.new_session_id(secrets.token_urlsafe(SESSION_ID_BYTES), subject)
        session = {
            "userId": verified.user_id,
            "isAdmin": verified.is_admin,
            "provider": verified.provider,
            "createdAt": int(now),
            "expiresAt": int(now) + self.settings.session_ttl,
        }
        if not self.store.create_session(
            session_id, session, subject=subject, issued_at=verified.issued_at, now=now
        ):
            # a user-wide logout landed between verification and the session write
            raise TokenRevoked("every token of this user issued so far was revoked")
        SESSIONS.labels("login").inc()
        log.info("session opened for token %s", token_fingerprint(token))
        return {"sessionId": session_id, **session}

    def session(self, session_id: str) -> dict[str, Any] | None:
        """The live session with this id, or None."""
        if not _session_id_shaped(session_id):
            return None
        session = self.store.get_session(session_id)
        if session is None:
            return None
        session.pop("subject", None)  # how Redis names the user: not part of the answer
        return {"sessionId": session_id, **session}

    def logout(self, session_id: str) -> bool:
        """End one session; False when there was none."""
        if not _session_id_shaped(session_id):
            return False
        ended = self.store.delete_session(session_id)
        if ended:
            SESSIONS.labels("logout").inc()
        return ended

    # revocation and users -------------------------------------------------------------------

    def revoke(self, token: str) -> None:
        """Refuse this token from now on; an expired or too old token is a no-op.

        The token must verify first (holding it is the right to revoke it). An expired or too
        old token, whose signature was checked before its time, can never be accepted again:
        it succeeds without writing anything. A token refused as revoked is revoked again:
        the write that refused it may be one answered 503 because too few replicas confirmed
        it, and the retry that 503 asks for must not be acknowledged before they do.
        """
        try:
            verdict = self.verify(token)
        except (TokenExpired, TokenTooOld):
            return
        except TokenRevoked:
            try:
                verified = verify_token(token, trust=self.issuers, now=self.clock())
            except (TokenExpired, TokenTooOld):
                return
            verdict = Verdict(verified, True)
        if not verdict.revocation_checked:
            raise StoreUnavailable("Revoking needs Redis, which is unreachable.")
        verified = verdict.token
        digest = sha256_hex(token)
        ttl: int | None = None
        if verified.expires_at is not None:
            # past exp plus the largest leeway no verifier accepts it, whatever its settings
            ttl = max(1, math.ceil(float(verified.expires_at) - self.clock()) + REVOCATION_MARGIN)
        self.store.revoke(self._revocation_id(verified), self.subject(verified), ttl)
        self.local.discard(digest)
        log.info("token %s revoked", token_fingerprint(token))

    def revoke_jti(self, jti: str, user_id: str, expires_at: float | None,
                   provider: str | None) -> bool:
        """Refuse the token with this ``jti`` of this user from now on (an admin's act, without
        the token); False when it expired long enough ago that no verifier accepts it anyway.

        ``expires_at`` is the token's ``exp`` (None: it never expires, the revocation stays).
        """
        check_user_id(user_id)
        provider = self.provider(provider)
        ttl: int | None = None
        if expires_at is not None:
            left = math.ceil(float(expires_at) - self.clock()) + REVOCATION_MARGIN
            if left <= 0:
                return False
            ttl = left
        if not usable_jti(jti):
            raise Problem("jti: 1 to 128 printable characters.", extra={"field": "jti"})
        self.store.revoke(revocation_id(jti, "", self.issuers.scope(provider)),
                          self.issuers.subject(provider, user_id), ttl)
        return True

    def provider(self, name: str | None) -> str:
        """The provider an admin request names (``?provider=``), or the only one there is."""
        if name is None:
            entries = self.issuers.entries
            if len(entries) == 1:
                return entries[0].provider
            raise Problem("provider: several issuers are trusted; name one with ?provider= ("
                          + ", ".join(entry.provider for entry in entries) + ").",
                          extra={"field": "provider"})
        if self.issuers.by_provider(name) is None:
            raise Problem(f"provider: no trusted issuer is named {name[:64]!r}.",
                          extra={"field": "provider"})
        return name

    def end_user_sessions(self, user_id: str, provider: str | None = None) -> dict[str, Any]:
        """End every session of the user and refuse every token issued up to now."""
        check_user_id(user_id)
        provider = self.provider(provider)
        cutoff, ended = self.store.end_user(self.issuers.subject(provider, user_id),
                                            self.clock())
        SESSIONS.labels("user_logout").inc()
        return {"userId": user_id, "provider": provider, "sessionsEnded": ended,
                "tokensRevokedBefore": cutoff}

    def user_sessions(self, user_id: str, provider: str | None = None) -> dict[str, Any]:
        """The user's live sessions, oldest first, each named by the hash of its id."""
        check_user_id(user_id)
        provider = self.provider(provider)
        sessions = self.store.list_sessions(self.issuers.subject(provider, user_id))
        return {"userId": user_id, "provider": provider, "sessions": [
            {"sessionHash": session_hash, "isAdmin": session.get("isAdmin"),
             "createdAt": session.get("createdAt"), "expiresAt": session.get("expiresAt")}
            for session_hash, session in sessions]}

    def user(self, user_id: str, provider: str | None = None) -> dict[str, Any] | None:
        """The user record (as of the last login) with the user's cut-off, or None."""
        check_user_id(user_id)
        provider = self.provider(provider)
        record, cutoff = self.store.get_user(self.issuers.subject(provider, user_id))
        if record is None:
            return None
        return {
            "userId": record.get("userId", user_id),
            "isAdmin": record.get("isAdmin") == "true",
            "provider": record.get("provider", provider),
            "createdAt": _number(record.get("createdAt")),
            "lastLoginAt": _number(record.get("lastLoginAt")),
            "tokensRevokedBefore": cutoff,
        }

    def readiness(self) -> dict[str, bool]:
        """What /readyz reports: keys loaded (``TrustedIssuers.readiness``), Redis reachable."""
        return {**self.issuers.readiness(), "redis": self.store.ping()}


REVOCATION_RULE = ("not revoked (by jti, or by hash without one), and issued after its "
                   "user's cut-off (a token without iat never is)")


def token_revocation_id(issuers: TrustedIssuers, verified: VerifiedToken) -> str:
    """What a verified token's revocation is named (scoped by its issuer, ``verifier.issuers``)."""
    return revocation_id(verified.jti, verified.fingerprint, issuers.scope(verified.provider))


def explain_token(
    token: str, *, issuers: TrustedIssuers, now: float, store: Store | None
) -> dict[str, Any]:
    """The verdict and every step that led to it, from the one pipeline (``Trace``).

    No cache and no counters: an explanation is asked for, not traffic. Never holds the
    signature, a key or a secret: steps show claims, header members and configuration only.
    """
    trace = Trace()
    try:
        verified = verify_token(token, trust=issuers, now=now, trace=trace)
    except TokenError as exc:
        trace.add(Step("revocation", "not run", REVOCATION_RULE))
        return {"verdict": exc.code, "steps": trace.as_json()}
    except KeysNotLoaded as exc:
        return {"verdict": "not_ready", "steps": trace.as_json(),
                "detail": f"no key of the issuer {exc.provider!r} is loaded yet"}
    verdict = "accepted"
    if store is None:
        trace.add(Step("revocation", "not run", REVOCATION_RULE,
                       {"why": "no Redis configured (set REDIS_URL to check revocations)"}))
    else:
        rev_id = token_revocation_id(issuers, verified)
        values: dict[str, Any] = {"revocation": rev_id, "iat": verified.issued_at}
        try:
            snapshot = store.lookup(rev_id, issuers.subject(verified.provider, verified.user_id))
            values.update(revoked=snapshot.revoked, cutoff=snapshot.cutoff)
            _refuse_if_revoked(verified, snapshot)
            trace.add(Step("revocation", "passed", REVOCATION_RULE, values))
        except (TokenRevoked, StoreUnavailable) as exc:
            trace.add(Step("revocation", "failed", REVOCATION_RULE, values, exc.code,
                           exc.detail))
            verdict = exc.code
    return {"verdict": verdict, "steps": trace.as_json()}


def _refuse_if_revoked(verified: VerifiedToken, snapshot: Snapshot) -> None:
    if snapshot.revoked:
        raise TokenRevoked("the token was revoked")
    cutoff = snapshot.cutoff
    # a token without iat cannot prove it was issued after the cut-off
    if cutoff is not None and (
        verified.issued_at is None or float(verified.issued_at) <= cutoff
    ):
        raise TokenRevoked(
            "every token of this user issued before a user-wide logout was revoked; sign in again"
        )


def _session_id_shaped(session_id: str) -> bool:
    # token_urlsafe(32) gives 43 characters, followed by "~" and the user tag since layout 2
    # (verifier.layout); anything else cannot be one of ours
    secret, separator, tag = session_id.partition(SESSION_TAG_SEPARATOR)
    return (
        len(secret) == 43
        and all(ch.isascii() and (ch.isalnum() or ch in "-_") for ch in secret)
        and (not separator or is_user_tag(tag))
    )


def _number(raw: str | None) -> int | None:
    try:
        return int(float(raw)) if raw is not None else None
    except ValueError:
        return None
