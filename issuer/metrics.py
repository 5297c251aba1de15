"""The issuer's own metrics, defined once per process so several test apps can share them."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

from issuer.keyring import KeyRing

TOKENS_ISSUED = Counter(
    "tokens_issued_total", "Tokens signed and returned", ["client", "admin"]
)
TOKEN_REFUSALS = Counter(
    "token_refusals_total", "Token requests refused, by the code of the answer", ["code"]
)
# state, set by sampling (shared.statemetrics): every worker holds the same ring within a second
# of a change (each polls the keys folder); livemin reports the oldest view among them
SIGNING_KEY_CREATED = Gauge(
    "issuer_signing_key_created_timestamp_seconds",
    "When the key that signs was made (unix seconds); absent for an inline key",
    multiprocess_mode="livemin",
)
NEXT_KEY_PRESENT = Gauge(
    "issuer_next_key_present", "1 while a next key is published, ready to be promoted",
    multiprocess_mode="livemin",
)
SIGNING_KEY_INFO = Gauge(
    "issuer_signing_key_info", "The published keys: 1 for each kid in its role",
    ["kid", "alg", "role"], multiprocess_mode="livemax",
)


class KeyGauges:
    """Sets the key gauges from a ring; a kid that left the JWKS or changed role goes to 0."""

    def __init__(self) -> None:
        self._shown: set[tuple[str, str, str]] = set()

    def sample(self, ring: KeyRing) -> None:
        if ring.active_created is not None:
            SIGNING_KEY_CREATED.set(ring.active_created)
        NEXT_KEY_PRESENT.set(1 if ring.next_present else 0)
        algs = {key.kid: str(key.jwk.get("alg", ring.active.alg)) for key in ring.published}
        shown = {(key.kid, algs[key.kid], key.role) for key in ring.published}
        for labels in self._shown - shown:
            SIGNING_KEY_INFO.labels(*labels).set(0)
        for labels in shown:
            SIGNING_KEY_INFO.labels(*labels).set(1)
        self._shown = shown
