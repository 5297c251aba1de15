"""The verifier's own metrics, defined once per process so several test apps can share them.

Counters count as things happen. The gauges are state, set by ``VerifierGauges.sample`` every few
seconds in each worker and before each scrape (``shared.statemetrics``); under gunicorn each
worker has its own breakers, mirror and keys, and each gauge says how their values combine.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from prometheus_client import Counter, Gauge, Histogram

if TYPE_CHECKING:
    from verifier.issuers import TrustedIssuers
    from verifier.store import Store

VERIFICATIONS = Counter(
    "verifications_total",
    "Token verifications, by outcome: ok, ok_unchecked (open mode, Redis down) or the error code",
    ["result"],
)
STORE_FAILURES = Counter(
    "verifier_store_failures_total", "Requests that needed Redis and could not reach it", ["mode"]
)
SESSIONS = Counter(
    "verifier_sessions_total",
    "Session events: login (created), logout, user_logout (all of a user's), ended_by_limit "
    "(the oldest, at VERIFIER_MAX_SESSIONS_PER_USER), refused_by_limit (VERIFIER_LOGIN_RATE)",
    ["event"],
)
REDIS_COMMAND_SECONDS = Histogram(
    "verifier_redis_command_duration_seconds",
    "Time of each call to Redis, failed ones too, by what it was for",
    ["command"],
    buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
             1.0),
)
REDIS_UP = Gauge(
    "verifier_redis_up", "1 when every Redis master answered the last ping of every worker",
    multiprocess_mode="livemin",
)
REDIS_BREAKER_OPEN = Gauge(
    "verifier_redis_breaker_open",
    "1 while a worker fails fast on this node (its breaker is open)",
    ["node"], multiprocess_mode="livemax",
)
MIRROR_ENABLED = Gauge(
    "verifier_revocation_mirror_enabled",
    "1 when revocations are mirrored in memory (not in Cluster mode, nor at "
    "VERIFIER_MIRROR_MAX_KEYS=0, nor past it)",
    multiprocess_mode="livemin",
)
MIRROR_IN_SYNC = Gauge(
    "verifier_revocation_mirror_in_sync",
    "1 when every worker's mirror is in sync and answers without Redis",
    multiprocess_mode="livemin",
)
MIRROR_ENTRIES = Gauge(
    "verifier_revocation_mirror_entries", "Revocations and cut-offs held in memory",
    multiprocess_mode="livemax",
)
JWKS_LAST_SUCCESS = Gauge(
    "verifier_jwks_last_success_timestamp_seconds",
    "When the issuer's JWKS was last fetched (the stalest worker's)",
    ["provider"], multiprocess_mode="livemin",
)
JWKS_MAX_AGE = Gauge(
    "verifier_jwks_max_age_seconds",
    "How long a fetched JWKS counts as fresh (VERIFIER_JWKS_MAX_AGE or the issuer's shorter "
    "Cache-Control)",
    ["provider"], multiprocess_mode="livemax",
)
JWKS_FETCH_FAILURES = Counter(
    "verifier_jwks_fetch_failures_total", "JWKS fetches that failed", ["provider"],
)
TRUSTED_KEYS = Gauge(
    "verifier_trusted_keys", "Keys trusted for this issuer (the fewest of any worker)",
    ["provider"], multiprocess_mode="livemin",
)
TRUSTED_KEY_INFO = Gauge(
    "verifier_trusted_key_info", "1 for each key trusted, 0 once it no longer is",
    ["provider", "kid", "alg", "source"], multiprocess_mode="livemax",
)

SESSION_EVENTS = ("login", "logout", "user_logout", "ended_by_limit", "refused_by_limit")


def declare_known_series(token_codes: list[str]) -> None:
    """Every series whose labels are known in advance, at 0: ``rate()`` counts an increase
    from a value it has seen, so a series born at its first event would hide that event (the
    first ``key_unknown`` of a spike, the first 503)."""
    for result in ("ok", "ok_unchecked", "store_unavailable", "not_ready", *token_codes):
        VERIFICATIONS.labels(result)
    for mode in ("closed", "open"):
        STORE_FAILURES.labels(mode)
    for event in SESSION_EVENTS:
        SESSIONS.labels(event)


_timers: dict[str, Any] = {}


def redis_command_timer(command: str) -> Any:
    """The histogram child for one command (resolved once: labels() locks and hashes)."""
    timer = _timers.get(command)
    if timer is None:
        timer = _timers.setdefault(command, REDIS_COMMAND_SECONDS.labels(command))
    return timer


class VerifierGauges:
    """Sets the verifier's state gauges from one worker's store and issuers."""

    def __init__(self, store: Store, issuers: TrustedIssuers) -> None:
        self.store = store
        self.issuers = issuers
        self._failures_counted: dict[str, int] = {}
        self._keys_shown: set[tuple[str, str, str, str]] = set()

    def sample(self, *, redis_answers: bool) -> None:
        REDIS_UP.set(1 if redis_answers else 0)
        breakers = self.store.breakers_open()
        if self.store.connector.mode != "cluster":
            # one node, known from the start: shown closed before any request has called it
            breakers.setdefault("redis", False)
        for node, is_open in breakers.items():
            REDIS_BREAKER_OPEN.labels(node).set(1 if is_open else 0)
        mirror = self.store.mirror
        if mirror is None:
            MIRROR_ENABLED.set(0)
            MIRROR_IN_SYNC.set(0)
            MIRROR_ENTRIES.set(0)
        else:
            enabled, in_sync, entries = mirror.state()
            MIRROR_ENABLED.set(1 if enabled else 0)
            MIRROR_IN_SYNC.set(1 if in_sync else 0)
            MIRROR_ENTRIES.set(entries)
        self._sample_keys()

    def _sample_keys(self) -> None:
        shown: set[tuple[str, str, str, str]] = set()
        for entry in self.issuers.entries:
            provider, keys = entry.provider, entry.keys
            keys.refresh_if_stale()
            if keys.jwks_url:
                fetched_at, fresh_for = keys.jwks_freshness()
                if fetched_at is not None:
                    JWKS_LAST_SUCCESS.labels(provider).set(fetched_at)
                JWKS_MAX_AGE.labels(provider).set(fresh_for)
                failures = keys.fetch_failures
                counted = self._failures_counted.get(provider, 0)
                # a counter only grows: count the failures since the last sample
                if failures > counted:
                    JWKS_FETCH_FAILURES.labels(provider).inc(failures - counted)
                else:
                    JWKS_FETCH_FAILURES.labels(provider)  # present at 0 from the start
                self._failures_counted[provider] = failures
            described = keys.describe()
            TRUSTED_KEYS.labels(provider).set(len(described))
            shown.update((provider, key["kid"], key["alg"], key["source"].partition(":")[0])
                         for key in described)
        for labels in self._keys_shown - shown:
            TRUSTED_KEY_INFO.labels(*labels).set(0)
        for labels in shown:
            TRUSTED_KEY_INFO.labels(*labels).set(1)
        self._keys_shown = shown
