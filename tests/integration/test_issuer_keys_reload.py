"""The issuer picks up changed signing keys in place, and keeps working keys when the new ones fail.

In-process through Flask's test client, the reloads driven by the app's own ``Reloader``
(``check()`` is one poll of a worker, ``reload_all()`` is SIGHUP), so nothing waits on a timer.
The last test sends a real SIGHUP to a real gunicorn master.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt as pyjwt
import pytest
import requests
from flask.testing import FlaskClient

from issuer.app import create_app
from issuer.config import IssuerSettings
from issuer.keyring import (
    ACTIVE,
    NEXT,
    RETIRING,
    KeyState,
    SigningKeys,
    promote,
    read_state,
    record_for,
    write_state,
)
from shared.apikeys import add_client
from shared.errors import ConfigError
from shared.files import write_atomically
from shared.keys import generate_key_pair, load_public_keys
from shared.reloading import Reloader
from tests.keypairs import KeyPair, make_keys_dir
from tests.procs import ServiceProcess, wait_until

JWKS_MAX_AGE = 123
RETIRE_AFTER = 3600
KEPT = "kept the signing keys"


def kid_of(pair: KeyPair) -> str:
    return load_public_keys(pair.public_pem.encode(), source="test")[0].kid


def header(token: str) -> dict[str, Any]:
    part = token.split(".")[0]
    decoded: dict[str, Any] = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    return decoded


def promote_in(directory: Path) -> None:
    promoted, _, _ = promote(read_state(directory), now=int(time.time()),
                             retire_after=RETIRE_AFTER)
    write_state(directory, promoted)


@dataclass
class Issuer:
    client: FlaskClient
    reloader: Reloader
    api_key: str
    keys_dir: Path

    def mint(self) -> dict[str, Any]:
        response = self.client.post("/v1/tokens", json={"userId": "7"},
                                    headers={"Authorization": f"Bearer {self.api_key}"})
        assert response.status_code == 201, response.get_data(as_text=True)
        body: dict[str, Any] = response.get_json()
        assert header(body["token"])["kid"] == body["kid"]
        return body

    def jwks_kids(self) -> list[str]:
        response = self.client.get("/.well-known/jwks.json")
        assert response.status_code == 200
        assert response.headers["Cache-Control"] == f"public, max-age={JWKS_MAX_AGE}"
        return [key["kid"] for key in response.get_json()["keys"]]


def start(tmp_path: Path, passphrase_file: Path, **settings: Any) -> Issuer:
    clients = tmp_path / "clients.json"
    api_key = add_client(clients, "webapp", admin=False, variable="ISSUER_CLIENTS_FILE")
    app = create_app(IssuerSettings(key_passphrase_file=str(passphrase_file),
                                    clients_file=str(clients), rate_limit=0,
                                    jwks_max_age=JWKS_MAX_AGE, **settings))
    reloader = app.extensions["jwt_auth.reloader"]
    assert isinstance(reloader, Reloader)
    return Issuer(app.test_client(), reloader, api_key,
                  Path(settings.get("keys_dir") or tmp_path))


@pytest.fixture
def issuer(tmp_path: Path, key_pair: KeyPair, other_key_pair: KeyPair) -> Issuer:
    keys_dir = tmp_path / "keys"
    make_keys_dir(keys_dir, key_pair, other_key_pair)
    return start(tmp_path, key_pair.passphrase_path, keys_dir=str(keys_dir))


@dataclass
class GunicornIssuer:
    """A real issuer under gunicorn on a keys directory, and a client that mints with it."""

    service: ServiceProcess
    api_key: str
    session: requests.Session

    def minted_kid(self) -> str:
        response = self.session.post(f"{self.service.url}/v1/tokens", json={"userId": "7"},
                                     headers={"Authorization": f"Bearer {self.api_key}"},
                                     timeout=5)
        assert response.status_code == 201, response.text
        kid: str = response.json()["kid"]
        return kid


@contextlib.contextmanager
def gunicorn_issuer(
    tmp_path: Path, active: KeyPair, upcoming: KeyPair, *, workers: int
) -> Iterator[GunicornIssuer]:
    """``tmp_path/keys`` made with ``active`` and ``upcoming``, served until the block ends."""
    keys_dir = tmp_path / "keys"
    make_keys_dir(keys_dir, active, upcoming)
    clients = tmp_path / "clients.json"
    api_key = add_client(clients, "webapp", admin=False, variable="ISSUER_CLIENTS_FILE")
    service = ServiceProcess("issuer", {
        "ISSUER_KEYS_DIR": str(keys_dir),
        "ISSUER_KEY_PASSPHRASE_FILE": str(active.passphrase_path),
        "ISSUER_CLIENTS_FILE": str(clients),
        "ISSUER_RATE_LIMIT": "0",
    }, tmp_path / "issuer.log", workers=workers, threads=2)
    service.start()
    live = GunicornIssuer(service, api_key, requests.Session())
    try:
        yield live
    finally:
        live.session.close()  # the one in use then: a test may have replaced it
        service.stop()


def kept_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert all(message.startswith(KEPT) for message in errors), errors
    return errors


def test_jwks_lists_the_active_key_then_the_next_one(
    issuer: Issuer, key_pair: KeyPair, other_key_pair: KeyPair
) -> None:
    assert issuer.jwks_kids() == [kid_of(key_pair), kid_of(other_key_pair)]
    assert "retired" not in issuer.client.get("/.well-known/jwks.json").get_json()
    body = issuer.mint()
    assert body["kid"] == kid_of(key_pair)
    pyjwt.decode(body["token"], key_pair.public_pem, algorithms=["RS256"])
    assert issuer.reloader.check() == 0  # nothing changed


def test_a_promotion_is_picked_up_by_the_next_check(
    issuer: Issuer, key_pair: KeyPair, other_key_pair: KeyPair
) -> None:
    old, new = kid_of(key_pair), kid_of(other_key_pair)
    promote_in(issuer.keys_dir)
    assert issuer.mint()["kid"] == old  # not yet looked at
    assert issuer.reloader.check() == 1
    body = issuer.mint()
    assert body["kid"] == new
    claims = pyjwt.decode(body["token"], other_key_pair.public_pem, algorithms=["RS256"])
    assert claims["userId"] == "7"
    with pytest.raises(pyjwt.InvalidSignatureError):
        pyjwt.decode(body["token"], key_pair.public_pem, algorithms=["RS256"])
    # the old key stays published, after the signing one, until its tokens have expired
    assert issuer.jwks_kids() == [new, old]
    ready = issuer.client.get("/readyz")
    assert ready.status_code == 200
    until = read_state(issuer.keys_dir).find(old)
    assert until is not None
    assert ready.get_json()["kid"] == new
    assert ready.get_json()["keys"] == [
        {"kid": new, "role": ACTIVE, "publishedUntil": None},
        {"kid": old, "role": RETIRING, "publishedUntil": until.published_until},
    ]
    assert issuer.reloader.check() == 0


def test_a_damaged_state_file_keeps_the_old_keys_until_it_is_fixed(
    issuer: Issuer, key_pair: KeyPair, other_key_pair: KeyPair,
    caplog: pytest.LogCaptureFixture,
) -> None:
    state_file = issuer.keys_dir / "keys.json"
    good = state_file.read_bytes()
    with caplog.at_level(logging.INFO, logger="shared.reloading"):
        write_atomically(state_file, b'{"version": 1, "keys": [')
        assert issuer.reloader.check() == 0
        assert issuer.reloader.check() == 0  # the same damage is not reported again
        assert len(kept_lines(caplog)) == 1
        assert issuer.mint()["kid"] == kid_of(key_pair)
        assert issuer.jwks_kids() == [kid_of(key_pair), kid_of(other_key_pair)]

        write_atomically(state_file, b"not json at all, and longer than before\n")
        assert issuer.reloader.check() == 0
        [_, second] = kept_lines(caplog)
        assert "\n" not in second
        assert "not JSON" in second
        assert str(issuer.keys_dir) in second

        # SIGHUP reads it again whatever it looks like: one more line, the keys kept
        issuer.reloader.reload_all()
        assert len(kept_lines(caplog)) == 3
        assert issuer.mint()["kid"] == kid_of(key_pair)

        write_atomically(state_file, good)
        promote_in(issuer.keys_dir)  # the repaired file, with a promotion to tell it apart
        assert issuer.reloader.check() == 1
    assert len(kept_lines(caplog)) == 3
    assert issuer.mint()["kid"] == kid_of(other_key_pair)


def test_an_active_key_the_passphrase_cannot_open_keeps_the_old_ring(
    issuer: Issuer, key_pair: KeyPair, caplog: pytest.LogCaptureFixture
) -> None:
    private_pem, public_pem = generate_key_pair(2048, b"some other passphrase")
    stranger = load_public_keys(public_pem, source="test")[0]
    write_atomically(issuer.keys_dir / f"{stranger.kid}.pem", private_pem)
    state = read_state(issuer.keys_dir)
    upcoming = state.next(time.time())
    assert upcoming is not None
    state = KeyState(tuple(r for r in state.keys if r.kid != upcoming.kid))
    state = state.with_record(record_for(stranger, f"{stranger.kid}.pem", NEXT, 0))
    promoted, _, _ = promote(state, now=int(time.time()), retire_after=RETIRE_AFTER)
    before = issuer.jwks_kids()
    with caplog.at_level(logging.INFO, logger="shared.reloading"):
        write_state(issuer.keys_dir, promoted)
        assert issuer.reloader.check() == 0
    [line] = kept_lines(caplog)
    assert "the passphrase does not decrypt the private key" in line
    assert issuer.mint()["kid"] == kid_of(key_pair)
    assert issuer.jwks_kids() == before
    assert stranger.kid not in issuer.client.get("/readyz").get_data(as_text=True)


def test_a_single_key_file_is_read_again_when_replaced(
    tmp_path: Path, key_pair: KeyPair, other_key_pair: KeyPair
) -> None:
    key_file = tmp_path / "private.pem"
    shutil.copy(key_pair.private_path, key_file)
    issuer = start(tmp_path, key_pair.passphrase_path, private_key_file=str(key_file))
    assert issuer.mint()["kid"] == kid_of(key_pair)
    assert issuer.reloader.check() == 0
    write_atomically(key_file, other_key_pair.private_pem.encode())
    assert issuer.reloader.check() == 1
    body = issuer.mint()
    assert body["kid"] == kid_of(other_key_pair)
    pyjwt.decode(body["token"], other_key_pair.public_pem, algorithms=["RS256"])
    assert issuer.jwks_kids() == [kid_of(other_key_pair)]
    assert issuer.client.get("/v1/public-key").get_data(as_text=True) == (
        other_key_pair.public_pem)


def test_a_keys_directory_and_a_single_key_are_not_both_allowed(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        IssuerSettings.from_env({"ISSUER_KEYS_DIR": str(tmp_path / "keys"),
                                 "ISSUER_PRIVATE_KEY_FILE": str(tmp_path / "private.pem")})
    assert caught.value.variable == "ISSUER_KEYS_DIR"
    assert str(caught.value).startswith("ISSUER_KEYS_DIR: ")
    assert "ISSUER_PRIVATE_KEY" in str(caught.value)


@pytest.mark.e2e
def test_sighup_to_the_gunicorn_master_switches_the_signing_key(
    tmp_path: Path, key_pair: KeyPair, other_key_pair: KeyPair
) -> None:
    keys_dir = tmp_path / "keys"
    with gunicorn_issuer(tmp_path, key_pair, other_key_pair, workers=2) as live:
        service, minted_kid, session = live.service, live.minted_kid, live.session
        assert service.process is not None
        master = service.process.pid
        assert minted_kid() == kid_of(key_pair)
        promote_in(keys_dir)
        os.kill(master, signal.SIGHUP)

        def after_hup() -> str:
            _, hup, after = service.output().partition("Handling signal: hup")
            return after if hup else ""

        # the master reads the keys again (gunicorn's on_reload), then forks fresh workers that
        # inherit them: the reload is logged by the master's pid, not by a worker's poll
        wait_until(lambda: f"[{master}] shared.reloading: reloaded the signing keys"
                   in after_hup(), timeout=5, what="the master to reload on SIGHUP")
        wait_until(lambda: after_hup().count("Booting worker") >= 2, timeout=5,
                   what="fresh workers after SIGHUP")
        wait_until(lambda: {minted_kid() for _ in range(6)} == {kid_of(other_key_pair)},
                   timeout=5, what="every worker to sign with the promoted key")
        ready = session.get(f"{service.url}/readyz", timeout=5).json()
        assert {k["kid"]: k["role"] for k in ready["keys"]} == {
            kid_of(other_key_pair): ACTIVE, kid_of(key_pair): RETIRING}
        assert KEPT not in service.output()


def test_a_change_made_while_the_keys_load_is_not_lost(
    tmp_path: Path, key_pair: KeyPair, other_key_pair: KeyPair
) -> None:
    # the state file changes after SigningKeys read it but before the Reloader first looks:
    # the Reloader starts from what was read, so its first check sees the change
    keys_dir = tmp_path / "keys"
    make_keys_dir(keys_dir, key_pair, other_key_pair)
    keys = SigningKeys(IssuerSettings(keys_dir=str(keys_dir),
                                      key_passphrase_file=str(key_pair.passphrase_path)))
    promote_in(keys_dir)
    reloader = Reloader([keys])
    assert reloader.check() == 1
    assert keys.ring.active.kid == kid_of(other_key_pair)


def test_a_restarted_worker_never_signs_with_keys_changed_since_the_master_read_them(
    tmp_path: Path, key_pair: KeyPair, other_key_pair: KeyPair
) -> None:
    keys_dir = tmp_path / "keys"
    with gunicorn_issuer(tmp_path, key_pair, other_key_pair, workers=1) as live:
        service, minted_kid = live.service, live.minted_kid
        assert service.process is not None
        promote_in(keys_dir)
        wait_until(lambda: minted_kid() == kid_of(other_key_pair), timeout=5,
                   what="the worker to sign with the promoted key")
        # the master still holds the keys it read at start; a worker it forks now must catch
        # up before its first answer, not a poll later
        worker = int(subprocess.check_output(["pgrep", "-P", str(service.process.pid)]).split()[0])
        live.session.close()
        os.kill(worker, signal.SIGKILL)
        wait_until(lambda: service.output().count("Booting worker") >= 2, timeout=10,
                   what="gunicorn to start another worker")
        live.session = requests.Session()
        wait_until(lambda: requests.get(f"{service.url}/healthz", timeout=2).ok, timeout=10,
                   what="the new worker to answer")
        assert [minted_kid() for _ in range(20)] == [kid_of(other_key_pair)] * 20


def test_public_key_by_kid_gives_a_next_key_to_pem_configured_verifiers(
    issuer: Issuer, key_pair: KeyPair, other_key_pair: KeyPair
) -> None:
    assert issuer.client.get("/v1/public-key").get_data(as_text=True) == key_pair.public_pem
    upcoming = issuer.client.get(f"/v1/public-key?kid={kid_of(other_key_pair)}")
    assert upcoming.status_code == 200
    assert upcoming.mimetype == "application/x-pem-file"
    assert upcoming.get_data(as_text=True) == other_key_pair.public_pem
    missing = issuer.client.get("/v1/public-key?kid=nope")
    assert missing.status_code == 404
    assert missing.get_json()["code"] == "key_not_found"
