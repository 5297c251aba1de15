"""``jwt-auth keygen``, ``jwt-auth clients ...`` and ``jwt-auth issue``: thin over the library."""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar

import click

from issuer.config import CLIENTS_FILE_VARIABLE, IssuerSettings, clients_file_from_env
from issuer.signing import PayloadRejected, check_payload, reserved_claims, sign_checked
from shared.apikeys import add_client, read_clients, remove_client, rotate_client
from shared.audit import audit, configure_audit_log
from shared.errors import StartupError
from shared.keys import (
    ALGORITHMS,
    DEFAULT_ALGORITHM,
    ES256,
    RS256,
    generate_key_pair,
    load_public_keys,
    read_passphrase,
)
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


def ask_passphrase(
    passphrase_file: str | None, *, prompt: str, confirm: bool, environment: bool = False
) -> bytes:
    """--passphrase-file; else, with ``environment``, the issuer's ISSUER_KEY_PASSPHRASE[_FILE];
    else asked on the terminal (twice when ``confirm``); one-line errors otherwise."""
    if passphrase_file:
        value = read_passphrase(value=None, file=passphrase_file,
                                value_variable="--passphrase", file_variable="--passphrase-file")
    elif environment:
        value = read_passphrase(
            value=os.environ.get("ISSUER_KEY_PASSPHRASE") or None,
            file=os.environ.get("ISSUER_KEY_PASSPHRASE_FILE") or None,
            value_variable="ISSUER_KEY_PASSPHRASE", file_variable="ISSUER_KEY_PASSPHRASE_FILE",
        )
    else:
        value = None
    if value is not None:
        return value
    if not sys.stdin.isatty():
        where = " or set ISSUER_KEY_PASSPHRASE_FILE" if environment else ""
        raise click.ClickException(
            f"no passphrase: pass --passphrase-file FILE{where} (no terminal to ask for it)"
        )
    entered: str = click.prompt(prompt, hide_input=True, confirmation_prompt=confirm, err=True)
    if not entered:
        raise click.ClickException("the passphrase must not be empty")
    return entered.encode("utf-8")


PROGRESS_EVERY = 1.0


DEFAULT_RSA_BITS = 4096

ALG_OPTION = click.option(
    "--alg", type=click.Choice(ALGORITHMS), default=DEFAULT_ALGORITHM,
    show_default=True,
    help="RS256: an RSA key (--bits); ES256: a P-256 key; EdDSA: an Ed25519 key.",
)
BITS_OPTION = click.option(
    "--bits", type=click.IntRange(2048, 16384), default=None,
    help=f"Size of an RSA key (RS256 only)  [default: {DEFAULT_RSA_BITS}]",
)


def key_bits(alg: str, bits: int | None) -> int:
    """The RSA size to generate; ``--bits`` with a curve's algorithm is an error, not ignored:
    whoever typed it expected a key of that size."""
    if alg != RS256:
        if bits is not None:
            raise click.ClickException(
                f"--bits applies to RSA keys (RS256) only; an {alg} key has a fixed size"
            )
        return 0
    return DEFAULT_RSA_BITS if bits is None else bits


def key_description(alg: str, bits: int) -> str:
    """What ``generating`` says is being made: "a 4096-bit RSA key", "a P-256 key (ES256)"."""
    if alg == RS256:
        return f"a {bits}-bit RSA key"
    return "a P-256 key (ES256)" if alg == ES256 else f"an Ed25519 key ({alg})"


@contextlib.contextmanager
def generating(what: str) -> Iterator[None]:
    """Elapsed seconds on stderr while a key is generated (an RSA key takes seconds to a
    minute; ``what`` is ``key_description``'s)."""
    started = time.monotonic()
    done = threading.Event()
    terminal = sys.stderr.isatty()
    click.echo(f"Generating {what}...", err=True, nl=not terminal)

    def tick() -> None:
        while not done.wait(PROGRESS_EVERY):
            elapsed = time.monotonic() - started
            if terminal:
                click.echo(f"\rGenerating {what}... {elapsed:.0f}s", err=True, nl=False)
            elif int(elapsed) % 5 == 0:
                click.echo(f"  still generating ({elapsed:.0f}s)", err=True)

    thread = threading.Thread(target=tick, daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()
        if terminal:
            click.echo("", err=True)
        click.echo(f"Done in {time.monotonic() - started:.1f}s.", err=True)


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
@ALG_OPTION
@BITS_OPTION
@click.option("--passphrase-file", type=click.Path(dir_okay=False),
              help="Read the passphrase from this file instead of asking (needed without a "
                   "terminal).")
@click.option("--force", is_flag=True, help="Overwrite existing key files.")
@_one_line_errors
def keygen(out_dir: str, alg: str, bits: int | None, passphrase_file: str | None,
           force: bool) -> None:
    """Make an encrypted private.pem and its public.pem, as the seed's openssl commands do."""
    bits = key_bits(alg, bits)
    directory = Path(out_dir)
    private_path, public_path = directory / "private.pem", directory / "public.pem"
    if not force:
        for path in (private_path, public_path):
            if path.exists():
                raise click.ClickException(f"{path} exists; pass --force to overwrite it")
    passphrase = ask_passphrase(passphrase_file, prompt="Passphrase for private.pem",
                                confirm=True)
    with generating(key_description(alg, bits)):
        private_pem, public_pem = generate_key_pair(bits, passphrase, alg=alg)
    directory.mkdir(parents=True, exist_ok=True)
    _write(private_path, private_pem, 0o600, force=force)
    _write(public_path, public_pem, 0o644, force=force)
    kid = load_public_keys(public_pem, source=str(public_path))[0].kid
    click.echo(f"wrote {private_path} ({alg}, encrypted, mode 0600)")
    click.echo(f"wrote {public_path}")
    click.echo(f"kid {kid}")


@click.group()
def clients() -> None:
    """Manage API keys: the issuer's clients, or the verifier's admin keys with --file.

    The running services pick a changed file up within a second (or on SIGHUP), no restart.
    """
    configure_audit_log()  # add, remove and rotate each write one audit line on stderr


_FILE_OPTION = click.option(
    "--file", "file_path", type=click.Path(dir_okay=False),
    help=f"The keys file [default: ${CLIENTS_FILE_VARIABLE}].",
)

DEFAULT_GRACE = 3600
MAX_GRACE = 30 * 24 * 3600


def _keys_file(file_path: str | None) -> tuple[Path, str]:
    """The keys file to work on, and the name errors should give it."""
    path = file_path or clients_file_from_env()
    if not path:
        raise click.ClickException(f"no keys file: pass --file PATH or set {CLIENTS_FILE_VARIABLE}")
    return Path(path), "--file" if file_path else CLIENTS_FILE_VARIABLE


def _grace_seconds(ctx: click.Context, param: click.Parameter, value: str) -> int:
    # a ClickException, not click's BadParameter: one line, without the usage text
    text = value.strip()
    if not (text.isascii() and text.isdigit()) or int(text) > MAX_GRACE:
        raise click.ClickException(
            f"--grace {value!r}: use whole seconds from 0 to {MAX_GRACE} (30 days)"
        )
    return int(text)


def utc(epoch: float | None) -> str:
    """ISO-8601 UTC to the second, or "-" when unknown."""
    if epoch is None:
        return "-"
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def _shown(name: str) -> str:
    # a hand-edited file could hold terminal control characters in a name
    return name if name.isprintable() else repr(name)


@clients.command("add")
@click.argument("name")
@click.option("--admin", is_flag=True,
              help="Allow this client to issue admin tokens (isAdmin: true).")
@_FILE_OPTION
@_one_line_errors
def clients_add(name: str, admin: bool, file_path: str | None) -> None:
    """Add a client and print its new API key, once, as the last line."""
    path, variable = _keys_file(file_path)
    key = add_client(path, name, admin=admin, variable=variable)
    audit("client_key_added", client=name, file=os.path.abspath(path), admin=admin)
    click.echo(f"added client {name!r}{' (admin)' if admin else ''} to {path}", err=True)
    click.echo("its API key follows; it is shown only this once:", err=True)
    click.echo(key)


@clients.command("list")
@_FILE_OPTION
@_one_line_errors
def clients_list(file_path: str | None) -> None:
    """Show the clients: name, admin, created, last rotated; never a key or a hash."""
    path, variable = _keys_file(file_path)
    entries = read_clients(path, variable=variable)
    if not entries:
        click.echo(f"no clients in {path}", err=True)
        return
    now = time.time()
    rows = [("NAME", "ADMIN", "CREATED", "LAST ROTATED", "")]
    for client in entries:
        until = client.grace_until(now)
        rows.append((
            _shown(client.name),
            "yes" if client.admin else "no",
            utc(client.created),
            utc(client.rotated),
            f"previous key valid until {utc(until)}" if until is not None else "",
        ))
    widths = [max(len(row[column]) for row in rows) for column in range(4)]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        click.echo("  ".join([*cells, row[4]]).rstrip())


@clients.command("remove")
@click.argument("name")
@_FILE_OPTION
@_one_line_errors
def clients_remove(name: str, file_path: str | None) -> None:
    """Remove a client: its key (and a previous key still in grace) stops working."""
    path, variable = _keys_file(file_path)
    removed = remove_client(path, name, variable=variable)
    audit("client_key_removed", client=name, file=os.path.abspath(path), admin=removed.admin)
    click.echo(f"removed client {name!r} from {path}", err=True)


@clients.command("rotate")
@click.argument("name")
@click.option("--grace", default=str(DEFAULT_GRACE), callback=_grace_seconds,
              show_default=True, metavar="SECONDS",
              help="How long the old key keeps working, so its holder can switch; 0 refuses "
                   "it at once (a leaked key). Up to 30 days.")
@_FILE_OPTION
@_one_line_errors
def clients_rotate(name: str, grace: int, file_path: str | None) -> None:
    """Give a client a new API key and print it, once, as the last line.

    The old key is accepted for --grace more seconds. Rotating again during a grace ends the
    earlier grace: only the key just replaced keeps working.
    """
    path, variable = _keys_file(file_path)
    key, client = rotate_client(path, name, grace=grace, variable=variable)
    audit("client_key_rotated", client=name, file=os.path.abspath(path), admin=client.admin,
          graceSeconds=grace)
    if client.previous_valid_until is not None:
        old = f"the old key works until {utc(client.previous_valid_until)} ({grace} s)"
    else:
        old = "the old key is refused from now on"
    click.echo(f"rotated the key of {name!r} in {path}; {old}", err=True)
    click.echo("its new API key follows; it is shown only this once:", err=True)
    click.echo(key)


@click.command()
@click.argument("payload_json", metavar="PAYLOAD_JSON")
@click.option("--expires-in", type=int, metavar="SECONDS",
              help="Lifetime instead of ISSUER_TOKEN_TTL (bounded by ISSUER_MAX_TOKEN_TTL).")
@_one_line_errors
def issue(payload_json: str, expires_in: int | None) -> None:
    """Sign a payload offline with the issuer's configuration; prints only the token."""
    from issuer.keyring import SigningKeys

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
    # before the slow key decryption
    claims = check_payload(payload, settings.claim_rule,
                           reserved=reserved_claims(settings.subject_from))
    key = SigningKeys(settings).ring.active
    issued = sign_checked(
        claims, key, now=time.time(), ttl=ttl, issuer=settings.issuer,
        audience=settings.audience, subject_from=settings.subject_from,
    )
    click.echo(issued.token)

