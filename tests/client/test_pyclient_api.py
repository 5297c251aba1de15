"""jwt_auth_client.VerifierClient against a real verifier: identities, refusals, sessions."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import jwt_auth_client
import shared.errors
import verifier.errors
from jwt_auth_client import (
    ERRORS_BY_CODE,
    Identity,
    InvalidToken,
    IssuerError,
    JwtAuthError,
    KeyUnknown,
    LoginRateExceeded,
    ServiceUnavailable,
    SessionNotFound,
    SignatureInvalid,
    StoreUnavailable,
    TokenExpired,
    TokenMalformed,
    TokenRevoked,
    VerifierClient,
    VerifierError,
    VerifierUnavailable,
)
from jwt_auth_client.errors import error_for
from tests.client.clientnet import Verifier
from tests.forge import fresh, sign
from tests.keypairs import KeyPair
from tests.procs import wait_until

pytestmark = pytest.mark.e2e


def test_a_good_token_is_a_typed_identity(client: VerifierClient, key_pair: KeyPair) -> None:
    token = fresh(key_pair, "alice", isAdmin=True, plan="gold")
    identity = client.verify(token)
    assert isinstance(identity, Identity)
    assert (identity.user_id, identity.is_admin, identity.provider) == ("alice", True, "jwt")
    assert identity.claims["plan"] == "gold"
    assert identity.expires_at == identity.claims["exp"]
    assert identity.issued_at == identity.claims["iat"]
    assert identity.revocation_checked is True
    assert client.verify(fresh(key_pair, "bob")).is_admin is False


@pytest.mark.parametrize(
    ("make", "expected", "code"),
    [
        (lambda pair, other: fresh(pair, lifetime=-3600), TokenExpired, "token_expired"),
        (lambda pair, other: fresh(other), SignatureInvalid, "signature_invalid"),
        (lambda pair, other: sign({"userId": "1"}, pair, kid="nobody"), KeyUnknown,
         "key_unknown"),
        (lambda pair, other: "not-a-token", TokenMalformed, "token_malformed"),
    ],
    ids=["expired", "bad-signature", "unknown-kid", "malformed"],
)
def test_each_refusal_is_its_own_exception(
    client: VerifierClient, key_pair: KeyPair, other_key_pair: KeyPair,
    make: object, expected: type[VerifierError], code: str,
) -> None:
    token = make(key_pair, other_key_pair)  # type: ignore[operator]
    with pytest.raises(expected) as raised:
        client.verify(token)
    error = raised.value
    assert isinstance(error, InvalidToken)
    assert isinstance(error, VerifierError)
    assert (error.status, error.code) == (401, code)
    assert error.detail
    assert error.problem["code"] == code


def test_revoke_then_verify_is_token_revoked(client: VerifierClient, key_pair: KeyPair) -> None:
    token = fresh(key_pair, "carol")
    client.verify(token)
    assert client.revoke(token) is None
    with pytest.raises(TokenRevoked) as raised:
        client.verify(token)
    assert (raised.value.status, raised.value.code) == (401, "token_revoked")
    # revoking again is harmless (the verifier answers 204 again)
    client.revoke(token)


def test_login_session_logout(client: VerifierClient, key_pair: KeyPair) -> None:
    token = fresh(key_pair, "dave", isAdmin=True)
    session = client.login(token)
    assert (session.user_id, session.is_admin, session.provider) == ("dave", True, "jwt")
    assert session.expires_at > session.created_at
    assert session.session_id not in repr(session)

    looked_up = client.session(session.session_id)
    assert looked_up == session

    client.logout(session.session_id)
    with pytest.raises(SessionNotFound) as raised:
        client.session(session.session_id)
    assert (raised.value.status, raised.value.code) == (404, "session_not_found")
    client.logout(session.session_id)  # idempotent

    with pytest.raises(TokenExpired):
        client.login(fresh(key_pair, "dave", lifetime=-3600))


def test_identify_takes_a_jwt_or_a_session_id(client: VerifierClient, key_pair: KeyPair) -> None:
    """A credential with a dot is a JWT, anything else a session id: the verifier's own rule."""
    token = fresh(key_pair, "fay", isAdmin=True, plan="gold")
    by_token = client.identify(token)
    assert by_token == client.verify(token)
    assert (by_token.session, by_token.claims["plan"]) == (False, "gold")

    session = client.login(token)
    by_session = client.identify(session.session_id)
    assert (by_session.user_id, by_session.is_admin, by_session.provider) == ("fay", True, "jwt")
    assert (by_session.session, by_session.claims, by_session.expires_at) == (True, {}, None)

    client.logout(session.session_id)
    with pytest.raises(SessionNotFound) as raised:
        client.identify(session.session_id)
    # forward-auth's answer for a session that ended: 401, where GET /v1/sessions/<id> says 404
    assert (raised.value.status, raised.value.code) == (401, "session_not_found")


def test_too_many_logins_say_when_to_come_back(client: VerifierClient, key_pair: KeyPair) -> None:
    token = fresh(key_pair, "erin")
    # VERIFIER_LOGIN_RATE as shipped: 30 logins a minute for one user
    sessions = [client.login(token) for _ in range(30)]
    with pytest.raises(LoginRateExceeded) as raised:
        client.login(token)
    assert raised.value.status == 429
    assert raised.value.retry_after is not None
    assert 1 <= raised.value.retry_after <= 60
    for session in sessions:
        client.logout(session.session_id)


def test_every_code_of_the_verifier_has_its_exception() -> None:
    """Read from the verifier's own error classes, so a new code there fails here."""

    def subclasses(base: type) -> list[type]:
        found: list[type] = []
        for sub in base.__subclasses__():
            found += [sub, *subclasses(sub)]
        return found

    codes = {error.code for error in subclasses(shared.errors.Problem)
             if error.__module__ in ("verifier.errors", "shared.errors")}
    assert "token_revoked" in codes
    missing = sorted(code for code in codes if code not in ERRORS_BY_CODE)
    assert not missing, f"no client exception for {missing}"
    for error in subclasses(verifier.errors.TokenError):
        if error.status == 401 and error.code != "session_not_found":
            assert issubclass(ERRORS_BY_CODE[error.code], InvalidToken), error.code
    # one class per code, each exported from the package
    assert len(set(ERRORS_BY_CODE.values())) == len(ERRORS_BY_CODE)
    for cls in ERRORS_BY_CODE.values():
        assert getattr(jwt_auth_client, cls.__name__) is cls


def test_verifier_errors_keep_their_tree_under_a_common_base() -> None:
    """Code written for 0.1 catches VerifierError: every verifier error still is one."""
    for cls in ERRORS_BY_CODE.values():
        assert issubclass(cls, VerifierError)
        assert issubclass(cls, JwtAuthError)
        assert not issubclass(cls, IssuerError)
    assert issubclass(StoreUnavailable, VerifierUnavailable)
    assert issubclass(VerifierUnavailable, ServiceUnavailable)
    assert ERRORS_BY_CODE["login_rate_exceeded"] is LoginRateExceeded
    error = VerifierUnavailable("down", attempts=3, status=503)
    assert (error.attempts, error.status, error.code) == (3, 503, "verifier_unavailable")


def test_an_unknown_code_is_the_base_class() -> None:
    error = error_for(418, "brand_new_code", "something new")
    assert type(error) is VerifierError
    assert (error.status, error.code, error.detail) == (418, "brand_new_code", "something new")


HEAVY = ("flask", "werkzeug", "starlette", "fastapi", "redis", "jwcrypto", "gunicorn", "urllib3",
         "requests", "httpx", "httpcore", "anyio")


def imported_after(statements: str) -> list[str]:
    """The third-party top-level modules of HEAVY a fresh interpreter has after ``statements``."""
    script = (
        f"import json, sys; {statements}; "
        f"print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}} & {set(HEAVY)!r})))"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            check=True, timeout=60)
    loaded: list[str] = json.loads(result.stdout)
    return loaded


def test_importing_the_client_imports_no_server_library_and_no_httpx() -> None:
    """The sync clients are the standard library only: httpx comes with the async ones."""
    assert imported_after("import jwt_auth_client") == []
    assert imported_after("from jwt_auth_client import IssuerClient, VerifierClient, "
                          "JwtAuthError; import jwt_auth_client.errors") == []
    # the async clients are importable from the package, and bring httpx when they are used
    assert "httpx" in imported_after("from jwt_auth_client import AsyncVerifierClient")


def test_the_package_is_typed() -> None:
    from importlib.resources import files

    assert files("jwt_auth_client").joinpath("py.typed").is_file()


# -- request ids: the verifier's log lines of a call carry the caller's id -----------------------

def test_a_call_sends_its_request_id_and_a_refusal_carries_it(
        client: VerifierClient, verifier: Verifier) -> None:
    with pytest.raises(TokenMalformed) as raised:
        client.verify("not.a.token", request_id="checkout-42")
    assert raised.value.request_id == "checkout-42"
    assert str(raised.value).endswith("[request_id=checkout-42]")
    wait_until(lambda: verifier.access_lines("checkout-42") == 1, timeout=10,
               what="the verifier's access line of the call")


def test_without_an_acceptable_id_each_call_gets_a_new_one(
        client: VerifierClient, verifier: Verifier) -> None:
    ids = []
    for offered in (None, None, "has space", "x" * 129):
        with pytest.raises(TokenMalformed) as raised:
            client.verify("not.a.token", request_id=offered)
        ids.append(raised.value.request_id)
    assert len(set(ids)) == 4
    for request_id in ids:
        assert request_id is not None
        assert len(request_id) == 24
        wait_until(lambda rid=request_id: verifier.access_lines(rid) == 1, timeout=10,
                   what="the verifier's access line of the call")
