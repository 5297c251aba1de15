"""Trusted keys: PEM rotation and forms, bad keys at start, and a JWKS served over real HTTP."""

from __future__ import annotations

import http.server
import json
import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwcrypto import jwk as jwcrypto_jwk

from shared.errors import KeyFileMissing, KeyInvalid, KeyTooSmall, StartupError
from shared.keys import public_jwk
from tests.forge import private_key, sign, spki_pem
from tests.keypairs import KeyPair
from tests.procs import free_port
from verifier.config import VerifierSettings
from verifier.errors import KeyUnknown, TokenError
from verifier.keyset import (
    JWKS_MAX_AGE,
    JWKS_MAX_BYTES,
    KEYLESS_REFETCH,
    JWKSFetchError,
    KeySet,
)
from verifier.verification import VerificationPolicy, verify_token

NOW = 1_800_000_000.0


class Clock:
    """Monotonic seconds that only move when a test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _kid(public_pem: str) -> str:
    thumbprint: str = jwcrypto_jwk.JWK.from_pem(public_pem.encode()).thumbprint()
    return thumbprint


def _kids(keyset: KeySet) -> list[str]:
    return [key.kid for key in keyset.keys()]  # noqa: SIM118 - KeySet.keys() is not a dict's


def _verify(token: str, keys: KeySet) -> str:
    policy = VerificationPolicy.from_settings(VerifierSettings(public_key="unused"))
    return verify_token(token, keys=keys, policy=policy, now=NOW).user_id


@pytest.fixture(scope="module")
def signer(key_pair: KeyPair) -> rsa.RSAPrivateKey:
    return private_key(key_pair)


@pytest.fixture(scope="module")
def other_signer(other_key_pair: KeyPair) -> rsa.RSAPrivateKey:
    return private_key(other_key_pair)


# -- PEM -------------------------------------------------------------------------------------------


@pytest.fixture
def rotation(tmp_path: Path, key_pair: KeyPair, other_key_pair: KeyPair) -> KeySet:
    both = tmp_path / "trusted.pem"
    both.write_text(key_pair.public_pem + other_key_pair.public_pem)
    return KeySet.from_settings(VerifierSettings(public_key_file=str(both)))


def test_two_pem_keys_rotate_by_kid(
    rotation: KeySet, key_pair: KeyPair, other_key_pair: KeyPair,
    signer: rsa.RSAPrivateKey, other_signer: rsa.RSAPrivateKey,
) -> None:
    assert rotation.ready
    assert _kids(rotation) == [
        _kid(key_pair.public_pem), _kid(other_key_pair.public_pem),
    ]
    old = sign({"userId": "old"}, signer, header={"alg": "RS256", "kid": _kid(key_pair.public_pem)})
    new_kid = _kid(other_key_pair.public_pem)
    new = sign({"userId": "new"}, other_signer, header={"alg": "RS256", "kid": new_kid})
    assert _verify(old, rotation) == "old"
    assert _verify(new, rotation) == "new"
    # the kid selects the key: the other key's kid over this key's signature does not verify
    crossed = sign({"userId": "x"}, signer, header={"alg": "RS256", "kid": new_kid})
    with pytest.raises(TokenError) as caught:
        _verify(crossed, rotation)
    assert caught.value.code == "signature_invalid"


def test_no_kid_with_two_keys_is_refused(rotation: KeySet, signer: rsa.RSAPrivateKey) -> None:
    with pytest.raises(KeyUnknown):
        rotation.select(None)
    with pytest.raises(TokenError) as caught:
        _verify(sign({"userId": "u"}, signer), rotation)
    assert caught.value.code == "key_unknown"


def test_no_kid_with_one_key_selects_it(key_pair: KeyPair) -> None:
    keys = KeySet.from_settings(VerifierSettings(public_key=key_pair.public_pem))
    assert keys.select(None).kid == _kid(key_pair.public_pem)
    with pytest.raises(KeyUnknown):
        keys.select("another")


def test_pem_text_with_literal_newlines(key_pair: KeyPair, signer: rsa.RSAPrivateKey) -> None:
    # the seed's advice: paste the key into one line with \n
    settings = VerifierSettings.from_env(
        {"VERIFIER_PUBLIC_KEY": key_pair.public_pem.strip().replace("\n", "\\n")}
    )
    keys = KeySet.from_settings(settings)
    assert _verify(sign({"userId": "seed"}, signer), keys) == "seed"


def test_pkcs1_public_key(key_pair: KeyPair, signer: rsa.RSAPrivateKey, tmp_path: Path) -> None:
    public = serialization.load_pem_public_key(key_pair.public_pem.encode())
    pkcs1 = public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.PKCS1)
    assert pkcs1.startswith(b"-----BEGIN RSA PUBLIC KEY-----")
    path = tmp_path / "pkcs1.pem"
    path.write_bytes(pkcs1)
    keys = KeySet.from_settings(VerifierSettings(public_key_file=str(path)))
    assert keys.keys()[0].kid == _kid(key_pair.public_pem)
    assert _verify(sign({"userId": "p1"}, signer), keys) == "p1"


def _small_key_pem() -> str:
    # deliberately breakable: the point is that it is refused
    key = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505 - too small on purpose
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


@pytest.mark.parametrize(("settings", "error"), [
    (VerifierSettings(public_key_file="/nonexistent/public.pem"), KeyFileMissing),
    (VerifierSettings(public_key="not a key"), KeyInvalid),
    (VerifierSettings(public_key="-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----"),
     KeyInvalid),
])
def test_bad_pem_stops_start_up(settings: VerifierSettings, error: type[StartupError]) -> None:
    with pytest.raises(error):
        KeySet.from_settings(settings)


def _spki(key: Any) -> str:
    return spki_pem(key).decode()


def test_private_key_small_key_and_other_curves_are_refused(key_pair: KeyPair) -> None:
    with pytest.raises(KeyInvalid, match="private key"):
        KeySet.from_settings(VerifierSettings(public_key=key_pair.private_pem))
    with pytest.raises(KeyTooSmall):
        KeySet.from_settings(VerifierSettings(public_key=_small_key_pem()))
    with pytest.raises(KeyInvalid, match="P-256"):
        KeySet.from_settings(VerifierSettings(public_key=_spki(
            ec.generate_private_key(ec.SECP384R1())), algorithms=("ES256",)))


def test_a_pem_key_of_an_algorithm_not_allowed_stops_start_up() -> None:
    es256 = _spki(ec.generate_private_key(ec.SECP256R1()))
    refusal = r"VERIFIER_ALGORITHMS \(RS256\) does not allow; add ES256"
    with pytest.raises(KeyInvalid, match=refusal):
        KeySet.from_settings(VerifierSettings(public_key=es256))
    trusted = KeySet.from_settings(VerifierSettings(public_key=es256,
                                                    algorithms=("RS256", "ES256"))).keys()
    assert [key.alg for key in trusted] == ["ES256"]
    eddsa = _spki(ed25519.Ed25519PrivateKey.generate())
    with pytest.raises(KeyInvalid, match="add EdDSA"):
        KeySet.from_settings(VerifierSettings(public_key=eddsa, algorithms=("ES256",)))
    trusted = KeySet.from_settings(VerifierSettings(public_key=eddsa,
                                                    algorithms=("EdDSA",))).keys()
    assert [key.alg for key in trusted] == ["EdDSA"]


# -- JWKS over real HTTP ---------------------------------------------------------------------------


class JWKSServer:
    """A tiny issuer on 127.0.0.1 that serves whatever JWKS document a test sets."""

    def __init__(self, port: int = 0) -> None:
        self.document: Any = {"keys": []}
        self.status = 200
        self.headers: dict[str, str] = {}
        self.requests = 0
        self._lock = threading.Lock()
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                with owner._lock:
                    owner.requests += 1
                    body = owner.document
                    status = owner.status
                    headers = dict(owner.headers)
                data = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/.well-known/jwks.json"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def issuer() -> Iterator[JWKSServer]:
    server = JWKSServer()
    yield server
    server.close()


def _entry(public_pem: str, kid: str | None = None, **extra: Any) -> dict[str, Any]:
    members = public_jwk(jwcrypto_jwk.JWK.from_pem(public_pem.encode()))
    if kid is not None:
        members["kid"] = kid
    return {**members, **extra}


def _jwks_keys(url: str, clock: Clock, interval: int = 30,
               algorithms: tuple[str, ...] = ("RS256",)) -> KeySet:
    settings = VerifierSettings(jwks_url=url, jwks_min_refetch_interval=interval,
                                algorithms=algorithms)
    return KeySet.from_settings(settings, clock=clock)


def test_jwks_fetched_at_start(
    issuer: JWKSServer, key_pair: KeyPair, signer: rsa.RSAPrivateKey
) -> None:
    issuer.document = {"keys": [_entry(key_pair.public_pem)]}
    keys = _jwks_keys(issuer.url, Clock())
    assert issuer.requests == 1
    assert keys.ready
    assert _kids(keys) == [_kid(key_pair.public_pem)]
    assert _verify(sign({"userId": "j"}, signer), keys) == "j"
    assert issuer.requests == 1  # served from the cache


def test_jwks_entries_are_found_by_their_own_kid_and_by_thumbprint(
    issuer: JWKSServer, key_pair: KeyPair, signer: rsa.RSAPrivateKey
) -> None:
    issuer.document = {"keys": [_entry(key_pair.public_pem, kid="2026-11-key-1")]}
    keys = _jwks_keys(issuer.url, Clock())
    by_name = sign({"userId": "a"}, signer, header={"alg": "RS256", "kid": "2026-11-key-1"})
    by_thumb = sign({"userId": "b"}, signer,
                    header={"alg": "RS256", "kid": _kid(key_pair.public_pem)})
    assert (_verify(by_name, keys), _verify(by_thumb, keys)) == ("a", "b")
    assert issuer.requests == 1


def test_unknown_kid_refetches_the_jwks(
    issuer: JWKSServer, key_pair: KeyPair, other_key_pair: KeyPair,
    other_signer: rsa.RSAPrivateKey,
) -> None:
    clock = Clock()
    issuer.document = {"keys": [_entry(key_pair.public_pem)]}
    keys = _jwks_keys(issuer.url, clock)
    # the issuer rotates after the interval since our start-up fetch has passed
    issuer.document = {"keys": [_entry(key_pair.public_pem), _entry(other_key_pair.public_pem)]}
    clock.now += 30
    new_kid = _kid(other_key_pair.public_pem)
    token = sign({"userId": "rotated"}, other_signer, header={"alg": "RS256", "kid": new_kid})
    assert _verify(token, keys) == "rotated"
    assert issuer.requests == 2
    assert len(keys.keys()) == 2


def test_a_flood_of_random_kids_costs_one_fetch_per_interval(
    issuer: JWKSServer, key_pair: KeyPair, signer: rsa.RSAPrivateKey
) -> None:
    clock = Clock()
    issuer.document = {"keys": [_entry(key_pair.public_pem)]}
    keys = _jwks_keys(issuer.url, clock, interval=10)
    clock.now += 10
    for number in range(300):
        with pytest.raises(KeyUnknown):
            keys.select(f"random-{number}")
    assert issuer.requests == 2  # start-up, then one refetch for the whole flood
    clock.now += 9.5
    for number in range(50):
        with pytest.raises(KeyUnknown):
            keys.select(f"more-{number}")
    assert issuer.requests == 2
    clock.now += 0.5
    with pytest.raises(KeyUnknown):
        keys.select("after-the-interval")
    assert issuer.requests == 3
    # the known key kept working throughout
    assert _verify(sign({"userId": "still"}, signer), keys) == "still"


def test_a_flood_from_many_threads_is_one_fetch(issuer: JWKSServer, key_pair: KeyPair) -> None:
    clock = Clock()
    issuer.document = {"keys": [_entry(key_pair.public_pem)]}
    keys = _jwks_keys(issuer.url, clock)
    clock.now += 60
    errors: list[BaseException] = []

    def flood(worker: int) -> None:
        for number in range(40):
            try:
                keys.select(f"w{worker}-{number}")
            except KeyUnknown:
                pass
            except BaseException as exc:  # noqa: BLE001 - collected and asserted below
                errors.append(exc)

    threads = [threading.Thread(target=flood, args=(worker,)) for worker in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == []
    assert issuer.requests == 2


def test_issuer_down_at_start_then_up(key_pair: KeyPair, signer: rsa.RSAPrivateKey) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/.well-known/jwks.json"
    clock = Clock()
    keys = _jwks_keys(url, clock)  # nothing listens: start anyway, not ready
    assert not keys.ready
    assert keys.keys() == []
    with pytest.raises(TokenError) as caught:
        _verify(sign({"userId": "u"}, signer), keys)
    assert caught.value.code == "key_unknown"
    server = JWKSServer(port)
    try:
        server.document = {"keys": [_entry(key_pair.public_pem)]}
        assert not keys.ready  # still inside the interval since the failed attempt
        assert server.requests == 0
        # with no key at all, retried after KEYLESS_REFETCH, not VERIFIER_JWKS_MIN_REFETCH (30 s)
        clock.now += KEYLESS_REFETCH
        assert keys.ready  # the readiness probe itself retried
        assert server.requests == 1
        assert _verify(sign({"userId": "up"}, signer), keys) == "up"
    finally:
        server.close()


def test_a_failed_refresh_keeps_the_cached_keys(
    issuer: JWKSServer, key_pair: KeyPair, signer: rsa.RSAPrivateKey
) -> None:
    clock = Clock()
    issuer.document = {"keys": [_entry(key_pair.public_pem)]}
    keys = _jwks_keys(issuer.url, clock)
    issuer.status = 500
    clock.now += 30
    with pytest.raises(KeyUnknown):
        keys.select("unknown")
    assert issuer.requests == 2
    assert _verify(sign({"userId": "cached"}, signer), keys) == "cached"


def test_the_jwks_age_and_failures_are_kept_for_the_metrics(
    issuer: JWKSServer, key_pair: KeyPair
) -> None:
    clock = Clock()
    issuer.document = {"keys": [_entry(key_pair.public_pem)]}
    keys = _jwks_keys(issuer.url, clock)
    fetched_at, fresh_for = keys.jwks_freshness()
    assert fetched_at is not None
    assert abs(fetched_at - time.time()) <= 2
    assert fresh_for == JWKS_MAX_AGE  # the JWKS server sends no Cache-Control
    assert keys.fetch_failures == 0
    issuer.status = 500
    clock.now += 400  # older than its max age: stale, so the next look refetches
    keys.refresh_if_stale()
    deadline = time.monotonic() + 10
    while keys.fetch_failures == 0:  # refresh_if_stale fetches in a thread of its own
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert keys.fetch_failures == 1
    # the last success stays the last success: 400 s ago
    fetched_again, _ = keys.jwks_freshness()
    assert fetched_again is not None
    assert abs(fetched_again - (time.time() - 400)) <= 2


def _withdrawal(
    issuer: JWKSServer, key_pair: KeyPair, other_key_pair: KeyPair, signer: rsa.RSAPrivateKey,
    *, grace: float, **document: Any,
) -> tuple[KeySet, str, Clock]:
    """A verifier that trusted key_pair, then an issuer that lists only other_key_pair."""
    clock = Clock()
    issuer.document = {"keys": [_entry(key_pair.public_pem)]}
    keys = KeySet(jwks_url=issuer.url, min_refetch_interval=30, max_age=300, grace=grace,
                  clock=clock)
    keys.refresh(force=True)
    token = sign({"userId": "u"}, signer, header={"alg": "RS256", "kid": _kid(key_pair.public_pem)})
    issuer.document = {"keys": [_entry(other_key_pair.public_pem)], **document}
    clock.now += 299
    assert _verify(token, keys) == "u"
    clock.now += 1
    return keys, token, clock


def _assert_unknown(token: str, keys: KeySet) -> None:
    with pytest.raises(TokenError) as caught:
        _verify(token, keys)
    assert caught.value.code == "key_unknown"


def test_without_grace_a_withdrawn_key_stops_being_trusted_after_the_cache_age(
    issuer: JWKSServer, key_pair: KeyPair, other_key_pair: KeyPair,
    signer: rsa.RSAPrivateKey,
) -> None:
    keys, token, _ = _withdrawal(issuer, key_pair, other_key_pair, signer, grace=0)
    _assert_unknown(token, keys)
    assert issuer.requests == 2


def test_a_key_that_left_the_jwks_unannounced_is_trusted_for_the_grace_period(
    issuer: JWKSServer, key_pair: KeyPair, other_key_pair: KeyPair,
    signer: rsa.RSAPrivateKey,
) -> None:
    # an issuer restarted with a new key: tokens it signed an hour ago must not all fail at once
    keys, token, clock = _withdrawal(issuer, key_pair, other_key_pair, signer, grace=600)
    assert _verify(token, keys) == "u"  # this use refetched: the key is gone from the JWKS
    assert issuer.requests == 2
    assert _kid(other_key_pair.public_pem) in _kids(keys)
    clock.now += 300
    assert _verify(token, keys) == "u"  # a later refetch keeps the first deadline
    assert issuer.requests == 3
    clock.now += 299
    assert _verify(token, keys) == "u"
    clock.now += 1
    _assert_unknown(token, keys)


def test_the_keys_a_verifier_trusts_are_described_and_each_change_is_logged(
    issuer: JWKSServer, key_pair: KeyPair, other_key_pair: KeyPair,
    signer: rsa.RSAPrivateKey, caplog: pytest.LogCaptureFixture,
) -> None:
    # what /readyz shows an operator watching a rotation reach every verifier process
    caplog.set_level(logging.INFO, logger="verifier.keyset")
    keys, token, _ = _withdrawal(issuer, key_pair, other_key_pair, signer, grace=600)
    old, new = _kid(key_pair.public_pem), _kid(other_key_pair.public_pem)
    assert [entry["kid"] for entry in keys.describe()] == [old]
    assert keys.describe()[0] == {"kid": old, "alg": "RS256", "source": f"jwks:{issuer.url}",
                                  "trustedUntil": None}
    _verify(token, keys)  # refetches: the old key leaves the JWKS and enters its grace
    described = {entry["kid"]: entry for entry in keys.describe()}
    assert described[new]["trustedUntil"] is None
    assert abs(described[old]["trustedUntil"] - (time.time() + 600)) <= 2
    logged = [record.getMessage() for record in caplog.records]
    assert f"now trusting key {old} (RS256) from {issuer.url}" in logged
    assert f"now trusting key {new} (RS256) from {issuer.url}" in logged
    keys.reload()  # SIGHUP ends the grace
    assert f"no longer trusting key {old} (RS256)" in [r.getMessage() for r in caplog.records]
    assert [entry["kid"] for entry in keys.describe()] == [new]


def test_a_key_the_issuer_names_retired_gets_no_grace(
    issuer: JWKSServer, key_pair: KeyPair, other_key_pair: KeyPair,
    signer: rsa.RSAPrivateKey,
) -> None:
    keys, token, _ = _withdrawal(issuer, key_pair, other_key_pair, signer, grace=600,
                                 retired=[_kid(key_pair.public_pem)])
    _assert_unknown(token, keys)


def test_the_default_grace_is_an_hour_and_sighup_ends_it(
    issuer: JWKSServer, key_pair: KeyPair, other_key_pair: KeyPair,
    signer: rsa.RSAPrivateKey,
) -> None:
    assert VerifierSettings.from_env({"VERIFIER_JWKS_URL": issuer.url}).jwks_grace == 3600
    keys, token, _ = _withdrawal(issuer, key_pair, other_key_pair, signer, grace=3600)
    assert _verify(token, keys) == "u"  # kept: it may still sign valid tokens
    # an operator who withdrew a key on purpose ends the grace with SIGHUP (reload_all)
    keys.reload()
    _assert_unknown(token, keys)
    assert _kids(keys) == [_kid(other_key_pair.public_pem)]


def test_a_failed_refetch_on_sighup_keeps_the_keys(
    issuer: JWKSServer, key_pair: KeyPair, signer: rsa.RSAPrivateKey,
) -> None:
    issuer.document = {"keys": [_entry(key_pair.public_pem)]}
    keys = KeySet(jwks_url=issuer.url, clock=Clock())
    keys.refresh(force=True)
    issuer.status = 500
    with pytest.raises(JWKSFetchError):
        keys.reload()
    assert _verify(sign({"userId": "still"}, signer), keys) == "still"


def test_a_pem_file_is_read_again_and_a_damaged_one_is_not_taken(
    tmp_path: Path, key_pair: KeyPair, other_key_pair: KeyPair,
    signer: rsa.RSAPrivateKey, other_signer: rsa.RSAPrivateKey,
) -> None:
    path = tmp_path / "public.pem"
    path.write_text(key_pair.public_pem)
    keys = KeySet.from_settings(VerifierSettings(public_key_file=str(path)))
    before = keys.fingerprint()
    assert keys.loaded_from == before
    # the rotation of a PEM-configured verifier: the next key added as a second block
    path.write_text(key_pair.public_pem + other_key_pair.public_pem)
    assert keys.fingerprint() != before
    keys.reload()
    new_kid = _kid(other_key_pair.public_pem)
    assert _verify(sign({"userId": "n"}, other_signer,
                        header={"alg": "RS256", "kid": new_kid}), keys) == "n"
    path.write_text("-----BEGIN PUBLIC KEY-----\nnot base64\n-----END PUBLIC KEY-----\n")
    with pytest.raises(KeyInvalid):
        keys.reload()
    assert sorted(_kids(keys)) == sorted([_kid(key_pair.public_pem), new_kid])


def test_the_issuers_cache_lifetime_shortens_the_refresh(
    issuer: JWKSServer, key_pair: KeyPair, other_key_pair: KeyPair,
    signer: rsa.RSAPrivateKey,
) -> None:
    clock = Clock()
    issuer.headers = {"Cache-Control": "public, max-age=5"}
    issuer.document = {"keys": [_entry(key_pair.public_pem)]}
    keys = KeySet(jwks_url=issuer.url, min_refetch_interval=1, max_age=300, clock=clock)
    keys.refresh(force=True)
    issuer.document = {"keys": [_entry(key_pair.public_pem), _entry(other_key_pair.public_pem)]}
    token = sign({"userId": "a"}, signer, header={"alg": "RS256", "kid": _kid(key_pair.public_pem)})
    clock.now += 4
    _verify(token, keys)
    assert issuer.requests == 1
    clock.now += 1
    _verify(token, keys)
    assert issuer.requests == 2  # a next key is known within the issuer's max-age
    assert sorted(_kids(keys)) == sorted([_kid(key_pair.public_pem),
                                          _kid(other_key_pair.public_pem)])


@pytest.mark.parametrize("document", [
    b"not json",
    b'{"keys": "x"}',
    b"[]",
    b'{"keys": [], "keys": []}',
    b"{" + b" " * (JWKS_MAX_BYTES + 10) + b"}",
])
def test_unusable_documents_leave_the_verifier_not_ready(
    issuer: JWKSServer, document: bytes
) -> None:
    issuer.document = document
    keys = _jwks_keys(issuer.url, Clock())
    assert not keys.ready
    assert issuer.requests == 1


def test_only_public_signing_keys_are_taken(
    issuer: JWKSServer, key_pair: KeyPair, other_key_pair: KeyPair
) -> None:
    ec_key = jwcrypto_jwk.JWK.generate(kty="EC", crv="P-256")
    small = _entry(_small_key_pem())
    private = jwcrypto_jwk.JWK.from_pem(
        other_key_pair.private_pem.encode(), password=other_key_pair.passphrase.encode()
    ).export_private(as_dict=True)
    issuer.document = {"keys": [
        {**ec_key.export_public(as_dict=True), "kid": "ec"},
        {"kty": "oct", "k": "c2VjcmV0", "kid": "hmac"},
        _entry(other_key_pair.public_pem, kid="enc", use="enc"),
        _entry(other_key_pair.public_pem, kid="hs", alg="HS256"),
        _entry(other_key_pair.public_pem, kid="ops", key_ops=["encrypt"]),
        {**private, "kid": "private"},
        small,
        "not an object",
        {"kty": "RSA", "n": "AA", "e": "AQAB", "kid": "tiny-modulus"},
        {"kty": "RSA", "n": "AQAB" * 100, "e": "", "kid": "no-exponent"},
        {"kty": "RSA", "n": "!!", "e": "AQAB", "kid": "not-base64"},
        {"kty": "RSA", "kid": "no-members"},
        _entry(key_pair.public_pem, kid="good"),
    ]}
    keys = _jwks_keys(issuer.url, Clock())
    assert _kids(keys) == [_kid(key_pair.public_pem)]
    for kid in ("ec", "hmac", "enc", "hs", "ops", "private", "tiny-modulus", "no-exponent",
                "not-base64", "no-members"):
        with pytest.raises(KeyUnknown):
            keys.select(kid)
    assert keys.select("good").kid == _kid(key_pair.public_pem)


def test_ec_and_okp_keys_are_taken_when_their_algorithms_are_allowed(
    issuer: JWKSServer, key_pair: KeyPair
) -> None:
    es256 = jwcrypto_jwk.JWK.generate(kty="EC", crv="P-256")
    eddsa = jwcrypto_jwk.JWK.generate(kty="OKP", crv="Ed25519")
    p384 = jwcrypto_jwk.JWK.generate(kty="EC", crv="P-384")
    x25519 = jwcrypto_jwk.JWK.generate(kty="OKP", crv="X25519")
    off_curve = {**es256.export_public(as_dict=True), "kid": "off-curve"}
    # the same x with y + 1: not a point of P-256 (an invalid-curve attack's key)
    y = int.from_bytes(jwcrypto_jwk.base64url_decode(off_curve["y"]), "big")
    off_curve["y"] = jwcrypto_jwk.base64url_encode(((y + 1) % 2**256).to_bytes(32, "big"))
    issuer.document = {"keys": [
        {**es256.export_public(as_dict=True), "kid": "es", "alg": "ES256"},
        {**eddsa.export_public(as_dict=True), "kid": "ed"},
        {**p384.export_public(as_dict=True), "kid": "p384"},
        {**x25519.export_public(as_dict=True), "kid": "x25519"},
        off_curve,
        {**es256.export_public(as_dict=True), "kid": "ec-as-rsa", "alg": "RS256"},
        {**eddsa.export_public(as_dict=True), "kid": "ed-as-es", "alg": "ES256"},
        _entry(key_pair.public_pem, kid="rsa-as-es", alg="ES256"),
        _entry(key_pair.public_pem, kid="rsa"),
    ]}
    every = _jwks_keys(issuer.url, Clock(), algorithms=("RS256", "ES256", "EdDSA"))
    assert {every.select(kid).alg for kid in ("es", "ed", "rsa")} == {"ES256", "EdDSA", "RS256"}
    for kid in ("p384", "x25519", "off-curve", "ec-as-rsa", "ed-as-es", "rsa-as-es"):
        with pytest.raises(KeyUnknown):
            every.select(kid)
    # the same document with RS256 alone: the other keys are left out
    rsa_only = _jwks_keys(issuer.url, Clock())
    assert rsa_only.select("rsa").alg == "RS256"
    for kid in ("es", "ed"):
        with pytest.raises(KeyUnknown):
            rsa_only.select(kid)


def test_pem_and_jwks_together(
    issuer: JWKSServer, key_pair: KeyPair, other_key_pair: KeyPair,
    signer: rsa.RSAPrivateKey, other_signer: rsa.RSAPrivateKey,
) -> None:
    issuer.document = {"keys": [_entry(other_key_pair.public_pem, kid="remote")]}
    settings = VerifierSettings(public_key=key_pair.public_pem, jwks_url=issuer.url)
    keys = KeySet.from_settings(settings, clock=Clock())
    assert len(keys.keys()) == 2
    local = sign({"userId": "l"}, signer, header={"alg": "RS256",
                                                   "kid": _kid(key_pair.public_pem)})
    remote = sign({"userId": "r"}, other_signer, header={"alg": "RS256", "kid": "remote"})
    assert (_verify(local, keys), _verify(remote, keys)) == ("l", "r")


def test_an_issuer_that_never_answers_times_out(key_pair: KeyPair) -> None:
    import socket

    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)  # accepts connections (the kernel does) but never answers
    try:
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/jwks.json"
        keys = KeySet(jwks_url=url, timeout=0.3, clock=Clock())
        assert keys.refresh(force=True) is False
        assert not keys.ready
        with pytest.raises(KeyUnknown):
            keys.select(None)
    finally:
        listener.close()


def test_an_http_redirect_is_followed(issuer: JWKSServer, key_pair: KeyPair) -> None:
    # issuers behind a load balancer often redirect /jwks to a canonical URL
    issuer.document = {"keys": [_entry(key_pair.public_pem)]}
    target = issuer.url

    class Redirect(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(301)
            self.send_header("Location", target)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    redirecting = JWKSServer()
    redirecting.server.RequestHandlerClass = Redirect
    try:
        keys = _jwks_keys(redirecting.url, Clock())
        assert keys.ready
        assert issuer.requests == 1
    finally:
        redirecting.close()
