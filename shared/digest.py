"""The one SHA-256 helper: how tokens, session ids and API keys are hashed everywhere."""

from __future__ import annotations

import hashlib


def sha256_hex(data: str | bytes) -> str:
    """The SHA-256 of ``data`` as 64 lowercase hex characters; a string is hashed as UTF-8.

    A lone surrogate (a JSON body can carry one as an escape) is encoded as it is
    (``surrogatepass``), so no string makes this raise and distinct strings hash apart.
    """
    if isinstance(data, str):
        data = data.encode("utf-8", errors="surrogatepass")
    return hashlib.sha256(data).hexdigest()
