"""API keys for the issuer's clients and the verifier's admins: made random, stored hashed.

A key is 256 random bits, so a plain SHA-256 of it is as strong as a slow password hash would
be and costs nothing per request. The file holds only hashes; the key itself is shown once, when
it is made. Lookups compare against every entry with ``hmac.compare_digest`` so timing reveals
neither which entry matched nor how much of a hash did.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import tempfile
from dataclasses import dataclass
from pathlib import Path

from shared.errors import ConfigError

KEY_PREFIX = "jwta_"
_FILE_VERSION = 1


@dataclass(frozen=True)
class ApiClient:
    """One holder of an API key: a name and whether it may act as an admin."""

    name: str
    key_sha256: str
    admin: bool = False


def hash_key(key: str) -> str:
    """The stored form of an API key."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def new_key() -> str:
    """A fresh API key: a recognisable prefix and 256 random bits."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


class ApiKeyRegistry:
    """The clients of one keys file, loaded once; ``authenticate`` maps a key to its client."""

    def __init__(self, clients: list[ApiClient]) -> None:
        self.clients = clients

    @classmethod
    def load(cls, path: str | None, *, variable: str) -> ApiKeyRegistry:
        """Read a keys file; a missing variable means no client can authenticate."""
        if not path:
            return cls([])
        return cls(read_clients(Path(path), variable=variable))

    def authenticate(self, key: str | None) -> ApiClient | None:
        """The client holding this key, or None; constant time in the key's content."""
        if not key:
            return None
        candidate = hash_key(key)
        found: ApiClient | None = None
        for client in self.clients:
            if hmac.compare_digest(candidate, client.key_sha256):
                found = client
        return found


def read_clients(path: Path, *, variable: str) -> list[ApiClient]:
    """The entries of a keys file; errors name the variable that points at it."""
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
    for index, entry in enumerate(entries):
        if not (
            isinstance(entry, dict)
            and isinstance(entry.get("name"), str)
            and isinstance(entry.get("key_sha256"), str)
            and len(entry["key_sha256"]) == 64
            and isinstance(entry.get("admin", False), bool)
        ):
            raise ConfigError(variable, f"{path}: entry {index} is not a valid client")
        clients.append(ApiClient(entry["name"], entry["key_sha256"], entry.get("admin", False)))
    return clients


def add_client(path: Path, name: str, *, admin: bool, variable: str) -> str:
    """Add a client with a new key to the file (created if missing); returns the key.

    The file is replaced atomically, so a crash never leaves half a file, and is readable only
    by its owner.
    """
    if not name or any(ch.isspace() for ch in name):
        raise ConfigError(variable, f"client name {name!r}: use a non-empty name without spaces")
    clients = read_clients(path, variable=variable) if path.exists() else []
    if any(client.name == name for client in clients):
        raise ConfigError(variable, f"{path} already has a client named {name!r}")
    key = new_key()
    clients.append(ApiClient(name, hash_key(key), admin))
    document = {
        "version": _FILE_VERSION,
        "clients": [
            {"name": c.name, "key_sha256": c.key_sha256, "admin": c.admin} for c in clients
        ],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            json.dump(document, handle, indent=2)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, 0o600)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return key


def bearer_token(authorization: str | None) -> str | None:
    """The credential of an ``Authorization: Bearer ...`` header, or None."""
    if not authorization:
        return None
    scheme, _, credential = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not credential.strip():
        return None
    return credential.strip()
