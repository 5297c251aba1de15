"""Every setting of the issuer, read from the environment in one place."""

from __future__ import annotations

import os
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field

from shared.claimrule import CLAIM_RULE_VARIABLES, ClaimRule
from shared.config import (
    SHARED_VARIABLES,
    env_bool,
    env_choice,
    env_int,
    env_str,
    log_format_from_env,
)
from shared.errors import ConfigError

CLIENTS_FILE_VARIABLE = "ISSUER_CLIENTS_FILE"
KEYS_DIR_VARIABLE = "ISSUER_KEYS_DIR"
SUBJECT = "sub"  # RFC 7519's claim for whom a token is about

PREFIXES = ("ISSUER_", "JWT_")
"""The variable names that are the issuer's: a set one it does not know is a typo."""


@dataclass(frozen=True)
class IssuerSettings:
    """The issuer's configuration; ``from_env`` is the only reader of its variables.

    The key text and passphrase are kept out of ``repr`` so a settings object in a log or a
    traceback reveals nothing.
    """

    # a directory of keys with roles (rotation, issuer/keyring.py), or one key below
    keys_dir: str | None = None
    private_key_file: str | None = None
    private_key: str | None = field(default=None, repr=False)
    key_passphrase: str | None = field(default=None, repr=False)
    key_passphrase_file: str | None = None
    # seconds; 0 = no exp claim, the seed's own snippet makes such tokens
    token_ttl: int = 3600
    # upper bound of the per-request ?expires_in
    max_token_ttl: int = 86_400
    clients_file: str | None = None
    issuer: str | None = None
    audience: str | None = None
    # sub = the user id in every token (subject_from); a payload's own sub is then refused
    set_subject: bool = True
    # requests per minute per client, shared by all workers of one service; 0 = no limit
    rate_limit: int = 600
    max_body_bytes: int = 16 * 1024
    # Cache-Control max-age of the JWKS; a next key waits at least this long before promotion
    jwks_max_age: int = 300
    log_level: str = "INFO"
    log_format: str = "text"  # LOG_FORMAT: text or json (shared.logs)
    # who a payload names and what makes it admin: the verifier reads the same variables
    claim_rule: ClaimRule = field(default_factory=ClaimRule)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> IssuerSettings:
        """Read and check every variable; a bad value raises ConfigError naming it."""
        env = os.environ if environ is None else environ
        settings = cls(
            keys_dir=env_str(env, KEYS_DIR_VARIABLE),
            private_key_file=env_str(env, "ISSUER_PRIVATE_KEY_FILE"),
            private_key=env_str(env, "ISSUER_PRIVATE_KEY"),
            key_passphrase=env_str(env, "ISSUER_KEY_PASSPHRASE"),
            key_passphrase_file=env_str(env, "ISSUER_KEY_PASSPHRASE_FILE"),
            token_ttl=env_int(env, "ISSUER_TOKEN_TTL", 3600, minimum=0),
            max_token_ttl=max_token_ttl_from_env(env),
            clients_file=env_str(env, CLIENTS_FILE_VARIABLE),
            issuer=env_str(env, "ISSUER_ISSUER"),
            audience=env_str(env, "ISSUER_AUDIENCE"),
            set_subject=env_bool(env, "ISSUER_SET_SUBJECT", True),
            rate_limit=env_int(env, "ISSUER_RATE_LIMIT", 600, minimum=0),
            jwks_max_age=jwks_max_age_from_env(env),
            max_body_bytes=env_int(
                env, "ISSUER_MAX_BODY_BYTES", 16 * 1024, minimum=256, maximum=1024 * 1024
            ),
            log_level=env_choice(
                env, "LOG_LEVEL", "info", ("debug", "info", "warning", "error")
            ).upper(),
            log_format=log_format_from_env(env),
            claim_rule=ClaimRule.from_env(env),
        )
        settings.check()
        return settings

    @property
    def subject_from(self) -> str | None:
        """The payload field the issuer copies into ``sub``, or None when it adds no ``sub``.

        With ``JWT_USER_ID_FIELD=sub`` the caller's ``sub`` is the user id itself: the claim
        schema requires it, so it is neither refused nor copied, and every token has it anyway.
        """
        field_name = self.claim_rule.user_id_field
        return field_name if self.set_subject and field_name != SUBJECT else None

    @property
    def tokens_name_their_user_in_sub(self) -> bool:
        """Whether every token's ``sub`` is its user id (copied, or the user id field itself)."""
        return self.set_subject or self.claim_rule.user_id_field == SUBJECT

    @property
    def issuer_url(self) -> str | None:
        """``ISSUER_ISSUER`` when it is an http(s) URL: then the issuer publishes discovery
        documents (OIDC Discovery, RFC 8414), which only a URL identifier may have. Any other
        identifier (``auth-service``, a URN) is a plain ``iss``."""
        if not self.issuer or not self.issuer.lower().startswith(_URL_SCHEMES):
            return None
        return self.issuer

    def check(self) -> None:
        """Refuse combinations that cannot work; each error names a variable."""
        if self.keys_dir and (self.private_key_file or self.private_key):
            raise ConfigError(
                KEYS_DIR_VARIABLE,
                "set ISSUER_KEYS_DIR or ISSUER_PRIVATE_KEY(_FILE), not both",
            )
        if self.issuer_url:
            _check_issuer_url(self.issuer_url)
        if self.token_ttl > self.max_token_ttl:
            raise ConfigError(
                "ISSUER_TOKEN_TTL",
                f"{self.token_ttl} exceeds ISSUER_MAX_TOKEN_TTL ({self.max_token_ttl})",
            )


_URL_SCHEMES = ("http://", "https://")


def _check_issuer_url(url: str) -> None:
    """An http(s) ``ISSUER_ISSUER`` must be one clients can fetch and compare: a host, and no
    query or fragment (RFC 8414 section 2)."""
    try:
        parsed = urllib.parse.urlsplit(url)
        host = parsed.hostname
        parsed.port  # noqa: B018 - raises on a port that is not a number
    except ValueError as exc:
        raise ConfigError("ISSUER_ISSUER", f"not a valid URL ({exc})") from None
    if not host:
        raise ConfigError("ISSUER_ISSUER", f"{url!r} names no host")
    if parsed.query or parsed.fragment or url.endswith(("?", "#")):
        raise ConfigError("ISSUER_ISSUER",
                          "an issuer URL has no query or fragment (RFC 8414 section 2); remove it")


def clients_file_from_env(environ: Mapping[str, str] | None = None) -> str | None:
    """Only ``ISSUER_CLIENTS_FILE``, for ``jwt-auth clients add`` (it needs no key)."""
    return env_str(os.environ if environ is None else environ, CLIENTS_FILE_VARIABLE)


def keys_dir_from_env(environ: Mapping[str, str] | None = None) -> str | None:
    """Only ``ISSUER_KEYS_DIR``, the default of ``jwt-auth keys --dir``."""
    return env_str(os.environ if environ is None else environ, KEYS_DIR_VARIABLE)


def jwks_max_age_from_env(environ: Mapping[str, str] | None = None) -> int:
    """``ISSUER_JWKS_MAX_AGE``: what the JWKS may be cached for, and so what a next key waits."""
    env = os.environ if environ is None else environ
    return env_int(env, "ISSUER_JWKS_MAX_AGE", 300, minimum=0, maximum=86_400)


def max_token_ttl_from_env(environ: Mapping[str, str] | None = None) -> int:
    """``ISSUER_MAX_TOKEN_TTL``: the longest a token lives, so how long a retiring key stays."""
    env = os.environ if environ is None else environ
    return env_int(env, "ISSUER_MAX_TOKEN_TTL", 86_400, minimum=1)


VARIABLES = frozenset({
    KEYS_DIR_VARIABLE, "ISSUER_PRIVATE_KEY_FILE", "ISSUER_PRIVATE_KEY", "ISSUER_KEY_PASSPHRASE",
    "ISSUER_KEY_PASSPHRASE_FILE", "ISSUER_TOKEN_TTL", "ISSUER_MAX_TOKEN_TTL",
    CLIENTS_FILE_VARIABLE, "ISSUER_ISSUER", "ISSUER_AUDIENCE", "ISSUER_RATE_LIMIT",
    "ISSUER_JWKS_MAX_AGE", "ISSUER_MAX_BODY_BYTES", "ISSUER_SET_SUBJECT",
}) | CLAIM_RULE_VARIABLES | SHARED_VARIABLES
"""Every variable the issuer reads (``tests/unit/issuer/test_config.py`` holds the list to the
code that reads them)."""
