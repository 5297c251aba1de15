"""Converters for environment variables; each failure names its variable; and the check that
names the variables nobody reads.

Each service has one typed settings module (``issuer/config.py``, ``verifier/config.py``) that
reads its variables through these, so a bad value stops the service with one clear line. Each
also lists every variable it reads (``VARIABLES``): a set variable that looks like one of ours
and is not in the list (``VERIFIER_LEWAY``, ``ISUER_CLIENTS_FILE``) is a typo that would
otherwise be ignored without a word (``unknown_variables``).
"""

from __future__ import annotations

import difflib
import ipaddress
import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from shared.errors import ConfigError, StartupError


def env_str(environ: Mapping[str, str], name: str, default: str | None = None) -> str | None:
    """The variable's value, or the default when it is unset or empty."""
    value = environ.get(name, "")
    return value if value != "" else default


def env_int(
    environ: Mapping[str, str],
    name: str,
    default: int,
    *,
    minimum: int | None = None,
    maximum: int | None = None,
) -> int:
    """An integer variable, bounded."""
    raw = environ.get(name, "").strip()
    if raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(name, f"expected a whole number, got {raw!r}") from None
    if minimum is not None and value < minimum:
        raise ConfigError(name, f"must be at least {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ConfigError(name, f"must be at most {maximum}, got {value}")
    return value


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def env_bool(environ: Mapping[str, str], name: str, default: bool) -> bool:
    """A boolean variable: 1/0, true/false, yes/no, on/off."""
    raw = environ.get(name, "").strip().lower()
    if raw == "":
        return default
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    raise ConfigError(name, f"expected true or false, got {raw!r}")


def env_json(environ: Mapping[str, str], name: str, default: Any) -> Any:
    """A JSON-valued variable."""
    raw = environ.get(name, "").strip()
    if raw == "":
        return default
    try:
        return json.loads(raw)
    except ValueError:
        raise ConfigError(name, f"expected JSON, got {raw!r}") from None


def env_choice(
    environ: Mapping[str, str], name: str, default: str, choices: tuple[str, ...]
) -> str:
    """One of a fixed set of words."""
    raw = environ.get(name, "").strip().lower()
    if raw == "":
        return default
    if raw not in choices:
        raise ConfigError(name, f"expected one of {', '.join(choices)}, got {raw!r}")
    return raw


def env_list(environ: Mapping[str, str], name: str, default: list[str]) -> list[str]:
    """A list: a JSON array of strings, or comma-separated words."""
    raw = environ.get(name, "").strip()
    if raw == "":
        return default
    if raw.startswith("["):
        value = env_json(environ, name, default)
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise ConfigError(name, "expected a JSON array of strings")
        return value
    return [item.strip() for item in raw.split(",") if item.strip()]


LOG_FORMAT_VARIABLE = "LOG_FORMAT"
LOG_FORMATS = ("text", "json")


def log_format_from_env(environ: Mapping[str, str]) -> str:
    """``LOG_FORMAT``: ``text`` (the default) or ``json`` (``shared.logs``), both services."""
    return env_choice(environ, LOG_FORMAT_VARIABLE, "text", LOG_FORMATS)


# --- variables nobody reads: typos ---------------------------------------------------------------

STRICT_VARIABLE = "JWT_AUTH_STRICT_CONFIG"

# read by the jwt-auth operator commands (jwt_auth/admin.py), not by a service; known here so
# that a shell set up for them can start a service without warnings
CLI_VARIABLES = frozenset({
    "JWT_AUTH_VERIFIER_URL", "JWT_AUTH_ADMIN_KEY", "JWT_AUTH_ADMIN_KEY_FILE",
})

SHARED_VARIABLES = frozenset({
    "LOG_LEVEL", LOG_FORMAT_VARIABLE, "PROMETHEUS_MULTIPROC_DIR", "JWT_AUTH_HEALTHCHECK_URL",
    STRICT_VARIABLE,
}) | CLI_VARIABLES
"""Variables either service (or its image, or the jwt-auth CLI beside it) reads, beside its
own."""

# what Kubernetes adds for every Service in the namespace (unless enableServiceLinks is false):
# REDIS_SERVICE_HOST=10.0.0.5, REDIS_SERVICE_PORT=6379, REDIS_PORT=tcp://10.0.0.5:6379,
# REDIS_PORT_6379_TCP=tcp://..., REDIS_PORT_6379_TCP_PROTO=tcp, ..._PORT=6379, ..._ADDR=10.0.0.5
_SERVICE_LINK = re.compile(
    r"[A-Z0-9_]+?_(?:(?P<host>SERVICE_HOST)|(?P<port>SERVICE_PORT(?:_[A-Z0-9_]+)?)"
    r"|(?P<link>PORT(?:_[0-9]{1,5}_(?:TCP|UDP|SCTP))?)"
    r"|PORT_[0-9]{1,5}_(?:TCP|UDP|SCTP)_(?:(?P<proto>PROTO)|(?P<number>PORT)|(?P<addr>ADDR)))"
)
_SERVICE_LINK_MAX = 128
_LINK_VALUE = re.compile(r"(?:tcp|udp|sctp)://[0-9A-Fa-f.:\[\]]+:[0-9]{1,5}")


@dataclass(frozen=True)
class UnknownVariable:
    """A set variable that looks like one of ours and is not, and the name it was likely meant
    to be."""

    name: str
    suggestion: str | None

    def line(self) -> str:
        hint = f" (did you mean {self.suggestion}?)" if self.suggestion else ""
        return f"unknown variable {self.name}{hint}"


def unknown_variables(
    environ: Mapping[str, str], known: Iterable[str], prefixes: Iterable[str]
) -> list[UnknownVariable]:
    """Every set variable under ``prefixes`` (or a prefix one typo away, ``ISUER_``) that is
    not in ``known``, with the closest known name; Kubernetes' service links are not ours."""
    known = frozenset(known)
    words = [prefix.rstrip("_") for prefix in prefixes]
    found = []
    for name in sorted(environ):
        if name in known or not _under(name, words):
            continue
        if _service_link(name, environ[name]):
            continue
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.75)
        found.append(UnknownVariable(name, close[0] if close else None))
    return found


def _under(name: str, words: list[str]) -> bool:
    head = name.split("_", 1)[0]
    return "_" in name and any(_one_edit_apart(head, word) for word in words)


def _one_edit_apart(left: str, right: str) -> bool:
    """Equal, or one insertion, deletion, substitution or swap of neighbours apart."""
    if left == right:
        return True
    if abs(len(left) - len(right)) > 1:
        return False
    if len(left) == len(right):
        differ = [index for index, (a, b) in enumerate(zip(left, right, strict=True)) if a != b]
        if len(differ) == 1:
            return True
        if len(differ) != 2:
            return False
        first, second = differ
        return second == first + 1 and left[first] == right[second] and \
            left[second] == right[first]
    shorter, longer = sorted((left, right), key=len)
    return any(longer[:index] + longer[index + 1:] == shorter for index in range(len(longer)))


def _service_link(name: str, value: str) -> bool:
    """Whether ``name=value`` is what Kubernetes injects for a Service (its shape and its
    value alike: ``REDIS_PORT=6379`` set by hand is no service link, and is reported)."""
    # a Service name is at most 63 characters; the pattern's lazy prefix tries every "_" of a
    # name, so a long one built of repeated suffixes would cost time that grows with its square
    if len(name) > _SERVICE_LINK_MAX:
        return False
    match = _SERVICE_LINK.fullmatch(name)
    if match is None:
        return False
    value = value.strip()
    if match["host"] or match["addr"]:
        try:
            ipaddress.ip_address(value)
        except ValueError:
            return False
        return True
    if match["port"] or match["number"]:
        return value.isdigit()
    if match["proto"]:
        return value in ("tcp", "udp", "sctp")
    return _LINK_VALUE.fullmatch(value) is not None


def check_environment(
    service: str, environ: Mapping[str, str], known: Iterable[str], prefixes: Iterable[str],
    warn: Callable[[str], None],
) -> list[UnknownVariable]:
    """Name every unknown variable through ``warn``, one line each; with
    ``JWT_AUTH_STRICT_CONFIG=true`` refuse to start (StartupError, exit 3) instead."""
    unknown = unknown_variables(environ, known, prefixes)
    for variable in unknown:
        warn(variable.line())
    if unknown and env_bool(environ, STRICT_VARIABLE, False):
        names = ", ".join(variable.name for variable in unknown)
        raise StartupError(f"{names}: unknown to the {service}, and {STRICT_VARIABLE} is true "
                           "(fix the names, or unset them)")
    return unknown
