"""Key pairs for tests: the passphrase, the ``KeyPair`` record and how one is made.

A plain module, so tests import it directly; ``conftest.py`` only turns ``make_key_pair`` into
session fixtures (``key_pair``, ``other_key_pair``). Tests never import ``conftest``: pytest
loads it under its own module name, and importing it again makes a second copy of everything.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from shared.keys import generate_key_pair

PASSPHRASE = "correct horse battery staple"


@dataclass(frozen=True)
class KeyPair:
    """Files and PEM text of one generated key pair (private key encrypted under PASSPHRASE)."""

    directory: Path
    private_path: Path
    public_path: Path
    passphrase_path: Path
    private_pem: str
    public_pem: str
    passphrase: str = PASSPHRASE


def make_key_pair(directory: Path, bits: int = 2048) -> KeyPair:
    """A new pair written to ``directory`` (private.pem, public.pem, passphrase.txt)."""
    directory.mkdir(parents=True, exist_ok=True)
    private_pem, public_pem = generate_key_pair(bits, PASSPHRASE.encode())
    private_path = directory / "private.pem"
    public_path = directory / "public.pem"
    passphrase_path = directory / "passphrase.txt"
    private_path.write_bytes(private_pem)
    public_path.write_bytes(public_pem)
    passphrase_path.write_text(PASSPHRASE + "\n")
    return KeyPair(
        directory, private_path, public_path, passphrase_path,
        private_pem.decode(), public_pem.decode(),
    )
