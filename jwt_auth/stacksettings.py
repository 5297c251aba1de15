"""The local stack's settings, for every command run beside it.

``jwt-auth up`` writes ``<data dir>/stack.env``: the variables it gave the issuer and the
verifier (keys folder, passphrase file, clients file, JWKS URL, Redis URL, admin keys file) and
what the operator commands need (the verifier's URL, the dev admin key's file). Commands that
read those variables (``issue``, ``verify``, ``keys``, ``clients``, ``redis``, ``config``,
``sessions``, ``revoke``) take ``--data-dir`` (default ``.dev``, as ``up`` has it) and fill their
environment from that file, so a runbook step needs nothing exported by hand.

The shell's own settings win, by service: if any ``ISSUER_*`` variable is set, none of the
stack's issuer settings is used (mixing a hand-set private key with the stack's keys folder would
be refused as two keys, or worse, used); likewise ``VERIFIER_*`` and ``REDIS_*`` for the
verifier's. ``JWT_AUTH_*`` values fill in one by one. The file is shell syntax too:
``set -a; . .dev/stack.env; set +a`` gives a shell the same settings.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Mapping, MutableMapping
from pathlib import Path

import click
from click.core import ParameterSource

from shared.files import write_atomically

STACK_ENV = "stack.env"
DEFAULT_DATA_DIR = Path(".dev")
VERIFIER_URL_VARIABLE = "JWT_AUTH_VERIFIER_URL"
ADMIN_KEY_VARIABLE = "JWT_AUTH_ADMIN_KEY"
ADMIN_KEY_FILE_VARIABLE = "JWT_AUTH_ADMIN_KEY_FILE"

# a shell that sets any variable of a group configures that service itself
_GROUPS = (("ISSUER_",), ("VERIFIER_", "REDIS_"))


def write_stack_env(data_dir: Path, values: Mapping[str, str]) -> Path:
    """Write the stack's settings where the commands look for them; returns the file."""
    path = data_dir / STACK_ENV
    lines = ["# written by jwt-auth up: the local stack's settings, read by jwt-auth commands "
             "run with --data-dir here", *(f"{name}={shlex.quote(value)}"
                                           for name, value in values.items())]
    write_atomically(path, ("\n".join(lines) + "\n").encode(), mode=0o600)
    return path


def read_stack_env(path: Path) -> dict[str, str]:
    """The settings in a ``stack.env``; a line that is not ``NAME=value`` is a one-line error."""
    values = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, equals, raw = line.partition("=")
        try:
            words = shlex.split(raw) if equals else []
        except ValueError:  # an unclosed quote
            words = ["", ""]
        if not equals or not name.isidentifier() or len(words) > 1:
            raise click.ClickException(f"{path}:{number}: expected NAME=value")
        values[name] = words[0] if words else ""
    return values


def apply_stack_env(values: Mapping[str, str], environ: MutableMapping[str, str]) -> list[str]:
    """Fill ``environ`` from the stack's settings where the shell set nothing of its own;
    returns the names filled in."""
    filled = []
    for name in values:
        group = next((prefixes for prefixes in _GROUPS if name.startswith(prefixes)), None)
        if group is not None and any(key.startswith(group) for key in environ):
            continue
        if name in environ:
            continue
        filled.append(name)
    for name in filled:
        environ[name] = values[name]
    return filled


def _load(ctx: click.Context, param: click.Parameter, data_dir: Path) -> Path:
    path = data_dir / STACK_ENV
    if not path.is_file():
        if ctx.get_parameter_source(param.name or "") is not ParameterSource.DEFAULT:
            raise click.ClickException(f"--data-dir: {path} does not exist (jwt-auth up "
                                       f"--data-dir {data_dir} writes it)")
        return data_dir
    apply_stack_env(read_stack_env(path), os.environ)
    return data_dir


def with_stack_settings(command: click.Command) -> click.Command:
    """Give ``command`` (every command of a group) the ``--data-dir`` option that loads the
    local stack's settings before anything reads the environment."""
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            with_stack_settings(sub)
        return command
    if any(param.name == "data_dir" for param in command.params):
        return command
    command.params.insert(0, click.Option(
        ["--data-dir"], type=click.Path(file_okay=False, path_type=Path),
        default=DEFAULT_DATA_DIR, show_default=True, expose_value=False, is_eager=True,
        callback=_load,
        help=f"A local stack's data folder: its {STACK_ENV} fills in the settings this shell "
             "does not set (jwt-auth up writes it)."))
    return command

