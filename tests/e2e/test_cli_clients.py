"""``jwt-auth clients list | remove | rotate`` as an operator runs them."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

from shared.apikeys import ApiKeyRegistry
from tests.procs import assert_one_line_error
from tests.procs import run_cli as run

V = "ISSUER_CLIENTS_FILE"


def add(path: Path, name: str, *extra: str) -> str:
    result = run("clients", "add", name, *extra, "--file", str(path))
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[-1]


def audit_lines(stderr: str) -> list[dict[str, object]]:
    events = []
    for line in stderr.splitlines():
        if line.startswith("{"):
            event = json.loads(line)
            assert event["logger"] == "audit"
            events.append({k: v for k, v in event.items()
                           if k not in ("time", "pid", "logger", "level")})
    return events


def test_list_shows_names_and_dates_never_keys(tmp_path: Path) -> None:
    path = tmp_path / "clients.json"
    web, ops = add(path, "web"), add(path, "ops", "--admin")
    rotated = run("clients", "rotate", "web", "--grace", "600", "--file", str(path))
    new_web = rotated.stdout.strip().splitlines()[-1]

    result = run("clients", "list", env={V: str(path)})
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["NAME", "ADMIN", "CREATED", "LAST", "ROTATED"]
    stamp = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"
    assert re.fullmatch(rf"web +no +{stamp} +{stamp} +previous key valid until {stamp}", lines[1])
    assert re.fullmatch(rf"ops +yes +{stamp} +-", lines[2])
    assert len(lines) == 3
    document = json.loads(path.read_text())
    for secret in (web, ops, new_web, *(e["key_sha256"] for e in document["clients"]),
                   document["clients"][0]["previous_key_sha256"]):
        assert secret not in result.stdout
        assert secret not in result.stderr
    # the grace ends 600 s after the rotation, as the table says
    until = document["clients"][0]["previous_valid_until"]
    assert lines[1].endswith(time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(until)))


def test_list_of_an_old_format_file(tmp_path: Path) -> None:
    path = tmp_path / "clients.json"
    path.write_text(json.dumps({"clients": [{"name": "legacy", "key_sha256": "0" * 64}]}))
    result = run("clients", "list", "--file", str(path))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[1].split() == ["legacy", "no", "-", "-"]


def test_remove(tmp_path: Path) -> None:
    path = tmp_path / "clients.json"
    web, ops = add(path, "web"), add(path, "ops", "--admin")
    result = run("clients", "remove", "ops", "--file", str(path))
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    assert audit_lines(result.stderr) == [
        {"event": "client_key_removed", "client": "ops", "file": str(path), "admin": True}
    ]
    registry = ApiKeyRegistry.load(str(path), variable=V)
    assert registry.authenticate(ops) is None
    assert registry.authenticate(web) is not None
    assert_one_line_error(run("clients", "remove", "ops", "--file", str(path)),
                          "has no client named 'ops'")


def test_rotate_prints_the_new_key_last_and_keeps_the_old_one_for_the_grace(
    tmp_path: Path,
) -> None:
    path = tmp_path / "clients.json"
    old = add(path, "web", "--admin")
    started = time.time()
    result = run("clients", "rotate", "web", env={V: str(path)})  # the default grace: 3600 s
    assert result.returncode == 0, result.stderr
    new = result.stdout.strip().splitlines()[-1]
    assert result.stdout.count("\n") == 1  # only the new key on stdout
    assert new.startswith("jwta_")
    assert new != old
    assert old not in result.stderr
    assert new not in result.stderr
    assert audit_lines(result.stderr) == [{
        "event": "client_key_rotated", "client": "web", "file": str(path), "admin": True,
        "graceSeconds": 3600,
    }]
    assert new not in path.read_text()

    now = [time.time()]
    registry = ApiKeyRegistry.load(str(path), variable=V, clock=lambda: now[0])
    assert registry.authenticate(old) is not None
    assert registry.authenticate(new) is not None
    now[0] = started + 3602
    assert registry.authenticate(old) is None
    assert registry.authenticate(new) is not None


def test_rotate_with_grace_zero_refuses_the_old_key_at_once(tmp_path: Path) -> None:
    path = tmp_path / "clients.json"
    old = add(path, "web")
    result = run("clients", "rotate", "web", "--grace", "0", "--file", str(path))
    assert result.returncode == 0, result.stderr
    new = result.stdout.strip().splitlines()[-1]
    assert "refused from now on" in result.stderr
    registry = ApiKeyRegistry.load(str(path), variable=V)
    assert registry.authenticate(old) is None
    assert registry.authenticate(new) is not None
    listed = run("clients", "list", "--file", str(path)).stdout
    assert "previous key" not in listed


def test_add_writes_an_audit_line(tmp_path: Path) -> None:
    path = tmp_path / "admin-keys.json"
    result = run("clients", "add", "ops", "--admin", "--file", str(path))
    assert audit_lines(result.stderr) == [
        {"event": "client_key_added", "client": "ops", "file": str(path), "admin": True}
    ]
    key = result.stdout.strip().splitlines()[-1]
    assert key not in result.stderr


def test_errors_are_one_line_and_change_nothing(tmp_path: Path) -> None:
    path = tmp_path / "clients.json"
    add(path, "web")
    before = path.read_text()
    for args, expected in (
        (("rotate", "nope"), "has no client named 'nope'"),
        (("rotate", "web", "--grace", "-1"), "--grace '-1'"),
        (("rotate", "web", "--grace", "soon"), "--grace 'soon'"),
        (("rotate", "web", "--grace", "99999999"), "--grace '99999999'"),
    ):
        result = run("clients", *args, "--file", str(path))
        assert_one_line_error(result, expected)
        assert result.stdout == ""
    assert path.read_text() == before
    for command in (("list",), ("remove", "web"), ("rotate", "web")):
        assert_one_line_error(run("clients", *command), V)
        assert_one_line_error(run("clients", *command, "--file", str(tmp_path / "absent.json")),
                              "no file at")
    path.write_text("{broken")
    assert_one_line_error(run("clients", "list", "--file", str(path)), "not a readable keys file")
