"""ES256 and EdDSA tokens through the verifier app, next to RS256, on the test's own Redis.

The verifier trusts a PEM file holding one key of each type, with ``VERIFIER_ALGORITHMS``
allowing all three. A token without ``jti`` is revoked by its fingerprint: an ES256 token's
high-S twin (the same token, the other valid signature) is refused once either is revoked.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from tests.forge import fresh, high_s, sign, spki_pem
from tests.integration.verifier_http import assert_problem
from tests.keypairs import KeyPair

ALL = ("RS256", "ES256", "EdDSA")


@pytest.fixture
def client(make_app: Callable[..., Any], key_pair: KeyPair, tmp_path: Path,
           es_key: ec.EllipticCurvePrivateKey, ed_key: ed25519.Ed25519PrivateKey) -> Any:
    keys = tmp_path / "trusted.pem"
    keys.write_bytes(key_pair.public_pem.encode() + spki_pem(es_key) + spki_pem(ed_key))
    return make_app(public_key_file=str(keys), algorithms=ALL).test_client()


def _verify(client: Any, token: str) -> Any:
    return client.post("/v1/verify", json={"token": token})


def test_tokens_of_each_algorithm_verify_and_name_their_key(
    client: Any, key_pair: KeyPair, es_key: ec.EllipticCurvePrivateKey,
    ed_key: ed25519.Ed25519PrivateKey,
) -> None:
    for alg, key in (("RS256", key_pair), ("ES256", es_key), ("EdDSA", ed_key)):
        answer = _verify(client, fresh(key, f"user-{alg}") if alg == "RS256"
                         else sign({"userId": f"user-{alg}"}, key, alg=alg))
        assert answer.status_code == 200, answer.get_json()
        assert answer.get_json()["userId"] == f"user-{alg}"


@pytest.mark.parametrize("revoked_form", ["low", "high"])
def test_revoking_an_es256_token_refuses_its_high_s_twin(
    client: Any, es_key: ec.EllipticCurvePrivateKey, revoked_form: str
) -> None:
    low = sign({"userId": f"twin-{revoked_form}"}, es_key, alg="ES256")  # no jti
    high = high_s(low)
    assert _verify(client, low).status_code == 200
    assert _verify(client, high).status_code == 200
    revoked, other = (low, high) if revoked_form == "low" else (high, low)
    assert client.post("/v1/revocations", json={"token": revoked}).status_code == 204
    for token in (revoked, other):
        assert_problem(_verify(client, token), 401, "token_revoked")
