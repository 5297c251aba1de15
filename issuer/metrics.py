"""The issuer's own counters, defined once per process so several test apps can share them."""

from __future__ import annotations

from prometheus_client import Counter

TOKENS_ISSUED = Counter(
    "tokens_issued_total", "Tokens signed and returned", ["client", "admin"]
)
TOKEN_REFUSALS = Counter(
    "token_refusals_total", "Token requests refused, by the code of the answer", ["code"]
)
