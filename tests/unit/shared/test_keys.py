"""Key loading: every form users hand us, and a distinct error for each way it goes wrong."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from shared.errors import (
    KeyFileMissing,
    KeyInvalid,
    KeyTooSmall,
    PassphraseMissing,
    PassphraseUnneeded,
    PassphraseWrong,
)
from shared.keys import (
    generate_key_pair,
    load_private_key,
    load_public_keys,
    public_key_from_jwk,
    read_passphrase,
    read_pem,
)
from tests.keypairs import PASSPHRASE, KeyPair


def _b64(number: int) -> str:
    raw = number.to_bytes((number.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _rfc7638_kid(public_pem: bytes) -> str:
    """The thumbprint computed by hand from RFC 7638 section 3, not by the library under test."""
    key = serialization.load_pem_public_key(public_pem)
    assert isinstance(key, rsa.RSAPublicKey)
    numbers = key.public_numbers()
    canonical = json.dumps(
        {"e": _b64(numbers.e), "kty": "RSA", "n": _b64(numbers.n)}, separators=(",", ":")
    )
    digest = hashlib.sha256(canonical.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _reencode(key_pair: KeyPair, fmt: serialization.PrivateFormat, password: bytes | None) -> bytes:
    key = serialization.load_pem_private_key(key_pair.private_pem.encode(), PASSPHRASE.encode())
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password)
        if password
        else serialization.NoEncryption()
    )
    return key.private_bytes(serialization.Encoding.PEM, fmt, encryption)


def test_encrypted_pkcs8_loads_with_its_passphrase(key_pair: KeyPair) -> None:
    pem = key_pair.private_path.read_bytes()
    assert b"BEGIN ENCRYPTED PRIVATE KEY" in pem
    key = load_private_key(pem, PASSPHRASE.encode(), source="test")
    assert key.bits == 2048
    assert key.kid == _rfc7638_kid(key_pair.public_pem.encode())
    assert key.public_pem() == key_pair.public_pem


def test_encrypted_traditional_form_loads(key_pair: KeyPair) -> None:
    pem = _reencode(key_pair, serialization.PrivateFormat.TraditionalOpenSSL, b"secret-two")
    assert b"Proc-Type: 4,ENCRYPTED" in pem
    key = load_private_key(pem, b"secret-two", source="test")
    assert key.kid == _rfc7638_kid(key_pair.public_pem.encode())


@pytest.mark.parametrize(
    "fmt", [serialization.PrivateFormat.PKCS8, serialization.PrivateFormat.TraditionalOpenSSL]
)
def test_unencrypted_keys_load_without_passphrase(
    key_pair: KeyPair, fmt: serialization.PrivateFormat
) -> None:
    pem = _reencode(key_pair, fmt, None)
    assert b"ENCRYPTED" not in pem
    assert load_private_key(pem, None, source="test").kid == _rfc7638_kid(
        key_pair.public_pem.encode()
    )


def test_pem_text_with_literal_backslash_n_is_accepted(key_pair: KeyPair) -> None:
    one_line = key_pair.private_pem.strip().replace("\n", "\\n")
    assert "\n" not in one_line
    pem, source = read_pem(file=None, text=one_line, file_variable="F", text_variable="T")
    assert source == "T"
    key = load_private_key(pem, PASSPHRASE.encode(), source=source)
    assert key.public_pem() == key_pair.public_pem


def test_wrong_passphrase(key_pair: KeyPair) -> None:
    with pytest.raises(PassphraseWrong, match="does not decrypt"):
        load_private_key(key_pair.private_pem.encode(), b"not it", source="ISSUER_PRIVATE_KEY_FILE")


def test_wrong_passphrase_traditional_form(key_pair: KeyPair) -> None:
    pem = _reencode(key_pair, serialization.PrivateFormat.TraditionalOpenSSL, b"secret-two")
    with pytest.raises(PassphraseWrong):
        load_private_key(pem, b"not it", source="test")


@pytest.mark.parametrize(
    "form", [serialization.PrivateFormat.TraditionalOpenSSL, serialization.PrivateFormat.PKCS8]
)
def test_a_wrong_passphrase_that_happens_to_unpad_is_still_a_wrong_passphrase(
    key_pair: KeyPair, form: serialization.PrivateFormat
) -> None:
    """About one wrong passphrase in 256 decrypts to noise with valid padding; the library then
    calls the key undeserializable. Find such a passphrase, and expect the same answer."""
    pem = _reencode(key_pair, form, b"secret-two")
    for attempt in range(5000):  # misses all 5000 with probability about 3e-9
        wrong = f"not it {attempt}".encode()
        try:
            serialization.load_pem_private_key(pem, wrong)
        except ValueError as exc:
            if "incorrect password" not in str(exc).lower():
                break
    else:
        pytest.fail("no wrong passphrase decrypted to valid padding in 5000 attempts")
    with pytest.raises(PassphraseWrong, match="does not decrypt"):
        load_private_key(pem, wrong, source="test")


WRONG_PASSPHRASE = (
    "test: the passphrase does not decrypt the private key (or the key file is damaged)"
)


def _random_wrong_passphrases(count: int) -> list[bytes]:
    """``count`` wrong passphrases of every shape: empty, one byte, long, not UTF-8, printable."""
    found = [b"", b"\x00", b"secret-two\n", b"secret-tw", b"x" * 1024]
    while len(found) < count:
        size = secrets.randbelow(80) + 1
        candidate = (
            secrets.token_bytes(size) if len(found) % 2
            else secrets.token_urlsafe(size).encode()
        )
        if candidate != b"secret-two":
            found.append(candidate)
    return found


@pytest.mark.parametrize(
    "form", [serialization.PrivateFormat.PKCS8, serialization.PrivateFormat.TraditionalOpenSSL]
)
def test_every_wrong_passphrase_gets_the_one_wrong_passphrase_message(
    key_pair: KeyPair, form: serialization.PrivateFormat
) -> None:
    """Whatever noise a wrong passphrase decrypts to (bad padding, good padding and bad DER,
    an empty passphrase the library takes for none), the answer is the one message naming the
    passphrase and a damaged file. 300 tries of each form take about 0.1 s (2048-bit key)."""
    pem = _reencode(key_pair, form, b"secret-two")
    other: dict[str, str] = {}
    for wrong in _random_wrong_passphrases(300):
        try:
            load_private_key(pem, wrong, source="test")
        except PassphraseWrong as exc:
            if str(exc) != WRONG_PASSPHRASE:
                other[wrong.hex()] = f"PassphraseWrong: {exc}"
        except Exception as exc:  # noqa: BLE001 - any other answer is what this test looks for
            other[wrong.hex()] = f"{type(exc).__name__}: {exc}"
        else:
            other[wrong.hex()] = "loaded"
    assert other == {}


def test_a_damaged_encrypted_key_is_not_a_readable_key(key_pair: KeyPair) -> None:
    pem = _reencode(key_pair, serialization.PrivateFormat.PKCS8, b"secret-two")
    lines = pem.splitlines()
    lines[3] = b"!!" + lines[3][2:]  # no longer base64
    with pytest.raises(KeyInvalid, match="not a readable"):
        load_private_key(b"\n".join(lines) + b"\n", b"secret-two", source="test")


def test_missing_passphrase_names_the_variables(key_pair: KeyPair) -> None:
    with pytest.raises(PassphraseMissing, match="ISSUER_KEY_PASSPHRASE"):
        load_private_key(key_pair.private_pem.encode(), None, source="test")


def test_unneeded_passphrase(key_pair: KeyPair) -> None:
    pem = _reencode(key_pair, serialization.PrivateFormat.PKCS8, None)
    with pytest.raises(PassphraseUnneeded, match="not encrypted"):
        load_private_key(pem, b"anything", source="test")


def test_not_a_key() -> None:
    with pytest.raises(KeyInvalid, match="not a PEM private key"):
        load_private_key(b"hello, this is a shopping list\n", None, source="test")


def test_garbled_private_key() -> None:
    pem = b"-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n"
    with pytest.raises(KeyInvalid, match="not a readable"):
        load_private_key(pem, None, source="test")


def test_public_key_given_as_private(key_pair: KeyPair) -> None:
    with pytest.raises(KeyInvalid, match="public key"):
        load_private_key(key_pair.public_pem.encode(), None, source="test")


def test_private_key_given_as_public(key_pair: KeyPair) -> None:
    with pytest.raises(KeyInvalid, match="private key"):
        load_public_keys(key_pair.private_pem.encode(), source="test")


def test_key_under_2048_bits_is_refused() -> None:
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505 - the weak key is the point
    private_pem = small.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public_pem = small.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    with pytest.raises(KeyTooSmall, match="1024 bits"):
        load_private_key(private_pem, None, source="test")
    with pytest.raises(KeyTooSmall, match="1024 bits"):
        load_public_keys(public_pem, source="test")


def test_generate_refuses_small_keys() -> None:
    with pytest.raises(KeyTooSmall):
        generate_key_pair(1024, None)


def test_pkcs1_public_key_loads(key_pair: KeyPair) -> None:
    key = serialization.load_pem_public_key(key_pair.public_pem.encode())
    pkcs1 = key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.PKCS1)
    assert b"BEGIN RSA PUBLIC KEY" in pkcs1
    [loaded] = load_public_keys(pkcs1, source="test")
    assert loaded.kid == _rfc7638_kid(key_pair.public_pem.encode())


def test_several_public_keys_in_one_pem(key_pair: KeyPair, other_key_pair: KeyPair) -> None:
    both = (key_pair.public_pem + other_key_pair.public_pem).encode()
    keys = load_public_keys(both, source="test")
    assert [k.kid for k in keys] == [
        _rfc7638_kid(key_pair.public_pem.encode()),
        _rfc7638_kid(other_key_pair.public_pem.encode()),
    ]


def test_public_pem_without_a_key() -> None:
    with pytest.raises(KeyInvalid, match="no PEM public key"):
        load_public_keys(b"nothing here", source="test")


def test_public_jwk_round_trips(key_pair: KeyPair) -> None:
    signing = load_private_key(key_pair.private_pem.encode(), PASSPHRASE.encode(), source="t")
    members = signing.public_jwk()
    assert members["kid"] == signing.kid
    assert members["alg"] == "RS256"
    assert members["use"] == "sig"
    assert "d" not in members
    assert "p" not in members
    assert public_key_from_jwk(members, source="jwks").kid == signing.kid


def test_public_key_from_private_jwk_is_refused(key_pair: KeyPair) -> None:
    with pytest.raises(KeyInvalid):
        public_key_from_jwk({"kty": "RSA", "n": "x", "e": "AQAB", "d": "y"}, source="jwks")


def test_read_pem_errors(tmp_path: Path) -> None:
    with pytest.raises(KeyFileMissing, match="ISSUER_PRIVATE_KEY_FILE: no file at"):
        read_pem(file=str(tmp_path / "absent.pem"), text=None,
                 file_variable="ISSUER_PRIVATE_KEY_FILE", text_variable="ISSUER_PRIVATE_KEY")
    with pytest.raises(KeyFileMissing, match="no key configured"):
        read_pem(file=None, text=None, file_variable="F", text_variable="T")
    with pytest.raises(KeyInvalid, match="not both"):
        read_pem(file="a", text="b", file_variable="F", text_variable="T")


def test_read_passphrase_forms(tmp_path: Path) -> None:
    secret = tmp_path / "passphrase"
    secret.write_text("s3cret\n")
    assert read_passphrase(value=None, file=str(secret), value_variable="V",
                           file_variable="F") == b"s3cret"
    assert read_passphrase(value="abc", file=None, value_variable="V", file_variable="F") == b"abc"
    assert read_passphrase(value=None, file=None, value_variable="V", file_variable="F") is None
    empty = tmp_path / "empty"
    empty.write_text("\n")
    with pytest.raises(PassphraseMissing, match="empty"):
        read_passphrase(value=None, file=str(empty), value_variable="V", file_variable="F")
    with pytest.raises(KeyFileMissing, match="F: cannot read"):
        read_passphrase(value=None, file=str(tmp_path / "absent"), value_variable="V",
                        file_variable="F")


def test_errors_never_contain_the_passphrase(key_pair: KeyPair) -> None:
    with pytest.raises(PassphraseWrong) as caught:
        load_private_key(key_pair.private_pem.encode(), b"wrong-but-secret", source="test")
    assert "wrong-but-secret" not in str(caught.value)
