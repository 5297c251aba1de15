"""The signing keys' state file and the rules of their roles (issuer/keyring.py).

Pure functions on hand-written states, and ``load_ring`` on a real directory made from the
session's key pairs: only the active key is ever decrypted.
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

import issuer.keyring as keyring
from issuer.config import IssuerSettings
from issuer.keyring import (
    ACTIVE,
    NEXT,
    RETIRED,
    RETIRED_LISTED,
    RETIRING,
    KeyRecord,
    KeyRing,
    KeyState,
    PublishedKey,
    load_ring,
    parse_state,
    promote,
    read_state,
    record_for,
    retire,
    settle,
    timing_warnings,
    write_state,
)
from shared.errors import KeyFileMissing, KeyInvalid, PassphraseWrong
from shared.keys import SigningKey, load_private_key, load_public_keys
from tests.keypairs import PASSPHRASE, KeyPair

SOURCE = "/keys/keys.json"
PUBLIC = {"kty": "RSA", "n": "AQAB", "e": "AQAB"}


def entry(kid: str, role: str, **overrides: Any) -> dict[str, Any]:
    """One state-file entry as `jwt-auth keys` writes it; times are small epoch seconds."""
    value: dict[str, Any] = {
        "kid": kid, "file": f"{kid}.pem", "role": role, "created": 1000, "published_at": 1000,
        "retiring_since": None, "published_until": None, "public": PUBLIC,
    }
    if role in (RETIRING, RETIRED):
        value.update(retiring_since=1500, published_until=2000)
    value.update(overrides)
    return value


def document(*entries: Any) -> bytes:
    return json.dumps({"version": 1, "keys": list(entries)}).encode()


def state(*entries: dict[str, Any]) -> KeyState:
    return parse_state(document(*entries), source=SOURCE)


def roles(value: KeyState) -> dict[str, str]:
    return {record.kid: record.role for record in value.keys}


REFUSED = [
    pytest.param(b"{not json", "not JSON", id="not-json"),
    pytest.param(b'{"version": 1}', '"keys": [...]', id="no-keys"),
    pytest.param(b'{"version": 1, "keys": {}}', '"keys": [...]', id="keys-not-array"),
    pytest.param(b"[]", '"keys": [...]', id="array-document"),
    pytest.param(document(), "exactly one key must be active, found 0", id="empty"),
    pytest.param(document(entry("a", NEXT)), "exactly one key must be active, found 0",
                 id="zero-active"),
    pytest.param(document(entry("a", ACTIVE), entry("b", ACTIVE)),
                 "exactly one key must be active, found 2", id="two-active"),
    pytest.param(document(entry("a", ACTIVE), entry("b", NEXT), entry("c", NEXT)),
                 "at most one key may be next, found 2", id="two-next"),
    pytest.param(document(entry("a", ACTIVE), entry("a", NEXT)), "a kid appears twice",
                 id="duplicate-kid"),
    pytest.param(document(entry("a", ACTIVE, file="sub/a.pem")),
                 "'file' must be a plain .pem file name", id="file-slash"),
    pytest.param(document(entry("a", ACTIVE, file="../a.pem")),
                 "'file' must be a plain .pem file name", id="file-parent"),
    pytest.param(document(entry("a", ACTIVE, file="..")),
                 "'file' must be a plain .pem file name", id="file-dotdot"),
    pytest.param(document(entry("a", ACTIVE, file=".a.pem")),
                 "'file' must be a plain .pem file name", id="file-leading-dot"),
    pytest.param(document(entry("a", ACTIVE, file="/etc/passwd")),
                 "'file' must be a plain .pem file name", id="file-absolute"),
    pytest.param(document(entry("a", ACTIVE, file="keys.json")),
                 "'file' must be a plain .pem file name", id="file-state-file"),
    pytest.param(document(entry("a", ACTIVE, file="passphrase.txt")),
                 "'file' must be a plain .pem file name", id="file-not-pem"),
    pytest.param(document(entry("a", ACTIVE, file="x.pem"), entry("b", NEXT, file="x.pem")),
                 "two keys name the same file", id="file-twice"),
    pytest.param(document(entry("a", ACTIVE), entry("b", "standby")),
                 "keys[1]: role 'standby' is not one of active, next, retiring, retired",
                 id="unknown-role"),
    pytest.param(document(entry("a", ACTIVE), entry("b", RETIRING, published_until=None)),
                 "a retiring key needs 'published_until'", id="retiring-without-until"),
    pytest.param(document(entry("a", ACTIVE), entry("b", RETIRED, published_until=None)),
                 "a retired key needs 'published_until'", id="retired-without-until"),
    pytest.param(document(entry("a", ACTIVE, created="1000")),
                 "created: expected whole seconds, got '1000'", id="created-string"),
    pytest.param(document(entry("a", ACTIVE, published_at=1000.5)),
                 "published_at: expected whole seconds, got 1000.5", id="published-at-float"),
    pytest.param(document(entry("a", ACTIVE), entry("b", RETIRING, published_until=True)),
                 "published_until: expected whole seconds, got True", id="until-bool"),
    pytest.param(document(entry("a", ACTIVE, created=None)),
                 "'created' and 'published_at' are required", id="created-missing"),
    pytest.param(document(entry("a", ACTIVE, public=None)), "no public key", id="no-public"),
    pytest.param(document(entry("", ACTIVE, file="a.pem")), "no kid", id="no-kid"),
    pytest.param(document("a"), "not an object", id="entry-not-object"),
]


@pytest.mark.parametrize(("content", "problem"), REFUSED)
def test_parse_state_refuses_with_a_message_naming_the_problem(
    content: bytes, problem: str
) -> None:
    with pytest.raises(KeyInvalid) as caught:
        parse_state(content, source=SOURCE)
    message = str(caught.value)
    assert message.startswith(SOURCE)
    assert problem in message
    assert "\n" not in message


def test_a_state_written_is_read_back_the_same(tmp_path: Path) -> None:
    original = state(entry("a", RETIRED, published_until=1200), entry("b", RETIRING),
                     entry("c", ACTIVE), entry("d", NEXT, created=3000, published_at=3000))
    write_state(tmp_path, original)
    assert read_state(tmp_path) == original
    assert (tmp_path / "keys.json").stat().st_mode & 0o777 == 0o600


def test_a_missing_state_file_says_how_to_make_one(tmp_path: Path) -> None:
    with pytest.raises(KeyFileMissing, match="jwt-auth keys rotate --dir"):
        read_state(tmp_path)


def test_promote_makes_next_active_and_active_retiring() -> None:
    before = state(entry("old", RETIRED, published_until=1200), entry("a", ACTIVE),
                   entry("b", NEXT))
    after, activated, retiring = promote(before, now=5000, retire_after=600)
    assert roles(after) == {"old": RETIRED, "a": RETIRING, "b": ACTIVE}
    assert activated == after.find("b")
    assert retiring == after.find("a")
    assert (retiring.retiring_since, retiring.published_until) == (5000, 5600)
    assert activated.published_until is None
    assert after.find("old") == before.find("old")
    # the state is a value: the one promoted from is unchanged
    assert roles(before) == {"old": RETIRED, "a": ACTIVE, "b": NEXT}


def test_promote_without_a_next_key_is_refused() -> None:
    with pytest.raises(KeyInvalid, match="no next key to promote"):
        promote(state(entry("a", ACTIVE)), now=5000, retire_after=600)


@pytest.mark.parametrize("role", [NEXT, RETIRING])
def test_retire_ends_publication_now(role: str) -> None:
    before = state(entry("a", ACTIVE), entry("b", role, published_until=9000))
    after, retired = retire(before, "b", now=1800)
    assert retired == after.find("b")
    assert retired.role == RETIRED
    assert retired.published_until == 1800
    # a retiring key keeps when it started retiring; a next key retires now
    assert retired.retiring_since == (1500 if role == RETIRING else 1800)
    assert roles(after) == {"a": ACTIVE, "b": RETIRED}


def test_retire_refuses_the_active_key_and_says_to_promote_another() -> None:
    with pytest.raises(KeyInvalid) as caught:
        retire(state(entry("a", ACTIVE), entry("b", NEXT)), "a", now=1800)
    assert "a is the active key" in str(caught.value)
    assert "promote another first" in str(caught.value)


def test_retire_refuses_an_unknown_kid() -> None:
    with pytest.raises(KeyInvalid, match=r"no key 'zzz' in keys\.json"):
        retire(state(entry("a", ACTIVE)), "zzz", now=1800)


@pytest.mark.parametrize("record", [
    entry("b", RETIRED),
    entry("b", RETIRING, published_until=1800),  # its time is up: retired in effect
], ids=["retired", "lapsed"])
def test_retire_refuses_a_key_already_retired(record: dict[str, Any]) -> None:
    with pytest.raises(KeyInvalid, match="b is already retired"):
        retire(state(entry("a", ACTIVE), record), "b", now=1800)


def test_settle_retires_the_keys_whose_period_ended() -> None:
    before = state(entry("a", ACTIVE), entry("b", NEXT), entry("gone", RETIRED),
                   entry("due", RETIRING, published_until=2000),
                   entry("later", RETIRING, published_until=2001))
    unchanged, lapsed = settle(before, 1999)
    assert (unchanged, lapsed) == (before, [])

    after, lapsed = settle(before, 2000)
    assert [record.kid for record in lapsed] == ["due"]
    assert roles(after) == {"a": ACTIVE, "b": NEXT, "gone": RETIRED, "due": RETIRED,
                            "later": RETIRING}
    settled = after.find("due")
    assert settled is not None
    assert settled.published_until == 2000
    for kid in ("a", "b", "gone", "later"):
        assert after.find(kid) == before.find(kid)


@pytest.fixture(scope="module")
def signing(key_pair: KeyPair) -> SigningKey:
    return load_private_key(key_pair.private_pem.encode(), PASSPHRASE.encode(), source="test")


def _published(kid: str, role: str, until: int | None = None) -> PublishedKey:
    return PublishedKey(kid, role, {"kty": "RSA", "kid": kid}, until)


def _kids(jwks: dict[str, Any]) -> list[str]:
    return [key["kid"] for key in jwks["keys"]]


def test_jwks_over_time(signing: SigningKey) -> None:
    ring = KeyRing(
        active=signing,
        published=(_published("a", ACTIVE), _published("b", NEXT),
                   _published("c", RETIRING, 2000)),
        retired=("r1", "r2"),
    )
    before = ring.jwks(1999)
    assert _kids(before) == ["a", "b", "c"]
    assert before["retired"] == ["r2", "r1"]
    # the retiring key leaves the keys at published_until and is named retired, newest first
    after = ring.jwks(2000)
    assert _kids(after) == ["a", "b"]
    assert after["retired"] == ["c", "r2", "r1"]
    assert [(k["kid"], k["role"]) for k in ring.describe(2000)] == [
        ("a", ACTIVE), ("b", NEXT), ("c", RETIRED)]
    assert ring.describe(1999)[2] == {"kid": "c", "role": RETIRING, "publishedUntil": 2000}
    alone = KeyRing(active=signing, published=(_published("a", ACTIVE),))
    assert alone.jwks(0) == {"keys": [{"kty": "RSA", "kid": "a"}]}  # no "retired" member


def test_jwks_names_only_the_newest_retired_keys(signing: SigningKey) -> None:
    retired = tuple(f"r{number}" for number in range(RETIRED_LISTED + 4))
    ring = KeyRing(active=signing, published=(_published("a", ACTIVE),
                                              _published("c", RETIRING, 2000)), retired=retired)
    named = ring.jwks(2000)["retired"]
    assert len(named) == RETIRED_LISTED
    assert named == ["c", *reversed(retired)][:RETIRED_LISTED]


def _kid(pair: KeyPair) -> str:
    return load_public_keys(pair.public_pem.encode(), source="test")[0].kid


def _record(pair: KeyPair, role: str, now: int) -> KeyRecord:
    public = load_public_keys(pair.public_pem.encode(), source="test")[0]
    return record_for(public, f"{public.kid}.pem", role, now)


def _directory(tmp_path: Path, *records: KeyRecord) -> Path:
    directory = tmp_path / "keys"
    directory.mkdir()
    write_state(directory, KeyState(records))
    return directory


def test_load_ring_decrypts_only_the_active_key(
    tmp_path: Path, key_pair: KeyPair, other_key_pair: KeyPair, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the next key listed first, and its private file is not even a key: it is never opened
    upcoming, active = _record(other_key_pair, NEXT, 1000), _record(key_pair, ACTIVE, 1000)
    directory = _directory(tmp_path, upcoming, active)
    shutil.copy(key_pair.private_path, directory / active.file)
    (directory / upcoming.file).write_text("not a key\n")
    opened: list[str] = []
    real = keyring.load_private_key

    def counting(pem: bytes, passphrase: bytes | None, *, source: str) -> SigningKey:
        opened.append(source)
        return real(pem, passphrase, source=source)

    monkeypatch.setattr(keyring, "load_private_key", counting)
    ring = load_ring(directory, PASSPHRASE.encode(), now=1000)
    assert opened == [str(directory / active.file)]
    assert ring.active.kid == _kid(key_pair)
    jwks = ring.jwks(1000)
    assert _kids(jwks) == [_kid(key_pair), _kid(other_key_pair)]  # the active key first
    assert all(key["alg"] == "RS256" and "d" not in key for key in jwks["keys"])
    assert [(k["kid"], k["role"]) for k in ring.describe(1000)] == [
        (_kid(key_pair), ACTIVE), (_kid(other_key_pair), NEXT)]


def test_load_ring_publishes_a_retiring_key_until_its_time(
    tmp_path: Path, key_pair: KeyPair, other_key_pair: KeyPair
) -> None:
    retiring = _record(other_key_pair, RETIRING, 1000)
    retiring = replace(retiring, retiring_since=1500, published_until=2000)
    active = _record(key_pair, ACTIVE, 1000)
    directory = _directory(tmp_path, retiring, active)
    shutil.copy(key_pair.private_path, directory / active.file)
    early = load_ring(directory, PASSPHRASE.encode(), now=1999)
    assert _kids(early.jwks(1999)) == [_kid(key_pair), _kid(other_key_pair)]
    assert _kids(early.jwks(2000)) == [_kid(key_pair)]  # the same ring, later
    late = load_ring(directory, PASSPHRASE.encode(), now=2000)
    assert late.jwks(2000) == {"keys": early.jwks(2000)["keys"], "retired": [_kid(other_key_pair)]}


def test_load_ring_refuses_an_active_file_holding_another_key(
    tmp_path: Path, key_pair: KeyPair, other_key_pair: KeyPair
) -> None:
    active = _record(key_pair, ACTIVE, 1000)
    directory = _directory(tmp_path, active)
    shutil.copy(other_key_pair.private_path, directory / active.file)
    with pytest.raises(KeyInvalid) as caught:
        load_ring(directory, PASSPHRASE.encode(), now=1000)
    assert f"holds key {_kid(other_key_pair)}, but keys.json says {_kid(key_pair)}" in str(
        caught.value)


def test_load_ring_refuses_a_public_key_under_another_kid(
    tmp_path: Path, key_pair: KeyPair, other_key_pair: KeyPair
) -> None:
    active = _record(key_pair, ACTIVE, 1000)
    wrong = replace(_record(other_key_pair, NEXT, 1000), kid="not-its-kid")
    directory = _directory(tmp_path, active, wrong)
    shutil.copy(key_pair.private_path, directory / active.file)
    with pytest.raises(KeyInvalid, match="the public key of not-its-kid has another kid"):
        load_ring(directory, PASSPHRASE.encode(), now=1000)


def test_load_ring_refuses_a_wrong_passphrase(tmp_path: Path, key_pair: KeyPair) -> None:
    active = _record(key_pair, ACTIVE, 1000)
    directory = _directory(tmp_path, active)
    shutil.copy(key_pair.private_path, directory / active.file)
    with pytest.raises(PassphraseWrong) as caught:
        load_ring(directory, b"not the passphrase", now=1000)
    assert "the passphrase does not decrypt the private key" in str(caught.value)
    assert str(directory / active.file) in str(caught.value)


def test_load_ring_refuses_a_missing_active_file(tmp_path: Path, key_pair: KeyPair) -> None:
    active = _record(key_pair, ACTIVE, 1000)
    directory = _directory(tmp_path, active)
    with pytest.raises(KeyFileMissing, match=re.escape(f"ISSUER_KEYS_DIR ({active.file})")):
        load_ring(directory, PASSPHRASE.encode(), now=1000)


def test_load_ring_names_the_most_recently_retired_keys_first(
    tmp_path: Path, key_pair: KeyPair
) -> None:
    active = _record(key_pair, ACTIVE, 1000)
    # created first but retired last: listed first, whatever the order of the state file
    early = replace(active, kid="early", file="early.pem", role=RETIRED, created=1,
                    published_until=3000)
    late = replace(active, kid="late", file="late.pem", role=RETIRED, created=2,
                   published_until=1000)
    directory = _directory(tmp_path, early, late, active)
    shutil.copy(key_pair.private_path, directory / active.file)
    ring = load_ring(directory, PASSPHRASE.encode(), now=4000)
    assert ring.jwks(4000)["retired"] == ["early", "late"]


def test_timing_warnings_name_lifetimes_shorter_than_the_issuers(
    tmp_path: Path, key_pair: KeyPair, other_key_pair: KeyPair
) -> None:
    settings = IssuerSettings(max_token_ttl=86_400, jwks_max_age=300)
    old = replace(_record(key_pair, ACTIVE, 1000), role=RETIRING, retiring_since=5000)
    new = _record(other_key_pair, ACTIVE, 4000)
    # promoted 1000 s after publication, retiring for a day and a minute: nothing to say
    fine = KeyState((replace(old, published_until=5000 + 86_460), new))
    assert timing_warnings(fine, settings) == []
    # a CLI that ran with ISSUER_MAX_TOKEN_TTL=3600 and --force 10 s after rotate
    hasty = KeyState((replace(old, published_until=5000 + 3660),
                      replace(new, published_at=4990)))
    warnings = timing_warnings(hasty, settings)
    assert len(warnings) == 2
    assert "ISSUER_MAX_TOKEN_TTL=86400" in warnings[0]
    assert "10 s after it was published" in warnings[1]
    assert "ISSUER_JWKS_MAX_AGE=300" in warnings[1]


def test_the_ring_lists_the_algorithms_of_the_keys_it_publishes(signing: SigningKey) -> None:
    ring = KeyRing(active=signing, published=(
        PublishedKey("a", ACTIVE, signing.public_jwk(), None),
        PublishedKey("b", NEXT, {"kty": "EC", "crv": "P-256", "kid": "b"}, None),
        PublishedKey("c", RETIRING, {"kty": "OKP", "crv": "Ed25519", "kid": "c"}, 2000),
        PublishedKey("d", RETIRING, {"kty": "RSA", "kid": "d"}, 3000),
    ))
    # the signing key's first, each algorithm once, a key's only while the JWKS lists it
    assert ring.algorithms(1999) == ["RS256", "ES256", "EdDSA"]
    assert ring.algorithms(2000) == ["RS256", "ES256"]


@pytest.mark.parametrize(("pair_name", "members"), [
    ("other_key_pair", {"kty", "n", "e"}),
    ("es256_key_pair", {"kty", "crv", "x", "y"}),
    ("eddsa_key_pair", {"kty", "crv", "x"}),
])
def test_the_state_file_keeps_each_types_public_members_and_rebuilds_its_pem(
    tmp_path: Path, request: pytest.FixtureRequest, pair_name: str, members: set[str]
) -> None:
    pair: KeyPair = request.getfixturevalue(pair_name)
    [public] = load_public_keys(pair.public_pem.encode(), source="test")
    record = record_for(public, "k.pem", NEXT, 1000)
    assert set(record.public) == members
    directory = tmp_path / "keys"
    directory.mkdir()
    # an RSA active key, this pair's key next: only the active one is decrypted
    signing_pair: KeyPair = request.getfixturevalue("key_pair")
    [active] = load_public_keys(signing_pair.public_pem.encode(), source="test")
    shutil.copy(signing_pair.private_path, directory / "a.pem")
    write_state(directory, KeyState((record_for(active, "a.pem", ACTIVE, 1000), record)))
    ring = load_ring(directory, PASSPHRASE.encode(), now=1000)
    assert ring.public_pem(public.kid, 1000) == pair.public_pem
    assert [key.jwk["alg"] for key in ring.published] == ["RS256", public.alg]
