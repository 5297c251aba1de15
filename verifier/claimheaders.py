"""``VERIFIER_CLAIM_HEADERS``: claims of the token as headers of a forward-auth answer.

A proxy copies the verifier's answer headers to the protected app (nginx ``auth_request_set``,
Traefik ``authResponseHeaders``), so a claim such as ``roles`` can reach the app without it
parsing the token. Header values are untrusted claim contents, so they are encoded safely:

- a string, number or boolean becomes its text (``true``/``false``, JSON numbers);
- a list becomes its items' texts joined by ``,``;
- an object becomes compact JSON;
- a claim missing from the token (or null) means no header at all;
- a value that is not printable ASCII, or a list item holding a comma, is sent percent-encoded
  (UTF-8, every item on its own), and ``<Header>-Encoding: percent`` says so: no CR, LF or other
  control character ever reaches a header, and a reader can always split a list on commas.
"""

from __future__ import annotations

import json
import re
import urllib.parse
from collections.abc import Mapping
from typing import Any

from shared.errors import ConfigError

VARIABLE = "VERIFIER_CLAIM_HEADERS"

_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
"""RFC 9110 field-name characters."""

RESERVED = frozenset(name.lower() for name in (
    "X-Auth-User-Id", "X-Auth-User-Id-Encoding", "X-Auth-Is-Admin", "X-Auth-Provider",
    "X-Revocation-Checked", "Content-Type", "Content-Length", "Connection", "Keep-Alive",
    "Transfer-Encoding", "Upgrade", "Trailer", "TE", "Host", "Set-Cookie", "WWW-Authenticate",
    "Cache-Control", "Date", "Server", "Location", "X-Request-Id",
))
"""Headers the verifier sets itself, or that would change how the answer is read."""


def parse_claim_headers(raw: Any) -> tuple[tuple[str, str], ...]:
    """The (header, claim) pairs of the variable's JSON; ConfigError names what is wrong."""
    if not isinstance(raw, dict):
        raise ConfigError(VARIABLE, 'expected a JSON object of header name to claim name, '
                                    'e.g. {"X-Auth-Roles": "roles"}')
    pairs: list[tuple[str, str]] = []
    seen: set[str] = set()
    for header, claim in raw.items():
        if not _TOKEN.match(header):
            raise ConfigError(VARIABLE, f"{header!r} is not a valid header name")
        lowered = header.lower()
        if lowered in RESERVED or lowered.endswith("-encoding"):
            raise ConfigError(VARIABLE, f"{header} is set by the verifier itself; choose "
                                        "another name")
        if lowered in seen:
            raise ConfigError(VARIABLE, f"{header} is named twice")
        if not isinstance(claim, str) or not claim:
            raise ConfigError(VARIABLE, f"the claim for {header} must be a non-empty string")
        seen.add(lowered)
        pairs.append((header, claim))
    return tuple(pairs)


def claim_headers(
    mapping: tuple[tuple[str, str], ...], claims: Mapping[str, Any]
) -> list[tuple[str, str]]:
    """The headers for these claims, encoded safely; none for a missing claim."""
    headers: list[tuple[str, str]] = []
    for header, claim in mapping:
        value = claims.get(claim)
        if value is None:
            continue
        is_list = isinstance(value, list)
        texts = [_text(item) for item in value] if is_list else [_text(value)]
        if all(_plain(text) and not (is_list and "," in text) for text in texts):
            headers.append((header, ",".join(texts)))
        else:
            headers.append((header, ",".join(urllib.parse.quote(text, safe="") for text in texts)))
            headers.append((f"{header}-Encoding", "percent"))
    return headers


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _plain(text: str) -> bool:
    return text.isascii() and text.isprintable()
