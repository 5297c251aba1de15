"""``jwt-auth verify``: the verifier's pipeline offline, configured like the service, no Redis."""

from __future__ import annotations

import json
import os
import sys
import time

import click

from shared.startup import exit_on_startup_error
from verifier.config import VerifierSettings
from verifier.errors import TokenError
from verifier.issuers import TrustedIssuers
from verifier.keyset import KeysNotLoaded
from verifier.service import explain_token
from verifier.store import Store
from verifier.verification import VerifiedToken, verify_token


def _verify_offline(token: str) -> VerifiedToken:
    issuers = exit_on_startup_error("verifier", _load)
    try:
        return verify_token(token, trust=issuers, now=time.time())
    except KeysNotLoaded as exc:
        click.echo(f"not_ready: no key of the issuer {exc.provider!r} could be fetched", err=True)
        sys.exit(1)


def _load() -> TrustedIssuers:
    return TrustedIssuers.from_settings(VerifierSettings.from_env())


def _explain(token: str) -> None:
    """Print every step of the pipeline; exit 0 when the token is accepted, else 1."""
    settings = exit_on_startup_error("verifier", lambda: VerifierSettings.from_env())
    issuers = exit_on_startup_error("verifier", _load)
    # revocations live in Redis: consulted only when the operator points at one
    store = Store(settings) if os.environ.get("REDIS_URL") else None
    try:
        explanation = explain_token(token, issuers=issuers, now=time.time(), store=store)
    finally:
        if store is not None:
            store.close()
    for number, step in enumerate(explanation["steps"], start=1):
        click.echo(f"{number}. {step['step']}: {step['outcome']}")
        click.echo(f"   rule: {step['rule']}")
        for name, value in step["values"].items():
            click.echo(f"   {name}: {json.dumps(value, ensure_ascii=False)}")
        if step.get("code"):
            click.echo(f"   refused: {step['code']}: {step['detail']}")
    click.echo(f"verdict: {explanation['verdict']}")
    sys.exit(0 if explanation["verdict"] == "accepted" else 1)


@click.command()
@click.argument("token")
@click.option("--explain", is_flag=True,
              help="Print every step of the pipeline, its rule and the values that decided it "
                   "(revocation too when REDIS_URL is set); never the signature or a key.")
def verify(token: str, explain: bool) -> None:
    """Verify TOKEN with the verifier's keys and policy (VERIFIER_* variables); no Redis.

    Prints {userId, isAdmin, provider, claims} as JSON, or "CODE: detail" and exits 1.
    Revocations live in Redis and are not consulted here. Pass - to read the token from standard
    input (a token on the command line is visible to other users of the machine). --explain
    prints every step of the pipeline instead (and consults Redis when REDIS_URL is set).
    """
    if token == "-":  # noqa: S105 - "-" means standard input, not a password
        token = sys.stdin.read().strip()
    if explain:
        _explain(token.strip())
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
