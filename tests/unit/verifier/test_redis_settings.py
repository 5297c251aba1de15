"""Where the verifier finds Redis: each mode's variables, and the combinations that stop it."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.errors import ConfigError
from verifier.config import VerifierSettings
from verifier.layout import KeyLayout, session_id_tag, user_tag
from verifier.redisconn import RedisSettings

KEY = {"VERIFIER_PUBLIC_KEY": "unused"}
SEEDS = "redis://10.0.0.1:7000,redis://10.0.0.2:7000,redis://10.0.0.3:7000"


def test_the_defaults_are_one_local_redis_confirming_on_no_replica() -> None:
    settings = RedisSettings.from_env({})
    assert (settings.mode, settings.urls, settings.replicas_to_confirm) == (
        "standalone", ["redis://127.0.0.1:6379/0"], 0,
    )


@pytest.mark.parametrize("mode", ["cluster", "sentinel"])
def test_the_modes_made_for_failover_confirm_writes_on_one_replica(mode: str) -> None:
    settings = RedisSettings.from_env({"VERIFIER_REDIS_MODE": mode, "REDIS_URL": SEEDS})
    assert settings.urls == SEEDS.split(",")
    assert settings.replicas_to_confirm == 1
    lowered = RedisSettings.from_env({"VERIFIER_REDIS_MODE": mode, "REDIS_URL": SEEDS,
                                      "VERIFIER_REDIS_MIN_REPLICAS": "0"})
    assert lowered.replicas_to_confirm == 0


def test_sentinel_mode_names_its_master() -> None:
    env = {"VERIFIER_REDIS_MODE": "sentinel", "REDIS_URL": SEEDS}
    assert RedisSettings.from_env(env).sentinel_master == "mymaster"
    env["VERIFIER_REDIS_SENTINEL_MASTER"] = "auth"
    assert RedisSettings.from_env(env).sentinel_master == "auth"


@pytest.mark.parametrize(("env", "variable", "message"), [
    ({"VERIFIER_REDIS_MODE": "replicated"}, "VERIFIER_REDIS_MODE", "expected one of"),
    ({"REDIS_URL": SEEDS}, "REDIS_URL", "set VERIFIER_REDIS_MODE=cluster"),
    ({"REDIS_URL": "http://cache:6379"}, "REDIS_URL", "expected redis://"),
    ({"VERIFIER_REDIS_MODE": "cluster", "REDIS_URL": "unix:///run/redis.sock"}, "REDIS_URL",
     "not unix://"),
    ({"VERIFIER_REDIS_MODE": "cluster", "REDIS_URL": "redis://a:7000,rediss://b:7000"},
     "REDIS_URL", "mixes schemes"),
    ({"VERIFIER_REDIS_MODE": "cluster", "REDIS_URL": "redis://a:7000/2"}, "REDIS_URL",
     "only database 0"),
    ({"VERIFIER_REDIS_MODE": "cluster", "REDIS_URL": "redis://a:port"}, "REDIS_URL",
     "not a number"),
    ({"VERIFIER_REDIS_SENTINEL_MASTER": "auth"}, "VERIFIER_REDIS_SENTINEL_MASTER",
     "only used with VERIFIER_REDIS_MODE=sentinel"),
    ({"VERIFIER_REDIS_MIN_REPLICAS": "-1"}, "VERIFIER_REDIS_MIN_REPLICAS", "at least 0"),
    ({"VERIFIER_REDIS_PREFIX": "app{1}:"}, "VERIFIER_REDIS_PREFIX", "must not contain {"),
    ({"REDIS_PASSWORD_FILE": "/nonexistent/redis-password"}, "REDIS_PASSWORD_FILE",
     "cannot read"),
])
def test_a_bad_combination_stops_the_verifier_naming_the_variable(
    env: dict[str, str], variable: str, message: str
) -> None:
    with pytest.raises(ConfigError) as raised:
        VerifierSettings.from_env({**KEY, **env})
    assert raised.value.variable == variable
    assert message in str(raised.value)
    assert "\n" not in str(raised.value)


def test_a_password_comes_from_the_url_or_a_file_never_both(tmp_path: Path) -> None:
    secret = tmp_path / "redis-password"
    secret.write_text("s3cret\n")
    settings = VerifierSettings.from_env({**KEY, "REDIS_PASSWORD_FILE": str(secret)})
    assert settings.redis_password == "s3cret"  # the newline `echo` adds is not part of it
    with pytest.raises(ConfigError, match="carries a password too"):
        VerifierSettings.from_env({**KEY, "REDIS_PASSWORD_FILE": str(secret),
                                   "REDIS_URL": "redis://:other@cache:6379/0"})
    # sentinel mode: the URLs' password is the sentinels', the file's the master's
    sentinels = VerifierSettings.from_env({
        **KEY, "VERIFIER_REDIS_MODE": "sentinel", "REDIS_PASSWORD_FILE": str(secret),
        "REDIS_URL": "redis://:sentinel-pass@s1:26379,redis://:sentinel-pass@s2:26379",
    })
    assert sentinels.redis_password == "s3cret"
    described = RedisSettings(url="rediss://u:s3cret@a:7000,rediss://u:s3cret@b:7000",
                              mode="cluster").described()
    assert described == "rediss://***@a:7000,rediss://***@b:7000"


def test_every_key_of_a_user_shares_one_hash_tag_whatever_the_id_holds() -> None:
    keys = KeyLayout("jwtauth:")
    for user in ("alice", "}{", "{x}", "a}b", "ünï", "x" * 256):
        tag = "{" + user_tag(user) + "}"
        names = [keys.revocation(user, "jti:1"), keys.cutoff(user), keys.sessions(user),
                 keys.user(user), keys.session(user_tag(user), "0" * 64)]
        # Redis Cluster hashes what lies between the first { and the next }
        assert {name[name.index("{"):name.index("}") + 1] for name in names} == {tag}


def test_a_session_id_carries_its_users_tag_and_old_ids_carry_none() -> None:
    assert session_id_tag("A" * 43 + "~" + user_tag("dave")) == user_tag("dave")
    assert session_id_tag("A" * 43) is None
    assert session_id_tag("A" * 43 + "~nothex!!") is None
