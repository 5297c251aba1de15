"""``--alg`` of ``jwt-auth keygen`` and ``jwt-auth keys rotate``, and ``sub`` from ``jwt-auth
issue``, as an operator runs them (subprocesses)."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import jwt as pyjwt
import pytest

from issuer.keyring import read_state
from shared.keys import load_private_key
from tests.keypairs import PASSPHRASE, KeyPair
from tests.procs import assert_one_line_error, run_cli

pytestmark = [pytest.mark.e2e]


@pytest.fixture
def passphrase_file(tmp_path: Path) -> Path:
    path = tmp_path / "passphrase.txt"
    path.write_text(PASSPHRASE + "\n")
    return path


@pytest.mark.parametrize(("given", "alg", "marker"), [("ES256", "ES256", "a P-256 key (ES256)"),
                                                      ("EdDSA", "EdDSA", "an Ed25519 key (EdDSA)")])
def test_keygen_makes_an_encrypted_key_of_the_asked_type(
    tmp_path: Path, passphrase_file: Path, given: str, alg: str, marker: str
) -> None:
    out = tmp_path / "keys"
    result = run_cli("keygen", "--out", str(out), "--alg", given,
                     "--passphrase-file", str(passphrase_file))
    assert result.returncode == 0, result.stderr
    assert f"Generating {marker}" in result.stderr
    private = out / "private.pem"
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    # encrypted the same way as an RSA key: PKCS#8 under the passphrase
    assert private.read_bytes().startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    key = load_private_key(private.read_bytes(), PASSPHRASE.encode(), source="test")
    assert key.alg == alg
    assert key.public_pem() == (out / "public.pem").read_text()
    lines = result.stdout.strip().splitlines()
    assert f"({alg}, encrypted, mode 0600)" in lines[0]
    assert lines[-1] == f"kid {key.kid}"


@pytest.mark.parametrize("command", [["keygen", "--out", "{dir}"],
                                     ["keys", "rotate", "--dir", "{dir}"]])
@pytest.mark.parametrize("alg", ["ES256", "EdDSA"])
def test_bits_with_a_curve_algorithm_is_refused(
    tmp_path: Path, passphrase_file: Path, command: list[str], alg: str
) -> None:
    args = [part.replace("{dir}", str(tmp_path / "keys")) for part in command]
    result = run_cli(*args, "--alg", alg, "--bits", "4096",
                     "--passphrase-file", str(passphrase_file))
    assert_one_line_error(result, f"--bits applies to RSA keys (RS256) only; an {alg} key")
    assert not (tmp_path / "keys").exists()


def test_an_unknown_algorithm_is_refused(tmp_path: Path, passphrase_file: Path) -> None:
    result = run_cli("keygen", "--out", str(tmp_path), "--alg", "HS256",
                     "--passphrase-file", str(passphrase_file))
    assert result.returncode != 0
    assert "'RS256', 'ES256', 'EdDSA'" in result.stderr
    assert not (tmp_path / "private.pem").exists()


def test_a_ring_migrates_from_rs256_to_es256(tmp_path: Path, passphrase_file: Path) -> None:
    keys_dir = tmp_path / "keys"
    env = {"ISSUER_KEYS_DIR": str(keys_dir), "ISSUER_KEY_PASSPHRASE_FILE": str(passphrase_file)}
    first = run_cli("keys", "rotate", "--bits", "2048", env=env)
    assert first.returncode == 0, first.stderr
    second = run_cli("keys", "rotate", "--alg", "ES256", env=env)
    assert second.returncode == 0, second.stderr
    rsa_kid, ec_kid = first.stdout.split()[0], second.stdout.split()[0]
    assert second.stdout == f"{ec_kid} next\n"
    # the one step outside the issuer: verifiers must allow the new algorithm first
    assert "allow ES256 on every verifier (VERIFIER_ALGORITHMS=RS256,ES256)" in second.stderr
    [event] = [json.loads(line) for line in second.stderr.splitlines() if line.startswith("{")]
    assert (event["event"], event["kid"], event["alg"]) == ("signing_key_created", ec_kid,
                                                            "ES256")
    ec_file = keys_dir / f"{ec_kid}.pem"
    assert ec_file.read_bytes().startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    assert set(read_state(keys_dir).find(ec_kid).public) == {"kty", "crv", "x", "y"}  # type: ignore[union-attr]

    listed = run_cli("keys", "list", env=env)
    assert listed.returncode == 0, listed.stderr
    rows = [line.split()[:3] for line in listed.stdout.splitlines()[1:]]
    assert rows == [[rsa_kid, "active", "RS256"], [ec_kid, "next", "ES256"]]

    promoted = run_cli("keys", "promote", "--force", env=env)
    assert promoted.returncode == 0, promoted.stderr
    token = run_cli("issue", '{"userId": "9"}', env=env).stdout.strip()
    assert pyjwt.get_unverified_header(token)["alg"] == "ES256"


def test_a_first_key_may_be_eddsa(tmp_path: Path, passphrase_file: Path) -> None:
    env = {"ISSUER_KEYS_DIR": str(tmp_path / "keys"),
           "ISSUER_KEY_PASSPHRASE_FILE": str(passphrase_file)}
    made = run_cli("keys", "rotate", "--alg", "EdDSA", env=env)
    assert made.returncode == 0, made.stderr
    assert made.stdout.split()[1] == "active"
    token = run_cli("issue", '{"userId": "9"}', env=env).stdout.strip()
    assert pyjwt.get_unverified_header(token)["alg"] == "EdDSA"


def _env(pair: KeyPair, **extra: str) -> dict[str, str]:
    return {"ISSUER_PRIVATE_KEY_FILE": str(pair.private_path),
            "ISSUER_KEY_PASSPHRASE_FILE": str(pair.passphrase_path), **extra}


def test_issue_sets_sub_unless_told_not_to(key_pair: KeyPair) -> None:
    token = run_cli("issue", '{"userId": "123"}', env=_env(key_pair)).stdout.strip()
    assert pyjwt.decode(token, key_pair.public_pem, algorithms=["RS256"])["sub"] == "123"
    assert_one_line_error(run_cli("issue", '{"userId": "1", "sub": "x"}', env=_env(key_pair)),
                          "'sub' is set by the issuer")
    off = run_cli("issue", '{"userId": "1", "sub": "device-7"}',
                  env=_env(key_pair, ISSUER_SET_SUBJECT="false"))
    assert off.returncode == 0, off.stderr
    assert pyjwt.decode(off.stdout.strip(), key_pair.public_pem,
                        algorithms=["RS256"])["sub"] == "device-7"


def test_a_bad_set_subject_is_one_line(key_pair: KeyPair) -> None:
    assert_one_line_error(run_cli("issue", '{"userId": "1"}',
                                  env=_env(key_pair, ISSUER_SET_SUBJECT="perhaps")),
                          "ISSUER_SET_SUBJECT: expected true or false, got 'perhaps'")
