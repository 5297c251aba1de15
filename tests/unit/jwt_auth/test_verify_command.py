"""``jwt-auth verify`` through click's CliRunner: offline, configured by VERIFIER_* variables."""

from __future__ import annotations

import json
import time

from click.testing import CliRunner

from jwt_auth.cli import main
from tests.forge import sign
from tests.keypairs import KeyPair


def _env(pair: KeyPair) -> dict[str, str]:
    # Redis is never contacted: this URL points nowhere on purpose
    return {"VERIFIER_PUBLIC_KEY_FILE": str(pair.public_path), "VERIFIER_PUBLIC_KEY": "",
            "VERIFIER_JWKS_URL": "", "REDIS_URL": "redis://127.0.0.1:1/0"}


def test_verify_prints_the_claims(key_pair: KeyPair) -> None:
    token = sign({"userId": "a|b", "isAdmin": True, "iat": int(time.time())}, key_pair)
    result = CliRunner().invoke(main, ["verify", token], env=_env(key_pair))
    assert result.exit_code == 0, result.output
    printed = json.loads(result.output)
    assert (printed["userId"], printed["isAdmin"], printed["provider"]) == ("a_b", True, "jwt")
    assert printed["claims"]["userId"] == "a|b"


def test_verify_reads_the_token_from_stdin(key_pair: KeyPair) -> None:
    token = sign({"userId": "stdin"}, key_pair)
    result = CliRunner().invoke(main, ["verify", "-"], input=token + "\n", env=_env(key_pair))
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["userId"] == "stdin"


def test_a_refused_token_is_one_line_with_its_code(
    key_pair: KeyPair, other_key_pair: KeyPair
) -> None:
    now = int(time.time())
    cases = {
        "signature_invalid": sign({"userId": "x"}, other_key_pair),
        "token_expired": sign({"userId": "x", "exp": now - 3600}, key_pair),
        "token_malformed": "nonsense",
    }
    for code, token in cases.items():
        result = CliRunner().invoke(main, ["verify", token], env=_env(key_pair))
        assert result.exit_code == 1
        lines = result.output.strip().splitlines()
        assert len(lines) == 1, result.output
        assert lines[0].startswith(f"{code}: ")


def test_a_bad_configuration_stops_with_one_line(key_pair: KeyPair) -> None:
    env = {**_env(key_pair), "VERIFIER_PUBLIC_KEY_FILE": "/nonexistent/public.pem"}
    result = CliRunner().invoke(main, ["verify", "a.b.c"], env=env)
    assert result.exit_code == 3
    lines = result.output.strip().splitlines()
    assert len(lines) == 1
    assert "VERIFIER_PUBLIC_KEY_FILE" in lines[0]
