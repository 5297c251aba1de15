"""``jwt-auth``: one command line over the library functions.

Subcommands live beside what they drive (``issuer/commands.py``, ``verifier/commands.py``,
``jwt_auth/stack.py``) and are imported only when run, so ``jwt-auth --help`` stays fast and
``serve`` can prepare shared metrics storage before any service module is imported.
"""

from __future__ import annotations

import importlib
from typing import Any

import click

_LAZY_COMMANDS = {
    "keygen": "issuer.commands:keygen",
    "clients": "issuer.commands:clients",
    "keys": "issuer.keycommands:keys",
    "issue": "issuer.commands:issue",
    "verify": "verifier.commands:verify",
    "redis": "verifier.migrate:redis_group",
    "up": "jwt_auth.stack:up",
    "dev-keys": "jwt_auth.devkeys:dev_keys",
    "config": "jwt_auth.configcheck:config",
    "sessions": "jwt_auth.admin:sessions",
    "revoke": "jwt_auth.admin:revoke",
}
# the commands that read the services' variables: their --data-dir fills them in from a local
# stack's stack.env (jwt_auth/stacksettings.py)
_STACK_AWARE = {"issue", "verify", "keys", "clients", "redis", "config", "sessions", "revoke"}

DEFAULT_PORTS = {"issuer": 8001, "verifier": 8002}


class _LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *_LAZY_COMMANDS])

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in _LAZY_COMMANDS:
            module_name, attribute = _LAZY_COMMANDS[cmd_name].split(":")
            command: click.Command = getattr(importlib.import_module(module_name), attribute)
            if cmd_name in _STACK_AWARE:
                from jwt_auth.stacksettings import with_stack_settings

                with_stack_settings(command)
            return command
        return super().get_command(ctx, cmd_name)


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="jwt-custom-auth")
def main() -> None:
    """Issue and verify RS256 JSON Web Tokens for an existing authentication system."""


@main.command()
@click.argument("service", type=click.Choice(["issuer", "verifier"]))
@click.option(
    "--bind",
    metavar="HOST:PORT",
    help="Address to listen on [default: 127.0.0.1:8001 for the issuer, :8002 for the verifier].",
)
@click.option("--workers", type=click.IntRange(1, 64), default=2, show_default=True)
@click.option("--threads", type=click.IntRange(1, 64), default=4, show_default=True,
              help="Threads per worker for the routes that may wait (Flask's views; Redis, "
                   "JWKS and signing calls of the busy routes); the event loop serves the rest.")
@click.option("--no-access-log", is_flag=True, help="Do not log one line per request.")
def serve(service: str, bind: str | None, workers: int, threads: int, no_access_log: bool) -> None:
    """Run the issuer or the verifier under gunicorn's asgi worker, configured from the
    environment."""
    # before any service module: prometheus_client picks its storage when first imported
    from shared.web.gunicorn import prepare_multiprocess_metrics, run_gunicorn

    prepare_multiprocess_metrics()
    module = importlib.import_module(f"{service}.app")
    factory: Any = module.create_app
    run_gunicorn(
        factory,
        bind=bind or f"127.0.0.1:{DEFAULT_PORTS[service]}",
        workers=workers,
        threads=threads,
        access_log=not no_access_log,
    )


if __name__ == "__main__":
    main()
