"""jwt_auth_client.IssuerClient against a real issuer: tokens, refusals by code, rate limit.

The tokens it gets are checked by the real verifier of the same key pair; requests and
connections are counted by a TCP proxy in front of the real issuer.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import issuer.errors as issuer_errors
import jwt_auth_client
import shared.errors
from jwt_auth_client import (
    ERRORS_BY_CODE,
    ISSUER_ERRORS_BY_CODE,
    AdminNotPermitted,
    ApiKeyInvalid,
    ApiKeyMissing,
    ClaimInvalid,
    ClaimReserved,
    ExpiresInInvalid,
    IssuedToken,
    IssuerClaimInvalid,
    IssuerClient,
    IssuerError,
    IssuerUnavailable,
    JwtAuthError,
    RateLimited,
    ServiceUnavailable,
    VerifierClient,
    VerifierError,
)
from jwt_auth_client.errors import ISSUER_ERRORS
from shared.apikeys import add_client
from tests.client.clientnet import CountingProxy, Issuer
from tests.keypairs import KeyPair
from tests.procs import ServiceProcess, issuer_env, wait_until

pytestmark = pytest.mark.e2e


@pytest.fixture
def issuer_client(issuer: Issuer) -> Iterator[IssuerClient]:
    with IssuerClient(issuer.url, issuer.client_key, retries=0) as made:
        yield made


def test_issue_is_a_typed_frozen_token_the_verifier_accepts(
        issuer_client: IssuerClient, client: VerifierClient) -> None:
    before = int(time.time())
    issued = issuer_client.issue("alice", claims={"plan": "gold"}, expires_in=600)
    assert isinstance(issued, IssuedToken)
    assert issued.token_type == "Bearer"
    assert issued.jti
    assert issued.kid
    assert issued.expires_at is not None
    assert before + 600 <= issued.expires_at <= int(time.time()) + 600
    assert issued.token not in repr(issued)  # a bearer credential stays out of logs
    with pytest.raises(dataclasses.FrozenInstanceError):
        issued.token = "x"  # type: ignore[misc]

    identity = client.verify(issued.token)
    assert (identity.user_id, identity.is_admin) == ("alice", False)
    assert identity.claims["plan"] == "gold"
    assert identity.claims["jti"] == issued.jti
    assert identity.expires_at == issued.expires_at


def test_an_admin_client_issues_admin_tokens(issuer: Issuer, client: VerifierClient) -> None:
    with IssuerClient(issuer.url, issuer.admin_key) as backoffice:
        issued = backoffice.issue("root", is_admin=True)
    assert client.verify(issued.token).is_admin is True


def test_each_refusal_is_its_own_exception(issuer: Issuer) -> None:
    with contextlib.ExitStack() as stack:
        def with_key(key: str) -> IssuerClient:
            return stack.enter_context(IssuerClient(issuer.url, key, retries=0))

        webapp = with_key(issuer.client_key)
        cases: list[tuple[str, Callable[[], IssuedToken], type[IssuerError], int]] = [
            ("api_key_missing", lambda: with_key("").issue("1"), ApiKeyMissing, 401),
            ("api_key_invalid", lambda: with_key("not-a-client-key").issue("1"),
             ApiKeyInvalid, 401),
            ("admin_not_permitted", lambda: webapp.issue("1", is_admin=True),
             AdminNotPermitted, 403),
            ("claim_invalid", lambda: webapp.issue(""), IssuerClaimInvalid, 422),
            ("claim_reserved", lambda: webapp.issue("1", claims={"exp": 1}), ClaimReserved,
             422),
            ("expires_in_invalid", lambda: webapp.issue("1", expires_in=0), ExpiresInInvalid,
             400),
        ]
        # every code the issuer answers to POST /v1/tokens but the rate limit (its own test)
        assert ({code for code, *_ in cases} | {"rate_limited"}
                == _issuer_codes() - {"key_not_found"})
        for code, call, expected, status in cases:
            with pytest.raises(expected) as raised:
                call()
            error = raised.value
            assert (error.status, error.code, error.problem["code"]) == (status, code, code)
            assert error.detail
            assert isinstance(error, IssuerError)
            assert isinstance(error, JwtAuthError)
            # code that catches VerifierError around verifier calls never sees an issuer error
            assert not isinstance(error, VerifierError)
            assert error.request_id is not None


def test_a_refusal_names_the_member_at_fault(issuer_client: IssuerClient) -> None:
    with pytest.raises(ClaimReserved) as raised:
        issuer_client.issue("1", claims={"iat": 5})
    assert raised.value.problem["field"] == "iat"
    with pytest.raises(AdminNotPermitted) as forbidden:
        issuer_client.issue("1", is_admin=True)
    assert forbidden.value.problem["field"] == "isAdmin"


def test_a_code_both_services_answer_is_the_issuers_base_class(
        issuer_client: IssuerClient) -> None:
    """payload_too_large is no issuer code of its own: from the issuer it is an IssuerError."""
    with pytest.raises(IssuerError) as raised:
        issuer_client.issue("1", claims={"blob": "x" * 20_000})  # over ISSUER_MAX_BODY_BYTES
    assert type(raised.value) is IssuerError
    assert (raised.value.status, raised.value.code) == (413, "payload_too_large")


def test_claims_may_not_set_the_arguments_again(issuer_client: IssuerClient) -> None:
    with pytest.raises(ValueError, match="user_id= and is_admin="):
        issuer_client.issue("1", claims={"isAdmin": True})


def test_rate_limited_says_when_to_come_back_and_is_not_retried(
        key_pair: KeyPair, tmp_path: Path) -> None:
    clients = tmp_path / "clients.json"
    key = add_client(clients, "webapp", admin=False, variable="ISSUER_CLIENTS_FILE")
    # one token a minute: the second request of the test is over it, however slow the machine
    service = ServiceProcess("issuer", issuer_env(key_pair, clients, ISSUER_RATE_LIMIT="1"),
                             tmp_path / "issuer.log", workers=1)
    service.start()
    try:
        with CountingProxy(service.port) as proxy, \
                IssuerClient(proxy.url, key, retries=3, backoff=0.01) as limited:
            limited.issue("1")
            with pytest.raises(RateLimited) as raised:
                limited.issue("1")
            assert proxy.requests == 2
    finally:
        service.stop()
    error = raised.value
    assert (error.status, error.code) == (429, "rate_limited")
    assert error.retry_after is not None
    assert 1 <= error.retry_after <= 60


def test_a_call_sends_its_request_id_and_a_refusal_carries_it(
        issuer: Issuer, issuer_client: IssuerClient) -> None:
    issuer_client.issue("1", request_id="login-7")
    with pytest.raises(ApiKeyInvalid) as raised, \
            IssuerClient(issuer.url, "wrong-key") as wrong:
        wrong.issue("1", request_id="login-8")
    assert raised.value.request_id == "login-8"
    assert str(raised.value).endswith("[request_id=login-8]")
    for request_id in ("login-7", "login-8"):
        wait_until(lambda rid=request_id: issuer.access_lines(rid) == 1, timeout=10,
                   what=f"the issuer's access line under {request_id}")


def test_one_connection_carries_every_call(issuer: Issuer) -> None:
    with CountingProxy(issuer.service.port) as proxy:
        with IssuerClient(proxy.url, issuer.client_key) as kept_alive:
            for user in ("1", "2", "3"):
                kept_alive.issue(user)
            with pytest.raises(AdminNotPermitted):
                kept_alive.issue("4", is_admin=True)
        assert (proxy.requests, proxy.connections) == (4, 1)


def test_no_answer_is_retried_then_issuer_unavailable() -> None:
    with CountingProxy(None) as dead, \
            IssuerClient(dead.url, "key", retries=2, backoff=0.01) as unreachable, \
            pytest.raises(IssuerUnavailable) as raised:
        unreachable.issue("1", request_id="no-answer-2")
    error = raised.value
    assert isinstance(error, ServiceUnavailable)
    assert not isinstance(error, VerifierError)
    assert (error.attempts, error.status, error.request_id) == (3, 0, "no-answer-2")
    assert dead.connections == 3


def _issuer_codes() -> set[str]:
    def subclasses(base: type) -> list[type]:
        found: list[type] = []
        for sub in base.__subclasses__():
            found += [sub, *subclasses(sub)]
        return found

    return {error.code for error in subclasses(shared.errors.Problem)
            if error.__module__ == "issuer.errors"}


def test_every_code_of_the_issuer_has_its_exception() -> None:
    """Read from the issuer's own error classes, so a new code there fails here."""
    codes = _issuer_codes()
    assert "rate_limited" in codes
    # key_not_found answers GET /v1/keys/<kid>, which no client calls
    missing = sorted(code for code in codes - {"key_not_found"}
                     if code not in ISSUER_ERRORS_BY_CODE)
    assert not missing, f"no client exception for {missing}"
    for cls in ISSUER_ERRORS_BY_CODE.values():
        assert issubclass(cls, IssuerError)
        assert getattr(jwt_auth_client, cls.__name__) is cls
    # one code, two meanings: a refused payload from the issuer, a refused token from the verifier
    assert issuer_errors.ClaimInvalid.status == 422
    assert ISSUER_ERRORS_BY_CODE["claim_invalid"] is IssuerClaimInvalid
    assert ERRORS_BY_CODE["claim_invalid"] is ClaimInvalid


def test_an_unknown_issuer_code_is_the_issuer_base_class() -> None:
    error = ISSUER_ERRORS.error_for(418, "brand_new_code", "something new")
    assert type(error) is IssuerError
    assert (error.status, error.code) == (418, "brand_new_code")
    unavailable = ISSUER_ERRORS.error_for(503, None, "down", attempts=3)
    assert type(unavailable) is IssuerUnavailable
    assert isinstance(unavailable, IssuerUnavailable)
    assert unavailable.attempts == 3
