"""``jwt-auth sessions list|end USER`` and ``jwt-auth revoke``: a verifier's admin API from a shell.

They call a running verifier over HTTP: ``--verifier URL``, or ``JWT_AUTH_VERIFIER_URL`` (the
local stack's ``stack.env`` sets both that and the dev admin key's file). The admin key comes
from ``--admin-key-file``, ``JWT_AUTH_ADMIN_KEY_FILE`` or ``JWT_AUTH_ADMIN_KEY``, never from an
option's value: a key typed on a command line stays in the shell's history and shows in ``ps``.
A token to revoke can be read from standard input (``-``) for the same reason.

Every failure is one line and exit status 1: the verifier's problem code and detail, or why it
could not be reached.
"""

from __future__ import annotations

import http.client
import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import click

from jwt_auth.stacksettings import (
    ADMIN_KEY_FILE_VARIABLE,
    ADMIN_KEY_VARIABLE,
    VERIFIER_URL_VARIABLE,
)

TIMEOUT = 10.0


def _utc(epoch: float | None) -> str:
    if epoch is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(epoch))


class Verifier:
    """A verifier's admin API at ``url``."""

    def __init__(self, url: str, admin_key: str | None) -> None:
        self.url = url.rstrip("/")
        self.admin_key = admin_key

    def call(self, method: str, path: str, body: dict[str, Any] | None = None, *,
             admin: bool = True, expect: tuple[str, ...] = ()) -> Any:
        """The JSON answer (None for 204), an object holding ``expect`` when given; any refusal,
        transport failure or answer of another shape as a ClickException."""
        headers = {"Accept": "application/json"}
        if admin:
            if not self.admin_key:
                raise click.ClickException(
                    f"no admin key: set {ADMIN_KEY_FILE_VARIABLE} (or pass --admin-key-file) or "
                    f"{ADMIN_KEY_VARIABLE}; jwt-auth clients add NAME --admin --file "
                    "<VERIFIER_ADMIN_KEYS_FILE> makes one")
            headers["Authorization"] = f"Bearer {self.admin_key}"
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        # the URL is the operator's own verifier, checked to be http(s) by _verifier
        request = urllib.request.Request(f"{self.url}{path}", data=data,  # noqa: S310
                                         headers=headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT) as response:  # noqa: S310
                raw = response.read()
        except urllib.error.HTTPError as refused:
            raise click.ClickException(_refusal(refused)) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise click.ClickException(f"cannot reach the verifier at {self.url}: {reason}") \
                from None
        except (ValueError, http.client.HTTPException) as exc:
            # what http.client refuses to send or read; its message may quote a header, and so
            # the admin key: only its kind is named
            raise click.ClickException(
                f"cannot ask the verifier at {self.url}: {type(exc).__name__}") from None
        if not raw:
            return None
        try:
            answer = json.loads(raw)
        except ValueError:
            answer = None
        if answer is None or (expect and not (isinstance(answer, dict)
                                              and all(name in answer for name in expect))):
            raise click.ClickException(
                f"{self.url}{path} answered something that is not a verifier's answer; is it "
                "a verifier?")
        return answer


def _refusal(refused: urllib.error.HTTPError) -> str:
    """``401 unauthorized: the admin key is not known`` from a problem+json answer."""
    try:
        problem = json.loads(refused.read(65536))
    except (ValueError, OSError):
        problem = None
    if isinstance(problem, dict) and "code" in problem:
        detail = problem.get("detail") or problem.get("title") or ""
        return f"the verifier refused: {refused.code} {problem['code']}: {detail}".rstrip(": ")
    return f"the verifier refused: {refused.code} {refused.reason}"


def _admin_key(key_file: Path | None) -> str | None:
    if key_file is not None:
        try:
            key = key_file.read_text().strip()
        except OSError as exc:
            raise click.ClickException(f"{key_file}: {exc.strerror or exc}") from None
        if not key:
            raise click.ClickException(f"{key_file} is empty")
        where = str(key_file)
    else:
        key = os.environ.get(ADMIN_KEY_VARIABLE) or ""
        where = ADMIN_KEY_VARIABLE
    # one line of visible characters: it goes into a header (never echoed back)
    if key and not (key.isprintable() and key.isascii() and " " not in key):
        raise click.ClickException(f"{where}: the admin key must be one word of visible ASCII")
    return key or None


def _verifier(url: str | None, key_file: Path | None) -> Verifier:
    if not url:
        raise click.ClickException(
            f"which verifier? pass --verifier URL or set {VERIFIER_URL_VARIABLE} (run from the "
            "folder of a jwt-auth up, its stack.env sets it)")
    try:
        parsed = urllib.parse.urlsplit(url)
        parsed.port  # noqa: B018 - read for its ValueError on a port that is no number
    except ValueError:
        parsed = None
    if parsed is None or parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise click.ClickException(f"--verifier {url!r}: expected an http:// or https:// URL")
    return Verifier(url, _admin_key(key_file))


def _user_path(user: str, suffix: str, provider: str | None) -> str:
    path = f"/v1/users/{urllib.parse.quote(user, safe='')}{suffix}"
    return f"{path}?{urllib.parse.urlencode({'provider': provider})}" if provider else path


_VERIFIER_OPTION = click.option(
    "--verifier", "verifier_url", envvar=VERIFIER_URL_VARIABLE, metavar="URL",
    help=f"The verifier's base URL [env {VERIFIER_URL_VARIABLE}; the local stack's by default].")
_KEY_FILE_OPTION = click.option(
    "--admin-key-file", type=click.Path(dir_okay=False, path_type=Path),
    envvar=ADMIN_KEY_FILE_VARIABLE,
    help=f"A file holding an admin key [env {ADMIN_KEY_FILE_VARIABLE}, or the key itself in "
         f"{ADMIN_KEY_VARIABLE}].")
_PROVIDER_OPTION = click.option(
    "--provider", help="The user's issuer, when the verifier trusts several.")


@click.group("sessions")
def sessions() -> None:
    """List or end a user's sessions on a verifier (admin key)."""


@sessions.command("list")
@click.argument("user")
@_PROVIDER_OPTION
@_VERIFIER_OPTION
@_KEY_FILE_OPTION
@click.option("--json", "as_json", is_flag=True, help="Print the verifier's answer as JSON.")
def list_sessions(user: str, provider: str | None, verifier_url: str | None,
                  admin_key_file: Path | None, as_json: bool) -> None:
    """The live sessions of USER, oldest first, each named by the hash of its id."""
    answer = _verifier(verifier_url, admin_key_file).call(
        "GET", _user_path(user, "/sessions", provider), expect=("sessions", "userId", "provider"))
    if as_json:
        click.echo(json.dumps(answer, indent=2))
        return
    listed = answer["sessions"]
    click.echo(f"{len(listed)} live session{'' if len(listed) == 1 else 's'} of "
               f"{answer['userId']} (provider {answer['provider']})"
               f"{', oldest first:' if listed else ''}")
    if listed:
        click.echo(f"  {'SESSION (sha256)':<18} {'ADMIN':<6} {'CREATED':<24} EXPIRES")
    for session in listed:
        click.echo(f"  {session['sessionHash'][:16]:<18} "
                   f"{'yes' if session['isAdmin'] else 'no':<6} "
                   f"{_utc(session['createdAt']):<24} {_utc(session['expiresAt'])}")


@sessions.command("end")
@click.argument("user")
@_PROVIDER_OPTION
@_VERIFIER_OPTION
@_KEY_FILE_OPTION
def end_sessions(user: str, provider: str | None, verifier_url: str | None,
                 admin_key_file: Path | None) -> None:
    """Log USER out everywhere: end every session and refuse every token issued until now."""
    answer = _verifier(verifier_url, admin_key_file).call(
        "DELETE", _user_path(user, "/sessions", provider),
        expect=("sessionsEnded", "userId", "provider", "tokensRevokedBefore"))
    ended = answer["sessionsEnded"]
    click.echo(f"ended {ended} session{'' if ended == 1 else 's'} of {answer['userId']} "
               f"(provider {answer['provider']}); its tokens issued before "
               f"{_utc(answer['tokensRevokedBefore'])} are refused")


@click.command("revoke")
@click.argument("token", required=False)
@click.option("--jti", help="Revoke the token with this jti without holding it (admin key).")
@click.option("--user", help="With --jti: the token's userId.")
@click.option("--expires-at", type=click.FloatRange(0), metavar="UNIX_SECONDS",
              help="With --jti: the token's exp, when the revocation may be forgotten "
                   "[default: kept for good].")
@_PROVIDER_OPTION
@_VERIFIER_OPTION
@_KEY_FILE_OPTION
def revoke(token: str | None, jti: str | None, user: str | None, expires_at: float | None,
           provider: str | None, verifier_url: str | None,
           admin_key_file: Path | None) -> None:
    """Revoke one token: TOKEN (or - to read it from standard input), which must verify, or
    --jti JTI --user USER with an admin key (what the issuer's audit line names)."""
    if (token is None) == (jti is None):
        raise click.UsageError("give a TOKEN (or -) or --jti, not both and not neither")
    if jti is None and (user or expires_at is not None or provider):
        raise click.UsageError("--user, --expires-at and --provider go with --jti")
    if jti is not None and not user:
        raise click.UsageError("--jti needs --user, the token's userId")
    if token == "-":  # noqa: S105 - standard input, not a password
        token = sys.stdin.readline().strip()
        if not token:
            raise click.ClickException("no token on standard input")
    if token is not None:
        # holding the token is the right to revoke it: no admin key sent
        _verifier(verifier_url, None).call("POST", "/v1/revocations", {"token": token},
                                           admin=False)
        click.echo("revoked; the token is refused until it expires")
        return
    body: dict[str, Any] = {"jti": jti, "userId": user, "expiresAt": expires_at}
    if provider:
        body["provider"] = provider
    _verifier(verifier_url, admin_key_file).call("POST", "/v1/revocations", body)
    until = "for good" if expires_at is None else f"until {_utc(expires_at)}"
    click.echo(f"revoked jti {jti} of {user}; refused {until}")
