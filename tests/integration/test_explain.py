"""Explain mode: every step of the one pipeline, over HTTP (admin) and on the command line."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from flask import Flask

from tests.forge import fresh, private_key, sign, sign_raw
from tests.integration.verifier_http import assert_problem
from tests.keypairs import KeyPair
from tests.procs import run_cli

STEPS = ["structure", "issuer", "header", "key", "signature", "claims", "time",
         "audience and issuer", "attributes", "revocation"]


def _explain(app: Flask, admin_key: str, token: str) -> dict[str, Any]:
    response = app.test_client().post("/v1/verify?explain=true", json={"token": token},
                                      headers={"Authorization": f"Bearer {admin_key}"})
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.headers["Cache-Control"] == "no-store"
    body: dict[str, Any] = response.get_json()
    return body


def _outcomes(explanation: dict[str, Any]) -> dict[str, str]:
    return {step["step"]: step["outcome"] for step in explanation["steps"]}


def test_a_good_token_passes_every_step_and_shows_what_decided_it(
    client: Any, make_app: Callable[..., Flask], admin_keys: tuple[Path, str, str],
    key_pair: KeyPair,
) -> None:
    app = make_app(audience="orders", required_attributes={"tenant": "acme"})
    now = int(time.time())
    token = sign({"userId": "ann", "isAdmin": True, "iat": now, "exp": now + 600,
                  "aud": "orders", "tenant": "acme", "jti": "j-1"}, key_pair)
    explanation = _explain(app, admin_keys[1], token)
    assert explanation["verdict"] == "accepted"
    assert [step["step"] for step in explanation["steps"]] == STEPS
    assert set(_outcomes(explanation).values()) == {"passed"}
    by_name = {step["step"]: step for step in explanation["steps"]}
    assert by_name["header"]["values"]["alg"] == "RS256"
    assert by_name["claims"]["values"] == {"userId": "ann", "isAdmin": True}
    assert by_name["time"]["values"]["exp"] == now + 600
    assert by_name["audience and issuer"]["values"]["audience"] == ["orders"]
    assert by_name["attributes"]["values"] == {"required": {"tenant": "acme"},
                                               "in the token": {"tenant": "acme"}}
    assert by_name["revocation"]["values"]["revoked"] is False
    # never the signature, nor a key
    text = str(explanation)
    assert token.split(".")[2] not in text
    assert "BEGIN" not in text
    assert "'n'" not in text  # no JWK member either


def test_each_refusal_is_the_step_that_failed_and_the_rest_did_not_run(
    make_app: Callable[..., Flask], admin_keys: tuple[Path, str, str], key_pair: KeyPair,
    other_key_pair: KeyPair,
) -> None:
    app = make_app()
    client = app.test_client()
    now = int(time.time())
    revoked = fresh(key_pair, "rex")
    assert client.post("/v1/revocations", json={"token": revoked}).status_code == 204
    cases = {
        "structure": "not.a-jwt",
        # RS512 signs well, but only RS256 is allowed here
        "header": sign_raw(b'{"alg":"RS512","typ":"JWT"}', b'{"userId":"x"}',
                           private_key(key_pair), alg="RS512"),
        "signature": fresh(other_key_pair, "eve"),
        "claims": sign({"isAdmin": True}, key_pair),
        "time": sign({"userId": "old", "iat": now - 900, "exp": now - 600}, key_pair),
        "revocation": revoked,
    }
    for failing, token in cases.items():
        explanation = _explain(app, admin_keys[1], token)
        outcomes = _outcomes(explanation)
        index = STEPS.index(failing)
        assert [outcomes[name] for name in STEPS] == (
            ["passed"] * index + ["failed"] + ["not run"] * (len(STEPS) - index - 1)
        ), (failing, outcomes)
        # the one pipeline: the verdict is what /v1/verify answers
        plain = client.post("/v1/verify", json={"token": token})
        assert explanation["verdict"] == plain.get_json()["code"], failing
    time_step = next(step for step in _explain(app, admin_keys[1], cases["time"])["steps"]
                     if step["step"] == "time")
    assert time_step["values"]["exp"] == now - 600
    assert time_step["code"] == "token_expired"


def test_explain_needs_an_admin_key(
    client: Any, admin_keys: tuple[Path, str, str], key_pair: KeyPair
) -> None:
    token = fresh(key_pair, "ann")
    refused = client.post("/v1/verify?explain=true", json={"token": token})
    assert_problem(refused, 401, "unauthorized")
    assert refused.headers["WWW-Authenticate"].startswith("Bearer")
    # a token as the credential is no admin key
    assert_problem(client.post("/v1/verify?explain=true", json={"token": token},
                               headers={"Authorization": f"Bearer {token}"}), 401,
                   "unauthorized")
    assert_problem(client.post("/v1/verify?explain=true", json={"token": token},
                               headers={"Authorization": f"Bearer {admin_keys[2]}"}), 403,
                   "forbidden")
    assert_problem(client.post("/v1/verify?explain=maybe", json={"token": token}), 400,
                   "request_invalid")
    assert client.post("/v1/verify?explain=false", json={"token": token}).status_code == 200


def test_the_command_explains_too_and_checks_revocation_when_redis_is_named(
    key_pair: KeyPair, redis_url: str, client: Any
) -> None:
    token = fresh(key_pair, "cli-user")
    env = {"VERIFIER_PUBLIC_KEY_FILE": str(key_pair.public_path)}
    offline = run_cli("verify", "--explain", token, env=env)
    assert offline.returncode == 0, offline.stderr
    lines = offline.stdout.splitlines()
    assert [line.split(": ")[0] for line in lines if line[:1].isdigit()] == [
        f"{number}. {name}" for number, name in enumerate(STEPS, start=1)]
    assert "10. revocation: not run" in lines
    assert lines[-1] == "verdict: accepted"
    assert token.split(".")[2] not in offline.stdout

    assert client.post("/v1/revocations", json={"token": token}).status_code == 204
    online = run_cli("verify", "--explain", token, env={**env, "REDIS_URL": redis_url})
    assert online.returncode == 1
    assert "10. revocation: failed" in online.stdout
    assert "   revoked: true" in online.stdout
    assert online.stdout.splitlines()[-1] == "verdict: token_revoked"
