"""Key pairs for tests: the passphrase, the ``KeyPair`` record and how one is made.

A plain module, so tests import it directly; ``conftest.py`` only turns ``make_key_pair`` into
session fixtures (``key_pair``, ``other_key_pair``). Tests never import ``conftest``: pytest
loads it under its own module name, and importing it again makes a second copy of everything.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from issuer.keyring import ACTIVE, NEXT, KeyState, record_for, write_state
from shared.keys import RS256, generate_key_pair, load_public_keys

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
    alg: str = RS256


def make_key_pair(directory: Path, bits: int = 2048, *, alg: str = RS256) -> KeyPair:
    """A new pair written to ``directory`` (private.pem, public.pem, passphrase.txt); ``alg``
    chooses its type (``bits`` is an RSA key's size)."""
    directory.mkdir(parents=True, exist_ok=True)
    private_pem, public_pem = generate_key_pair(bits, PASSPHRASE.encode(), alg=alg)
    private_path = directory / "private.pem"
    public_path = directory / "public.pem"
    passphrase_path = directory / "passphrase.txt"
    private_path.write_bytes(private_pem)
    public_path.write_bytes(public_pem)
    passphrase_path.write_text(PASSPHRASE + "\n")
    return KeyPair(
        directory, private_path, public_path, passphrase_path,
        private_pem.decode(), public_pem.decode(), alg=alg,
    )


def make_keys_dir(directory: Path, active: KeyPair, upcoming: KeyPair) -> None:
    """An ``ISSUER_KEYS_DIR``: ``active`` signing and ``upcoming`` published as next, long
    enough ago to promote (the pairs may be of different types)."""
    directory.mkdir()
    published = int(time.time()) - 3600
    records = []
    for pair, role in ((active, ACTIVE), (upcoming, NEXT)):
        public = load_public_keys(pair.public_pem.encode(), source="test")[0]
        shutil.copy(pair.private_path, directory / f"{public.kid}.pem")
        records.append(record_for(public, f"{public.kid}.pem", role, published))
    write_state(directory, KeyState(tuple(records)))
