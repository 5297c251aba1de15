"""Signing-key rotation under load: rotate, promote and the end of the retiring period.

A real issuer (``ISSUER_KEYS_DIR``) and a real verifier trusting its JWKS run under gunicorn.
Background clients mint tokens and verify a mix of new and older ones without pause while the
keys change through the real ``jwt-auth keys`` commands, as an operator would run them. Lifetimes
are seconds instead of hours; the rules are the shipped ones.
"""

from __future__ import annotations

import json
import random
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests

from issuer.keycommands import PUBLISH_SLACK
from shared.apikeys import add_client
from shared.reloading import POLL_SECONDS
from tests.forge import load_private, sign
from tests.procs import (
    CLI_CWD,
    JWT_AUTH,
    RedisServer,
    ServiceProcess,
    service_environment,
    wait_until,
)

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

TOKEN_TTL = 6  # seconds: ISSUER_TOKEN_TTL and ISSUER_MAX_TOKEN_TTL
JWKS_MAX_AGE = 2  # ISSUER_JWKS_MAX_AGE: a next key waits this long before promotion
RETIRE_AFTER = TOKEN_TTL + 3  # > the lifetime of the last token the old key signed
MARGIN = 0.5  # a token this close to its exp may be answered either way
LOAD_SECONDS_MAX = 90.0  # the clients stop by themselves even if a test hangs


@dataclass
class Minted:
    token: str
    kid: str
    exp: float | None
    minted_at: float


@dataclass
class Answer:
    sent_at: float
    minted: Minted
    status: int
    code: str | None


@dataclass
class Load:
    """Minting and verifying clients in the background, and everything they saw."""

    issuer: str
    verifier: str
    client_key: str
    minted: list[Minted] = field(default_factory=list)
    answers: list[Answer] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def mint(self) -> None:
        session = requests.Session()
        deadline = time.monotonic() + LOAD_SECONDS_MAX
        while not self.stop.is_set() and time.monotonic() < deadline:
            try:
                response = session.post(
                    f"{self.issuer}/v1/tokens", json={"userId": "load"},
                    headers={"Authorization": f"Bearer {self.client_key}"}, timeout=5,
                )
            except requests.RequestException as exc:
                self.failures.append(f"mint: {exc}")
                continue
            if response.status_code != 201:
                self.failures.append(f"mint: {response.status_code} {response.text[:200]}")
                continue
            body = response.json()
            with self.lock:
                self.minted.append(Minted(body["token"], body["kid"], body["expiresAt"],
                                          time.time()))
            self.stop.wait(0.05)

    def verify(self, extra: list[Minted]) -> None:
        session = requests.Session()
        deadline = time.monotonic() + LOAD_SECONDS_MAX
        chooser = random.Random()  # noqa: S311 - picks tokens to send, nothing secret
        while not self.stop.is_set() and time.monotonic() < deadline:
            with self.lock:
                pool = self.minted[-40:] + extra
                older = self.minted[:-40]
            if older:
                pool.append(chooser.choice(older))
            if not pool:
                time.sleep(0.01)
                continue
            minted = chooser.choice(pool)
            sent_at = time.time()
            try:
                response = session.post(f"{self.verifier}/v1/verify",
                                        json={"token": minted.token}, timeout=5)
            except requests.RequestException as exc:
                self.failures.append(f"verify: {exc}")
                continue
            code = None if response.status_code == 200 else response.json().get("code")
            with self.lock:
                self.answers.append(Answer(sent_at, minted, response.status_code, code))


@dataclass
class Stack:
    keys_dir: Path
    passphrase_file: Path
    issuer: ServiceProcess
    verifier: ServiceProcess
    client_key: str

    def keys(self, *args: str) -> subprocess.CompletedProcess[str]:
        return run_keys(self.keys_dir, self.passphrase_file, *args)


def run_keys(keys_dir: Path, passphrase_file: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``jwt-auth keys ARGS`` with the issuer's variables, as an operator runs it."""
    environment = service_environment({
        "ISSUER_KEYS_DIR": str(keys_dir),
        "ISSUER_KEY_PASSPHRASE_FILE": str(passphrase_file),
        "ISSUER_JWKS_MAX_AGE": str(JWKS_MAX_AGE),
        "ISSUER_MAX_TOKEN_TTL": str(TOKEN_TTL),
    })
    result = subprocess.run([*JWT_AUTH, "keys", *args], env=environment, cwd=CLI_CWD,
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    return result


@pytest.fixture
def stack(redis_server: RedisServer, tmp_path: Path) -> Iterator[Stack]:
    if redis_server.process is None or redis_server.process.poll() is not None:
        redis_server.start()
    keys_dir = tmp_path / "keys"
    passphrase = tmp_path / "passphrase.txt"
    passphrase.write_text("rotation passphrase\n")
    clients = tmp_path / "clients.json"
    client_key = add_client(clients, "load", admin=False, variable="ISSUER_CLIENTS_FILE")
    issuer = ServiceProcess("issuer", {
        "ISSUER_KEYS_DIR": str(keys_dir),
        "ISSUER_KEY_PASSPHRASE_FILE": str(passphrase),
        "ISSUER_CLIENTS_FILE": str(clients),
        "ISSUER_TOKEN_TTL": str(TOKEN_TTL),
        "ISSUER_MAX_TOKEN_TTL": str(TOKEN_TTL),
        "ISSUER_JWKS_MAX_AGE": str(JWKS_MAX_AGE),
        "ISSUER_RATE_LIMIT": "0",
    }, tmp_path / "issuer.log", workers=2, threads=2)
    run_keys(keys_dir, passphrase, "rotate", "--bits", "2048")  # a directory's first key: active
    issuer.start()
    verifier = ServiceProcess("verifier", {
        "VERIFIER_JWKS_URL": f"{issuer.url}/.well-known/jwks.json",
        "VERIFIER_LEEWAY": "0",
        "REDIS_URL": redis_server.url,
    }, tmp_path / "verifier.log", workers=2, threads=2)
    verifier.start()
    try:
        yield Stack(keys_dir, passphrase, issuer, verifier, client_key)
    finally:
        verifier.stop()
        issuer.stop()


def _kids(stack: Stack) -> dict[str, str]:
    body = requests.get(f"{stack.issuer.url}/readyz", timeout=5).json()
    return {key["kid"]: key["role"] for key in body["keys"]}


def _jwks_kids(stack: Stack) -> list[str]:
    response = requests.get(f"{stack.issuer.url}/.well-known/jwks.json", timeout=5)
    assert response.headers["Cache-Control"] == f"public, max-age={JWKS_MAX_AGE}"
    return [key["kid"] for key in response.json()["keys"]]


def _seed_style_token(stack: Stack, kid: str) -> Minted:
    """A token without exp signed by the key ``kid``, the way the seed's snippet signs."""
    pem = (stack.keys_dir / f"{kid}.pem").read_bytes()
    private = load_private(pem, "rotation passphrase")
    token = sign({"userId": "seed", "iat": int(time.time())}, private, kid=kid)
    return Minted(token, kid, None, time.time())


def test_rotation_under_load_refuses_no_valid_token(stack: Stack) -> None:
    old_kid = next(iter(_kids(stack)))
    seed_token = _seed_style_token(stack, old_kid)
    load = Load(stack.issuer.url, stack.verifier.url, stack.client_key)
    threads = [threading.Thread(target=load.mint, daemon=True)]
    threads += [threading.Thread(target=load.verify, args=([seed_token],), daemon=True)
                for _ in range(3)]
    for thread in threads:
        thread.start()
    try:
        time.sleep(2)

        # rotate: the new key is published at once, and does not sign yet
        new_kid = stack.keys("rotate", "--bits", "2048").stdout.split()[0]
        wait_until(lambda: _kids(stack).get(new_kid) == "next", timeout=5,
                   what="the issuer to publish next")
        # /readyz and the JWKS may come from different workers, each reloading within a second
        wait_until(lambda: _jwks_kids(stack) == [old_kid, new_kid], timeout=5,
                   what="every issuer worker to publish next")

        # promote after the JWKS cache lifetime (and the issuer's reload), as the command insists
        time.sleep(JWKS_MAX_AGE + PUBLISH_SLACK + 0.2)
        stack.keys("promote", "--retire-after", str(RETIRE_AFTER))
        promoted_at = time.time()
        wait_until(lambda: _kids(stack) == {new_kid: "active", old_kid: "retiring"}, timeout=5,
                   what="the issuer to sign with the new key")
        # each worker polls the state file once a second: all of them sign with it by then
        signing_since = max(time.time(), promoted_at + POLL_SECONDS + 1.0)
        wait_until(lambda: _jwks_kids(stack) == [new_kid, old_kid], timeout=5,
                   what="every issuer worker to publish the new order")

        # the end of the retiring period: the old key leaves the JWKS, named as retired
        time.sleep(max(0.0, promoted_at + RETIRE_AFTER - time.time()))
        wait_until(lambda: _kids(stack).get(old_kid) == "retired", timeout=5,
                   what="the old key to retire")
        dropped_at = time.time()
        document = requests.get(f"{stack.issuer.url}/.well-known/jwks.json", timeout=5).json()
        assert [key["kid"] for key in document["keys"]] == [new_kid]
        assert document["retired"] == [old_kid]
        # verifiers refetch within the JWKS max-age (the issuer's, shorter than their default
        # refetch interval of 30 s, which must not hold them back)
        time.sleep(JWKS_MAX_AGE + 2)
    finally:
        load.stop.set()
        for thread in threads:
            thread.join(timeout=10)

    assert load.failures == []
    assert not [a for a in load.answers if a.status >= 500]
    assert len(load.answers) > 200, len(load.answers)

    # no valid token refused: a token before its exp (and its key in its published period)
    # verifies; the old key's tokens all expire before the key leaves
    refused = [
        a for a in load.answers
        if a.status != 200 and a.minted.exp is not None and a.sent_at < a.minted.exp - MARGIN
    ]
    assert refused == [], refused[:5]
    expired = [a for a in load.answers if a.minted.exp is not None
               and a.sent_at > a.minted.exp + MARGIN]
    assert expired
    assert all(a.code in ("token_expired", "key_unknown") for a in expired)

    # new tokens carry the new kid once the issuer saw the promotion, old ones the old kid
    assert {m.kid for m in load.minted if m.minted_at < promoted_at - MARGIN} == {old_kid}
    assert {m.kid for m in load.minted if m.minted_at > signing_since} == {new_kid}
    new_verified = [a for a in load.answers if a.minted.kid == new_kid and a.status == 200]
    assert new_verified

    # the seed-style token (no exp) of the old key: good until the key is dropped, then
    # key_unknown once the verifiers refetched (docs/deploy.md)
    seed_answers = [a for a in load.answers if a.minted is seed_token]
    before = [a for a in seed_answers if a.sent_at < dropped_at - 1]
    after = [a for a in seed_answers if a.sent_at > dropped_at + JWKS_MAX_AGE + 1.5]
    assert before
    assert all(a.status == 200 for a in before)
    assert after
    assert all((a.status, a.code) == (401, "key_unknown") for a in after)
    # and every old-key token is now refused as such
    late = [a for a in load.answers if a.minted.kid == old_kid
            and a.sent_at > dropped_at + JWKS_MAX_AGE + 1.5]
    assert late
    assert all(a.code == "key_unknown" for a in late), json.dumps(
        [(a.status, a.code) for a in late[:5]])
