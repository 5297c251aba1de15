"""The verifier on a Redis that wants TLS and a password, as managed Redis services do.

A real redis-server listens with TLS only (its certificate signed by a CA made here) and
``requirepass``; the verifier reaches it through ``rediss://`` with the CA named in the URL's
``ssl_ca_certs`` option and the password in ``REDIS_PASSWORD_FILE``. Revocation works, the
mirror syncs over TLS, and a wrong password leaves the verifier not ready instead of serving
unchecked answers.
"""

from __future__ import annotations

import datetime
import ipaddress
import logging
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.forge import fresh
from tests.integration.verifier_http import assert_problem
from tests.keypairs import KeyPair
from tests.procs import free_port, wait_until
from verifier.app import create_app
from verifier.config import VerifierSettings

PASSWORD = "correct horse battery staple"


def _certificate(name: str, key: ec.EllipticCurvePrivateKey, issuer: x509.Name,
                 signer: ec.EllipticCurvePrivateKey, *, ca: bool) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
    return builder.sign(signer, hashes.SHA256())


def _pem(path: Path, data: bytes) -> str:
    path.write_bytes(data)
    return str(path)


@pytest.fixture
def tls_redis(tmp_path: Path) -> Iterator[tuple[int, str]]:
    """A redis-server speaking TLS only, with a password: its port and the CA file."""
    ca_key, server_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(
        ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test CA")])
    ca = _certificate("test CA", ca_key, ca_name, ca_key, ca=True)
    server = _certificate("127.0.0.1", server_key, ca_name, ca_key, ca=False)
    ca_file = _pem(tmp_path / "ca.pem", ca.public_bytes(serialization.Encoding.PEM))
    cert_file = _pem(tmp_path / "server.pem", server.public_bytes(serialization.Encoding.PEM))
    key_file = _pem(tmp_path / "server.key", server_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    port = free_port()
    process = subprocess.Popen(
        ["redis-server", "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1",
         "--tls-cert-file", cert_file, "--tls-key-file", key_file, "--tls-ca-cert-file",
         ca_file, "--tls-auth-clients", "no", "--requirepass", PASSWORD, "--save", "",
         "--appendonly", "yes", "--appendfsync", "always", "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        def listening() -> bool:
            with socket.socket() as probe:
                return probe.connect_ex(("127.0.0.1", port)) == 0

        wait_until(listening, timeout=10, what="the TLS redis-server")
        yield port, ca_file
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_the_verifier_works_over_tls_with_a_password_from_a_file(
    tls_redis: tuple[int, str], key_pair: KeyPair, tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    port, ca_file = tls_redis
    password_file = tmp_path / "redis-password"
    password_file.write_text(PASSWORD + "\n")
    env = {"VERIFIER_PUBLIC_KEY_FILE": str(key_pair.public_path),
           "REDIS_URL": f"rediss://127.0.0.1:{port}/0?ssl_ca_certs={ca_file}",
           "REDIS_PASSWORD_FILE": str(password_file)}
    settings = VerifierSettings.from_env(env)
    assert settings.redis_password == PASSWORD
    app = create_app(settings)
    try:
        client = app.test_client()
        assert client.get("/readyz").status_code == 200
        token = fresh(key_pair, "tls-user")
        assert client.post("/v1/verify", json={"token": token}).status_code == 200
        assert client.post("/v1/revocations", json={"token": token}).status_code == 204
        assert_problem(client.post("/v1/verify", json={"token": token}), 401, "token_revoked")
        mirror = app.extensions["verifier"].store.mirror
        wait_until(lambda: mirror.synced, timeout=10, what="the mirror to sync over TLS")
        assert_problem(client.post("/v1/verify", json={"token": token}), 401, "token_revoked")
    finally:
        app.extensions["verifier"].store.close()
    # the password never reaches a log line
    assert PASSWORD not in caplog.text


def test_a_wrong_password_leaves_the_verifier_not_ready(
    tls_redis: tuple[int, str], key_pair: KeyPair, caplog: pytest.LogCaptureFixture
) -> None:
    port, ca_file = tls_redis
    caplog.set_level(logging.INFO)
    app = create_app(VerifierSettings(
        public_key_file=str(key_pair.public_path),
        redis_url=f"rediss://:wrong-{PASSWORD}@127.0.0.1:{port}/0?ssl_ca_certs={ca_file}",
        mirror_max_keys=0,
    ))
    try:
        client = app.test_client()
        assert_problem(client.get("/readyz"), 503, "not_ready")
        assert_problem(client.post("/v1/verify", json={"token": fresh(key_pair, "u")}), 503,
                       "store_unavailable")
    finally:
        app.extensions["verifier"].store.close()
    assert PASSWORD not in caplog.text
