"""Request ids (X-Request-Id) and LOG_FORMAT, through Flask's test client of both services.

Log lines are read from the services' own handlers (the root handler ``configure_logging``
installs, the audit handler), their stream pointed at a buffer for the test.
"""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from issuer.app import create_app as create_issuer
from issuer.config import IssuerSettings
from shared.apikeys import add_client
from shared.audit import LOGGER_NAME as AUDIT_LOGGER
from shared.errors import ConfigError
from shared.requestid import is_acceptable
from shared.web.accesslog import AccessLog
from tests.forge import fresh
from tests.keypairs import KeyPair
from verifier.config import VerifierSettings

GENERATED = re.compile(r"[0-9a-f]{24}")

# <time> <level> [<pid>] <logger>: <message> request_id=<id>
TEXT_LINE = re.compile(
    r"(?P<time>\S+) (?P<level>[A-Z]+) \[(?P<pid>\d+)\] (?P<logger>[\w.]+): "
    r"(?P<message>.*?)(?: request_id=(?P<request_id>\S+))?$"
)


@pytest.fixture
def issuer_app(key_pair: KeyPair, tmp_path: Path) -> Callable[..., tuple[FlaskClient, str]]:
    """Builds an issuer app; answers its test client and an admin client's key."""

    def build(**overrides: Any) -> tuple[FlaskClient, str]:
        clients = tmp_path / "clients.json"
        admin_key = add_client(clients, "backoffice", admin=True,
                               variable="ISSUER_CLIENTS_FILE")
        settings = IssuerSettings(
            private_key_file=str(key_pair.private_path),
            key_passphrase_file=str(key_pair.passphrase_path),
            clients_file=str(clients), rate_limit=0, **overrides,
        )
        return create_issuer(settings).test_client(), admin_key

    return build


@pytest.fixture
def issuer(issuer_app: Callable[..., tuple[FlaskClient, str]]) -> FlaskClient:
    return issuer_app()[0]


@contextmanager
def lines_of(logger: logging.Logger, marker: str) -> Iterator[list[str]]:
    """The lines the service's own handler (``marker``) writes meanwhile."""
    handler = next(h for h in logger.handlers if getattr(h, marker, False))
    assert isinstance(handler, logging.StreamHandler)
    buffer = io.StringIO()
    previous, handler.stream = handler.stream, buffer
    lines: list[str] = []
    try:
        yield lines
    finally:
        handler.stream = previous
        lines.extend(buffer.getvalue().splitlines())


def app_lines() -> Any:
    return lines_of(logging.getLogger(), "_jwt_auth")


def audit_lines() -> Any:
    return lines_of(logging.getLogger(AUDIT_LOGGER), "_jwt_auth_audit")


# --- the header ------------------------------------------------------------------------------

# (service, method, path, expected status): hot routes, Flask views, problems of both, 404s
REQUESTS = [
    ("verifier", "POST", "/v1/verify", 400),
    ("verifier", "GET", "/v1/verify", 405),
    ("verifier", "GET", "/v1/auth", 401),
    ("verifier", "GET", "/v1/auth/some/app/path", 401),
    ("verifier", "GET", "/healthz", 200),
    ("verifier", "GET", "/v1/sessions/nope", 404),
    ("verifier", "GET", "/no/such/route", 404),
    ("issuer", "POST", "/v1/tokens", 401),
    ("issuer", "GET", "/.well-known/jwks.json", 200),
    ("issuer", "GET", "/v1/public-key?kid=nope", 404),
    ("issuer", "DELETE", "/healthz", 405),
    ("issuer", "GET", "/no/such/route", 404),
]


@pytest.fixture
def services(client: FlaskClient, issuer: FlaskClient) -> dict[str, FlaskClient]:
    return {"verifier": client, "issuer": issuer}


@pytest.mark.parametrize(("service", "method", "path", "status"), REQUESTS)
def test_an_acceptable_id_is_echoed_on_every_answer(
    services: dict[str, FlaskClient], service: str, method: str, path: str, status: int
) -> None:
    offered = "abc-123:Z_9./+=@x"
    response = services[service].open(path, method=method, headers={"X-Request-Id": offered})
    assert response.status_code == status
    assert response.headers.getlist("X-Request-Id") == [offered]


@pytest.mark.parametrize(("service", "method", "path", "status"), REQUESTS)
def test_without_an_id_one_is_made_for_every_answer(
    services: dict[str, FlaskClient], service: str, method: str, path: str, status: int
) -> None:
    first = services[service].open(path, method=method)
    second = services[service].open(path, method=method)
    assert first.status_code == status
    ids = [first.headers.getlist("X-Request-Id"), second.headers.getlist("X-Request-Id")]
    assert all(len(found) == 1 and GENERATED.fullmatch(found[0]) for found in ids), ids
    assert ids[0] != ids[1]


@pytest.mark.parametrize("offered", [
    "",
    "a" * 129,
    "two words",
    'quote"d',
    "back\\slash",
    "line\r\nINFO [1] forged: admin logged in",
    "new\nline",
    "tab\there",
    "caf\u00e9",
    "semi;colon",
])
def test_an_unacceptable_id_is_replaced_never_echoed(
    services: dict[str, FlaskClient], offered: str
) -> None:
    for service, path in (("verifier", "/v1/verify"), ("verifier", "/healthz"),
                          ("issuer", "/v1/tokens"), ("issuer", "/healthz")):
        with app_lines() as lines:
            response = services[service].post(
                path, environ_overrides={"HTTP_X_REQUEST_ID": offered})
        found = response.headers.getlist("X-Request-Id")
        assert len(found) == 1, (service, path, found)
        assert GENERATED.fullmatch(found[0]), (service, path, found)
        if offered:
            assert all(offered not in line for line in lines)


def test_the_longest_acceptable_id_is_kept(client: FlaskClient) -> None:
    offered = "a" * 128
    assert is_acceptable(offered)
    assert not is_acceptable(offered + "a")
    response = client.get("/healthz", headers={"X-Request-Id": offered})
    assert response.headers["X-Request-Id"] == offered


# --- log lines -------------------------------------------------------------------------------

def test_the_app_lines_of_a_request_carry_its_id(client: FlaskClient) -> None:
    with app_lines() as lines:
        refused = client.post("/v1/verify", json={"token": "a.b.c"},
                              headers={"X-Request-Id": "verify-1"})
    assert refused.status_code == 401
    refusal = [line for line in lines if " refused: " in line]
    assert len(refusal) == 1, lines
    assert refusal[0].endswith(" request_id=verify-1")
    parsed = TEXT_LINE.fullmatch(refusal[0])
    assert parsed is not None
    assert parsed["logger"] == "verifier.service"
    assert parsed["level"] == "INFO"
    assert parsed["request_id"] == "verify-1"


def test_a_flask_view_line_carries_the_generated_id(
    client: FlaskClient, key_pair: KeyPair
) -> None:
    with app_lines() as lines:
        response = client.post("/v1/sessions", json={"token": fresh(key_pair, "alice")})
    assert response.status_code == 201, response.get_data(as_text=True)
    opened = [line for line in lines if "session opened" in line]
    assert len(opened) == 1, lines
    assert opened[0].endswith(f" request_id={response.headers['X-Request-Id']}")


def test_lines_outside_a_request_have_no_id() -> None:
    with app_lines() as lines:
        logging.getLogger("verifier.service").warning("not in a request")
    assert lines
    assert all("request_id" not in line for line in lines)
    parsed = TEXT_LINE.fullmatch(lines[0])
    assert parsed is not None
    assert parsed["request_id"] is None


def test_audit_lines_carry_the_request_id_in_json(
    issuer_app: Callable[..., tuple[FlaskClient, str]]
) -> None:
    issuer, admin_key = issuer_app()
    with audit_lines() as lines:
        response = issuer.post("/v1/tokens", json={"userId": "boss", "isAdmin": True},
                               headers={"Authorization": f"Bearer {admin_key}",
                                        "X-Request-Id": "mint-7"})
    assert response.status_code == 201
    events = [json.loads(line) for line in lines]
    assert [event["event"] for event in events] == ["admin_token_issued"]
    assert events[0]["request_id"] == "mint-7"
    assert {"time", "level", "logger", "pid"} <= events[0].keys()


# --- LOG_FORMAT ------------------------------------------------------------------------------

FIELDS = {"time", "level", "pid", "logger", "message", "request_id"}


def test_json_lines_have_the_fields_of_text_lines(
    make_app: Callable[..., Flask], client: FlaskClient
) -> None:
    with app_lines() as text_lines:
        client.post("/v1/verify", json={"token": "a.b.c"}, headers={"X-Request-Id": "t-1"})
    json_client = make_app(log_format="json").test_client()
    try:
        with app_lines() as json_lines:
            json_client.post("/v1/verify", json={"token": "a.b.c"},
                             headers={"X-Request-Id": "j-1"})
            logging.getLogger("verifier.service").warning("outside")
    finally:
        make_app()  # back to text for the tests that follow

    text = TEXT_LINE.fullmatch(next(line for line in text_lines if " refused: " in line))
    assert text is not None
    objects = [json.loads(line) for line in json_lines]
    refusal = next(line for line in objects if " refused: " in line["message"])
    assert set(refusal) == FIELDS == set(text.groupdict())
    assert refusal["request_id"] == "j-1"
    assert (refusal["logger"], refusal["level"]) == (text["logger"], text["level"])
    assert isinstance(refusal["pid"], int)
    assert str(refusal["pid"]) == text["pid"]
    assert refusal["time"].endswith("Z")
    assert text["time"].endswith("Z")
    assert refusal["message"] == text["message"]
    outside = next(line for line in objects if line["message"] == "outside")
    assert set(outside) == FIELDS - {"request_id"}


def test_json_lines_keep_a_traceback_in_one_object(make_app: Callable[..., Flask]) -> None:
    make_app(log_format="json")
    try:
        with app_lines() as lines:
            try:
                raise RuntimeError("boom\nsecond line")
            except RuntimeError:
                logging.getLogger("verifier.app").exception("it failed")
    finally:
        make_app()
    assert len(lines) == 1
    line = json.loads(lines[0])
    assert line["message"] == "it failed"
    assert "RuntimeError: boom" in line["exception"]


@pytest.mark.parametrize("settings", [IssuerSettings, VerifierSettings])
def test_a_bad_log_format_stops_either_service_naming_the_variable(settings: Any) -> None:
    env = {"VERIFIER_PUBLIC_KEY_FILE": "public.pem"}  # the verifier's one required variable
    with pytest.raises(ConfigError) as refused:
        settings.from_env({**env, "LOG_FORMAT": "xml"})
    assert refused.value.variable == "LOG_FORMAT"
    assert str(refused.value) == "LOG_FORMAT: expected one of text, json, got 'xml'"
    for value, expected in (("JSON", "json"), ("", "text"), ("text", "text")):
        assert settings.from_env({**env, "LOG_FORMAT": value}).log_format == expected


# --- the access line -------------------------------------------------------------------------

def _access_line(app: Any) -> str:
    """The access line of one refused verification with a token in its query string."""
    written = io.StringIO()
    app.access_log = AccessLog(written)
    answer = app.test_client().post("/v1/verify?token=secret", json={"token": "a.b.c"},
                                    headers={"X-Request-Id": "acc-1"},
                                    environ_base={"REMOTE_ADDR": "127.0.0.1",
                                                  "REMOTE_PORT": "50000"})
    assert answer.status_code == 401
    return written.getvalue()


def test_the_access_line_ends_with_the_request_id(make_app: Callable[..., Flask]) -> None:
    line = _access_line(make_app())
    assert re.fullmatch(r'127\.0\.0\.1 "POST /v1/verify" 401 \d+ \d+ms request_id=acc-1\n',
                        line), line

    try:
        line = _access_line(make_app(log_format="json"))
    finally:
        make_app()
    assert line.endswith("\n")
    assert line.count("\n") == 1
    access = json.loads(line)
    assert set(access) == FIELDS | {"remote_addr", "method", "path", "status", "bytes",
                                    "duration_ms"}
    assert access["request_id"] == "acc-1"
    assert access["logger"] == "gunicorn.access"
    assert (access["method"], access["path"], access["status"]) == ("POST", "/v1/verify", 401)
    assert access["bytes"] > 0
    assert access["message"] == (f'127.0.0.1 "POST /v1/verify" 401 {access["bytes"]} '
                                 f'{access["duration_ms"]}ms')
    assert "secret" not in line
