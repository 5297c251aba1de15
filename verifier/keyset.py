"""The verifier's trusted public keys: PEM from configuration, or the issuer's JWKS.

Only keys that come from configuration are ever trusted. A token's ``kid`` selects among them;
``jwk``, ``jku``, ``x5u`` and ``x5c`` in a token header are never read by this module.

JWKS keys are fetched at start, kept in memory, and fetched again when a token names an unknown
``kid`` (the issuer rotated) or when the cached set is older than ``JWKS_MAX_AGE`` (so a key the
issuer withdrew stops being trusted). Every fetch is rate limited to one per
``settings.jwks_min_refetch_interval`` seconds, so a flood of random ``kid`` values costs the
issuer one request per interval, not one per token.

A caller that must not wait on the issuer asks with ``fetch=False`` (``select``, ``trusts``) or
through ``in_memory()``: the answer then comes from the keys in memory, a refresh that is merely
due starts in a thread of its own, and ``FetchNeeded`` says when only a fetch could settle it
(an unknown ``kid`` that may be the issuer's new key, or no key loaded yet).
"""

from __future__ import annotations

import logging
import re
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

from shared.claimrule import ClaimRule
from shared.errors import KeyInvalid, KeyLoadError
from shared.keys import (
    RS256,
    VerificationKey,
    load_public_keys,
    public_key_from_jwk,
    read_pem,
    verifies,
)
from shared.reloading import file_fingerprint
from shared.strictjson import StrictJSONError, loads_strict
from verifier.config import VerifierSettings
from verifier.errors import KeyUnknown

log = logging.getLogger(__name__)

JWKS_TIMEOUT = 3.0
"""Seconds a JWKS fetch may take; it can run on a request's path, so it stays short."""

JWKS_MAX_BYTES = 256 * 1024
"""A JWKS document larger than this is refused (a real one holds a handful of keys)."""

JWKS_MAX_KEYS = 64
"""Entries beyond this many are ignored, bounding the work one document can cause."""

FETCH_WAIT = 1.0
"""Seconds a request waits for another thread's JWKS fetch before answering without it."""

JWKS_MAX_AGE = 300.0
"""Seconds after which a cached JWKS is fetched again on use, so withdrawn keys expire."""

MIN_REFETCH_FLOOR = 1.0
"""However short the issuer's cache lifetime, at most one JWKS fetch per second per process."""

KEYLESS_REFETCH = 2.0
"""Seconds between JWKS fetches at most while no key is loaded at all (the issuer was down at
start): the verifier answers every token 503 meanwhile, so it retries sooner than
``VERIFIER_JWKS_MIN_REFETCH``, still bounded (one fetch per 2 s per process)."""

JWKS_GRACE = 3600.0
"""Seconds a key that left the JWKS unannounced stays trusted (``VERIFIER_JWKS_GRACE``)."""

KID_MAX_LENGTH = 256
"""A longer ``kid`` cannot name one of our keys; refusing it early keeps logs small."""


FetchedKeys = list[tuple[str | None, VerificationKey]]
"""JWKS keys as (the entry's own ``kid`` member, when usable; the key)."""


class JWKSFetchError(Exception):
    """Raised when the JWKS document cannot be fetched or is not a usable key set."""


@dataclass(frozen=True)
class _Index:
    """An immutable snapshot of the trusted keys; swapped whole, so readers need no lock."""

    by_kid: Mapping[str, VerificationKey]
    keys: tuple[VerificationKey, ...]
    # keys the JWKS no longer lists, trusted until these (monotonic) moments, by thumbprint
    grace_until: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))


def _index(
    static: list[VerificationKey], fetched: FetchedKeys,
    grace_until: Mapping[str, float] | None = None,
) -> _Index:
    by_kid: dict[str, VerificationKey] = {}
    ordered: list[VerificationKey] = []
    for key in static:
        if key.kid not in by_kid:
            by_kid[key.kid] = key
            ordered.append(key)
    for alias, key in fetched:
        # a JWKS entry is found both by its own "kid" (what the issuer writes in token headers)
        # and by its RFC 7638 thumbprint (what our own issuer writes, and PEM keys use)
        if key.kid not in by_kid:
            by_kid[key.kid] = key
            ordered.append(key)
        if alias and alias not in by_kid:
            by_kid[alias] = key
    return _Index(by_kid=by_kid, keys=tuple(ordered),
                  grace_until=MappingProxyType(dict(grace_until or {})))


@dataclass(frozen=True)
class JWKSDocument:
    """What one fetch of the issuer's JWKS says."""

    keys: FetchedKeys
    # kids the issuer says it retired (our issuer's "retired" member): dropped with no grace
    retired: frozenset[str] = frozenset()
    # the response's Cache-Control max-age, when it has one
    max_age: float | None = None


def parse_jwks_document(document: bytes, *, source: str) -> JWKSDocument:
    """The keys of a JWKS document and the kids it names as retired."""
    try:
        data = loads_strict(document)
    except StrictJSONError as exc:
        raise JWKSFetchError(f"{source}: not a JSON document ({exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("keys"), list):
        raise JWKSFetchError(f"{source}: not a JWKS document (no \"keys\" array)")
    retired_member = data.get("retired")
    retired = frozenset(
        kid for kid in (retired_member if isinstance(retired_member, list) else [])[:JWKS_MAX_KEYS]
        if isinstance(kid, str) and 0 < len(kid) <= KID_MAX_LENGTH
    )
    found: FetchedKeys = []
    for position, entry in enumerate(data["keys"][:JWKS_MAX_KEYS]):
        if not isinstance(entry, dict) or entry.get("kty") not in ("RSA", "EC", "OKP"):
            continue  # no other key type verifies an algorithm we allow
        if entry.get("use", "sig") != "sig":
            continue
        key_ops = entry.get("key_ops")
        if key_ops is not None and (not isinstance(key_ops, list) or "verify" not in key_ops):
            continue
        kid = entry.get("kid")
        alias = kid if isinstance(kid, str) and 0 < len(kid) <= KID_MAX_LENGTH else None
        try:
            key = public_key_from_jwk(entry, source=f"{source} keys[{position}]")
        except KeyLoadError as exc:
            log.warning("ignoring a JWKS entry: %s", exc)
            continue
        except Exception as exc:  # noqa: BLE001 - the issuer's document is input, not our code
            # e.g. jwcrypto's ValueError for a modulus below 3: a broken entry, not a crash
            log.warning("ignoring JWKS entry %s keys[%d]: %s", source, position,
                        type(exc).__name__)
            continue
        found.append((alias, key))
    return JWKSDocument(keys=found, retired=retired)


class _HTTPOnlyRedirects(urllib.request.HTTPRedirectHandler):
    """Follow redirects to http(s) URLs only (urllib would also follow one to ftp://)."""

    def redirect_request(
        self, req: urllib.request.Request, fp: Any, code: int, msg: str, headers: Any,
        newurl: str,
    ) -> urllib.request.Request | None:
        if not newurl.lower().startswith(("http://", "https://")):
            raise urllib.error.HTTPError(newurl, code, "redirect to a non-HTTP URL", headers, fp)
        return super().redirect_request(req, fp, code, msg, headers, newurl)


_OPENER = urllib.request.build_opener(_HTTPOnlyRedirects())


def fetch_document(url: str, *, timeout: float = JWKS_TIMEOUT) -> tuple[bytes, Any]:
    """GET a small JSON document from the issuer: its bytes and the response headers."""
    request = urllib.request.Request(  # noqa: S310 - the scheme is checked to be http(s) by config
        url, headers={"Accept": "application/jwk-set+json, application/json"}
    )
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            document = response.read(JWKS_MAX_BYTES + 1)
            headers = response.headers
    except urllib.error.HTTPError as exc:
        raise JWKSFetchError(f"{url}: HTTP {exc.code}") from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise JWKSFetchError(f"{url}: {reason}") from None
    if len(document) > JWKS_MAX_BYTES:
        raise JWKSFetchError(f"{url}: document larger than {JWKS_MAX_BYTES} bytes")
    return document, headers


_MAX_AGE = re.compile(r"(?:^|[,\s])max-age\s*=\s*\"?([0-9]{1,10})", re.IGNORECASE)


def fetch_jwks(url: str, *, timeout: float = JWKS_TIMEOUT) -> JWKSDocument:
    """GET the JWKS document and parse it; any failure is a JWKSFetchError."""
    document, headers = fetch_document(url, timeout=timeout)
    parsed = parse_jwks_document(document, source=url)
    match = _MAX_AGE.search(headers.get("Cache-Control", "") or "")
    return replace(parsed, max_age=float(match.group(1)) if match else None)


RULE_DOCUMENT = "jwt-auth.json"
"""The issuer's published configuration, beside its JWKS under ``/.well-known/``."""


def published_rule_url(jwks_url: str) -> str | None:
    """Where an issuer of ours publishes its claim rule, when the JWKS URL is one of ours."""
    base, _, last = jwks_url.partition("?")[0].rpartition("/")
    if last != "jwks.json" or not base.endswith("/.well-known"):
        return None
    return f"{base}/{RULE_DOCUMENT}"




def check_published_rule(jwks_url: str, rule: ClaimRule, *, timeout: float = JWKS_TIMEOUT) -> None:
    """Warn, loudly, when the trusted issuer grants admin by a different rule than ours.

    A difference means the issuer may let a non-admin client mint a token that this verifier
    treats as admin (or refuse admin tokens this verifier expects). It is a warning, not a
    refusal to start: the issuer may be down, or not ours, and the verifier must not depend on it.
    """
    url = published_rule_url(jwks_url)
    if url is None:
        log.info("VERIFIER_JWKS_URL is not a jwt-auth issuer's; its admin rule is not checked")
        return
    try:
        document, _ = fetch_document(url, timeout=timeout)
        published = loads_strict(document)
    except (JWKSFetchError, StrictJSONError) as exc:
        log.warning("could not read the issuer's admin rule to compare with ours: %s", exc)
        return
    claims = published.get("claims") if isinstance(published, dict) else None
    differences = rule.differences(claims)
    if differences:
        log.warning(
            "ADMIN RULE MISMATCH with the issuer at %s: %s. Set JWT_USER_ID_FIELD, "
            "JWT_IS_ADMIN_FIELD and JWT_IS_ADMIN_VALUE to the same values on both services.",
            url, "; ".join(differences),
        )
    else:
        log.info("the issuer's admin rule matches this verifier's (%s)", url)


def read_static_keys(
    file: str | None, text: str | None, algorithms: Iterable[str],
    *, file_variable: str = "VERIFIER_PUBLIC_KEY_FILE", text_variable: str = "VERIFIER_PUBLIC_KEY",
    algorithms_variable: str = "VERIFIER_ALGORITHMS",
) -> list[VerificationKey]:
    pem, source = read_pem(file=file, text=text, file_variable=file_variable,
                           text_variable=text_variable)
    keys = load_public_keys(pem, source=source)
    for key in keys:
        if not _allowed(key, algorithms):
            raise KeyInvalid(
                f"{source}: a key for {key.alg}, which {algorithms_variable} "
                f"({', '.join(algorithms)}) does not allow; add {key.alg} to it"
            )
    return keys


def _allowed(key: VerificationKey, algorithms: Iterable[str]) -> bool:
    """Whether any allowed algorithm is one this key verifies (``key_verifies``)."""
    return any(verifies(key.alg, alg) for alg in algorithms)


class FetchNeeded(Exception):
    """Raised by a lookup that may not wait when only a JWKS fetch can answer it."""


class KeysNotLoaded(Exception):
    """Raised when the keys that must judge a token are not loaded (a JWKS never fetched)."""

    def __init__(self, provider: str) -> None:
        super().__init__(provider)
        self.provider = provider


class KeySet:
    """The trusted verification keys; safe to share between threads."""

    def __init__(
        self,
        static_keys: list[VerificationKey] | None = None,
        *,
        jwks_url: str | None = None,
        min_refetch_interval: float = 30.0,
        max_age: float = JWKS_MAX_AGE,
        grace: float = JWKS_GRACE,
        timeout: float = JWKS_TIMEOUT,
        clock: Callable[[], float] = time.monotonic,
        public_key_file: str | None = None,
        algorithms: Iterable[str] = (RS256,),
    ) -> None:
        self._static = list(static_keys or [])
        # a JWKS key for another algorithm is left out: the issuer may publish more than this
        # verifier trusts (an ES256 key beside the RS256 one, during a migration)
        self.algorithms = tuple(algorithms)
        # read again when it changes (shared.reloading): PEM keys rotate by editing the file
        self._public_key_file = public_key_file
        self.loaded_from = file_fingerprint([public_key_file])
        self._fetched: FetchedKeys = []
        self._jwks_url = jwks_url
        self._min_interval = float(min_refetch_interval)
        self._max_age = float(max_age)
        # what the issuer's Cache-Control allows, when shorter: a rotation is seen that soon
        self._fresh_for = self._max_age
        self._grace = float(grace)
        self._timeout = timeout
        self._clock = clock
        self._index = _index(self._static, [])
        self._last_attempt: float | None = None
        self._last_success: float | None = None
        self.fetch_failures = 0  # JWKS fetches that failed since start (metrics count them)
        # held only while fetching: threads needing fresh keys wait for the one fetch in flight
        self._fetch_lock = threading.Lock()
        # held by the one thread refreshing a due JWKS for callers that do not wait
        self._background = threading.Lock()

    @classmethod
    def from_settings(
        cls, settings: VerifierSettings, *, clock: Callable[[], float] = time.monotonic
    ) -> KeySet:
        """Keys from VERIFIER_PUBLIC_KEY(_FILE) and/or VERIFIER_JWKS_URL; bad PEM stops start-up.

        ``clock`` (monotonic seconds) paces JWKS refetches; tests pass their own.
        """
        static: list[VerificationKey] = []
        loaded_from = file_fingerprint([settings.public_key_file])
        if settings.public_key_file or settings.public_key:
            static = read_static_keys(settings.public_key_file, settings.public_key,
                                  settings.algorithms)
        elif not settings.jwks_url:
            raise KeyInvalid(
                "no trusted key: set VERIFIER_PUBLIC_KEY_FILE, VERIFIER_PUBLIC_KEY "
                "or VERIFIER_JWKS_URL"
            )
        keyset = cls(
            static,
            jwks_url=settings.jwks_url,
            min_refetch_interval=settings.jwks_min_refetch_interval,
            grace=settings.jwks_grace,
            clock=clock,
            public_key_file=settings.public_key_file,
            algorithms=settings.algorithms,
        )
        keyset.loaded_from = loaded_from
        if settings.jwks_url:
            # an issuer that is down must not keep the verifier down: start not ready and try
            # again on demand (readiness probes and tokens), at most once per interval
            keyset.refresh(force=True)
        return keyset

    @property
    def ready(self) -> bool:
        """At least one key is loaded; when none is, a JWKS fetch is tried (rate limited)."""
        if not self._index.keys and self._jwks_url:
            self.refresh()
        return bool(self._index.keys)

    @property
    def has_keys(self) -> bool:
        """At least one key is loaded (``ready`` without trying a fetch)."""
        return bool(self._index.keys)

    def in_memory(self) -> InMemoryKeys:
        """This key set for a caller that must not wait: ``select`` never fetches."""
        return InMemoryKeys(self)

    def keys(self) -> list[VerificationKey]:
        """Every trusted key, configured PEM keys first."""
        return list(self._index.keys)

    def describe(self) -> list[dict[str, Any]]:
        """Each trusted key: its kid, algorithm, where it came from, and until when a key that
        left the JWKS stays trusted (unix seconds; null: for as long as it is published)."""
        index = self._index
        static = {key.kid for key in self._static}
        now, wall = self._clock(), time.time()
        described = []
        for key in index.keys:
            deadline = index.grace_until.get(key.kid)
            described.append({
                "kid": key.kid, "alg": key.alg,
                "source": (f"pem:{self._public_key_file or 'VERIFIER_PUBLIC_KEY'}"
                           if key.kid in static else f"jwks:{self._jwks_url}"),
                "trustedUntil": None if deadline is None else round(wall + deadline - now),
            })
        return described

    def _swap(self, index: _Index) -> None:
        """Trust a new set of keys; one log line for each key learned or dropped, so an
        operator can see a rotation reach every verifier process."""
        before = {key.kid: key for key in self._index.keys}
        after = {key.kid: key for key in index.keys}
        self._index = index
        for kid in after.keys() - before.keys():
            log.info("now trusting key %s (%s) from %s", kid, after[kid].alg, self._source(kid))
        for kid in before.keys() - after.keys():
            log.info("no longer trusting key %s (%s)", kid, before[kid].alg)

    def _source(self, kid: str) -> str:
        if any(key.kid == kid for key in self._static):
            return self._public_key_file or "VERIFIER_PUBLIC_KEY"
        return self._jwks_url or "?"

    def select(self, kid: str | None, alg: str | None = None, *, fetch: bool = True
               ) -> VerificationKey:
        """The key a token's ``kid`` names; without a kid, the only key that verifies ``alg``
        (a seed-style RS256 token has no kid, and may meet an ES256 key beside its RSA one).
        Raises KeyUnknown.

        ``fetch=False``: from memory only; FetchNeeded when a fetch is allowed now and could
        find the key (not while the refetch interval holds a flood of unknown kids back).
        """
        if kid is not None and (not isinstance(kid, str) or len(kid) > KID_MAX_LENGTH):
            raise KeyUnknown("the token's kid names no trusted key")
        if self._jwks_url:
            index = self._index
            if not index.keys or (kid is not None and kid not in index.by_kid):
                if fetch:
                    self.refresh()
                elif self._fetch_lock.locked() or self._refetch_allowed():
                    raise FetchNeeded(kid)
            elif fetch:
                self._refresh_if_due()
            else:
                self._refresh_in_background_if_due()
        index = self._index
        if kid is None:
            if not index.keys:
                raise KeyUnknown("no trusted key is loaded yet")
            candidates = [key for key in index.keys if alg is None or _allowed(key, (alg,))]
            if len(candidates) == 1:
                return candidates[0]
            if not candidates:
                # no key of this type: the algorithm check names what the keys verify
                return index.keys[0]
            raise KeyUnknown(
                "the token has no kid and several keys are trusted; the issuer must set kid"
            )
        key = index.by_kid.get(kid)
        if key is None:
            raise KeyUnknown("the token's kid names no trusted key")
        deadline = index.grace_until.get(key.kid)
        if deadline is not None and self._clock() >= deadline:
            raise KeyUnknown("the token's key left the issuer's JWKS and its grace period ended")
        return key

    @property
    def description(self) -> str:
        """For log lines about reloading."""
        if self._public_key_file:
            return f"the trusted keys in {self._public_key_file} (VERIFIER_PUBLIC_KEY_FILE)"
        return "the trusted keys"

    def fingerprint(self) -> Hashable:
        """Changes when the PEM file changes (JWKS keys are refetched on their own schedule)."""
        return file_fingerprint([self._public_key_file])

    def reload(self) -> None:
        """Read the PEM file again; in JWKS mode, refetch now and forget keys kept in grace.

        SIGHUP runs this: after a key was withdrawn from a JWKS that cannot say it retired it
        (a single key replaced, another issuer), it is how an operator ends the grace at once.
        """
        self.loaded_from = self.fingerprint()
        if self._public_key_file:
            static = read_static_keys(self._public_key_file, None, self.algorithms)
            self._static = static
            self._swap(_index(static, self._fetched, self._index.grace_until))
        if self._jwks_url and not self.refresh(force=True, forget_grace=True):
            raise JWKSFetchError(f"{self._jwks_url}: the JWKS could not be fetched; keys kept")

    def _refetch_interval(self) -> float:
        # an issuer that lets its JWKS be cached for less than the interval (a short
        # ISSUER_JWKS_MAX_AGE) promotes keys sooner: fetching as often as it allows, but at most
        # once a second, is what keeps a verifier from refusing a freshly promoted key
        interval = max(MIN_REFETCH_FLOOR, min(self._min_interval, self._fresh_for))
        return min(interval, KEYLESS_REFETCH) if not self._index.keys else interval

    def _refetch_allowed(self) -> bool:
        """Whether the refetch interval lets a fetch go ahead now."""
        return (self._last_attempt is None
                or self._clock() - self._last_attempt >= self._refetch_interval())

    def _refresh_due(self) -> bool:
        return (self._last_success is not None
                and self._clock() - self._last_success >= self._fresh_for)

    def _refresh_if_due(self) -> None:
        """Refetch once the cached JWKS is older than its lifetime, never waiting for another
        thread's fetch (a request must not queue behind it)."""
        if self._refresh_due():
            self.refresh(wait=False)

    def _refresh_in_background_if_due(self) -> None:
        """The same refetch, in a thread of its own: the caller answers with the keys it has."""
        if self._refresh_due() and self._background.acquire(blocking=False):
            def refresh() -> None:
                try:
                    self.refresh(wait=False)
                finally:
                    self._background.release()

            threading.Thread(target=refresh, name="jwks-refresh", daemon=True).start()

    @property
    def jwks_url(self) -> str | None:
        return self._jwks_url

    def jwks_freshness(self) -> tuple[float | None, float]:
        """When the JWKS was last fetched (unix seconds; None: never) and how long it counts as
        fresh (its max age, or the issuer's shorter Cache-Control); for the metrics."""
        if self._last_success is None:
            return None, self._fresh_for
        return time.time() - (self._clock() - self._last_success), self._fresh_for

    def refresh_if_stale(self) -> None:
        """Refetch a JWKS older than its lifetime, in a thread of its own; so a verifier that
        answers nothing still keeps its keys current (its metrics sampler calls this)."""
        if self._jwks_url:
            self._refresh_in_background_if_due()

    def trusts(self, kid: str, *, fetch: bool = True) -> bool:
        """Whether the key with this thumbprint is still trusted (for results cached earlier).

        In JWKS mode a due refresh runs here too, without waiting for another thread's (with
        ``fetch=False``, in a thread of its own), so a verifier answering only cached tokens
        still learns of retired keys within the JWKS cache lifetime.
        """
        if self._jwks_url:
            if fetch:
                self._refresh_if_due()
            else:
                self._refresh_in_background_if_due()
        index = self._index
        if kid not in index.by_kid:
            return False
        deadline = index.grace_until.get(kid)
        return deadline is None or self._clock() < deadline

    def refresh(
        self, *, force: bool = False, wait: bool = True, forget_grace: bool = False
    ) -> bool:
        """Fetch the JWKS again if the rate limit allows; True when a fetch succeeded."""
        if not self._jwks_url:
            return False
        # waiting threads give up after FETCH_WAIT: a flood of unknown kids while the issuer
        # hangs must not hold every worker thread for the whole fetch timeout
        if not self._fetch_lock.acquire(blocking=False):
            if not wait:
                return False
            if not self._fetch_lock.acquire(timeout=FETCH_WAIT):
                return False
        try:
            now = self._clock()
            if (
                not force
                and self._last_attempt is not None
                and now - self._last_attempt < self._refetch_interval()
            ):
                return False
            self._last_attempt = now
            try:
                fetched = fetch_jwks(self._jwks_url, timeout=self._timeout)
            except Exception as exc:  # noqa: BLE001 - a refresh runs on requests: never raise
                self.fetch_failures += 1
                if self._index.keys:
                    log.warning("JWKS refresh failed, keeping the cached keys: %s", exc)
                else:
                    log.warning("JWKS fetch failed, not ready yet (will retry on demand): %s", exc)
                return False
            fetched = self._trusted_only(fetched)
            if not fetched.keys:
                log.warning("JWKS at %s holds no signing key for %s", self._jwks_url,
                            ", ".join(self.algorithms))
            kept, grace_until = ([], {}) if forget_grace else self._keys_in_grace(fetched)
            self._fetched = fetched.keys + kept
            self._swap(_index(self._static, self._fetched, grace_until))
            self._last_success = self._clock()
            self._fresh_for = (
                self._max_age if fetched.max_age is None
                else min(self._max_age, fetched.max_age)
            )
            return True
        finally:
            self._fetch_lock.release()

    def _trusted_only(self, fetched: JWKSDocument) -> JWKSDocument:
        """The document without the keys for algorithms this verifier does not allow."""
        kept = [(alias, key) for alias, key in fetched.keys if _allowed(key, self.algorithms)]
        if len(kept) < len(fetched.keys):
            left_out = sorted({key.alg for _, key in fetched.keys
                               if not _allowed(key, self.algorithms)})
            log.info("JWKS at %s: %d key(s) for %s left out (not in the allowed algorithms %s)",
                     self._jwks_url, len(fetched.keys) - len(kept), ", ".join(left_out),
                     ", ".join(self.algorithms))
        return replace(fetched, keys=kept)

    def _keys_in_grace(self, fetched: JWKSDocument) -> tuple[FetchedKeys, dict[str, float]]:
        """Keys the new document no longer lists but that may still sign valid tokens.

        An issuer that replaced its key outright (no overlap) would otherwise turn every token
        still in flight into ``key_unknown`` at once; each such key is kept for ``grace``
        seconds from the fetch that first missed it. A key the issuer names as retired (its
        ``retired`` member: a key taken out early, say compromised) gets no grace.
        """
        listed = {key.kid for _, key in fetched.keys}
        listed |= {alias for alias, _ in fetched.keys if alias}
        now = self._clock()
        previous = self._index.grace_until
        kept: FetchedKeys = []
        grace_until: dict[str, float] = {}
        for alias, key in self._fetched:
            if key.kid in listed or (alias is not None and alias in listed):
                continue
            name = alias or key.kid
            if key.kid in fetched.retired or (alias is not None and alias in fetched.retired):
                log.info("the issuer retired key %s: no longer trusted", name)
                continue
            deadline = previous.get(key.kid)
            if deadline is None:
                if self._grace <= 0:
                    continue
                deadline = now + self._grace
                log.info("key %s left the issuer's JWKS; trusted for %.0f s more "
                         "(VERIFIER_JWKS_GRACE)", name, self._grace)
            if now < deadline:
                kept.append((alias, key))
                grace_until[key.kid] = deadline
        return kept, grace_until


class InMemoryKeys:
    """A key set's keys for a caller that must not wait on the issuer (``KeySet.in_memory``)."""

    __slots__ = ("_keyset",)

    def __init__(self, keyset: KeySet) -> None:
        self._keyset = keyset

    def select(self, kid: str | None, alg: str | None = None) -> VerificationKey:
        """``KeySet.select`` without fetching: raises FetchNeeded when only a fetch can tell."""
        return self._keyset.select(kid, alg, fetch=False)
