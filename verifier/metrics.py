"""The verifier's own counters, defined once per process so several test apps can share them."""

from __future__ import annotations

from prometheus_client import Counter

VERIFICATIONS = Counter(
    "verifications_total",
    "Token verifications, by outcome: ok, ok_unchecked (open mode, Redis down) or the error code",
    ["result"],
)
STORE_FAILURES = Counter(
    "verifier_store_failures_total", "Requests that needed Redis and could not reach it", ["mode"]
)
SESSIONS = Counter("verifier_sessions_total", "Session events", ["event"])
