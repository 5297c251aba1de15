"""``jwt-auth config check [issuer|verifier]``: a service's settings as it would start with them.

It reads the environment exactly as the service does (``IssuerSettings.from_env``,
``VerifierSettings.from_env``), prints every effective setting with its secrets masked, then the
problems: a value the service would refuse (what stops it at start), and every variable of ours
that nothing reads (a typo: ``VERIFIER_LEWAY``). Nothing is loaded or contacted: no key is
decrypted, no Redis or JWKS is asked.

Exit status: 0 when the service would start as configured, 3 when it would not (a bad value, or
an unknown variable under ``JWT_AUTH_STRICT_CONFIG=true``).
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import urllib.parse
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import click

from shared.config import STRICT_VARIABLE, env_bool, unknown_variables
from shared.errors import ConfigError
from shared.startup import STARTUP_FAILED
from verifier.redisconn import without_query_password

MASK = "********"


def _services() -> dict[str, tuple[Callable[[Mapping[str, str]], Any], frozenset[str],
                                   tuple[str, ...]]]:
    from issuer import config as issuer_config
    from verifier import config as verifier_config

    return {
        "issuer": (issuer_config.IssuerSettings.from_env, issuer_config.VARIABLES,
                   issuer_config.PREFIXES),
        "verifier": (verifier_config.VerifierSettings.from_env, verifier_config.VARIABLES,
                     verifier_config.PREFIXES),
    }


def _masked(field: dataclasses.Field[Any], value: Any) -> Any:
    """A setting as it may be shown: secrets (fields kept out of repr) and URL passwords hidden."""
    if value is None:
        return None
    if not field.repr or "password" in field.name or "passphrase" in field.name:
        return MASK
    if isinstance(value, str) and "://" in value:
        return ",".join(_without_password(part) for part in value.split(","))
    return value


def _without_password(url: str) -> str:
    try:
        parsed = urllib.parse.urlsplit(url.strip())
        port = f":{parsed.port}" if parsed.port else ""
    except ValueError:  # a URL nothing can read: the problems say so; show none of it
        return MASK
    parsed = parsed._replace(query=without_query_password(parsed.query, MASK))
    if parsed.password is not None:
        user = f"{parsed.username}:" if parsed.username else ":"
        parsed = parsed._replace(netloc=f"{user}{MASK}@{parsed.hostname or ''}{port}")
    return urllib.parse.urlunsplit(parsed)


def _show(value: Any) -> str:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = {field.name: getattr(value, field.name) for field in dataclasses.fields(value)}
    try:
        return json.dumps(value, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        return repr(value)


def check_service(service: str, environ: Mapping[str, str],
                  echo: Callable[[str], None]) -> bool:
    """Print one service's settings and problems; whether it would start."""
    from_env, known, prefixes = _services()[service]
    problems: list[str] = []
    settings: Any = None
    try:
        settings = from_env(environ)
    except ConfigError as exc:
        problems.append(f"refused at start: {exc}")
    unknown = unknown_variables(environ, known, prefixes)
    try:
        strict = env_bool(environ, STRICT_VARIABLE, False)
    except ConfigError as exc:
        problems.append(f"refused at start: {exc}")
        strict = False
    problems += [variable.line() for variable in unknown]
    would_start = settings is not None and not (strict and unknown)
    echo(f"{service}: {'would start' if would_start else 'would NOT start'}")
    if settings is not None:
        for field in dataclasses.fields(settings):
            echo(f"  {field.name} = {_show(_masked(field, getattr(settings, field.name)))}")
    if problems:
        echo("  problems:")
        for problem in problems:
            echo(f"    {problem}")
    if unknown and strict:
        echo(f"    (refused: {STRICT_VARIABLE} is true)")
    return would_start


@click.group()
def config() -> None:
    """Look at the configuration the services would start with."""


@config.command("check")
@click.argument("services", nargs=-1, type=click.Choice(["issuer", "verifier"]))
def check(services: Iterable[str]) -> None:
    """Print each service's effective settings (secrets masked) and its problems; exit 3 when
    one would not start. Both services when none is named."""
    chosen = list(services) or ["issuer", "verifier"]
    results = [check_service(service, os.environ, click.echo) for service in chosen]
    sys.exit(0 if all(results) else STARTUP_FAILED)
