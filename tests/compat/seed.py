"""Keys made the seed's way: its two openssl commands, 4096 bits, encrypted under a passphrase."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

SEED_PASSPHRASE = "your-passphrase"
"""The placeholder the seed's node snippet passes to jwt.sign."""


@dataclass(frozen=True)
class SeedKeys:
    """``private.pem`` and ``public.pem`` in one folder, as the seed's commands leave them."""

    directory: Path
    passphrase_path: Path
    passphrase: str = SEED_PASSPHRASE

    @property
    def private_path(self) -> Path:
        return self.directory / "private.pem"

    @property
    def public_path(self) -> Path:
        return self.directory / "public.pem"

    @property
    def private_pem(self) -> bytes:
        return self.private_path.read_bytes()

    @property
    def public_pem(self) -> str:
        return self.public_path.read_text()


def make_seed_keys(directory: Path, *, traditional: bool = False) -> SeedKeys:
    """Run ``openssl genrsa -des3 -out private.pem 4096`` and ``openssl rsa ... -pubout``.

    ``-passout``/``-passin`` answer the prompts the seed's reader would type into.
    ``traditional`` asks OpenSSL 3 for the older ``Proc-Type: 4,ENCRYPTED`` form that
    OpenSSL 1.x wrote for the same command.
    """
    if shutil.which("openssl") is None:
        raise RuntimeError("the openssl command is needed for the compatibility tests")
    directory.mkdir(parents=True, exist_ok=True)
    passphrase_path = directory / "passphrase.txt"
    passphrase_path.write_text(SEED_PASSPHRASE + "\n")
    secret = f"file:{passphrase_path}"
    legacy = ["-traditional"] if traditional else []
    subprocess.run(
        ["openssl", "genrsa", "-des3", *legacy, "-passout", secret, "-out", "private.pem", "4096"],
        cwd=directory, check=True, capture_output=True, timeout=120,
    )
    subprocess.run(
        ["openssl", "rsa", "-in", "private.pem", "-passin", secret, "-outform", "PEM",
         "-pubout", "-out", "public.pem"],
        cwd=directory, check=True, capture_output=True, timeout=60,
    )
    return SeedKeys(directory, passphrase_path)
