"""Loading, generating and describing signing keys: RSA (RS256), P-256 (ES256), Ed25519 (EdDSA).

Users hand us keys in whatever form their tools wrote: a PEM file, or PEM text in an environment
variable with literal ``\\n`` (the seed's advice for pasting a key into code); private keys
encrypted the way ``openssl genrsa -des3`` writes them (OpenSSL 3's PKCS#8
``ENCRYPTED PRIVATE KEY``, or the older ``Proc-Type: 4,ENCRYPTED`` with DES-EDE3-CBC) or not
encrypted at all; public keys as SPKI (``BEGIN PUBLIC KEY``) or PKCS#1 (``BEGIN RSA PUBLIC KEY``).

A key's type fixes its one algorithm (``algorithm_of``): an RSA key signs and verifies RS256
only, a P-256 key ES256 only, an Ed25519 key EdDSA only. Nothing else (another curve, DSA, a
key of another size class) is accepted. This module and the signing/verification modules are
the only places that touch jwcrypto.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwcrypto import jwk

from shared.errors import (
    KeyFileMissing,
    KeyInvalid,
    KeyTooSmall,
    PassphraseMissing,
    PassphraseUnneeded,
    PassphraseWrong,
)

MIN_RSA_BITS = 2048
RS256, ES256, EDDSA = "RS256", "ES256", "EdDSA"
ALGORITHMS = (RS256, ES256, EDDSA)
"""Every algorithm a key may have; RS256, the seed's, is the default everywhere."""
RSA_FAMILY = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512")
"""What an RSA key may verify (a verifier may allow more than RS256); it signs RS256 here."""
DEFAULT_ALGORITHM = RS256
# the size reported for the curve keys (what "bits" means for RSA)
_CURVE_BITS = 256

_PEM_BLOCK = re.compile(
    rb"-----BEGIN (?P<label>[A-Z0-9 ]+)-----.*?-----END (?P=label)-----", re.DOTALL
)


@dataclass(frozen=True)
class SigningKey:
    """A decrypted private key ready to sign, with its RFC 7638 key id and its algorithm."""

    jwk: Any  # jwcrypto.jwk.JWK (untyped library)
    kid: str
    bits: int
    alg: str = RS256

    def public_pem(self) -> str:
        """The public half as SPKI PEM, the form the seed's verifier configuration takes."""
        pem: bytes = self.jwk.export_to_pem(private_key=False)
        return pem.decode("ascii")

    def public_jwk(self) -> dict[str, Any]:
        """The public half as a JWK for a JWKS document."""
        return public_jwk(self.jwk)


@dataclass(frozen=True)
class VerificationKey:
    """A trusted public key, its RFC 7638 key id, and the one algorithm it verifies."""

    jwk: Any  # jwcrypto.jwk.JWK (untyped library)
    kid: str
    bits: int
    alg: str = RS256


def verifies(key_alg: str, alg: str) -> bool:
    """Whether a key of type ``key_alg`` (``algorithm_of``) may verify ``alg``: an RSA key the
    RS and PS algorithms, any other key its own algorithm only (ES256 for P-256, EdDSA for
    Ed25519). The one rule for a JWKS's ``alg``, a verifier's key set and each token."""
    return alg in RSA_FAMILY if key_alg == RS256 else alg == key_alg


def algorithm_of(key: Any, source: str) -> str:
    """The algorithm a ``cryptography`` key (private or public) is for; KeyInvalid otherwise."""
    if isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey):
        return RS256
    if isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey):
        if not isinstance(key.curve, ec.SECP256R1):
            raise KeyInvalid(f"{source}: an EC key on {key.curve.name}; ES256 needs P-256 "
                             "(prime256v1)")
        return ES256
    if isinstance(key, ed25519.Ed25519PrivateKey | ed25519.Ed25519PublicKey):
        return EDDSA
    raise KeyInvalid(f"{source}: not an RSA, P-256 or Ed25519 key (RS256, ES256 or EdDSA)")


def _bits(key: Any) -> int:
    return int(key.key_size) if isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey) \
        else _CURVE_BITS


def jwk_algorithm(key: Any) -> str:
    """The algorithm of a jwcrypto key, from its type and curve."""
    kty, crv = key.get("kty"), key.get("crv")
    if kty == "RSA":
        return RS256
    if kty == "EC" and crv == "P-256":
        return ES256
    if kty == "OKP" and crv == "Ed25519":
        return EDDSA
    raise KeyInvalid(f"a {kty} key ({crv}) has no algorithm here")


def public_jwk(key: Any) -> dict[str, Any]:
    """RFC 7517 members of a key's public half, with ``kid``, ``alg`` and ``use``."""
    exported: dict[str, Any] = key.export_public(as_dict=True)
    return {**exported, "kid": key.thumbprint(), "alg": jwk_algorithm(key), "use": "sig"}


def read_pem(
    *, file: str | None, text: str | None, file_variable: str, text_variable: str
) -> tuple[bytes, str]:
    """PEM bytes from a file path or from inline text, and the variable they came from.

    The variable's name is what later errors about the key name. Inline text may carry literal
    ``\\n`` instead of newlines, because that is how a key survives being pasted into an
    environment variable or a JavaScript string.
    """
    if file and text:
        raise KeyInvalid(f"set {file_variable} or {text_variable}, not both")
    if file:
        path = Path(file)
        try:
            return path.read_bytes(), file_variable
        except FileNotFoundError:
            raise KeyFileMissing(
                f"{file_variable}: no file at {path}; create it (jwt-auth keygen) or fix the path"
            ) from None
        except OSError as exc:
            raise KeyFileMissing(f"{file_variable}: cannot read {path}: {exc.strerror}") from None
    if text:
        pem = text.replace("\\n", "\n").strip().encode("ascii", errors="replace") + b"\n"
        return pem, text_variable
    raise KeyFileMissing(f"no key configured: set {file_variable} or {text_variable}")


def read_passphrase(
    *, value: str | None, file: str | None, value_variable: str, file_variable: str
) -> bytes | None:
    """The passphrase from a variable or a file (Docker secrets); None when neither is set."""
    if value and file:
        raise PassphraseWrong(f"set {value_variable} or {file_variable}, not both")
    if file:
        try:
            content = Path(file).read_text(encoding="utf-8")
        except OSError as exc:
            raise KeyFileMissing(f"{file_variable}: cannot read {file}: {exc.strerror}") from None
        # editors and `echo` add one trailing newline; it is never part of a passphrase
        content = content.removesuffix("\n").removesuffix("\r")
        if not content:
            raise PassphraseMissing(f"{file_variable}: {file} is empty")
        return content.encode("utf-8")
    if value:
        return value.encode("utf-8")
    return None


def _armor_intact(pem: bytes) -> bool:
    """Whether a PEM block's base64 body decodes: then what fails is what it encodes."""
    match = _PEM_BLOCK.search(pem)
    if match is None:
        return False
    lines = match.group(0).splitlines()[1:-1]
    # the traditional form has "Proc-Type:" and "DEK-Info:" headers before a blank line
    body = b"".join(line.strip() for line in lines if b":" not in line)
    try:
        base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError):
        return False
    return bool(body)


def _is_encrypted(pem: bytes) -> bool:
    return b"ENCRYPTED PRIVATE KEY" in pem or b"Proc-Type: 4,ENCRYPTED" in pem


def load_private_key(pem: bytes, passphrase: bytes | None, *, source: str) -> SigningKey:
    """Decrypt and validate a private key (RSA, P-256 or Ed25519); ``source`` names it in error
    messages.

    This is the slow step: about 0.25 s for a 4096-bit key, nearly all of it validating the
    key (decrypting is quick), so services do it once per process, before forking workers.
    """
    if b"PRIVATE KEY" not in pem:
        what = "a public key" if b"PUBLIC KEY" in pem else "not a PEM private key"
        raise KeyInvalid(
            f"{source}: this is {what}; the issuer needs the private key (private.pem)"
        )
    encrypted = _is_encrypted(pem)
    if encrypted and passphrase is None:
        raise PassphraseMissing(
            f"{source}: the private key is encrypted and no passphrase is configured; "
            "set ISSUER_KEY_PASSPHRASE or ISSUER_KEY_PASSPHRASE_FILE"
        )
    if not encrypted and passphrase is not None:
        raise PassphraseUnneeded(
            f"{source}: a passphrase is configured but the private key is not encrypted; "
            "unset the passphrase or use an encrypted key"
        )
    try:
        key = serialization.load_pem_private_key(pem, password=passphrase)
    except (ValueError, TypeError):
        if encrypted and _armor_intact(pem):
            # a wrong passphrase decrypts to noise, and about one time in 256 the noise ends in
            # valid padding: the library then says "could not deserialize" instead of
            # "incorrect password". Either way the passphrase (or the ciphertext) is at fault.
            # An empty passphrase is a wrong one too (the library raises TypeError for it, as
            # if none had been given, on a PKCS#8 key).
            raise PassphraseWrong(
                f"{source}: the passphrase does not decrypt the private key "
                "(or the key file is damaged)"
            ) from None
        raise KeyInvalid(f"{source}: not a readable PEM private key") from None
    except Exception as exc:  # noqa: BLE001 - any other parser failure means "not a key"
        raise KeyInvalid(
            f"{source}: not a readable PEM private key ({type(exc).__name__})"
        ) from None
    alg = algorithm_of(key, source)
    if isinstance(key, rsa.RSAPrivateKey):
        _check_size(key.key_size, source)
    signing = jwk.JWK.from_pyca(key)
    if alg == RS256:
        # jwcrypto keeps the key as numbers and rebuilds the signing key, validating it again
        # (as slowly as above), at its first use: in every worker, on the first requests, in
        # each thread that gets there at once. These are the numbers just validated above, so
        # the second validation is skipped and the key is built now, before the workers fork.
        signing.unsafe_skip_rsa_key_validation = True
    signing.get_op_key("sign")
    return SigningKey(jwk=signing, kid=signing.thumbprint(), bits=_bits(key), alg=alg)


def load_public_keys(pem: bytes, *, source: str) -> list[VerificationKey]:
    """Every public key in the PEM data, in order (several keys allow rotation)."""
    blocks = [match.group(0) for match in _PEM_BLOCK.finditer(pem)]
    if not blocks:
        raise KeyInvalid(f"{source}: no PEM public key found")
    keys: list[VerificationKey] = []
    for block in blocks:
        if b"PRIVATE KEY" in block:
            raise KeyInvalid(
                f"{source}: holds a private key; "
                "the verifier needs only the public key (public.pem)"
            )
        try:
            key = serialization.load_pem_public_key(block)
        except Exception:  # noqa: BLE001 - any parser failure is "not a key"
            raise KeyInvalid(f"{source}: not a readable PEM public key") from None
        alg = algorithm_of(key, source)
        if isinstance(key, rsa.RSAPublicKey):
            _check_size(key.key_size, source)
        public = jwk.JWK.from_pyca(key)
        keys.append(VerificationKey(jwk=public, kid=public.thumbprint(), bits=_bits(key),
                                    alg=alg))
    return keys


def public_key_from_jwk(members: dict[str, Any], *, source: str) -> VerificationKey:
    """A trusted public key from a JWKS entry: an RSA, P-256 or Ed25519 public key.

    The key is rebuilt by ``cryptography`` from its members, which refuses an EC point that is
    not on the curve (an invalid-curve attack) and an Ed25519 key of the wrong length. An
    ``alg`` member, when present, must be the key type's own algorithm.
    """
    if "d" in members:
        raise KeyInvalid(f"{source}: holds a private key")
    kty = members.get("kty")
    try:
        key: Any
        if kty == "RSA":
            key = rsa.RSAPublicNumbers(_b64_int(members["e"]), _b64_int(members["n"])) \
                .public_key()
        elif kty == "EC":
            if members.get("crv") != "P-256":
                raise KeyInvalid(f"{source}: an EC key on {members.get('crv')!r}; ES256 needs "
                                 "P-256")
            key = ec.EllipticCurvePublicNumbers(
                _b64_int(members["x"], 32), _b64_int(members["y"], 32), ec.SECP256R1()
            ).public_key()
        elif kty == "OKP":
            if members.get("crv") != "Ed25519":
                raise KeyInvalid(f"{source}: an OKP key on {members.get('crv')!r}; EdDSA here "
                                 "is Ed25519")
            key = ed25519.Ed25519PublicKey.from_public_bytes(_b64(members["x"], 32))
        else:
            raise KeyInvalid(f"{source}: kty {kty!r} is not RSA, EC or OKP")
    except KeyInvalid:
        raise
    except Exception:  # noqa: BLE001 - any parser failure (a point off the curve) is "not a key"
        raise KeyInvalid(f"{source}: not a readable {kty} public key") from None
    alg = algorithm_of(key, source)
    published = members.get("alg")
    if published is not None and not verifies(alg, published):
        raise KeyInvalid(f"{source}: a {kty} key published for {members.get('alg')!r}; it "
                         f"verifies {alg} only")
    if isinstance(key, rsa.RSAPublicKey):
        _check_size(key.key_size, source)
    public = jwk.JWK.from_pyca(key)
    return VerificationKey(jwk=public, kid=public.thumbprint(), bits=_bits(key), alg=alg)


def _b64(value: Any, length: int | None = None) -> bytes:
    """A base64url JWK member, strict: no padding, canonical, of ``length`` bytes if given."""
    if not isinstance(value, str) or not value or "=" in value:
        raise ValueError("not base64url")
    decoded = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    if base64.urlsafe_b64encode(decoded).rstrip(b"=").decode() != value:
        raise ValueError("not canonical base64url")
    if length is not None and len(decoded) != length:
        raise ValueError(f"{len(decoded)} bytes where {length} are needed")
    return decoded


def _b64_int(value: Any, length: int | None = None) -> int:
    return int.from_bytes(_b64(value, length), "big")


def _check_size(bits: int, source: str) -> None:
    if bits < MIN_RSA_BITS:
        raise KeyTooSmall(f"{source}: RSA key of {bits} bits; use at least {MIN_RSA_BITS}")


def generate_key_pair(
    bits: int, passphrase: bytes | None, *, alg: str = DEFAULT_ALGORITHM
) -> tuple[bytes, bytes]:
    """A new key pair for ``alg`` as (private PEM, public PEM), like the seed's two openssl
    commands for RS256 (``bits`` is an RSA key's size; a curve has its own).

    The private key is PKCS#8, encrypted under the passphrase when one is given (what
    ``openssl genrsa -des3`` writes on OpenSSL 3, with AES-256 instead of 3DES); the public key
    is SPKI, what ``openssl rsa -pubout`` (``openssl pkey -pubout``) writes.
    """
    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
    if alg == RS256:
        if bits < MIN_RSA_BITS:
            raise KeyTooSmall(f"--bits {bits}: use at least {MIN_RSA_BITS}")
        key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    elif alg == ES256:
        key = ec.generate_private_key(ec.SECP256R1())
    elif alg == EDDSA:
        key = ed25519.Ed25519PrivateKey.generate()
    else:
        raise KeyInvalid(f"--alg {alg}: use one of {', '.join(ALGORITHMS)}")
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(passphrase)
        if passphrase
        else serialization.NoEncryption()
    )
    private_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private_pem, public_pem
