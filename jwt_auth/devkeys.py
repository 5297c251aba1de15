"""Development credentials, made once: what ``docker compose up`` and ``jwt-auth up`` start from.

One layout serves both. The issuer's folder holds the encrypted key pair, its passphrase (a file,
the way Docker secrets deliver it), the hashed clients file and ``keys.json``, which makes the
folder the issuer's ``ISSUER_KEYS_DIR`` with ``private.pem`` as its first active key. The
verifier's folder holds only its hashed admin keys (it trusts the issuer through the JWKS URL,
so it never sees the private key). The two API keys themselves are printed once and also kept in
0600 files in the credentials folder so a demo can ``$(cat ...)`` them: a development
convenience only, never something to do with production keys.

Everything is created only when missing and left alone when present, so a second run, a
restarted container or a user's own keys are never overwritten.
"""

from __future__ import annotations

import contextlib
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import click

from issuer.keyring import ACTIVE, STATE_FILE, KeyState, record_for, write_state
from shared.apikeys import add_client
from shared.errors import StartupError
from shared.files import write_atomically
from shared.keys import generate_key_pair, load_public_keys

DEFAULT_BITS = 4096
DEV_CLIENT_NAME = "dev"
DEV_ADMIN_NAME = "dev-admin"

PRIVATE_KEY = "private.pem"
PUBLIC_KEY = "public.pem"
PASSPHRASE = "passphrase.txt"  # noqa: S105 - a file name, not a secret
CLIENTS = "clients.json"
ADMIN_KEYS = "admin-keys.json"
CLIENT_KEY = "dev-client.key"
ADMIN_KEY = "dev-admin.key"


@dataclass(frozen=True)
class DevPaths:
    """Where each development credential lives."""

    issuer_dir: Path
    verifier_dir: Path
    credentials_dir: Path

    @classmethod
    def under(cls, data_dir: Path) -> DevPaths:
        """The layout ``jwt-auth up`` uses: everything below one data folder."""
        return cls(data_dir / "issuer", data_dir / "verifier", data_dir)

    @property
    def private_key(self) -> Path:
        return self.issuer_dir / PRIVATE_KEY

    @property
    def public_key(self) -> Path:
        return self.issuer_dir / PUBLIC_KEY

    @property
    def keys_state(self) -> Path:
        """The state file that makes the issuer folder an ``ISSUER_KEYS_DIR`` (rotation)."""
        return self.issuer_dir / STATE_FILE

    @property
    def passphrase(self) -> Path:
        return self.issuer_dir / PASSPHRASE

    @property
    def clients(self) -> Path:
        return self.issuer_dir / CLIENTS

    @property
    def admin_keys(self) -> Path:
        return self.verifier_dir / ADMIN_KEYS

    @property
    def client_key(self) -> Path:
        return self.credentials_dir / CLIENT_KEY

    @property
    def admin_key(self) -> Path:
        return self.credentials_dir / ADMIN_KEY


@dataclass
class DevKeysResult:
    """What one run made; keys are set only when they were made by this run."""

    created: list[Path] = field(default_factory=list)
    client_key: str | None = None
    admin_key: str | None = None


def _make_dir(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True)
    # a mounted folder owned by someone else keeps its own mode; we only need to write in it
    with contextlib.suppress(PermissionError):
        path.chmod(0o700)


def _ensure_first_key(
    paths: DevPaths, bits: int, progress: Callable[[str], None], result: DevKeysResult
) -> None:
    """The key pair and passphrase (made when missing), recorded as the first active key."""
    trio = [paths.private_key, paths.public_key, paths.passphrase]
    present = [path for path in trio if path.exists()]
    if present and len(present) < len(trio):
        missing = ", ".join(str(path) for path in trio if not path.exists())
        raise StartupError(
            f"the dev key pair is incomplete (missing {missing}); "
            "restore it, or remove the rest to make a new pair"
        )
    if not present:
        progress(f"generating an encrypted {bits}-bit RSA key pair in {paths.issuer_dir}")
        passphrase = secrets.token_urlsafe(32)
        private_pem, public_pem = generate_key_pair(bits, passphrase.encode("utf-8"))
        # passphrase first: a private key on disk without it would be useless
        write_atomically(paths.passphrase, passphrase.encode("utf-8") + b"\n")
        write_atomically(paths.private_key, private_pem)
        write_atomically(paths.public_key, public_pem)
        paths.public_key.chmod(0o644)
        result.created += trio
    # the issuer folder doubles as its ISSUER_KEYS_DIR, with private.pem as the first active key,
    # so `jwt-auth keys rotate --dir` works on it; older dev folders are adopted as they are
    public = load_public_keys(paths.public_key.read_bytes(), source=str(paths.public_key))[0]
    progress(f"recording {PRIVATE_KEY} as the active signing key in {paths.keys_state}")
    now = int(time.time())
    write_state(paths.issuer_dir, KeyState((record_for(public, PRIVATE_KEY, ACTIVE, now),)))
    result.created.append(paths.keys_state)


def ensure_dev_keys(
    paths: DevPaths, *, bits: int = DEFAULT_BITS, progress: Callable[[str], None] = lambda _: None
) -> DevKeysResult:
    """Create whatever development credential is missing; never touch one that exists.

    Raises StartupError when the key pair is half there (one of private key, public key and
    passphrase missing): completing it would mean guessing, and overwriting would lose a key.
    """
    result = DevKeysResult()
    for directory in (paths.issuer_dir, paths.verifier_dir, paths.credentials_dir):
        _make_dir(directory)

    if paths.keys_state.exists():
        # a keys directory already: `jwt-auth keys` owns its keys from here on, and private.pem
        # is gone once it was rotated out and retired; only the passphrase must still be there
        if not paths.passphrase.exists():
            raise StartupError(
                f"{paths.passphrase} is missing but {paths.keys_state} names keys encrypted "
                "under it; restore it, or remove the issuer folder to start over"
            )
    else:
        _ensure_first_key(paths, bits, progress, result)

    if not paths.clients.exists():
        progress(f"adding the issuer client {DEV_CLIENT_NAME!r} to {paths.clients}")
        # the dev client may ask for isAdmin tokens so the seed's own payload works in the demo
        key = add_client(paths.clients, DEV_CLIENT_NAME, admin=True, variable="ISSUER_CLIENTS_FILE")
        write_atomically(paths.client_key, key.encode("ascii") + b"\n")
        result.client_key = key
        result.created += [paths.clients, paths.client_key]

    if not paths.admin_keys.exists():
        progress(f"adding the verifier admin key {DEV_ADMIN_NAME!r} to {paths.admin_keys}")
        key = add_client(
            paths.admin_keys, DEV_ADMIN_NAME, admin=True, variable="VERIFIER_ADMIN_KEYS_FILE"
        )
        write_atomically(paths.admin_key, key.encode("ascii") + b"\n")
        result.admin_key = key
        result.created += [paths.admin_keys, paths.admin_key]
    return result


def announce(result: DevKeysResult, paths: DevPaths, echo: Callable[[str], None]) -> None:
    """Tell the user what was made, showing new API keys this one time."""
    if result.client_key:
        echo(f"dev issuer client key (shown once; also saved, dev only, in {paths.client_key}):")
        echo(f"  {result.client_key}")
    if result.admin_key:
        echo(f"dev verifier admin key (shown once; also saved, dev only, in {paths.admin_key}):")
        echo(f"  {result.admin_key}")
    if not result.created:
        echo(
            f"dev keys already exist in {paths.issuer_dir} and {paths.verifier_dir}; "
            "left as they are"
        )


@click.command("dev-keys")
@click.option(
    "--dir", "data_dir", type=click.Path(file_okay=False, path_type=Path), default=Path(".dev"),
    show_default=True, help="Folder for the dev API key files (and the default for the others).",
)
@click.option("--issuer-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Folder for the key pair, passphrase and clients file [default: DIR/issuer].")
@click.option("--verifier-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Folder for the verifier's admin keys file [default: DIR/verifier].")
@click.option("--bits", type=click.IntRange(2048, 16384), default=DEFAULT_BITS, show_default=True)
def dev_keys(data_dir: Path, issuer_dir: Path | None, verifier_dir: Path | None, bits: int) -> None:
    """Create development keys and API keys where missing; leave existing ones alone."""
    defaults = DevPaths.under(data_dir)
    paths = DevPaths(
        issuer_dir or defaults.issuer_dir, verifier_dir or defaults.verifier_dir, data_dir
    )
    try:
        result = ensure_dev_keys(
            paths, bits=bits, progress=lambda line: click.echo(f"dev-keys: {line}", err=True)
        )
    except (StartupError, OSError) as exc:
        raise click.ClickException(str(exc)) from None
    announce(result, paths, click.echo)
