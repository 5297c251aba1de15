"""The validation pipeline with good tokens: every option, its default, and the time rules."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from shared.claimrule import json_equal
from shared.keys import load_public_keys
from tests.forge import private_key, sign
from tests.keypairs import KeyPair
from verifier.config import VerifierSettings
from verifier.errors import TokenError
from verifier.keyset import KeySet
from verifier.verification import VerificationPolicy, VerifiedToken, verify_token

NOW = 1_800_000_000.0
SEED_PAYLOAD = {"userId": "123", "isAdmin": True}


@pytest.fixture(scope="module")
def private(key_pair: KeyPair) -> rsa.RSAPrivateKey:
    return private_key(key_pair)


@pytest.fixture(scope="module")
def base_settings(key_pair: KeyPair) -> VerifierSettings:
    return VerifierSettings(public_key=key_pair.public_pem)


@pytest.fixture(scope="module")
def keys(base_settings: VerifierSettings) -> KeySet:
    return KeySet.from_settings(base_settings)


def check(
    token: str, keys: KeySet, settings: VerifierSettings, now: float = NOW
) -> VerifiedToken:
    policy = VerificationPolicy.from_settings(settings)
    return verify_token(token, keys=keys, policy=policy, now=now)


def code_of(
    token: str, keys: KeySet, settings: VerifierSettings, now: float = NOW
) -> str:
    with pytest.raises(TokenError) as caught:
        check(token, keys, settings, now)
    assert caught.value.status == 401
    return caught.value.code


def with_options(settings: VerifierSettings, **changes: Any) -> VerifierSettings:
    return dataclasses.replace(settings, **changes)


# -- the seed's token and what comes back --------------------------------------------------------


def test_seed_payload_verifies_with_everything_the_service_needs(
    private: rsa.RSAPrivateKey, keys: KeySet, base_settings: VerifierSettings, key_pair: KeyPair
) -> None:
    payload = {**SEED_PAYLOAD, "iat": NOW - 10, "team": "blue"}
    token = sign(payload, private)
    result = check(token, keys, base_settings)
    assert result.user_id == "123"
    assert result.is_admin is True
    assert result.provider == "jwt"
    assert result.claims == payload
    assert result.issued_at == NOW - 10
    assert result.expires_at is None
    assert result.jti is None
    assert result.kid == load_public_keys(key_pair.public_pem.encode(), source="t")[0].kid


def test_a_token_without_exp_never_expires_by_default(
    private: rsa.RSAPrivateKey, keys: KeySet, base_settings: VerifierSettings
) -> None:
    # the reference checked exp only when present; the seed's snippet makes such tokens
    token = sign({"userId": "123", "iat": 1_000_000_000}, private)
    assert check(token, keys, base_settings, now=4_000_000_000).user_id == "123"


def test_jti_and_exp_are_reported(
    private: rsa.RSAPrivateKey, keys: KeySet, base_settings: VerifierSettings
) -> None:
    token = sign({"userId": "u", "jti": "abc", "exp": NOW + 60}, private)
    result = check(token, keys, base_settings)
    assert (result.jti, result.expires_at) == ("abc", NOW + 60)


def test_the_policy_defaults_are_the_reference_providers() -> None:
    policy = VerificationPolicy.from_settings(VerifierSettings(public_key="x"))
    assert policy.algorithms == frozenset({"RS256"})
    assert policy.user_id_field == "userId"
    assert policy.is_admin_field == "isAdmin"
    assert policy.is_admin_value is True
    assert dict(policy.required_attributes) == {}
    assert policy.provider_name == "jwt"
    assert policy.escape_characters == ("|",)
    assert (policy.require_exp, policy.max_token_age, policy.audience, policy.issuer) == (
        False, 0, None, None,
    )


# -- isAdmin ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("payload", "admin"), [
    ({"userId": "u"}, False),
    ({"userId": "u", "isAdmin": False}, False),
    ({"userId": "u", "isAdmin": True}, True),
])
def test_admin_only_when_the_flag_is_true(
    payload: dict[str, Any], admin: bool,
    private: rsa.RSAPrivateKey, keys: KeySet, base_settings: VerifierSettings,
) -> None:
    assert check(sign(payload, private), keys, base_settings).is_admin is admin


@pytest.mark.parametrize("value", ["true", 1, None, "false", 0, [True], {"a": True}])
def test_admin_flag_of_another_type_is_refused_by_default(
    value: Any, private: rsa.RSAPrivateKey, keys: KeySet, base_settings: VerifierSettings
) -> None:
    token = sign({"userId": "u", "isAdmin": value}, private)
    assert code_of(token, keys, base_settings) == "claim_invalid"


@pytest.mark.parametrize(("configured", "claim", "admin"), [
    ('"yes"', "yes", True),
    ('"yes"', "YES", False),
    ('"yes"', True, False),
    ("1", 1, True),
    ("1", True, False),
    ("1", "1", False),
    ('{"level": "root"}', {"level": "root"}, True),
    ('{"level": "root"}', {"level": "root", "x": 1}, False),
    ("false", False, True),
    ("false", True, False),
])
def test_custom_admin_value_is_compared_strictly(
    configured: str, claim: Any, admin: bool,
    private: rsa.RSAPrivateKey, keys: KeySet, key_pair: KeyPair,
) -> None:
    settings = VerifierSettings.from_env({
        "VERIFIER_PUBLIC_KEY": key_pair.public_pem,
        "VERIFIER_IS_ADMIN_VALUE": configured,
        "VERIFIER_IS_ADMIN_FIELD": "role",
    })
    token = sign({"userId": "u", "role": claim}, private)
    assert check(token, keys, settings).is_admin is admin


def test_custom_admin_value_with_absent_field_is_not_admin(
    private: rsa.RSAPrivateKey, keys: KeySet, base_settings: VerifierSettings
) -> None:
    settings = with_options(base_settings, is_admin_value="yes")
    assert check(sign({"userId": "u"}, private), keys, settings).is_admin is False


def test_custom_admin_field_name(
    private: rsa.RSAPrivateKey, keys: KeySet, base_settings: VerifierSettings
) -> None:
    settings = with_options(base_settings, is_admin_field="admin")
    assert check(sign({"userId": "u", "admin": True}, private), keys, settings).is_admin
    # the default field name means nothing once another is configured
    assert not check(sign({"userId": "u", "isAdmin": True}, private), keys, settings).is_admin


# -- the user id -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("user_id", "escape", "expected"), [
    ("a|b|c", ("|",), "a_b_c"),
    ("||", ("|",), "__"),
    ("plain", ("|",), "plain"),
    ("a/b|c:d", ("|", "/", ":"), "a_b_c_d"),
    ("a|b", (), "a|b"),
    ("a::b::c", ("::",), "a_b_c"),
])
def test_escape_characters_are_replaced_everywhere(
    user_id: str, escape: tuple[str, ...], expected: str,
    private: rsa.RSAPrivateKey, keys: KeySet, base_settings: VerifierSettings,
) -> None:
    settings = with_options(base_settings, escape_characters=escape)
    result = check(sign({"userId": user_id}, private), keys, settings)
    assert result.user_id == expected
    # the claims stay as signed
    assert result.claims["userId"] == user_id


def test_escape_characters_from_the_environment(
    private: rsa.RSAPrivateKey, keys: KeySet, key_pair: KeyPair
) -> None:
    settings = VerifierSettings.from_env({
        "VERIFIER_PUBLIC_KEY": key_pair.public_pem, "VERIFIER_ESCAPE_CHARACTERS": "|,/",
    })
    assert check(sign({"userId": "x|y/z|w"}, private), keys, settings).user_id == "x_y_z_w"


def test_custom_user_id_field(
    private: rsa.RSAPrivateKey, keys: KeySet, base_settings: VerifierSettings
) -> None:
    settings = with_options(base_settings, user_id_field="sub")
    assert check(sign({"sub": "s-1"}, private), keys, settings).user_id == "s-1"
    with pytest.raises(TokenError) as caught:
        check(sign({"userId": "u"}, private), keys, settings)
    assert caught.value.code == "claim_missing"
    assert caught.value.detail == "The payload is missing or it doesn't contain the field sub"


@pytest.mark.parametrize("payload", [{}, {"userId": ""}, {"userId": None}, {"userId": 0},
                                     {"userId": False}, {"user_id": "u"}])
def test_missing_or_falsy_user_id_has_the_reference_message(
    payload: dict[str, Any], private: rsa.RSAPrivateKey, keys: KeySet,
    base_settings: VerifierSettings,
) -> None:
    with pytest.raises(TokenError) as caught:
        check(sign(payload, private), keys, base_settings)
    assert caught.value.code == "claim_missing"
    assert caught.value.detail == "The payload is missing or it doesn't contain the field userId"


def test_provider_name(
    private: rsa.RSAPrivateKey, keys: KeySet, base_settings: VerifierSettings
) -> None:
    settings = with_options(base_settings, provider_name="corp-sso")
    assert check(sign({"userId": "u"}, private), keys, settings).provider == "corp-sso"


# -- required attributes ---------------------------------------------------------------------------

REQUIRED = {"org": "acme", "level": 3, "beta": True, "tags": ["a", "b"], "meta": {"x": None}}


def test_required_attributes_all_equal_pass(
    private: rsa.RSAPrivateKey, keys: KeySet, base_settings: VerifierSettings
) -> None:
    settings = with_options(base_settings, required_attributes=REQUIRED)
    payload = {"userId": "u", **REQUIRED, "level": 3.0, "extra": 1}
    assert check(sign(payload, private), keys, settings).user_id == "u"


@pytest.mark.parametrize(("name", "value"), [
    ("org", "ACME"), ("org", None), ("level", "3"), ("level", 4), ("beta", 1), ("beta", "true"),
    ("tags", ["b", "a"]), ("tags", ["a"]), ("meta", {}), ("meta", {"x": False}),
    ("meta", {"x": None, "y": 1}),
])
def test_required_attributes_compare_with_json_types(
    name: str, value: Any, private: rsa.RSAPrivateKey, keys: KeySet,
    base_settings: VerifierSettings,
) -> None:
    settings = with_options(base_settings, required_attributes=REQUIRED)
    payload = {"userId": "u", **REQUIRED, name: value}
    assert code_of(sign(payload, private), keys, settings) == "attributes_mismatch"


def test_required_attribute_absent_is_a_mismatch(
    private: rsa.RSAPrivateKey, keys: KeySet, key_pair: KeyPair
) -> None:
    settings = VerifierSettings.from_env({
        "VERIFIER_PUBLIC_KEY": key_pair.public_pem,
        "VERIFIER_REQUIRED_ATTRIBUTES": '{"tenant": null}',
    })
    assert code_of(sign({"userId": "u"}, private), keys, settings) == "attributes_mismatch"
    assert check(sign({"userId": "u", "tenant": None}, private), keys, settings).user_id == "u"


def test_json_equal_keeps_types_apart() -> None:
    assert json_equal(True, True)
    assert json_equal(1, 1.0)
    for left, right in [(True, 1), (1, True), ("1", 1), (None, False), (0, False), ("", None)]:
        assert not json_equal(left, right), (left, right)


# -- time ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("leeway", "now_minus_exp", "code"), [
    (30, -1, None), (30, 29, None), (30, 30, "token_expired"), (0, 0, "token_expired"),
    (0, -1, None), (3600, 3599, None), (3600, 3601, "token_expired"),
])
def test_exp_with_leeway(
    leeway: int, now_minus_exp: int, code: str | None,
    private: rsa.RSAPrivateKey, keys: KeySet, base_settings: VerifierSettings,
) -> None:
    settings = with_options(base_settings, leeway=leeway)
    token = sign({"userId": "u", "exp": NOW - now_minus_exp}, private)
    if code is None:
        assert check(token, keys, settings).expires_at == NOW - now_minus_exp
    else:
        assert code_of(token, keys, settings) == code


@pytest.mark.parametrize(("leeway", "nbf_minus_now", "code"), [
    (30, 30, None), (30, 31, "token_not_yet_valid"), (0, 0, None), (0, 1, "token_not_yet_valid"),
    (0, -100, None),
])
def test_nbf_with_leeway(
    leeway: int, nbf_minus_now: int, code: str | None,
    private: rsa.RSAPrivateKey, keys: KeySet, base_settings: VerifierSettings,
) -> None:
    settings = with_options(base_settings, leeway=leeway)
    token = sign({"userId": "u", "nbf": NOW + nbf_minus_now}, private)
    if code is None:
        assert check(token, keys, settings).user_id == "u"
    else:
        assert code_of(token, keys, settings) == code


@pytest.mark.parametrize(("leeway", "iat_minus_now", "code"), [
    (30, 30, None), (30, 31, "token_not_yet_valid"), (0, 0.5, "token_not_yet_valid"),
    (0, -1e6, None),
])
def test_iat_in_the_future_beyond_leeway(
    leeway: int, iat_minus_now: float, code: str | None,
    private: rsa.RSAPrivateKey, keys: KeySet, base_settings: VerifierSettings,
) -> None:
    settings = with_options(base_settings, leeway=leeway)
    token = sign({"userId": "u", "iat": NOW + iat_minus_now}, private)
    if code is None:
        assert check(token, keys, settings).issued_at == NOW + iat_minus_now
    else:
        assert code_of(token, keys, settings) == code


def test_require_exp(
    private: rsa.RSAPrivateKey, keys: KeySet, base_settings: VerifierSettings
) -> None:
    settings = with_options(base_settings, require_exp=True)
    assert code_of(sign({"userId": "u", "iat": NOW}, private), keys, settings) == "claim_missing"
    assert check(sign({"userId": "u", "exp": NOW + 5}, private), keys, settings).user_id == "u"


@pytest.mark.parametrize(("payload", "code"), [
    ({"iat": NOW - 600}, None),
    ({"iat": NOW - 630}, None),  # max age plus the 30 s leeway
    ({"iat": NOW - 631}, "token_too_old"),
    ({}, "claim_missing"),
    ({"nbf": NOW - 10}, "claim_missing"),
    # max age governs only tokens without exp: exp says how long the issuer meant it to live
    ({"iat": NOW - 10_000, "exp": NOW + 10}, None),
    ({"exp": NOW + 10}, None),
])
def test_max_token_age_for_tokens_without_exp(
    payload: dict[str, Any], code: str | None,
    private: rsa.RSAPrivateKey, keys: KeySet, base_settings: VerifierSettings,
) -> None:
    settings = with_options(base_settings, max_token_age=600)
    token = sign({"userId": "u", **payload}, private)
    if code is None:
        assert check(token, keys, settings).user_id == "u"
    else:
        assert code_of(token, keys, settings) == code


def test_expired_beats_the_other_time_rules(
    private: rsa.RSAPrivateKey, keys: KeySet, base_settings: VerifierSettings
) -> None:
    token = sign({"userId": "u", "exp": NOW - 100, "nbf": NOW + 100}, private)
    assert code_of(token, keys, with_options(base_settings, leeway=0)) == "token_expired"


# -- audience and issuer ---------------------------------------------------------------------------


@pytest.mark.parametrize(("aud", "code"), [
    ("api", None), (["other", "api"], None), (["api"], None), ("API", "claim_invalid"),
    (["other"], "claim_invalid"), ([], "claim_invalid"), ("other", "claim_invalid"),
    (5, "claim_invalid"), ([5], "claim_invalid"), (None, "claim_invalid"),
])
def test_audience_string_or_list(
    aud: Any, code: str | None,
    private: rsa.RSAPrivateKey, keys: KeySet, base_settings: VerifierSettings,
) -> None:
    settings = with_options(base_settings, audience="api")
    token = sign({"userId": "u", "aud": aud}, private)
    if code is None:
        assert check(token, keys, settings).claims["aud"] == aud
    else:
        assert code_of(token, keys, settings) == code


def test_audience_absent_when_required_is_missing(
    private: rsa.RSAPrivateKey, keys: KeySet, base_settings: VerifierSettings
) -> None:
    settings = with_options(base_settings, audience="api")
    assert code_of(sign({"userId": "u"}, private), keys, settings) == "claim_missing"


def test_audience_not_configured_accepts_any(
    private: rsa.RSAPrivateKey, keys: KeySet, base_settings: VerifierSettings
) -> None:
    assert check(sign({"userId": "u", "aud": "x"}, private), keys, base_settings).user_id == "u"


@pytest.mark.parametrize(("payload", "code"), [
    ({"iss": "https://auth.example"}, None),
    ({"iss": "https://auth.example/"}, "claim_invalid"),
    ({"iss": "https://evil.example"}, "claim_invalid"),
    ({"iss": 5}, "claim_invalid"),
    ({}, "claim_missing"),
])
def test_issuer(
    payload: dict[str, Any], code: str | None,
    private: rsa.RSAPrivateKey, keys: KeySet, base_settings: VerifierSettings,
) -> None:
    settings = with_options(base_settings, issuer="https://auth.example")
    token = sign({"userId": "u", **payload}, private)
    if code is None:
        assert check(token, keys, settings).claims["iss"] == "https://auth.example"
    else:
        assert code_of(token, keys, settings) == code


# -- algorithms and header -------------------------------------------------------------------------


def test_other_rsa_algorithms_only_when_configured(
    private: rsa.RSAPrivateKey, keys: KeySet, base_settings: VerifierSettings
) -> None:
    for alg in ("PS256", "RS512"):
        token = sign({"userId": "u"}, private, alg=alg)
        assert code_of(token, keys, base_settings) == "algorithm_not_allowed"
        settings = with_options(base_settings, algorithms=("RS256", alg))
        assert check(token, keys, settings).user_id == "u"


def test_algorithm_in_header_is_pinned_for_the_signature(
    private: rsa.RSAPrivateKey, keys: KeySet, base_settings: VerifierSettings
) -> None:
    # a PS256 signature under a header that says RS256 must not verify
    ps = sign({"userId": "u"}, private, alg="PS256").split(".")
    rs = sign({"userId": "u"}, private).split(".")
    settings = with_options(base_settings, algorithms=("RS256", "PS256"))
    assert code_of(f"{rs[0]}.{rs[1]}.{ps[2]}", keys, settings) == "signature_invalid"


@pytest.mark.parametrize("typ", ["JWT", "jwt", "application/jwt", None])
def test_typ_jwt_or_absent(
    typ: str | None, private: rsa.RSAPrivateKey, keys: KeySet, base_settings: VerifierSettings
) -> None:
    header: dict[str, Any] = {"alg": "RS256"} if typ is None else {"alg": "RS256", "typ": typ}
    assert check(sign({"userId": "u"}, private, header=header), keys, base_settings).user_id == "u"


@pytest.mark.parametrize("typ", ["at+jwt", "JWS", "", 1, None])
def test_other_typ_is_refused(
    typ: Any, private: rsa.RSAPrivateKey, keys: KeySet, base_settings: VerifierSettings
) -> None:
    token = sign({"userId": "u"}, private, header={"alg": "RS256", "typ": typ})
    assert code_of(token, keys, base_settings) == "token_malformed"


def test_kid_of_the_configured_key_selects_it(
    private: rsa.RSAPrivateKey, keys: KeySet, base_settings: VerifierSettings
) -> None:
    kid = keys.keys()[0].kid
    token = sign({"userId": "u"}, private, header={"alg": "RS256", "kid": kid})
    assert check(token, keys, base_settings).kid == kid


# -- the guarantee: only TokenError escapes --------------------------------------------------------


class _BrokenKeySet(KeySet):
    """A key set whose lookup fails in a way verification does not expect."""

    def select(self, kid: str | None, alg: str | None = None) -> Any:
        raise RuntimeError("boom")


def test_an_unexpected_failure_inside_becomes_token_malformed(
    private: rsa.RSAPrivateKey, base_settings: VerifierSettings
) -> None:
    token = sign({"userId": "u"}, private)
    policy = VerificationPolicy.from_settings(base_settings)
    with pytest.raises(TokenError) as caught:
        verify_token(token, keys=_BrokenKeySet(), policy=policy, now=NOW)
    assert caught.value.code == "token_malformed"
    assert "boom" not in caught.value.detail


@pytest.mark.parametrize("value", [None, b"a.b.c", 5, ["a", "b", "c"]])
def test_a_token_that_is_not_a_string(
    value: Any, keys: KeySet, base_settings: VerifierSettings
) -> None:
    assert code_of(value, keys, base_settings) == "token_malformed"
