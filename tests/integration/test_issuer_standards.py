"""The issuer speaks the ecosystem's standards: discovery documents, ``sub``, ES256 and EdDSA.

In-process through Flask's test client; ``tests/compat/test_standard_consumers.py`` runs real
consumers (openid-client, jose, PyJWT) against a real issuer.
"""

from __future__ import annotations

import base64
import json
import secrets
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import jwt as pyjwt
import pytest
from cryptography.hazmat.primitives import serialization

from issuer.app import create_app
from issuer.config import IssuerSettings
from issuer.keyring import promote as promote_state
from issuer.keyring import read_state, write_state
from shared.apikeys import add_client
from shared.claimrule import ClaimRule
from shared.errors import ConfigError
from shared.keys import EDDSA, ES256, RS256
from tests.keypairs import KeyPair, make_keys_dir

DISCOVERY_PATHS = ("/.well-known/openid-configuration", "/.well-known/oauth-authorization-server")
ISSUER_URL = "https://auth.example.com"


class Issuer:
    def __init__(self, settings: IssuerSettings, key: str) -> None:
        self.settings = settings
        self.app = create_app(settings)
        self.client = self.app.test_client()
        self.key = key

    def post(self, payload: Any) -> Any:
        return self.client.post("/v1/tokens", json=payload,
                                headers={"Authorization": f"Bearer {self.key}"})

    def token(self, payload: Any) -> str:
        response = self.post(payload)
        assert response.status_code == 201, response.get_data(as_text=True)
        token: str = response.get_json()["token"]
        return token


def make_issuer(tmp_path: Path, key_pair: KeyPair | None = None, **overrides: Any) -> Issuer:
    """An issuer of its own clients file (a test may make several), signing with ``key_pair``
    unless ``overrides`` name another key source."""
    clients = tmp_path / f"clients-{secrets.token_hex(4)}.json"
    client_key = add_client(clients, "app", admin=True, variable="ISSUER_CLIENTS_FILE")
    settings = IssuerSettings(clients_file=str(clients), rate_limit=0)
    if key_pair is not None:
        settings = replace(settings, private_key_file=str(key_pair.private_path),
                           key_passphrase_file=str(key_pair.passphrase_path))
    return Issuer(replace(settings, **overrides), client_key)


def segment(token: str, index: int) -> dict[str, Any]:
    part = token.split(".")[index]
    decoded: dict[str, Any] = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    return decoded


# --- discovery ------------------------------------------------------------------------------


@pytest.mark.parametrize("issuer_value", [None, "auth-service", "urn:example:issuer",
                                          "ftp://auth.example.com"])
@pytest.mark.parametrize("path", DISCOVERY_PATHS)
def test_discovery_is_a_404_problem_without_an_issuer_url(
    tmp_path: Path, key_pair: KeyPair, issuer_value: str | None, path: str
) -> None:
    issuer = make_issuer(tmp_path, key_pair, issuer=issuer_value)
    response = issuer.client.get(path)
    assert response.status_code == 404
    assert response.mimetype == "application/problem+json"
    body = response.get_json()
    assert body["code"] == "not_found"
    assert "ISSUER_ISSUER" in body["detail"]


@pytest.mark.parametrize("path", DISCOVERY_PATHS)
def test_discovery_describes_what_the_issuer_does_and_nothing_else(
    tmp_path: Path, key_pair: KeyPair, path: str
) -> None:
    issuer = make_issuer(tmp_path, key_pair, issuer=ISSUER_URL, jwks_max_age=120)
    response = issuer.client.get(path)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    assert response.headers["Cache-Control"] == "public, max-age=120"
    assert response.get_json() == {
        "issuer": ISSUER_URL,
        "jwks_uri": f"{ISSUER_URL}/.well-known/jwks.json",
        "id_token_signing_alg_values_supported": ["RS256"],
        "subject_types_supported": ["public"],
        "claims_supported": ["sub", "iss", "iat", "exp", "jti", "userId", "isAdmin"],
        "service_documentation": f"{ISSUER_URL}/docs",
    }
    # the iss of every token is the discovered issuer, exactly
    assert segment(issuer.token({"userId": "1"}), 1)["iss"] == ISSUER_URL


def test_both_discovery_documents_are_the_same(tmp_path: Path, key_pair: KeyPair) -> None:
    issuer = make_issuer(tmp_path, key_pair, issuer=ISSUER_URL, audience="mobile")
    oidc, oauth = (issuer.client.get(path).get_json() for path in DISCOVERY_PATHS)
    assert oidc == oauth
    assert "aud" in oidc["claims_supported"]


def test_an_issuer_url_with_a_path_keeps_it_exactly(tmp_path: Path, key_pair: KeyPair) -> None:
    issuer_url = "http://127.0.0.1:8001/tenants/blue/"
    issuer = make_issuer(tmp_path, key_pair, issuer=issuer_url)
    document = issuer.client.get(DISCOVERY_PATHS[0]).get_json()
    assert document["issuer"] == issuer_url
    assert document["jwks_uri"] == "http://127.0.0.1:8001/tenants/blue/.well-known/jwks.json"
    # the issuer's own document points at the same JWKS
    assert issuer.client.get("/.well-known/jwt-auth.json").get_json()["jwks_uri"] == \
        document["jwks_uri"]


def test_discovery_leaves_out_sub_when_tokens_do_not_carry_the_user_in_it(
    tmp_path: Path, key_pair: KeyPair
) -> None:
    issuer = make_issuer(tmp_path, key_pair, issuer=ISSUER_URL, set_subject=False)
    document = issuer.client.get(DISCOVERY_PATHS[1]).get_json()
    assert "subject_types_supported" not in document
    assert "sub" not in document["claims_supported"]


def test_the_api_description_documents_discovery(tmp_path: Path, key_pair: KeyPair) -> None:
    paths = make_issuer(tmp_path, key_pair).client.get("/openapi.json").get_json()["paths"]
    for path in DISCOVERY_PATHS:
        operation = paths[path]["get"]
        assert set(operation["responses"]) == {"200", "404"}
        schema = operation["responses"]["200"]["content"]["application/json"]["schema"]
        assert schema == {"$ref": "#/components/schemas/Discovery"}


# --- sub ------------------------------------------------------------------------------------


def test_tokens_carry_the_user_id_as_sub(tmp_path: Path, key_pair: KeyPair) -> None:
    issuer = make_issuer(tmp_path, key_pair)
    claims = pyjwt.decode(issuer.token({"userId": "u-42", "isAdmin": True}), key_pair.public_pem,
                          algorithms=["RS256"], options={"require": ["sub"]})
    assert claims["sub"] == claims["userId"] == "u-42"


def test_a_payload_setting_sub_is_refused_as_reserved(tmp_path: Path, key_pair: KeyPair) -> None:
    issuer = make_issuer(tmp_path, key_pair)
    # even the same value: the issuer sets sub, and silently accepting one would hide a caller
    # that means something else by it
    for sub in ("u-42", "someone-else"):
        response = issuer.post({"userId": "u-42", "sub": sub})
        assert response.status_code == 422
        assert response.get_json()["code"] == "claim_reserved"
        assert response.get_json()["field"] == "sub"
    paths = issuer.client.get("/openapi.json").get_json()["paths"]
    assert "sub" in paths["/v1/tokens"]["post"]["description"]


def test_set_subject_off_restores_the_callers_own_sub(tmp_path: Path, key_pair: KeyPair) -> None:
    issuer = make_issuer(tmp_path, key_pair, set_subject=False)
    assert "sub" not in segment(issuer.token({"userId": "u-42"}), 1)
    claims = segment(issuer.token({"userId": "u-42", "sub": "device-7"}), 1)
    assert claims["sub"] == "device-7"
    paths = issuer.client.get("/openapi.json").get_json()["paths"]
    assert "sub" not in paths["/v1/tokens"]["post"]["description"].split(" are set by")[0]


@pytest.mark.parametrize("set_subject", [True, False])
def test_when_the_user_id_field_is_sub_the_callers_sub_is_the_user(
    tmp_path: Path, key_pair: KeyPair, set_subject: bool
) -> None:
    issuer = make_issuer(tmp_path, key_pair, set_subject=set_subject,
                         claim_rule=ClaimRule("sub", "role", "superuser"))
    # sub is the user id: required, never refused, never rewritten, whatever ISSUER_SET_SUBJECT
    assert segment(issuer.token({"sub": "alice", "role": "reader"}), 1)["sub"] == "alice"
    missing = issuer.post({"userId": "alice"})
    assert missing.status_code == 422
    assert (missing.get_json()["code"], missing.get_json()["field"]) == ("claim_invalid", "sub")
    # the user id field stays in the documented body, required
    claims = issuer.client.get("/openapi.json").get_json()["components"]["schemas"]["Claims"]
    assert "sub" in claims["required"]


@pytest.mark.parametrize("value", ["maybe", "2"])
def test_a_bad_set_subject_value_stops_the_start_with_one_line(value: str) -> None:
    with pytest.raises(ConfigError) as caught:
        IssuerSettings.from_env({"ISSUER_SET_SUBJECT": value})
    assert str(caught.value) == f"ISSUER_SET_SUBJECT: expected true or false, got {value!r}"


# --- ES256 and EdDSA ------------------------------------------------------------------------


@pytest.fixture
def key_pairs(key_pair: KeyPair, es256_key_pair: KeyPair,
              eddsa_key_pair: KeyPair) -> dict[str, KeyPair]:
    return {RS256: key_pair, ES256: es256_key_pair, EDDSA: eddsa_key_pair}


@pytest.mark.parametrize(("alg", "kty", "crv"), [(ES256, "EC", "P-256"),
                                                 (EDDSA, "OKP", "Ed25519")])
def test_an_issuer_signs_with_its_keys_own_algorithm(
    tmp_path: Path, key_pairs: dict[str, KeyPair], alg: str, kty: str, crv: str
) -> None:
    pair = key_pairs[alg]
    issuer = make_issuer(tmp_path, pair, issuer=ISSUER_URL)
    token = issuer.token({"userId": "7"})
    header = segment(token, 0)
    assert header["alg"] == alg
    assert pyjwt.decode(token, pair.public_pem, algorithms=[alg],
                        issuer=ISSUER_URL)["sub"] == "7"
    [published] = issuer.client.get("/.well-known/jwks.json").get_json()["keys"]
    assert (published["kty"], published["crv"], published["alg"], published["use"]) == \
        (kty, crv, alg, "sig")
    assert published["kid"] == header["kid"]
    assert not {"d", "n", "e"} & set(published)
    assert ("y" in published) == (kty == "EC")
    pem = issuer.client.get("/v1/public-key").get_data(as_text=True)
    assert pem == pair.public_pem
    assert issuer.client.get("/readyz").status_code == 200
    assert issuer.client.get("/.well-known/jwt-auth.json").get_json()["algorithms"] == [alg]
    assert issuer.client.get(DISCOVERY_PATHS[0]).get_json()[
        "id_token_signing_alg_values_supported"] == [alg]


def test_a_key_ring_mixes_types_during_a_migration(
    tmp_path: Path, key_pairs: dict[str, KeyPair]
) -> None:
    keys_dir = tmp_path / "keys"
    make_keys_dir(keys_dir, key_pairs[RS256], key_pairs[ES256])
    issuer = make_issuer(tmp_path, keys_dir=str(keys_dir),
                         key_passphrase_file=str(key_pairs[RS256].passphrase_path),
                         issuer=ISSUER_URL)
    before = issuer.token({"userId": "1"})
    assert segment(before, 0)["alg"] == RS256
    jwks = issuer.client.get("/.well-known/jwks.json").get_json()
    assert [(key["kty"], key["alg"]) for key in jwks["keys"]] == [("RSA", RS256), ("EC", ES256)]
    # the next key's algorithm is announced before it signs
    assert issuer.client.get(DISCOVERY_PATHS[0]).get_json()[
        "id_token_signing_alg_values_supported"] == [RS256, ES256]
    next_kid = jwks["keys"][1]["kid"]
    pem = issuer.client.get(f"/v1/public-key?kid={next_kid}").get_data(as_text=True)
    serialization.load_pem_public_key(pem.encode())
    assert pem == key_pairs[ES256].public_pem

    promoted, _, _ = promote_state(read_state(keys_dir), now=int(time.time()),
                                   retire_after=3600)
    write_state(keys_dir, promoted)
    issuer = make_issuer(tmp_path, keys_dir=str(keys_dir),
                         key_passphrase_file=str(key_pairs[RS256].passphrase_path),
                         issuer=ISSUER_URL)
    after = issuer.token({"userId": "1"})
    assert segment(after, 0) == {"alg": ES256, "typ": "JWT", "kid": next_kid}
    assert issuer.client.get("/.well-known/jwt-auth.json").get_json()["algorithms"] == \
        [ES256, RS256]
    # the retiring RS256 key still verifies the tokens it signed, from the published JWKS
    jwks = issuer.client.get("/.well-known/jwks.json").get_json()
    for token in (before, after):
        kid = segment(token, 0)["kid"]
        [members] = [key for key in jwks["keys"] if key["kid"] == kid]
        alg = members["alg"]
        assert pyjwt.decode(token, pyjwt.PyJWK(members).key, algorithms=[alg])["sub"] == "1"
