"""``jwt-auth keys list|rotate|promote|retire``: the signing keys of ``ISSUER_KEYS_DIR``.

The commands change the keys directory only; a running issuer notices the state file change
within a second (or on SIGHUP) and publishes or signs accordingly (``issuer/keyring.py``).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import click

from issuer.commands import (
    ALG_OPTION,
    BITS_OPTION,
    _one_line_errors,
    ask_passphrase,
    generating,
    key_bits,
    key_description,
    utc,
)
from issuer.config import jwks_max_age_from_env, keys_dir_from_env, max_token_ttl_from_env
from issuer.keyring import (
    ACTIVE,
    NEXT,
    RETIRE_LEEWAY,
    RETIRED,
    KeyState,
    promote,
    read_state,
    record_for,
    retire,
    settle,
    state_path,
    write_state,
)
from shared.audit import audit, configure_audit_log
from shared.errors import KeyInvalid
from shared.files import exclusive, write_atomically
from shared.keys import generate_key_pair, jwk_algorithm, load_private_key, load_public_keys

PUBLISH_SLACK = 2
"""Seconds for every issuer worker to notice a new next key (they look once a second)."""


def promotion_wait() -> int:
    """How long a next key must have been published before it may sign."""
    return jwks_max_age_from_env() + PUBLISH_SLACK


def _directory(dir_option: str | None) -> Path:
    chosen = dir_option or keys_dir_from_env()
    if not chosen:
        raise click.ClickException("no keys directory: pass --dir DIR or set ISSUER_KEYS_DIR")
    return Path(chosen)


def _locked_directory(dir_option: str | None) -> Path:
    """The keys directory, locked until the command ends: two changes at once would lose one."""
    directory = _directory(dir_option)
    click.get_current_context().with_resource(exclusive(state_path(directory)))
    return directory


def _passphrase(passphrase_file: str | None, *, new: bool) -> bytes:
    return ask_passphrase(passphrase_file, prompt="Passphrase of the keys", confirm=new,
                          environment=True)


def _remove_private_files(directory: Path, state: KeyState, kids: list[str]) -> None:
    # a key that is no longer published can never be needed again: its private half goes
    for kid in kids:
        record = state.find(kid)
        if record is not None:
            (directory / record.file).unlink(missing_ok=True)


def _settled(directory: Path, now: int) -> KeyState:
    state, lapsed = settle(read_state(directory, variable="--dir"), now)
    if lapsed:
        write_state(directory, state)
        _remove_private_files(directory, state, [record.kid for record in lapsed])
        for record in lapsed:
            click.echo(f"{record.kid}: its retiring period ended; no longer published", err=True)
    return state


@click.group()
def keys() -> None:
    """Signing keys that rotate without downtime (ISSUER_KEYS_DIR)."""
    configure_audit_log()


_DIR_OPTION = click.option(
    "--dir", "dir_option", type=click.Path(file_okay=False),
    help="The keys directory [default: $ISSUER_KEYS_DIR].",
)
_PASSPHRASE_OPTION = click.option(
    "--passphrase-file", type=click.Path(dir_okay=False),
    help="The keys' passphrase [default: $ISSUER_KEY_PASSPHRASE(_FILE), else asked].",
)


@keys.command("list")
@_DIR_OPTION
@_one_line_errors
def list_keys(dir_option: str | None) -> None:
    """Kid, role, algorithm, creation and how long each key stays published."""
    directory = _directory(dir_option)
    now = time.time()
    state = read_state(directory, variable="--dir")
    wait = promotion_wait()
    # ALG after ROLE: scripts that read the first two columns keep working
    rows = [("KID", "ROLE", "ALG", "CREATED", "PUBLISHED UNTIL")]
    for record in state.keys:
        role = record.effective_role(now)
        if role in (ACTIVE, NEXT):
            until = "while active" if role == ACTIVE else "while next"
            if role == NEXT:
                ready = record.published_at + wait
                until += (f" (promotable from {utc(ready)})" if now < ready
                          else " (promotable now)")
        else:
            until = utc(record.published_until)
        rows.append((record.kid, role, _algorithm(record.public), utc(record.created), until))
    widths = [max(len(row[column]) for row in rows) for column in range(4)]
    for row in rows:
        click.echo("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:4]))
                   + "  " + row[4])


def _algorithm(public: Mapping[str, Any]) -> str:
    try:
        return jwk_algorithm(public)
    except KeyInvalid:
        return "?"  # a hand-edited state file: the issuer would refuse it, the list still shows


@keys.command("rotate")
@_DIR_OPTION
@_PASSPHRASE_OPTION
@ALG_OPTION
@BITS_OPTION
@_one_line_errors
def rotate(dir_option: str | None, passphrase_file: str | None, alg: str,
           bits: int | None) -> None:
    """Make a new encrypted key, published as `next` (the first key of a directory is active).

    The new key may be of another type than the others (RS256 to ES256): verifiers must allow
    its algorithm (VERIFIER_ALGORITHMS) before it is promoted.
    """
    bits = key_bits(alg, bits)
    directory = _locked_directory(dir_option)
    now = int(time.time())
    first = not state_path(directory).exists()
    passphrase = _passphrase(passphrase_file, new=first)
    state = KeyState(()) if first else _settled(directory, now)
    if not first:
        upcoming = state.next(now)
        if upcoming is not None:
            raise KeyInvalid(
                f"{upcoming.kid} is already the next key: promote it "
                "(`jwt-auth keys promote`) or retire it before making another"
            )
        # the new key must open with the same passphrase as the others: check it first
        active = state.active(now)
        load_private_key((directory / active.file).read_bytes(), passphrase,
                         source=str(directory / active.file))
    with generating(key_description(alg, bits)):
        private_pem, public_pem = generate_key_pair(bits, passphrase, alg=alg)
    public = load_public_keys(public_pem, source="the new key")[0]
    directory.mkdir(parents=True, exist_ok=True)
    file = f"{public.kid}.pem"
    # the key file first: a state file naming a key that is not there yet would not load
    write_atomically(directory / file, private_pem)
    role = ACTIVE if first else NEXT
    write_state(directory, state.with_record(record_for(public, file, role, now)))
    audit("signing_key_created", kid=public.kid, alg=alg, role=role, dir=str(directory))
    click.echo(f"{public.kid} {role}")
    if not first:
        click.echo(
            f"published now; promote it from {utc(now + promotion_wait())} "
            "(once every JWKS cache has it, ISSUER_JWKS_MAX_AGE) with: jwt-auth keys promote",
            err=True,
        )
        signing = _algorithm(state.active(now).public)
        if signing != alg:
            # a verifier that does not allow the new algorithm leaves the key out of its set
            # and refuses every token it signs: the one step of such a rotation outside here
            click.echo(
                f"it signs {alg} where the active key signs {signing}: before promoting it, "
                f"allow {alg} on every verifier (VERIFIER_ALGORITHMS={signing},{alg})",
                err=True,
            )


@keys.command("promote")
@_DIR_OPTION
@_PASSPHRASE_OPTION
@click.option("--force", is_flag=True,
              help="Promote even if the next key was published less than ISSUER_JWKS_MAX_AGE "
                   "ago (verifiers that cached the JWKS may not know it yet).")
@click.option("--retire-after", type=click.IntRange(0, None), metavar="SECONDS",
              help="How long the old key stays published [default: ISSUER_MAX_TOKEN_TTL + "
                   f"{RETIRE_LEEWAY} s, when every token it signed has expired].")
@_one_line_errors
def promote_key(dir_option: str | None, passphrase_file: str | None, force: bool,
                retire_after: int | None) -> None:
    """`next` becomes `active`; `active` becomes `retiring`."""
    directory = _locked_directory(dir_option)
    now = int(time.time())
    state = _settled(directory, now)
    upcoming = state.next(now)
    if upcoming is None:
        raise KeyInvalid("there is no next key to promote; make one with `jwt-auth keys rotate`")
    wait = promotion_wait()
    if now - upcoming.published_at < wait and not force:
        raise KeyInvalid(
            f"{upcoming.kid} was published {now - upcoming.published_at} s ago and verifiers may "
            f"cache the JWKS for {jwks_max_age_from_env()} s (ISSUER_JWKS_MAX_AGE): promote it "
            f"from {utc(upcoming.published_at + wait)}, or pass --force"
        )
    # the issuer would refuse a key it cannot decrypt and keep the old one: say so now instead
    load_private_key((directory / upcoming.file).read_bytes(), _passphrase(passphrase_file,
                     new=False), source=str(directory / upcoming.file))
    lifetime = max_token_ttl_from_env() + RETIRE_LEEWAY if retire_after is None else retire_after
    promoted, activated, retiring = promote(state, now=now, retire_after=lifetime)
    write_state(directory, promoted)
    audit("signing_key_promoted", kid=activated.kid, retiring=retiring.kid,
          retiringUntil=retiring.published_until, dir=str(directory))
    click.echo(f"{activated.kid} active")
    click.echo(f"{retiring.kid} retiring until {utc(retiring.published_until)}")


class _KidArgument(click.Command):
    """A command whose argument is a kid, which may begin with "-".

    A kid is a base64url thumbprint, so one key in 64 has a kid starting with "-", which click
    reads as an option ("No such option: -A"), or as --help for "-h...". A word that starts
    with "-" and is neither one of the command's options nor an option's value is the kid: it
    goes after "--", where click takes it as the argument.
    """

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if "--" in args:
            return super().parse_args(ctx, args)
        options = {name: param for param in self.get_params(ctx)
                   if isinstance(param, click.Option) for name in param.opts}
        kept: list[str] = []
        kids: list[str] = []
        words = iter(args)
        for word in words:
            option = options.get(word.split("=", 1)[0])
            if option is not None:
                kept.append(word)
                value = None if "=" in word or option.is_flag else next(words, None)
                if value is not None:
                    kept.append(value)
            elif word.startswith("-") and word != "-":
                kids.append(word)
            else:
                kept.append(word)
        return super().parse_args(ctx, [*kept, "--", *kids] if kids else kept)


@keys.command("retire", cls=_KidArgument)
@click.argument("kid")
@_DIR_OPTION
@_one_line_errors
def retire_key(kid: str, dir_option: str | None) -> None:
    """Stop publishing a next or retiring key now (e.g. a compromised one) and delete it."""
    directory = _locked_directory(dir_option)
    now = int(time.time())
    state = _settled(directory, now)
    updated, retired = retire(state, kid, now=now)
    write_state(directory, updated)
    _remove_private_files(directory, updated, [retired.kid])
    audit("signing_key_retired", kid=retired.kid, dir=str(directory))
    click.echo(f"{retired.kid} {RETIRED}")
    click.echo("verifiers trusting the JWKS refuse its tokens (key_unknown) once they refetch "
               "it: at most ISSUER_JWKS_MAX_AGE from now", err=True)
