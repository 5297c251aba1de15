"""``jwt-auth keygen``, ``jwt-auth clients add`` and ``jwt-auth issue``: thin over the library."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar

import click

from issuer.config import CLIENTS_FILE_VARIABLE, IssuerSettings, clients_file_from_env
from issuer.signing import PayloadRejected, check_payload, sign_checked
from shared.apikeys import add_client
from shared.errors import StartupError
from shared.keys import generate_key_pair, load_public_keys, read_passphrase
from shared.strictjson import StrictJSONError, loads_strict

F = TypeVar("F", bound=Callable[..., Any])


def _one_line_errors(command: F) -> F:
    """Turn our errors into click's one-line ``Error: ...`` and exit status 1, no traceback."""

    @wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except (StartupError, PayloadRejected) as exc:
            raise click.ClickException(str(exc)) from None
        except OSError as exc:
            where = f" {exc.filename}" if exc.filename else ""
            raise click.ClickException(f"{exc.strerror or exc}:{where}") from None

    return wrapper  # type: ignore[return-value]  # same signature as the wrapped command


def _passphrase(passphrase_file: str | None) -> bytes:
    if passphrase_file:
        value = read_passphrase(
            value=None, file=passphrase_file,
            value_variable="--passphrase", file_variable="--passphrase-file",
        )
        assert value is not None  # read_passphrase refuses an empty file
        return value
    if not sys.stdin.isatty():
        raise click.ClickException(
            "no terminal to ask for the passphrase: pass --passphrase-file FILE"
        )
    entered: str = click.prompt(
        "Passphrase for private.pem", hide_input=True, confirmation_prompt=True, err=True
    )
    if not entered:
        raise click.ClickException("the passphrase must not be empty")
    return entered.encode("utf-8")


def _write(path: Path, data: bytes, mode: int, *, force: bool) -> None:
    flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if force else os.O_EXCL)
    descriptor = os.open(path, flags, mode)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(data)
    # O_CREAT's mode does not apply to a file that already existed (--force)
    os.chmod(path, mode)


@click.command()
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=".",
              show_default=True, help="Folder for private.pem and public.pem.")
@click.option("--bits", type=click.IntRange(2048, 16384), default=4096, show_default=True)
@click.option("--passphrase-file", type=click.Path(dir_okay=False),
              help="Read the passphrase from this file instead of asking (needed without a "
                   "terminal).")
@click.option("--force", is_flag=True, help="Overwrite existing key files.")
@_one_line_errors
def keygen(out_dir: str, bits: int, passphrase_file: str | None, force: bool) -> None:
    """Make an encrypted private.pem and its public.pem, as the seed's openssl commands do."""
    directory = Path(out_dir)
    private_path, public_path = directory / "private.pem", directory / "public.pem"
    if not force:
        for path in (private_path, public_path):
            if path.exists():
                raise click.ClickException(f"{path} exists; pass --force to overwrite it")
    passphrase = _passphrase(passphrase_file)
    click.echo(f"Generating a {bits}-bit RSA key (this takes a few seconds)...", err=True)
    started = time.monotonic()
    private_pem, public_pem = generate_key_pair(bits, passphrase)
    directory.mkdir(parents=True, exist_ok=True)
    _write(private_path, private_pem, 0o600, force=force)
    _write(public_path, public_pem, 0o644, force=force)
    kid = load_public_keys(public_pem, source=str(public_path))[0].kid
    click.echo(f"Done in {time.monotonic() - started:.1f}s.", err=True)
    click.echo(f"wrote {private_path} (encrypted, mode 0600)")
    click.echo(f"wrote {public_path}")
    click.echo(f"kid {kid}")


@click.group()
def clients() -> None:
    """Manage API keys: the issuer's clients, or the verifier's admin keys with --file."""


@clients.command("add")
@click.argument("name")
@click.option("--admin", is_flag=True,
              help="Allow this client to issue admin tokens (isAdmin: true).")
@click.option("--file", "file_path", type=click.Path(dir_okay=False),
              help=f"The keys file [default: ${CLIENTS_FILE_VARIABLE}].")
@_one_line_errors
def clients_add(name: str, admin: bool, file_path: str | None) -> None:
    """Add a client and print its new API key, once, as the last line."""
    variable = "--file" if file_path else CLIENTS_FILE_VARIABLE
    path = file_path or clients_file_from_env()
    if not path:
        raise click.ClickException(f"no keys file: pass --file PATH or set {CLIENTS_FILE_VARIABLE}")
    key = add_client(Path(path), name, admin=admin, variable=variable)
    click.echo(f"added client {name!r}{' (admin)' if admin else ''} to {path}", err=True)
    click.echo("its API key follows; it is shown only this once:", err=True)
    click.echo(key)


@click.command()
@click.argument("payload_json", metavar="PAYLOAD_JSON")
@click.option("--expires-in", type=int, metavar="SECONDS",
              help="Lifetime instead of ISSUER_TOKEN_TTL (bounded by ISSUER_MAX_TOKEN_TTL).")
@_one_line_errors
def issue(payload_json: str, expires_in: int | None) -> None:
    """Sign a payload offline with the issuer's configuration; prints only the token."""
    from issuer.app import load_signing_key

    settings = IssuerSettings.from_env()
    try:
        payload = loads_strict(payload_json)
    except StrictJSONError as exc:
        raise click.ClickException(f"PAYLOAD_JSON: {exc}") from None
    ttl = settings.token_ttl
    if expires_in is not None:
        if not 1 <= expires_in <= settings.max_token_ttl:
            raise click.ClickException(
                f"--expires-in: use 1 to {settings.max_token_ttl} (ISSUER_MAX_TOKEN_TTL)"
            )
        ttl = expires_in
    claims = check_payload(payload, settings.claim_rule)  # before the slow key decryption
    key = load_signing_key(settings)
    issued = sign_checked(
        claims, key, now=time.time(), ttl=ttl,
        issuer=settings.issuer, audience=settings.audience,
    )
    click.echo(issued.token)

