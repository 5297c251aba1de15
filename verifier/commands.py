"""``jwt-auth verify``: the verifier's pipeline offline, configured like the service, no Redis."""

from __future__ import annotations

import json
import sys
import time

import click

from shared.serving import exit_on_startup_error
from verifier.config import VerifierSettings
from verifier.errors import TokenError
from verifier.keyset import KeySet
from verifier.verification import VerificationPolicy, VerifiedToken, verify_token


def _verify_offline(token: str) -> VerifiedToken:
    keys, policy = exit_on_startup_error("verifier", _load)
    return verify_token(token, keys=keys, policy=policy, now=time.time())


def _load() -> tuple[KeySet, VerificationPolicy]:
    settings = VerifierSettings.from_env()
    return KeySet.from_settings(settings), VerificationPolicy.from_settings(settings)


@click.command()
@click.argument("token")
def verify(token: str) -> None:
    """Verify TOKEN with the verifier's keys and policy (VERIFIER_* variables); no Redis.

    Prints {userId, isAdmin, provider, claims} as JSON, or "CODE: detail" and exits 1.
    Revocations live in Redis and are not consulted here. Pass - to read the token from standard
    input (a token on the command line is visible to other users of the machine).
    """
    if token == "-":  # noqa: S105 - "-" means standard input, not a password
        token = sys.stdin.read().strip()
    try:
        verified = _verify_offline(token.strip())
    except TokenError as exc:
        click.echo(f"{exc.code}: {exc.detail}", err=True)
        sys.exit(1)
    click.echo(
        json.dumps(
            {
                "userId": verified.user_id,
                "isAdmin": verified.is_admin,
                "provider": verified.provider,
                "claims": verified.claims,
            },
            indent=2,
        )
    )
