"""Every setting of the issuer, read from the environment in one place."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from shared.claimrule import ClaimRule
from shared.config import env_choice, env_int, env_str
from shared.errors import ConfigError

CLIENTS_FILE_VARIABLE = "ISSUER_CLIENTS_FILE"


@dataclass(frozen=True)
class IssuerSettings:
    """The issuer's configuration; ``from_env`` is the only reader of its variables.

    The key text and passphrase are kept out of ``repr`` so a settings object in a log or a
    traceback reveals nothing.
    """

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
    # requests per minute per client, shared by all workers of one service; 0 = no limit
    rate_limit: int = 600
    max_body_bytes: int = 16 * 1024
    log_level: str = "INFO"
    # who a payload names and what makes it admin: the verifier reads the same variables
    claim_rule: ClaimRule = field(default_factory=ClaimRule)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> IssuerSettings:
        """Read and check every variable; a bad value raises ConfigError naming it."""
        env = os.environ if environ is None else environ
        settings = cls(
            private_key_file=env_str(env, "ISSUER_PRIVATE_KEY_FILE"),
            private_key=env_str(env, "ISSUER_PRIVATE_KEY"),
            key_passphrase=env_str(env, "ISSUER_KEY_PASSPHRASE"),
            key_passphrase_file=env_str(env, "ISSUER_KEY_PASSPHRASE_FILE"),
            token_ttl=env_int(env, "ISSUER_TOKEN_TTL", 3600, minimum=0),
            max_token_ttl=env_int(env, "ISSUER_MAX_TOKEN_TTL", 86_400, minimum=1),
            clients_file=env_str(env, CLIENTS_FILE_VARIABLE),
            issuer=env_str(env, "ISSUER_ISSUER"),
            audience=env_str(env, "ISSUER_AUDIENCE"),
            rate_limit=env_int(env, "ISSUER_RATE_LIMIT", 600, minimum=0),
            max_body_bytes=env_int(
                env, "ISSUER_MAX_BODY_BYTES", 16 * 1024, minimum=256, maximum=1024 * 1024
            ),
            log_level=env_choice(
                env, "LOG_LEVEL", "info", ("debug", "info", "warning", "error")
            ).upper(),
            claim_rule=ClaimRule.from_env(env),
        )
        settings.check()
        return settings

    def check(self) -> None:
        """Refuse combinations that cannot work; each error names a variable."""
        if self.token_ttl > self.max_token_ttl:
            raise ConfigError(
                "ISSUER_TOKEN_TTL",
                f"{self.token_ttl} exceeds ISSUER_MAX_TOKEN_TTL ({self.max_token_ttl})",
            )


def clients_file_from_env(environ: Mapping[str, str] | None = None) -> str | None:
    """Only ``ISSUER_CLIENTS_FILE``, for ``jwt-auth clients add`` (it needs no key)."""
    return env_str(os.environ if environ is None else environ, CLIENTS_FILE_VARIABLE)
