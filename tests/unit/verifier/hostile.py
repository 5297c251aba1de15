"""What the hostile-token tests share: the fixed clock, the baseline claims, the refusal codes.

``test_hostile_tokens.py`` and ``test_hostile_encoding.py`` import these; the fixtures built on
them (``private``, ``attacker``, ``keys``, ``verify``, ``refused``) are in ``conftest.py``.
"""

from __future__ import annotations

NOW = 1_800_000_000.0
"""The verification time every hostile test uses."""

CONTRACT_CODES = {
    "token_malformed", "algorithm_not_allowed", "signature_invalid", "key_unknown",
    "token_expired", "token_not_yet_valid", "token_too_old", "claim_missing", "claim_invalid",
    "attributes_mismatch", "token_revoked", "issuer_unknown",
}
"""Every code a refused token may carry (the documented 401 codes)."""

GOOD = {"userId": "123", "isAdmin": False}
"""The baseline payload each hostile variant starts from."""
