"""Variables of ours that nothing reads: named with the closest known name, or refused."""

from __future__ import annotations

import pytest

from issuer import config as issuer_config
from shared.config import check_environment, unknown_variables
from shared.errors import StartupError
from verifier import config as verifier_config

VERIFIER = (verifier_config.VARIABLES, verifier_config.PREFIXES)
ISSUER = (issuer_config.VARIABLES, issuer_config.PREFIXES)


def _lines(environ: dict[str, str], service: tuple[frozenset[str], tuple[str, ...]]
           ) -> list[str]:
    return [variable.line() for variable in unknown_variables(environ, *service)]


def test_the_typos_an_operator_makes_are_named_with_what_was_meant() -> None:
    assert _lines({"VERIFIER_LEWAY": "5", "REDIS_ULR": "redis://x"}, VERIFIER) == [
        "unknown variable REDIS_ULR (did you mean REDIS_URL?)",
        "unknown variable VERIFIER_LEWAY (did you mean VERIFIER_LEEWAY?)",
    ]
    assert _lines({"ISSUER_TOKEN_TTLL": "60", "ISUER_CLIENTS_FILE": "c.json"}, ISSUER) == [
        "unknown variable ISSUER_TOKEN_TTLL (did you mean ISSUER_TOKEN_TTL?)",
        "unknown variable ISUER_CLIENTS_FILE (did you mean ISSUER_CLIENTS_FILE?)",
    ]


def test_a_prefix_one_typo_away_is_ours_and_others_are_not() -> None:
    environ = {"VERIFER_JWKS_URL": "x", "JTW_USER_ID_FIELD": "sub", "REDDIS_URL": "x",
               "VERIFIER_SOMETHING_NEW": "x",
               # someone else's variables, and ours spelt right
               "PATH": "/bin", "HOME": "/root", "RADIUS_SERVER": "x", "JWTS": "x",
               "VERIFIER_LEEWAY": "5", "LOG_LEVEL": "info", "JWT_AUTH_STRICT_CONFIG": "false"}
    assert [name for name in _names(environ, VERIFIER)] == [
        "JTW_USER_ID_FIELD", "REDDIS_URL", "VERIFER_JWKS_URL", "VERIFIER_SOMETHING_NEW"]
    # the issuer's prefixes are its own: the verifier's variables are not its typos
    assert _names({"VERIFIER_LEEWAY": "5", "REDIS_URL": "x"}, ISSUER) == []


def _names(environ: dict[str, str], service: tuple[frozenset[str], tuple[str, ...]]
           ) -> list[str]:
    return [variable.name for variable in unknown_variables(environ, *service)]


def test_kubernetes_service_links_are_not_typos_but_look_alikes_set_by_hand_are() -> None:
    # what Kubernetes injects for Services named redis and verifier
    injected = {
        "REDIS_SERVICE_HOST": "10.96.0.12", "REDIS_SERVICE_PORT": "6379",
        "REDIS_SERVICE_PORT_REDIS": "6379", "REDIS_PORT": "tcp://10.96.0.12:6379",
        "REDIS_PORT_6379_TCP": "tcp://10.96.0.12:6379", "REDIS_PORT_6379_TCP_PROTO": "tcp",
        "REDIS_PORT_6379_TCP_PORT": "6379", "REDIS_PORT_6379_TCP_ADDR": "10.96.0.12",
        "VERIFIER_SERVICE_HOST": "fd00::12", "VERIFIER_PORT": "tcp://[fd00::12]:8002",
    }
    assert _names(injected, VERIFIER) == []
    by_hand = {"REDIS_PORT": "6379", "REDIS_SERVICE_HOST": "redis.internal",
               "VERIFIER_PORT_8002_TCP_PROTO": "http"}
    assert _names(by_hand, VERIFIER) == ["REDIS_PORT", "REDIS_SERVICE_HOST",
                                         "VERIFIER_PORT_8002_TCP_PROTO"]


def test_strict_mode_refuses_what_it_would_only_warn_about() -> None:
    warned: list[str] = []
    environ = {"VERIFIER_LEWAY": "5"}
    assert len(check_environment("verifier", environ, *VERIFIER, warned.append)) == 1
    assert warned == ["unknown variable VERIFIER_LEWAY (did you mean VERIFIER_LEEWAY?)"]
    with pytest.raises(StartupError, match="VERIFIER_LEWAY: unknown to the verifier, and "
                                           "JWT_AUTH_STRICT_CONFIG is true"):
        check_environment("verifier", {**environ, "JWT_AUTH_STRICT_CONFIG": "true"},
                          *VERIFIER, warned.append)
    # nothing unknown: strict mode has nothing to refuse
    assert check_environment("verifier", {"JWT_AUTH_STRICT_CONFIG": "true"}, *VERIFIER,
                             warned.append) == []
