"""The issuers a verifier trusts: one, from the ``VERIFIER_*`` settings, or several, from
``VERIFIER_TRUSTED_ISSUERS_FILE``.

With one issuer (the default) every token is judged by the settings' keys and policy, as ever.
With the file, a token's ``iss`` chooses its issuer's entry, and that is all it chooses: the
keys that must verify its signature and the policy its claims must meet (algorithms, audience,
the user id and admin fields, the required attributes). An unknown or missing ``iss`` is
``401 issuer_unknown``; one issuer's keys never verify another issuer's token, whatever ``kid``
it names, since each entry has a key set of its own.

The file::

    {"issuers": [
      {"issuer": "https://login.example.com", "jwksUrl": "https://login.example.com/jwks.json",
       "providerName": "staff", "algorithms": ["RS256", "ES256"], "audience": "api"},
      {"issuer": "partner-idp", "publicKeyFile": "partner.pem", "providerName": "partner",
       "userIdField": "sub", "isAdminField": "role", "isAdminValue": "admin",
       "requiredAttributes": {"tenant": "acme"}}
    ]}

Each entry has ``issuer`` and exactly one of ``jwksUrl``, ``publicKey`` (PEM text) and
``publicKeyFile`` (a path, relative to the file's folder); the other members default to the
``VERIFIER_*`` / ``JWT_*`` settings. ``providerName`` names the issuer in answers, in the
forward-auth ``X-Auth-Provider`` header and in the admin routes' ``?provider=``; it is needed
when there are several entries. A member the file format does not know stops the start (a typo
must not loosen the policy).

Users belong to their issuer (``subject``): user ``123`` of one provider is not user ``123`` of
another, in sessions, revocations, cut-offs, user records and login limits alike.

The file is read again when it changes and on SIGHUP (``shared.reloading``): an entry that did
not change keeps its key set (and its cached JWKS); a file that does not parse leaves the
issuers as they were.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

from shared.errors import ConfigError, KeyLoadError
from shared.reloading import file_fingerprint, loaded_fingerprint
from shared.strictjson import StrictJSONError, loads_strict
from verifier.config import ALLOWED_ALGORITHMS, VerifierSettings
from verifier.errors import IssuerUnknown
from verifier.keyset import FetchNeeded, KeySet, KeysNotLoaded, read_static_keys
from verifier.verification import KeySource, VerificationPolicy

log = logging.getLogger(__name__)

FILE_VARIABLE = "VERIFIER_TRUSTED_ISSUERS_FILE"

PROVIDER_NAME = re.compile(r"[A-Za-z0-9._-]{1,64}")
"""What a provider name may hold: it travels in headers, query strings and Redis key names."""

SUBJECT_SEPARATOR = "\x1f"
"""Between a provider and a user id in a ``subject``: a control character, which no user id can
hold (the claim schema refuses them), so a scoped subject never equals a plain user id."""

_MEMBERS = frozenset({
    "issuer", "jwksUrl", "publicKey", "publicKeyFile", "algorithms", "audience",
    "providerName", "userIdField", "isAdminField", "isAdminValue", "requiredAttributes",
})


@dataclass(frozen=True)
class TrustedIssuer:
    """One issuer: the ``iss`` it signs as (None: any), its name, its keys, its policy."""

    issuer: str | None
    provider: str
    keys: KeySet
    policy: VerificationPolicy
    # the file's entry as read (None with one issuer from the settings): an unchanged entry
    # keeps its key set across reloads
    definition: str | None = None


class TrustedIssuers:
    """The issuers this verifier trusts, chosen by a token's ``iss``."""

    def __init__(self, entries: list[TrustedIssuer], *, file: str | None = None,
                 primary_provider: str = "jwt",
                 load: Callable[[], list[TrustedIssuer]] | None = None) -> None:
        self._entries = entries
        self.file = file
        # the provider whose users keep their plain ids in Redis (VERIFIER_PROVIDER_NAME): a
        # deployment that moves from one issuer to the file keeps its sessions and revocations
        # when it names its first issuer's entry alike
        self.primary_provider = primary_provider
        self._load = load
        self.loaded_from: Hashable = file_fingerprint([file])
        # bumped whenever an entry (an issuer's policy or keys' source) is replaced: a result
        # verified under an earlier entry is not reused (VerifierService's cache)
        self.version = 0
        self._index()

    def _index(self) -> None:
        self._by_issuer = {entry.issuer: entry for entry in self._entries
                           if entry.issuer is not None}
        self._by_provider = {entry.provider: entry for entry in self._entries}

    @classmethod
    def from_settings(
        cls, settings: VerifierSettings, *, clock: Callable[[], float] = time.monotonic
    ) -> TrustedIssuers:
        """The one issuer of the ``VERIFIER_*`` settings, or those of the file."""
        if not settings.trusted_issuers_file:
            keys = KeySet.from_settings(settings, clock=clock)
            one = TrustedIssuer(settings.issuer, settings.provider_name, keys,
                                VerificationPolicy.from_settings(settings))
            return cls([one], primary_provider=settings.provider_name)
        path = settings.trusted_issuers_file
        previous: dict[str, TrustedIssuer] = {}

        def load() -> list[TrustedIssuer]:
            entries = read_trusted_issuers(Path(path), settings, previous, clock=clock)
            previous.clear()
            previous.update({entry.definition or "": entry for entry in entries})
            return entries

        return cls(load(), file=path, primary_provider=settings.provider_name, load=load)

    # choosing ---------------------------------------------------------------------------------

    @property
    def several(self) -> bool:
        """Whether tokens are told apart by ``iss`` (the file is in use)."""
        return self.file is not None

    @property
    def entries(self) -> list[TrustedIssuer]:
        return list(self._entries)

    def choose(self, iss: Any, *, fetch: bool = True) -> tuple[KeySource, VerificationPolicy]:
        """The keys and the policy for a token whose payload says ``iss``.

        With ``fetch=False`` the keys come from memory only (``KeySet.in_memory``), and
        FetchNeeded says when the issuer's keys must be fetched first.
        """
        entry = self.entry_for(iss)
        if fetch:
            if not entry.keys.ready:
                raise KeysNotLoaded(entry.provider)
            return entry.keys, entry.policy
        if not entry.keys.has_keys:
            raise FetchNeeded(None)
        return entry.keys.in_memory(), entry.policy

    def entry_for(self, iss: Any) -> TrustedIssuer:
        """The entry a token's ``iss`` names; with one issuer from the settings, that one."""
        if not self.several:
            return self._entries[0]
        if iss is None:
            raise IssuerUnknown("the token has no iss; this verifier trusts several issuers "
                                "and tells them apart by it")
        entry = self._by_issuer.get(iss) if isinstance(iss, str) else None
        if entry is None:
            raise IssuerUnknown("the token's iss names no trusted issuer")
        return entry

    def in_memory(self) -> _InMemoryIssuers:
        """These issuers for a caller that must not wait on an issuer's JWKS."""
        return _InMemoryIssuers(self)

    def by_provider(self, provider: str) -> TrustedIssuer | None:
        return self._by_provider.get(provider)

    def trusts(self, provider: str, kid: str, *, fetch: bool = True) -> bool:
        """Whether the key that verified a cached token of ``provider`` is still trusted."""
        entry = self._by_provider.get(provider)
        return entry is not None and entry.keys.trusts(kid, fetch=fetch)

    def subject(self, provider: str, user_id: str) -> str:
        """Who a user is in Redis: the plain id for the primary provider, else scoped."""
        scope = self.scope(provider)
        return user_id if scope is None else f"{scope}{SUBJECT_SEPARATOR}{user_id}"

    def scope(self, provider: str) -> str | None:
        """What tells one issuer's users and jtis from another's in Redis: None for the primary
        provider, whose keys keep the names they always had (no layout change, no migration)."""
        return None if provider == self.primary_provider else provider

    def readiness(self) -> dict[str, bool]:
        """``keys``: some issuer has keys (each tries a fetch when it has none), so the verifier
        can serve; with several issuers, ``allIssuers``: every one has. One partner's JWKS that
        cannot be fetched leaves the verifier ready, degraded, rather than taking every pod out
        of service for the other issuers' users too."""
        loaded = [entry.keys.ready for entry in self._entries]
        checks = {"keys": any(loaded)}
        if len(loaded) > 1:
            checks["allIssuers"] = all(loaded)
        return checks

    def describe_keys(self) -> list[dict[str, Any]]:
        """Every key this verifier trusts, with its issuer (``/readyz``)."""
        return [{"provider": entry.provider, **key} for entry in self._entries
                for key in entry.keys.describe()]

    # reloading (shared.reloading.Reloadable) --------------------------------------------------

    @property
    def description(self) -> str:
        if self.file:
            return f"the trusted issuers in {self.file} ({FILE_VARIABLE})"
        return self._entries[0].keys.description

    def fingerprint(self) -> Hashable:
        """Changes when the file changes, or a PEM file of an issuer does."""
        return (file_fingerprint([self.file]),
                tuple(entry.keys.fingerprint() for entry in self._entries))

    def reload(self) -> None:
        """What changed: the file (new or changed entries are read whole; unchanged ones keep
        their keys), and the PEM files of the issuers kept. Another issuer's keys, and the grace
        of keys withdrawn from its JWKS, are left alone."""
        self._reload(everything=False)

    def reload_all(self) -> None:
        """SIGHUP: the file, then every issuer's keys (each JWKS fetched again, its grace over)."""
        self._reload(everything=True)

    def _reload(self, *, everything: bool) -> None:
        before = set(map(id, self._entries))
        if self._load is not None:
            self.loaded_from = file_fingerprint([self.file])
            entries = self._load()
            if [id(entry) for entry in entries] != [id(entry) for entry in self._entries]:
                self.version += 1
            self._entries = entries
            self._index()
        # each issuer on its own: one JWKS that cannot be fetched stops no other issuer's reload
        failures = []
        for entry in self._entries:
            kept = id(entry) in before
            changed = entry.keys.fingerprint() != loaded_fingerprint(entry.keys)
            if kept and (everything or changed):
                try:
                    entry.keys.reload()
                except Exception as exc:  # noqa: BLE001 - reported together below
                    failures.append(f"{entry.provider}: {exc}")
        if failures:
            raise ConfigError(FILE_VARIABLE if self.file else "VERIFIER_PUBLIC_KEY_FILE",
                              "; ".join(failures))


class _InMemoryIssuers:
    """``TrustedIssuers.choose`` without fetching, for ``verify_token``'s ``trust``."""

    __slots__ = ("_issuers",)

    def __init__(self, issuers: TrustedIssuers) -> None:
        self._issuers = issuers

    def choose(self, iss: Any) -> tuple[KeySource, VerificationPolicy]:
        return self._issuers.choose(iss, fetch=False)


# the file ---------------------------------------------------------------------------------------


def read_trusted_issuers(
    path: Path, settings: VerifierSettings, previous: Mapping[str, TrustedIssuer],
    *, clock: Callable[[], float] = time.monotonic,
) -> list[TrustedIssuer]:
    """Every entry of the file, checked; ConfigError naming the file and the entry if not."""

    def refuse(message: str) -> ConfigError:
        return ConfigError(FILE_VARIABLE, f"{path}: {message}")

    try:
        document = loads_strict(path.read_bytes())
    except OSError as exc:
        raise refuse(f"cannot read it ({exc.strerror})") from None
    except StrictJSONError as exc:
        raise refuse(f"not acceptable JSON ({exc})") from None
    if not isinstance(document, dict) or set(document) != {"issuers"} \
            or not isinstance(document["issuers"], list) or not document["issuers"]:
        raise refuse('expected {"issuers": [...]} with at least one entry')
    raw_entries = document["issuers"]
    entries: list[TrustedIssuer] = []
    for position, raw in enumerate(raw_entries):
        where = f"issuers[{position}]"
        if not isinstance(raw, dict):
            raise refuse(f"{where}: expected an object")
        # with the count's one rule in it: a lone entry may leave providerName out, so the same
        # text in a longer file is another entry (and is refused there if it does)
        definition = json.dumps([raw, len(raw_entries) == 1], sort_keys=True)
        kept = previous.get(definition)
        if kept is not None:
            entries.append(kept)
            continue
        try:
            entries.append(_entry(raw, where, path, settings, len(raw_entries), clock))
        except (ConfigError, KeyLoadError) as exc:
            raise refuse(f"{where}: {exc}") from None
        entries[-1] = replace(entries[-1], definition=definition)
    _check_unique([entry.issuer for entry in entries], "issuer", refuse)
    _check_unique([entry.provider for entry in entries], "providerName", refuse)
    return entries


def _check_unique(values: Iterable[Any], member: str,
                  refuse: Callable[[str], ConfigError]) -> None:
    seen: set[Any] = set()
    for value in values:
        if value in seen:
            raise refuse(f"two entries have {member} {value!r}")
        seen.add(value)


def _entry(raw: dict[str, Any], where: str, path: Path, settings: VerifierSettings,
           count: int, clock: Callable[[], float]) -> TrustedIssuer:
    unknown = sorted(set(raw) - _MEMBERS)
    if unknown:
        raise ConfigError(unknown[0], "unknown member; the members are "
                          + ", ".join(sorted(_MEMBERS)))
    issuer = raw.get("issuer")
    if not isinstance(issuer, str) or not issuer:
        raise ConfigError("issuer", "the exact iss of this issuer's tokens is needed")
    sources = [name for name in ("jwksUrl", "publicKey", "publicKeyFile") if raw.get(name)]
    if len(sources) != 1:
        raise ConfigError("jwksUrl", "set exactly one of jwksUrl, publicKey, publicKeyFile")
    algorithms = _strings(raw.get("algorithms", list(settings.algorithms)), "algorithms")
    for name in algorithms:
        if name not in ALLOWED_ALGORITHMS:
            raise ConfigError("algorithms", f"{name!r} is not allowed; choose among "
                              f"{', '.join(ALLOWED_ALGORITHMS)}")
    if not algorithms:
        raise ConfigError("algorithms", "at least one algorithm is needed")
    if "providerName" in raw:
        provider = raw["providerName"]
    elif count == 1:
        provider = settings.provider_name
    else:
        raise ConfigError("providerName", "needed when several issuers are trusted")
    if not isinstance(provider, str) or not PROVIDER_NAME.fullmatch(provider):
        raise ConfigError("providerName", "1 to 64 of A-Z a-z 0-9 . _ -")
    audience = raw.get("audience")
    audiences = frozenset(_strings(audience, "audience")) if audience is not None else None
    attributes = raw.get("requiredAttributes", settings.required_attributes)
    if not isinstance(attributes, dict):
        raise ConfigError("requiredAttributes", "expected an object")
    fields = {name: raw.get(name, default) for name, default in (
        ("userIdField", settings.user_id_field), ("isAdminField", settings.is_admin_field))}
    for name, value in fields.items():
        if not isinstance(value, str) or not value:
            raise ConfigError(name, "expected a claim name")
    policy = VerificationPolicy(
        algorithms=frozenset(algorithms),
        user_id_field=fields["userIdField"],
        is_admin_field=fields["isAdminField"],
        is_admin_value=raw.get("isAdminValue", settings.is_admin_value),
        required_attributes=MappingProxyType(dict(attributes)),
        provider_name=provider,
        escape_characters=tuple(settings.escape_characters),
        leeway=settings.leeway,
        require_exp=settings.require_exp,
        max_token_age=settings.max_token_age,
        audience=audiences,
        issuer=issuer,
    )
    jwks_url = raw.get("jwksUrl")
    if jwks_url is not None and (not isinstance(jwks_url, str)
                                 or not jwks_url.startswith(("http://", "https://"))):
        raise ConfigError("jwksUrl", "expected an http:// or https:// URL")
    key_file = raw.get("publicKeyFile")
    if key_file is not None:
        if not isinstance(key_file, str):
            raise ConfigError("publicKeyFile", "expected a path")
        key_file = str(path.parent / key_file)
    key_text = raw.get("publicKey")
    if key_text is not None and not isinstance(key_text, str):
        raise ConfigError("publicKey", "expected PEM text")
    static = [] if jwks_url else read_static_keys(
        key_file, key_text, algorithms, file_variable=f"{where}.publicKeyFile",
        text_variable=f"{where}.publicKey", algorithms_variable=f"{where}.algorithms")
    keys = KeySet(static, jwks_url=jwks_url,
                  min_refetch_interval=settings.jwks_min_refetch_interval,
                  grace=settings.jwks_grace, clock=clock, public_key_file=key_file,
                  algorithms=algorithms)
    if jwks_url:
        # as with one issuer: a JWKS that does not answer yet is fetched again on demand
        keys.refresh(force=True)
    return TrustedIssuer(issuer, provider, keys, policy)


def _strings(value: Any, member: str) -> list[str]:
    values = [value] if isinstance(value, str) else value
    if not isinstance(values, list) or not all(isinstance(item, str) and item
                                               for item in values):
        raise ConfigError(member, "expected a string or a list of strings")
    return list(values)
