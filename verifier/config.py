"""Every setting of the verifier, read from the environment in one place."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from shared.claimrule import CLAIM_RULE_VARIABLES, ClaimRule
from shared.config import (
    SHARED_VARIABLES,
    env_bool,
    env_choice,
    env_int,
    env_json,
    env_list,
    env_str,
    log_format_from_env,
)
from shared.errors import ConfigError
from shared.keys import EDDSA, ES256, RSA_FAMILY
from verifier.browser import VARIABLES as BROWSER_VARIABLES
from verifier.browser import BrowserSettings
from verifier.claimheaders import parse_claim_headers
from verifier.redisconn import DEFAULT_URL, REDIS_VARIABLES, RedisSettings

# public-key signature algorithms only: an HMAC algorithm keyed with a public key is the classic
# forgery, and "none" is no signature. Each key verifies its own type's: RSA keys the RS and PS
# algorithms, P-256 keys ES256, Ed25519 keys EdDSA (shared.keys)
ALLOWED_ALGORITHMS = (*RSA_FAMILY, ES256, EDDSA)

# each login walks its user's session index, and the rate keeps one entry per login of the
# last minute: the upper bounds keep both, and the keys, small
MAX_SESSIONS_LIMIT = 10_000
MAX_LOGIN_RATE = 10_000


@dataclass(frozen=True)
class VerifierSettings:
    """The verifier's configuration; ``from_env`` is the only reader of its variables."""

    public_key_file: str | None = None
    public_key: str | None = None
    jwks_url: str | None = None
    # several issuers, each with its keys and policy (verifier.issuers), instead of the above
    trusted_issuers_file: str | None = None
    # the reference provider's options, with its defaults
    user_id_field: str = "userId"
    is_admin_field: str = "isAdmin"
    is_admin_value: Any = True
    required_attributes: dict[str, Any] = field(default_factory=dict)
    provider_name: str = "jwt"
    escape_characters: tuple[str, ...] = ("|",)
    # time and registered-claim policy
    leeway: int = 30
    require_exp: bool = False
    max_token_age: int = 0
    audience: str | None = None
    issuer: str | None = None
    algorithms: tuple[str, ...] = ("RS256",)
    # Redis (verifier.redisconn)
    redis_url: str = DEFAULT_URL
    redis_mode: str = "standalone"
    redis_sentinel_master: str = "mymaster"
    redis_min_replicas: int | None = None
    redis_password: str | None = None
    redis_failure_mode: str = "closed"
    redis_timeout_ms: int = 250
    redis_prefix: str = "jwtauth:"
    session_ttl: int = 30 * 24 * 3600
    # login limits, enforced in the login script (verifier.store): the oldest sessions of a
    # user over the first are ended; logins over the second per minute answer 429 (0 = off)
    max_sessions_per_user: int = 100
    login_rate: int = 30
    cache_size: int = 10_000
    mirror_max_keys: int = 1_000_000
    jwks_min_refetch_interval: int = 30
    # seconds a key that left the JWKS without being retired stays trusted
    jwks_grace: int = 3600
    admin_keys_file: str | None = None
    client_keys_file: str | None = None
    # (header, claim) pairs added to forward-auth answers (verifier.claimheaders)
    claim_headers: tuple[tuple[str, str], ...] = ()
    # the session cookie and the login redirect for browsers (verifier.browser)
    browser: BrowserSettings = field(default_factory=BrowserSettings)
    max_body_bytes: int = 16 * 1024
    log_level: str = "INFO"
    log_format: str = "text"  # LOG_FORMAT: text or json (shared.logs)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> VerifierSettings:
        """Read and check every variable; a bad value raises ConfigError naming it."""
        env = os.environ if environ is None else environ
        rule = ClaimRule.from_env(env)
        redis_settings = RedisSettings.from_env(env)
        settings = cls(
            public_key_file=env_str(env, "VERIFIER_PUBLIC_KEY_FILE"),
            public_key=env_str(env, "VERIFIER_PUBLIC_KEY"),
            jwks_url=env_str(env, "VERIFIER_JWKS_URL"),
            trusted_issuers_file=env_str(env, "VERIFIER_TRUSTED_ISSUERS_FILE"),
            user_id_field=rule.user_id_field,
            is_admin_field=rule.is_admin_field,
            is_admin_value=rule.is_admin_value,
            required_attributes=env_json(env, "VERIFIER_REQUIRED_ATTRIBUTES", {}),
            provider_name=env_str(env, "VERIFIER_PROVIDER_NAME", "jwt") or "jwt",
            escape_characters=tuple(env_list(env, "VERIFIER_ESCAPE_CHARACTERS", ["|"])),
            leeway=env_int(env, "VERIFIER_LEEWAY", 30, minimum=0, maximum=3600),
            require_exp=env_bool(env, "VERIFIER_REQUIRE_EXP", False),
            max_token_age=env_int(env, "VERIFIER_MAX_TOKEN_AGE", 0, minimum=0),
            audience=env_str(env, "VERIFIER_AUDIENCE"),
            issuer=env_str(env, "VERIFIER_ISSUER"),
            algorithms=tuple(env_list(env, "VERIFIER_ALGORITHMS", ["RS256"])),
            redis_url=redis_settings.url,
            redis_mode=redis_settings.mode,
            redis_sentinel_master=redis_settings.sentinel_master,
            redis_min_replicas=redis_settings.min_replicas,
            redis_password=redis_settings.password,
            redis_failure_mode=env_choice(
                env, "VERIFIER_REDIS_FAILURE_MODE", "closed", ("closed", "open")
            ),
            redis_timeout_ms=redis_settings.timeout_ms,
            redis_prefix=redis_settings.prefix,
            session_ttl=env_int(env, "VERIFIER_SESSION_TTL", 30 * 24 * 3600, minimum=60),
            max_sessions_per_user=env_int(env, "VERIFIER_MAX_SESSIONS_PER_USER", 100,
                                          minimum=1, maximum=MAX_SESSIONS_LIMIT),
            login_rate=env_int(env, "VERIFIER_LOGIN_RATE", 30, minimum=0,
                               maximum=MAX_LOGIN_RATE),
            cache_size=env_int(env, "VERIFIER_CACHE_SIZE", 10_000, minimum=0),
            mirror_max_keys=env_int(env, "VERIFIER_MIRROR_MAX_KEYS", 1_000_000, minimum=0),
            jwks_min_refetch_interval=env_int(env, "VERIFIER_JWKS_MIN_REFETCH", 30, minimum=1),
            jwks_grace=env_int(env, "VERIFIER_JWKS_GRACE", 3600, minimum=0),
            admin_keys_file=env_str(env, "VERIFIER_ADMIN_KEYS_FILE"),
            client_keys_file=env_str(env, "VERIFIER_CLIENT_KEYS_FILE"),
            claim_headers=parse_claim_headers(env_json(env, "VERIFIER_CLAIM_HEADERS", {})),
            browser=BrowserSettings.from_env(env),
            log_level=env_choice(env, "LOG_LEVEL", "info",
                                 ("debug", "info", "warning", "error")).upper(),
            log_format=log_format_from_env(env),
        )
        settings.check()
        return settings

    def check(self) -> None:
        """Refuse combinations that cannot work; each error names a variable."""
        sources = [self.public_key_file, self.public_key, self.jwks_url]
        if self.trusted_issuers_file:
            for name, value in (("VERIFIER_PUBLIC_KEY_FILE", self.public_key_file),
                                ("VERIFIER_PUBLIC_KEY", self.public_key),
                                ("VERIFIER_JWKS_URL", self.jwks_url),
                                ("VERIFIER_ISSUER", self.issuer),
                                ("VERIFIER_AUDIENCE", self.audience)):
                if value:
                    raise ConfigError(name, "VERIFIER_TRUSTED_ISSUERS_FILE is set: each "
                                      "issuer's keys, iss and audience are in that file")
        elif sum(1 for source in sources if source) == 0:
            raise ConfigError(
                "VERIFIER_PUBLIC_KEY_FILE",
                "no trusted key: set VERIFIER_PUBLIC_KEY_FILE, VERIFIER_PUBLIC_KEY "
                "or VERIFIER_JWKS_URL",
            )
        if self.public_key_file and self.public_key:
            raise ConfigError(
                "VERIFIER_PUBLIC_KEY",
                "set VERIFIER_PUBLIC_KEY_FILE or VERIFIER_PUBLIC_KEY, not both",
            )
        if not isinstance(self.required_attributes, dict):
            raise ConfigError("VERIFIER_REQUIRED_ATTRIBUTES", "expected a JSON object")
        for name in self.algorithms:
            if name not in ALLOWED_ALGORITHMS:
                raise ConfigError(
                    "VERIFIER_ALGORITHMS",
                    f"{name!r} is not allowed; choose among {', '.join(ALLOWED_ALGORITHMS)}",
                )
        if not self.algorithms:
            raise ConfigError("VERIFIER_ALGORITHMS", "at least one algorithm is needed")
        if any(len(character) == 0 for character in self.escape_characters):
            raise ConfigError("VERIFIER_ESCAPE_CHARACTERS", "empty entries are not allowed")
        if self.jwks_url and not self.jwks_url.startswith(("http://", "https://")):
            raise ConfigError("VERIFIER_JWKS_URL", "expected an http:// or https:// URL")
        self.redis.check()

    @property
    def redis(self) -> RedisSettings:
        """The Redis part of the configuration, as ``jwt-auth redis`` reads it too."""
        return RedisSettings(
            url=self.redis_url,
            mode=self.redis_mode,
            sentinel_master=self.redis_sentinel_master,
            min_replicas=self.redis_min_replicas,
            timeout_ms=self.redis_timeout_ms,
            prefix=self.redis_prefix,
            password=self.redis_password,
        )

    @property
    def claim_rule(self) -> ClaimRule:
        """The user id and admin rule, shared with the issuer (``shared.claimrule``)."""
        return ClaimRule(self.user_id_field, self.is_admin_field, self.is_admin_value)


PREFIXES = ("VERIFIER_", "JWT_", "REDIS_")
"""The variable names that are the verifier's: a set one it does not know is a typo."""

VARIABLES = frozenset({
    "VERIFIER_PUBLIC_KEY_FILE", "VERIFIER_PUBLIC_KEY", "VERIFIER_JWKS_URL",
    "VERIFIER_TRUSTED_ISSUERS_FILE", "VERIFIER_REQUIRED_ATTRIBUTES", "VERIFIER_PROVIDER_NAME",
    "VERIFIER_ESCAPE_CHARACTERS", "VERIFIER_LEEWAY", "VERIFIER_REQUIRE_EXP",
    "VERIFIER_MAX_TOKEN_AGE", "VERIFIER_AUDIENCE", "VERIFIER_ISSUER", "VERIFIER_ALGORITHMS",
    "VERIFIER_REDIS_FAILURE_MODE", "VERIFIER_SESSION_TTL", "VERIFIER_MAX_SESSIONS_PER_USER",
    "VERIFIER_LOGIN_RATE", "VERIFIER_CACHE_SIZE", "VERIFIER_MIRROR_MAX_KEYS",
    "VERIFIER_JWKS_MIN_REFETCH", "VERIFIER_JWKS_GRACE", "VERIFIER_ADMIN_KEYS_FILE",
    "VERIFIER_CLIENT_KEYS_FILE", "VERIFIER_CLAIM_HEADERS",
}) | BROWSER_VARIABLES | REDIS_VARIABLES | CLAIM_RULE_VARIABLES | SHARED_VARIABLES
"""Every variable the verifier reads (``tests/unit/verifier/test_config.py`` holds the list to
the code that reads them)."""
