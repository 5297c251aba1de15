"""Converters for environment variables; each failure names its variable.

Each service has one typed settings module (``issuer/config.py``, ``verifier/config.py``) that
reads its variables through these, so a bad value stops the service with one clear line.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from shared.errors import ConfigError


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
