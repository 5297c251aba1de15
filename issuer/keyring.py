"""The issuer's signing keys over time: a directory of encrypted keys and a state file of roles.

``ISSUER_KEYS_DIR`` holds encrypted private keys (one passphrase for all) and ``keys.json``,
which gives each key a role:

- ``active``: signs every new token (exactly one);
- ``next``: published in the JWKS, not signing yet (at most one), so that every verifier has it
  before the first token it signs exists;
- ``retiring``: no longer signs, still published until ``published_until``, when every token
  it signed has expired (the largest token lifetime plus a leeway);
- ``retired``: no longer published; listed in the JWKS document's ``retired`` member so that
  verifiers stop trusting it at once instead of keeping it for a grace period.

``jwt-auth keys rotate|promote|retire`` change the roles (``issuer/keycommands.py``); the issuer
reads the state file again when it changes or on SIGHUP (``SigningKeys``). The state file also
holds each key's public half, so only the active key is decrypted (loading a private key is
the slow step, ``shared.keys.load_private_key``).

``ISSUER_PRIVATE_KEY[_FILE]`` keeps working: one active key, read again when its file changes.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from issuer.config import IssuerSettings
from shared.errors import KeyFileMissing, KeyInvalid
from shared.files import write_atomically
from shared.keys import (
    SigningKey,
    VerificationKey,
    jwk_algorithm,
    load_private_key,
    public_jwk,
    public_key_from_jwk,
    read_passphrase,
    read_pem,
)
from shared.reloading import file_fingerprint

log = logging.getLogger(__name__)

STATE_FILE = "keys.json"
STATE_VERSION = 1

ACTIVE, NEXT, RETIRING, RETIRED = "active", "next", "retiring", "retired"
ROLES = (ACTIVE, NEXT, RETIRING, RETIRED)

RETIRE_LEEWAY = 60
"""Seconds a retiring key stays published beyond the largest token lifetime: verifiers accept a
token up to their leeway (``VERIFIER_LEEWAY``, 30 s by default) after its ``exp``."""

RETIRED_LISTED = 16
"""How many retired kids the JWKS names (the most recent ones)."""

_FILE_NAME = re.compile(r"[A-Za-z0-9_.-]{1,200}")


@dataclass(frozen=True)
class KeyRecord:
    """One key in the state file. Times are epoch seconds."""

    kid: str
    file: str
    role: str
    created: int
    # when the key entered the JWKS; a next key is promoted only once verifiers have it
    published_at: int
    public: Mapping[str, Any] = field(default_factory=dict, repr=False)
    retiring_since: int | None = None
    # a retiring key leaves the JWKS at this moment, a retired one left it then
    published_until: int | None = None

    def effective_role(self, now: float) -> str:
        """The role at ``now``: a retiring key whose time is up counts as retired."""
        until = self.published_until
        if self.role == RETIRING and until is not None and now >= until:
            return RETIRED
        return self.role

    def to_json(self) -> dict[str, Any]:
        return {
            "kid": self.kid,
            "file": self.file,
            "role": self.role,
            "created": self.created,
            "published_at": self.published_at,
            "retiring_since": self.retiring_since,
            "published_until": self.published_until,
            "public": dict(self.public),
        }


@dataclass(frozen=True)
class KeyState:
    """The whole state file, validated."""

    keys: tuple[KeyRecord, ...]

    def by_role(self, role: str, now: float) -> list[KeyRecord]:
        return [record for record in self.keys if record.effective_role(now) == role]

    def active(self, now: float) -> KeyRecord:
        return self.by_role(ACTIVE, now)[0]

    def next(self, now: float) -> KeyRecord | None:
        found = self.by_role(NEXT, now)
        return found[0] if found else None

    def find(self, kid: str) -> KeyRecord | None:
        return next((record for record in self.keys if record.kid == kid), None)

    def with_record(self, record: KeyRecord) -> KeyState:
        """This state with ``record`` replacing the one of the same kid, or added."""
        keys = [record if existing.kid == record.kid else existing for existing in self.keys]
        if self.find(record.kid) is None:
            keys.append(record)
        return KeyState(tuple(keys))


def state_path(directory: Path) -> Path:
    return directory / STATE_FILE


def _int_or_none(value: Any, where: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise KeyInvalid(f"{where}: expected whole seconds, got {value!r}")
    return value


def _record(entry: Any, where: str) -> KeyRecord:
    if not isinstance(entry, dict):
        raise KeyInvalid(f"{where}: not an object")
    kid, file, role = entry.get("kid"), entry.get("file"), entry.get("role")
    if not isinstance(kid, str) or not kid:
        raise KeyInvalid(f"{where}: no kid")
    if (
        not isinstance(file, str) or not _FILE_NAME.fullmatch(file) or file.startswith(".")
        or not file.endswith(".pem")
    ):
        # retiring a key deletes its file: the name must never reach the state file or another
        # file of the directory (a passphrase, a clients file)
        raise KeyInvalid(f"{where}: 'file' must be a plain .pem file name in the keys directory")
    if role not in ROLES:
        raise KeyInvalid(f"{where}: role {role!r} is not one of {', '.join(ROLES)}")
    public = entry.get("public")
    if not isinstance(public, dict):
        raise KeyInvalid(f"{where}: no public key")
    created = _int_or_none(entry.get("created"), f"{where} created")
    published_at = _int_or_none(entry.get("published_at"), f"{where} published_at")
    if created is None or published_at is None:
        raise KeyInvalid(f"{where}: 'created' and 'published_at' are required")
    record = KeyRecord(
        kid=kid, file=file, role=role, created=created, published_at=published_at,
        public=public,
        retiring_since=_int_or_none(entry.get("retiring_since"), f"{where} retiring_since"),
        published_until=_int_or_none(entry.get("published_until"), f"{where} published_until"),
    )
    if role in (RETIRING, RETIRED) and record.published_until is None:
        raise KeyInvalid(f"{where}: a {role} key needs 'published_until'")
    return record


def parse_state(document: bytes, *, source: str) -> KeyState:
    """A validated state: exactly one active key, at most one next, each kid once."""
    try:
        data = json.loads(document)
    except ValueError as exc:
        raise KeyInvalid(f"{source}: not JSON ({exc})") from None
    entries = data.get("keys") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        raise KeyInvalid(f'{source}: expected {{"version": 1, "keys": [...]}}')
    records = tuple(_record(entry, f"{source} keys[{index}]") for index, entry in
                    enumerate(entries))
    kids = [record.kid for record in records]
    if len(set(kids)) != len(kids):
        raise KeyInvalid(f"{source}: a kid appears twice")
    files = [record.file for record in records]
    if len(set(files)) != len(files):
        raise KeyInvalid(f"{source}: two keys name the same file")
    roles = [record.role for record in records]
    if roles.count(ACTIVE) != 1:
        raise KeyInvalid(f"{source}: exactly one key must be active, found {roles.count(ACTIVE)}")
    if roles.count(NEXT) > 1:
        raise KeyInvalid(f"{source}: at most one key may be next, found {roles.count(NEXT)}")
    return KeyState(records)


def read_state(directory: Path, *, variable: str = "ISSUER_KEYS_DIR") -> KeyState:
    """The state file of a keys directory; a missing or bad one is a KeyLoadError."""
    path = state_path(directory)
    try:
        document = path.read_bytes()
    except FileNotFoundError:
        raise KeyFileMissing(
            f"{variable}: no {STATE_FILE} in {directory}; make the first key with "
            f"`jwt-auth keys rotate --dir {directory}`"
        ) from None
    except OSError as exc:
        raise KeyFileMissing(f"{variable}: cannot read {path}: {exc.strerror}") from None
    return parse_state(document, source=str(path))


def write_state(directory: Path, state: KeyState) -> None:
    """Replace the state file atomically: a reader sees the old file or the new one."""
    document = {"version": STATE_VERSION, "keys": [record.to_json() for record in state.keys]}
    write_atomically(state_path(directory), (json.dumps(document, indent=2) + "\n").encode())


def record_for(key: VerificationKey | SigningKey, file: str, role: str, now: int) -> KeyRecord:
    """A state entry for a key made or adopted at ``now``."""
    return KeyRecord(
        kid=key.kid, file=file, role=role, created=now, published_at=now,
        public=public_members(key.jwk),
    )


PUBLIC_MEMBERS = {"RSA": ("kty", "n", "e"), "EC": ("kty", "crv", "x", "y"),
                  "OKP": ("kty", "crv", "x")}
"""The members that make up each key type's public key (RFC 7518 6.2-6.3, RFC 8037 2)."""


def public_members(key: Any) -> dict[str, Any]:
    """The public members of a jwcrypto key of any of the three types (what the state file
    keeps, and what rebuilds the key: ``shared.keys.public_key_from_jwk``)."""
    exported: dict[str, Any] = key.export_public(as_dict=True)
    return {name: exported[name] for name in PUBLIC_MEMBERS[exported["kty"]]}


@dataclass(frozen=True)
class PublishedKey:
    """A key the JWKS lists, with its role and, for a retiring key, when it leaves."""

    kid: str
    role: str
    jwk: Mapping[str, Any]
    published_until: int | None


@dataclass(frozen=True)
class KeyRing:
    """What the issuer signs with and publishes, as loaded; replaced whole on a reload."""

    active: SigningKey
    published: tuple[PublishedKey, ...]
    retired: tuple[str, ...] = ()
    # when the active key was made (unix seconds), for the key-age alert; None when unknown
    active_created: float | None = None

    @property
    def next_present(self) -> bool:
        """Whether a next key is published, ready to be promoted."""
        return any(key.role == NEXT for key in self.published)

    def jwks(self, now: float) -> dict[str, Any]:
        """The JWKS document at ``now``: active, next and retiring keys; retired kids named."""
        keys = [dict(key.jwk) for key in self.published
                if key.published_until is None or now < key.published_until]
        lapsed = [key.kid for key in self.published
                  if key.published_until is not None and now >= key.published_until]
        document: dict[str, Any] = {"keys": keys}
        # newest first, and only a few: a verifier's grace covers a key for a day, not forever
        retired = [*lapsed, *reversed(self.retired)][:RETIRED_LISTED]
        if retired:
            # not part of RFC 7517 (clients ignore unknown members): tells our verifiers to stop
            # trusting these kids at once rather than keep them for their grace period
            document["retired"] = retired
        return document

    def algorithms(self, now: float) -> list[str]:
        """The algorithms of the keys the JWKS lists at ``now``, the signing key's first."""
        listed = [self.active.alg] + [
            jwk_algorithm(key.jwk) for key in self.published
            if key.published_until is None or now < key.published_until
        ]
        return list(dict.fromkeys(listed))

    def public_pem(self, kid: str, now: float) -> str | None:
        """The SPKI PEM of a key the JWKS lists at ``now``, or None."""
        for key in self.published:
            if key.kid == kid and (key.published_until is None or now < key.published_until):
                public = public_key_from_jwk(dict(key.jwk), source=f"the published key {kid}")
                pem: bytes = public.jwk.export_to_pem()
                return pem.decode("ascii")
        return None

    def describe(self, now: float) -> list[dict[str, Any]]:
        """Kids and roles, for /readyz and logs; never key material."""
        described = []
        for key in self.published:
            role = key.role
            if key.published_until is not None and now >= key.published_until:
                role = RETIRED
            described.append({"kid": key.kid, "role": role, "publishedUntil": key.published_until})
        return described


def _single_key_ring(key: SigningKey, created: float | None) -> KeyRing:
    return KeyRing(active=key, published=(PublishedKey(key.kid, ACTIVE, key.public_jwk(), None),),
                   active_created=created)


def load_ring(
    directory: Path, passphrase: bytes | None, *, now: float, variable: str = "ISSUER_KEYS_DIR"
) -> KeyRing:
    """Read the state, decrypt the active key, check every published key matches its kid."""
    return ring_from_state(directory, read_state(directory, variable=variable), passphrase,
                           now=now, variable=variable)


def ring_from_state(
    directory: Path, state: KeyState, passphrase: bytes | None, *, now: float,
    variable: str = "ISSUER_KEYS_DIR",
) -> KeyRing:
    """``load_ring`` for a state already read."""
    record = state.active(now)
    active_created = record.created
    pem, _ = read_pem(file=str(directory / record.file), text=None,
                      file_variable=f"{variable} ({record.file})", text_variable="")
    active = load_private_key(pem, passphrase, source=f"{directory / record.file}")
    if active.kid != record.kid:
        raise KeyInvalid(
            f"{directory / record.file}: holds key {active.kid}, but {STATE_FILE} says {record.kid}"
        )
    published: list[PublishedKey] = []
    retired: list[KeyRecord] = []
    for record in state.keys:
        role = record.effective_role(now)
        if role == RETIRED:
            retired.append(record)
            continue
        if role == ACTIVE:
            published.append(PublishedKey(record.kid, ACTIVE, active.public_jwk(), None))
            continue
        public = public_key_from_jwk(dict(record.public), source=f"{STATE_FILE} {record.kid}")
        if public.kid != record.kid:
            raise KeyInvalid(f"{STATE_FILE}: the public key of {record.kid} has another kid")
        until = record.published_until if role == RETIRING else None
        published.append(PublishedKey(record.kid, role, public_jwk(public.jwk), until))
    # the active key first: a client that takes the first key gets the signing one
    published.sort(key=lambda key: ROLES.index(key.role))
    # oldest retirement first, as ``jwks`` expects (it lists the most recent ones first)
    retired.sort(key=lambda record: record.published_until or 0)
    return KeyRing(active=active, published=tuple(published),
                   retired=tuple(record.kid for record in retired), active_created=active_created)


def load_signing_key(settings: IssuerSettings) -> SigningKey:
    """The one configured private key of ``ISSUER_PRIVATE_KEY[_FILE]``, decrypted and checked."""
    pem, source = read_pem(
        file=settings.private_key_file,
        text=settings.private_key,
        file_variable="ISSUER_PRIVATE_KEY_FILE",
        text_variable="ISSUER_PRIVATE_KEY",
    )
    return load_private_key(pem, settings_passphrase(settings), source=source)


def settings_passphrase(settings: IssuerSettings) -> bytes | None:
    return read_passphrase(
        value=settings.key_passphrase,
        file=settings.key_passphrase_file,
        value_variable="ISSUER_KEY_PASSPHRASE",
        file_variable="ISSUER_KEY_PASSPHRASE_FILE",
    )


class SigningKeys:
    """The issuer's current ``KeyRing``, read again when its files change (``shared.reloading``).

    ``ring`` is one attribute, replaced whole, so a request thread reads either the old ring or
    the new one, never a mix.
    """

    def __init__(self, settings: IssuerSettings, *, clock: Any = time.time) -> None:
        self._settings = settings
        self._clock = clock
        self.ring = self._load()

    @property
    def description(self) -> str:
        if self._settings.keys_dir:
            return f"the signing keys in {self._settings.keys_dir} (ISSUER_KEYS_DIR)"
        return "the signing key (ISSUER_PRIVATE_KEY_FILE)"

    def fingerprint(self) -> Hashable:
        settings = self._settings
        if settings.keys_dir:
            watched = [state_path(Path(settings.keys_dir))]
        else:
            watched = [Path(settings.private_key_file)] if settings.private_key_file else []
        if settings.key_passphrase_file:
            watched.append(Path(settings.key_passphrase_file))
        return file_fingerprint(watched)

    def reload(self) -> None:
        self.ring = self._load()

    def _load(self) -> KeyRing:
        # before reading: a change made while the keys are decrypted is then seen as a change
        self.loaded_from = self.fingerprint()
        settings = self._settings
        if settings.keys_dir:
            directory = Path(settings.keys_dir)
            state = read_state(directory)
            ring = ring_from_state(directory, state, settings_passphrase(settings),
                                   now=self._clock())
            for warning in timing_warnings(state, settings):
                log.warning("%s", warning)
            return ring
        if not (settings.private_key_file or settings.private_key):
            raise KeyFileMissing(
                "no key configured: set ISSUER_KEYS_DIR (keys that rotate), "
                "ISSUER_PRIVATE_KEY_FILE or ISSUER_PRIVATE_KEY"
            )
        key = load_signing_key(settings)  # first: a missing file is its one-line error
        # a single key file is as old as the file (keygen wrote it); an inline key, unknown
        created = (os.stat(settings.private_key_file).st_mtime if settings.private_key_file
                   else None)
        return _single_key_ring(key, created)


def timing_warnings(state: KeyState, settings: IssuerSettings) -> list[str]:
    """What in the state contradicts this issuer's own lifetimes (the ``keys`` commands read
    them from their own environment, which may not be the issuer's)."""
    warnings = []
    retiring = [record for record in state.keys
                if record.role == RETIRING and record.retiring_since is not None]
    for record in retiring:
        since = record.retiring_since or 0
        until = record.published_until or 0
        if until < since + settings.max_token_ttl:
            warnings.append(
                f"retiring key {record.kid} leaves the JWKS at {until}, before tokens this issuer "
                f"signed with it can expire (ISSUER_MAX_TOKEN_TTL={settings.max_token_ttl}); "
                "they will be refused from then. Run `jwt-auth keys` with the issuer's variables"
            )
    if retiring:
        # the last promotion: when the key retired most recently stopped signing
        promoted_at = max(record.retiring_since or 0 for record in retiring)
        active = next(record for record in state.keys if record.role == ACTIVE)
        waited = promoted_at - active.published_at
        if 0 <= waited < settings.jwks_max_age:
            warnings.append(
                f"key {active.kid} signs since {waited} s after it was published, sooner than "
                f"ISSUER_JWKS_MAX_AGE={settings.jwks_max_age}: a verifier that cached the JWKS "
                "fetches it on first sight of its kid, as often as its refetch interval allows"
            )
    return warnings


def promote(
    state: KeyState, *, now: int, retire_after: int
) -> tuple[KeyState, KeyRecord, KeyRecord]:
    """``next`` becomes ``active`` and ``active`` becomes ``retiring`` for ``retire_after`` s."""
    upcoming = state.next(now)
    if upcoming is None:
        raise KeyInvalid("there is no next key to promote; make one with `jwt-auth keys rotate`")
    current = state.active(now)
    retiring = replace(current, role=RETIRING, retiring_since=now,
                       published_until=now + retire_after)
    activated = replace(upcoming, role=ACTIVE)
    return state.with_record(retiring).with_record(activated), activated, retiring


def retire(state: KeyState, kid: str, *, now: int) -> tuple[KeyState, KeyRecord]:
    """Stop publishing a next or retiring key now (a compromised key, a next key not wanted)."""
    record = state.find(kid)
    if record is None:
        raise KeyInvalid(f"no key {kid!r} in {STATE_FILE}; `jwt-auth keys list` shows the kids")
    role = record.effective_role(now)
    if role == ACTIVE:
        raise KeyInvalid(
            f"{kid} is the active key: make and promote another first "
            "(`jwt-auth keys rotate`, then `jwt-auth keys promote --force`)"
        )
    if role == RETIRED:
        raise KeyInvalid(f"{kid} is already retired")
    retired = replace(record, role=RETIRED, published_until=now,
                      retiring_since=record.retiring_since or now)
    return state.with_record(retired), retired


def settle(state: KeyState, now: int) -> tuple[KeyState, list[KeyRecord]]:
    """Retiring keys whose time is up, recorded as retired (their private files can go)."""
    lapsed = [record for record in state.keys
              if record.role == RETIRING and record.effective_role(now) == RETIRED]
    for record in lapsed:
        state = state.with_record(replace(record, role=RETIRED))
    return state, lapsed
