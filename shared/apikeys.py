"""API keys for the issuer's clients and the verifier's admins: made random, stored hashed.

A key is 256 random bits, so a plain SHA-256 of it is as strong as a slow password hash would
be and costs nothing per request. The file holds only hashes; the key itself is shown once, when
it is made. Lookups compare against every entry with ``hmac.compare_digest`` so timing reveals
neither which entry matched nor how much of a hash did.

The keys file::

    {"version": 1, "clients": [
        {"name": "web", "key_sha256": "<64 hex>", "admin": false,
         "created": 1767225600, "rotated": null,
         "previous_key_sha256": "<64 hex>", "previous_valid_until": 1767229200}
    ]}

``created`` and ``rotated`` are epoch seconds (``null`` when unknown: files written before these
members existed still load). The two ``previous_*`` members are there only while a rotation's
grace runs: the old key is accepted until ``previous_valid_until``. Every write goes through
``write_clients``: a new file in the same folder, synced, mode 0600, renamed over the old one,
so a reader (a service reloading it) sees the old file or the new one, never half of one.
"""

from __future__ import annotations

import hmac
import json
import os
import secrets
import time
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from shared.audit import audit
from shared.digest import sha256_hex
from shared.errors import ConfigError
from shared.files import exclusive, write_atomically
from shared.reloading import file_fingerprint

KEY_PREFIX = "jwta_"
_FILE_VERSION = 1
_NO_KEY = "-" * 64
"""Compared against when an entry has no previous key: same length, never a SHA-256 hex digest."""


@dataclass(frozen=True)
class ApiClient:
    """One holder of an API key: a name, whether it may act as an admin, and the key's history.

    ``previous_key_sha256`` is the key replaced by the last rotation, accepted until
    ``previous_valid_until`` (epoch seconds); both are None when no grace is running.
    """

    name: str
    key_sha256: str
    admin: bool = False
    created: int | None = None
    rotated: int | None = None
    previous_key_sha256: str | None = None
    previous_valid_until: int | None = None

    def grace_until(self, now: float) -> int | None:
        """When the previous key stops being accepted, if that is still ahead of ``now``."""
        if self.previous_key_sha256 is None or self.previous_valid_until is None:
            return None
        return self.previous_valid_until if now < self.previous_valid_until else None



def new_key() -> str:
    """A fresh API key: a recognisable prefix and 256 random bits."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


class ApiKeyRegistry:
    """The clients of one keys file; ``authenticate`` maps a key to its client.

    Reloadable in place (``shared.reloading.Reloadable``): ``reload`` reads and checks the whole
    file first and then replaces ``clients`` with one assignment, so a request thread sees the
    old list or the new one. A registry made without a file has no clients and never changes.
    """

    def __init__(
        self,
        clients: list[ApiClient],
        *,
        path: str | None = None,
        variable: str = "API keys file",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.clients = clients
        self.path = path
        self.variable = variable
        self._clock = clock
        self.loaded_from: Hashable | None = None

    @classmethod
    def load(
        cls, path: str | None, *, variable: str, clock: Callable[[], float] = time.time
    ) -> ApiKeyRegistry:
        """Read a keys file; a missing variable means no client can authenticate."""
        if not path:
            return cls([], variable=variable, clock=clock)
        # taken before reading, so a change made meanwhile is noticed (shared.reloading)
        loaded_from = file_fingerprint([path])
        registry = cls(
            read_clients(Path(path), variable=variable), path=path, variable=variable, clock=clock
        )
        registry.loaded_from = loaded_from
        return registry

    @property
    def description(self) -> str:
        """What this is, for log lines."""
        if not self.path:
            return f"the API keys ({self.variable} not set)"
        return f"the API keys in {self.path} ({self.variable})"

    def fingerprint(self) -> Hashable:
        """Changes when the file changes; constant when there is no file."""
        return file_fingerprint([self.path])

    def reload(self) -> None:
        """Read the file again and swap its clients in; a bad file raises and changes nothing."""
        if not self.path:
            return
        self.loaded_from = file_fingerprint([self.path])
        new = read_clients(Path(self.path), variable=self.variable)
        old = self.clients
        self.clients = new  # one assignment: readers see the old list or the new one
        before = {client.name: client for client in old}
        after = {client.name: client for client in new}
        added = [name for name in after if name not in before]
        removed = [name for name in before if name not in after]
        rotated = [
            name for name, client in after.items()
            if name in before and before[name].key_sha256 != client.key_sha256
        ]
        if added or removed or rotated:
            audit(
                "api_keys_reloaded", added=added, removed=removed, rotated=rotated,
                file=os.path.abspath(self.path),
            )

    def authenticate(self, key: str | None) -> ApiClient | None:
        """The client holding this key (or its previous key during a rotation's grace), or None.

        Every entry's current and previous hash is compared, whatever matched, so the time taken
        does not depend on the key's content or on which entry holds it.
        """
        if not key:
            return None
        candidate = sha256_hex(key)
        now = self._clock()
        found: ApiClient | None = None
        for client in self.clients:  # one read of the attribute: a reload cannot split it
            current = hmac.compare_digest(candidate, client.key_sha256)
            previous = hmac.compare_digest(candidate, client.previous_key_sha256 or _NO_KEY)
            if current or (previous and client.grace_until(now) is not None):
                found = client
        return found


def _epoch(entry: dict[str, Any], member: str) -> int | None:
    value = entry.get(member)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{member!r} must be whole epoch seconds or null")
    return value


def _client(entry: Any) -> ApiClient:
    """One entry of a keys file, or ValueError saying what is wrong with it."""
    if not (
        isinstance(entry, dict)
        and isinstance(entry.get("name"), str)
        and isinstance(entry.get("key_sha256"), str)
        and len(entry["key_sha256"]) == 64
        and isinstance(entry.get("admin", False), bool)
    ):
        raise ValueError("is not a valid client")
    previous = entry.get("previous_key_sha256")
    if previous is not None and not (isinstance(previous, str) and len(previous) == 64):
        raise ValueError("'previous_key_sha256' must be a SHA-256 hex digest or null")
    valid_until = _epoch(entry, "previous_valid_until")
    if (previous is None) != (valid_until is None):
        raise ValueError("'previous_key_sha256' and 'previous_valid_until' go together")
    return ApiClient(
        name=entry["name"],
        key_sha256=entry["key_sha256"],
        admin=entry.get("admin", False),
        created=_epoch(entry, "created"),
        rotated=_epoch(entry, "rotated"),
        previous_key_sha256=previous,
        previous_valid_until=valid_until,
    )


def read_clients(path: Path, *, variable: str) -> list[ApiClient]:
    """The entries of a keys file, all checked; errors name the variable that points at it."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(
            variable, f"no file at {path}; create it with: jwt-auth clients add NAME --file {path}"
        ) from None
    except (OSError, ValueError) as exc:
        raise ConfigError(variable, f"{path} is not a readable keys file ({exc})") from None
    entries = document.get("clients") if isinstance(document, dict) else None
    if not isinstance(entries, list):
        raise ConfigError(variable, f'{path}: expected {{"clients": [...]}}')
    clients: list[ApiClient] = []
    names: set[str] = set()
    for index, entry in enumerate(entries):
        try:
            client = _client(entry)
        except ValueError as exc:
            raise ConfigError(variable, f"{path}: entry {index} {exc}") from None
        if client.name in names:
            raise ConfigError(variable, f"{path}: entry {index}: a second client {client.name!r}")
        names.add(client.name)
        clients.append(client)
    return clients


def _entry(client: ApiClient) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "name": client.name,
        "key_sha256": client.key_sha256,
        "admin": client.admin,
        "created": client.created,
        "rotated": client.rotated,
    }
    if client.previous_key_sha256 is not None:
        entry["previous_key_sha256"] = client.previous_key_sha256
        entry["previous_valid_until"] = client.previous_valid_until
    return entry


def write_clients(path: Path, clients: Iterable[ApiClient]) -> None:
    """Replace the keys file atomically with these clients, readable only by its owner.

    A new file in the same folder, flushed to disk and renamed over the old one: a crash never
    leaves half a file, and a service reading it sees the old file or the new one.
    """
    document = {"version": _FILE_VERSION, "clients": [_entry(client) for client in clients]}
    write_atomically(path, (json.dumps(document, indent=2) + "\n").encode("utf-8"))


def _without_ended_grace(clients: list[ApiClient], now: float) -> list[ApiClient]:
    """Forget previous keys whose grace is over, so the file holds no hash that opens nothing."""
    return [
        client if client.previous_key_sha256 is None or client.grace_until(now) is not None
        else replace(client, previous_key_sha256=None, previous_valid_until=None)
        for client in clients
    ]


def _find(clients: list[ApiClient], path: Path, name: str, variable: str) -> int:
    for index, client in enumerate(clients):
        if client.name == name:
            return index
    known = ", ".join(repr(client.name) for client in clients) or "none"
    raise ConfigError(variable, f"{path} has no client named {name!r} (it has: {known})")


def add_client(
    path: Path, name: str, *, admin: bool, variable: str,
    clock: Callable[[], float] = time.time,
) -> str:
    """Add a client with a new key to the file (created if missing); returns the key."""
    if not name or not name.isprintable() or any(ch.isspace() for ch in name):
        raise ConfigError(variable, f"client name {name!r}: use a non-empty name without spaces")
    with exclusive(path):
        clients = read_clients(path, variable=variable) if path.exists() else []
        if any(client.name == name for client in clients):
            raise ConfigError(variable, f"{path} already has a client named {name!r}")
        now = clock()
        key = new_key()
        clients.append(ApiClient(name, sha256_hex(key), admin, created=int(now)))
        write_clients(path, _without_ended_grace(clients, now))
    return key


def remove_client(
    path: Path, name: str, *, variable: str, clock: Callable[[], float] = time.time
) -> ApiClient:
    """Remove a client (its key, and a previous key in grace, stop working); returns it."""
    with exclusive(path):
        clients = read_clients(path, variable=variable)
        removed = clients.pop(_find(clients, path, name, variable))
        write_clients(path, _without_ended_grace(clients, clock()))
    return removed


def rotate_client(
    path: Path, name: str, *, grace: int, variable: str,
    clock: Callable[[], float] = time.time,
) -> tuple[str, ApiClient]:
    """Give a client a new key; the old one is accepted ``grace`` seconds more (0: not at all).

    Only one previous key is kept: rotating again during a grace ends the earlier grace. Returns
    the new key and the client as written.
    """
    if grace < 0:
        raise ConfigError(variable, f"grace {grace}: use 0 or more seconds")
    with exclusive(path):
        clients = read_clients(path, variable=variable)
        index = _find(clients, path, name, variable)
        now = clock()
        key = new_key()
        old = clients[index]
        clients[index] = replace(
            old,
            key_sha256=sha256_hex(key),
            rotated=int(now),
            previous_key_sha256=old.key_sha256 if grace > 0 else None,
            previous_valid_until=int(now) + grace if grace > 0 else None,
        )
        write_clients(path, _without_ended_grace(clients, now))
    return key, clients[index]


def bearer_token(authorization: str | None) -> str | None:
    """The credential of an ``Authorization: Bearer ...`` header, or None."""
    if not authorization:
        return None
    scheme, _, credential = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not credential.strip():
        return None
    return credential.strip()
