"""docker-compose.yml, proven without Docker: each service's own command and environment, run here.

Service host names become 127.0.0.1, container ports become free ports, named volumes become
temporary folders; everything else (commands, variables, healthchecks, start order) is taken
from the file as written. A round trip issue -> verify through the JWKS wiring then proves that
the services, wired only by what the compose file says, work together.
"""

from __future__ import annotations

import copy
import os
import re
import signal
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import requests
import yaml

from shared.keys import load_public_keys
from tests.procs import REPO, free_port, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

COMPOSE_FILE = REPO / "docker-compose.yml"
OWN_KEYS_FILE = REPO / "docs" / "compose.own-keys.yml"
REDIS_PORT = 6379
# variables that would put a secret itself (not a file holding it) into the compose file
INLINE_SECRETS = {"ISSUER_PRIVATE_KEY", "ISSUER_KEY_PASSPHRASE", "VERIFIER_PUBLIC_KEY"}


def _compose() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text())
    return document


def _container_port(name: str, service: dict[str, Any]) -> int:
    """The port a service listens on inside its container (``--bind 0.0.0.0:PORT``)."""
    if name == "redis":
        return REDIS_PORT
    command = service["command"]
    bind = command[command.index("--bind") + 1]
    return int(bind.rsplit(":", 1)[1])


def _environment(service: dict[str, Any]) -> dict[str, str]:
    environment = service.get("environment") or {}
    if isinstance(environment, list):
        environment = dict(item.split("=", 1) for item in environment)
    return {str(key): str(value) for key, value in environment.items()}


def _with_override(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """``docker compose -f base -f override``, for the keys the override file uses."""
    merged = copy.deepcopy(base)
    for name, extra in override.get("services", {}).items():
        service = merged["services"][name]
        service["environment"] = {**_environment(service), **_environment(extra)}
        service["secrets"] = [*(service.get("secrets") or []), *(extra.get("secrets") or [])]
    merged["secrets"] = {**(base.get("secrets") or {}), **(override.get("secrets") or {})}
    return merged


def _start_order(services: dict[str, Any]) -> list[str]:
    """Services in an order that respects every depends_on (what compose does)."""
    order: list[str] = []
    pending = dict(services)
    for _ in range(len(services)):
        for name, service in list(pending.items()):
            if all(dependency in order for dependency in service.get("depends_on") or {}):
                order.append(name)
                del pending[name]
    assert not pending, f"depends_on has a cycle or an unknown service: {sorted(pending)}"
    return order


class Machine:
    """This machine playing Docker: host names, ports and volumes substituted."""

    def __init__(self, compose: dict[str, Any], root: Path, project: Path = REPO) -> None:
        self.services: dict[str, Any] = compose["services"]
        self.root = root
        # file-based Compose secrets appear in the container as /run/secrets/NAME
        self.secrets = {
            f"/run/secrets/{name}": project / definition["file"]
            for name, definition in (compose.get("secrets") or {}).items()
        }
        self.volumes = {name: root / "volumes" / name for name in compose.get("volumes") or {}}
        for folder in self.volumes.values():
            folder.mkdir(parents=True)
        self.ports = {name: free_port() for name in self.services if self._listens(name)}
        self.processes: dict[str, subprocess.Popen[bytes]] = {}

    def _listens(self, name: str) -> bool:
        service = self.services[name]
        return name == "redis" or "--bind" in (service.get("command") or [])

    def mounts(self, name: str) -> dict[str, Path]:
        """Container path -> local path, for the service's named volumes and secrets."""
        mounts: dict[str, Path] = {}
        for volume in self.services[name].get("volumes") or []:
            source, target = volume.split(":")[:2]
            assert source in self.volumes, f"{name}: {source} is not a named volume"
            mounts[target] = self.volumes[source]
        for secret in self.services[name].get("secrets") or []:
            mounts[f"/run/secrets/{secret}"] = self.secrets[f"/run/secrets/{secret}"]
        return mounts

    def substitute(self, name: str, text: str) -> str:
        """Rewrite one string of service ``name`` as it must read on this machine."""
        replacements: dict[str, str] = {}
        for other, port in self.ports.items():
            replacements[f"{other}:{_container_port(other, self.services[other])}"] = (
                f"127.0.0.1:{port}"
            )
        if name in self.ports:
            own = _container_port(name, self.services[name])
            for host in ("0.0.0.0", "127.0.0.1", "localhost"):
                replacements[f"{host}:{own}"] = f"127.0.0.1:{self.ports[name]}"
        for target, folder in self.mounts(name).items():
            replacements[target] = str(folder)
        pattern = re.compile("|".join(re.escape(key) for key in sorted(replacements, key=len,
                                                                        reverse=True)))
        return pattern.sub(lambda match: replacements[match.group(0)], text)

    def argv(self, name: str, command: list[str]) -> list[str]:
        """A compose command (or healthcheck test) as a local argv."""
        args = [self.substitute(name, str(part)) for part in command]
        program, rest = args[0], args[1:]
        if program == "jwt-auth":
            return [sys.executable, "-P", "-m", "jwt_auth", *rest]
        if program == "python":
            return [sys.executable, "-P", *rest]
        if program == "redis-server":
            # the redis image runs in /data, its volume; the port is this test's
            return [program, *rest, "--port", str(self.ports[name]), "--bind", "127.0.0.1",
                    "--dir", str(self.mounts(name)["/data"]), "--daemonize", "no"]
        if program == "redis-cli":
            return [program, "-p", str(self.ports[name]), *rest]
        raise AssertionError(f"{name}: no local equivalent for {program!r}")

    def env(self, name: str) -> dict[str, str]:
        """Exactly the compose environment, substituted, plus PATH."""
        environment = {key: self.substitute(name, value)
                       for key, value in _environment(self.services[name]).items()}
        return {"PATH": os.environ["PATH"], **environment}

    def run_job(self, name: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.argv(name, self.services[name]["command"]), env=self.env(name),
            capture_output=True, text=True, timeout=120, cwd=self.root, check=False,
        )

    def start(self, name: str) -> None:
        log = (self.root / f"{name}.log").open("ab")
        self.processes[name] = subprocess.Popen(
            self.argv(name, self.services[name]["command"]), env=self.env(name),
            stdout=log, stderr=subprocess.STDOUT, cwd=self.root, start_new_session=True,
        )
        log.close()

    def healthy(self, name: str) -> bool:
        """The service's own compose healthcheck, run here."""
        process = self.processes[name]
        if process.poll() is not None:
            log = (self.root / f"{name}.log").read_text(errors="replace")
            raise AssertionError(f"{name} exited ({process.returncode}):\n{log}")
        test = self.services[name]["healthcheck"]["test"]
        assert test[0] == "CMD", f"{name}: healthcheck in exec form expected"
        result = subprocess.run(
            self.argv(name, test[1:]), env=self.env(name), capture_output=True, text=True,
            timeout=30, check=False,
        )
        # redis-cli exits 0 even on an error reply (LOADING): the answer must be PONG
        return result.returncode == 0 and (name != "redis" or "PONG" in result.stdout)

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}"

    def stop_all(self) -> None:
        for process in reversed(list(self.processes.values())):
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
                try:
                    process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait(timeout=10)
        self.processes.clear()


def _snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    return {
        str(path.relative_to(folder)): (path.read_bytes(), path.stat().st_mtime_ns)
        for path in sorted(folder.rglob("*")) if path.is_file()
    }


@pytest.fixture
def machine(tmp_path: Path) -> Iterator[Machine]:
    local = Machine(_compose(), tmp_path)
    yield local
    local.stop_all()


@pytest.mark.parametrize("path", [COMPOSE_FILE, OWN_KEYS_FILE], ids=lambda path: path.name)
def test_compose_files_match_the_compose_schema(path: Path) -> None:
    checker = Path(sys.executable).with_name("check-jsonschema")
    result = subprocess.run(
        [str(checker), "--builtin-schema", "vendor.compose-spec", str(path)],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_file_keeps_secrets_in_files_and_redis_durable() -> None:
    services = _compose()["services"]
    for name, service in services.items():
        inline = INLINE_SECRETS & set(_environment(service))
        assert not inline, f"{name} puts a secret in a plain variable: {inline}"
    command = services["redis"]["command"]
    assert command[command.index("--appendonly") + 1] == "yes"
    assert command[command.index("--appendfsync") + 1] == "always"
    assert any(volume.endswith(":/data") for volume in services["redis"]["volumes"])
    # the verifier never sees the private key: its only volume is its own
    verifier_mounts = [volume.split(":")[0] for volume in services["verifier"]["volumes"]]
    issuer_mounts = [volume.split(":")[0] for volume in services["issuer"]["volumes"]]
    assert not set(verifier_mounts) & set(issuer_mounts)
    for name, service in services.items():
        for dependency, rule in (service.get("depends_on") or {}).items():
            if rule["condition"] == "service_healthy":
                assert "test" in services[dependency]["healthcheck"], (name, dependency)
            else:
                assert rule["condition"] == "service_completed_successfully", (name, dependency)
                assert services[dependency].get("restart") == "no", dependency


def test_each_service_runs_here_with_its_compose_command_and_environment(
    machine: Machine,
) -> None:
    order = _start_order(machine.services)
    jobs = [name for name in order if name not in machine.ports]
    assert jobs == ["keys"]

    first = machine.run_job("keys")
    assert first.returncode == 0, first.stdout + first.stderr
    # the dev client key is printed once (docker compose logs keys), as the line after its title
    lines = first.stdout.splitlines()
    title = next(i for i, line in enumerate(lines) if line.startswith("dev issuer client key"))
    client_key = lines[title + 1].strip()
    assert client_key.startswith("jwta_")
    issuer_volume = machine.mounts("issuer")["/secrets/issuer"]
    assert b"ENCRYPTED PRIVATE KEY" in (issuer_volume / "private.pem").read_bytes()
    assert (issuer_volume / "passphrase.txt").exists()
    assert not (machine.mounts("verifier")["/secrets/verifier"] / "private.pem").exists()

    # a second run (every `docker compose up`) changes nothing and shows no key
    before = {name: _snapshot(folder) for name, folder in machine.volumes.items()}
    second = machine.run_job("keys")
    assert second.returncode == 0, second.stdout + second.stderr
    assert "jwta_" not in second.stdout + second.stderr
    assert {name: _snapshot(folder) for name, folder in machine.volumes.items()} == before

    for name in order:
        if name in jobs:
            continue
        machine.start(name)
        wait_until(lambda name=name: machine.healthy(name), timeout=60,
                   what=f"{name}'s compose healthcheck")

    store = redis.Redis(port=machine.ports["redis"])
    assert store.config_get("appendfsync") == {"appendfsync": "always"}
    assert store.config_get("appendonly") == {"appendonly": "yes"}
    store.close()

    issued = requests.post(
        f"{machine.url('issuer')}/v1/tokens",
        json={"userId": "123", "isAdmin": True},
        headers={"Authorization": f"Bearer {client_key}"},
        timeout=10,
    )
    assert issued.status_code == 201, issued.text
    token = issued.json()["token"]
    verified = requests.post(f"{machine.url('verifier')}/v1/verify", json={"token": token},
                             timeout=10)
    assert verified.status_code == 200, verified.text
    assert verified.json()["userId"] == "123"
    assert verified.json()["isAdmin"] is True
    # what made that work: the verifier found the issuer's key through VERIFIER_JWKS_URL
    jwks = requests.get(f"{machine.url('issuer')}/.well-known/jwks.json", timeout=10).json()
    assert issued.json()["kid"] in [key["kid"] for key in jwks["keys"]]


def _last_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout.strip().splitlines()[-1]


def test_own_keys_override_serves_with_the_users_key_and_clients(tmp_path: Path) -> None:
    """docs/deploy.md's recipe: keygen + clients add, then the override's Compose secrets."""
    project = tmp_path / "project"
    secrets = project / "secrets"
    secrets.mkdir(parents=True)
    (secrets / "passphrase.txt").write_text("a passphrase of our own\n")
    cli = [sys.executable, "-P", "-m", "jwt_auth"]

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*cli, *args], capture_output=True, text=True, timeout=120,
                              cwd=project, check=False)

    made = run("keygen", "--out", "secrets", "--bits", "2048",
               "--passphrase-file", "secrets/passphrase.txt")
    assert made.returncode == 0, made.stdout + made.stderr
    web_key = _last_line(run("clients", "add", "web-login", "--file", "secrets/clients.json"))
    _last_line(run("clients", "add", "ops", "--admin", "--file", "secrets/admin-keys.json"))
    [own_key] = load_public_keys((secrets / "public.pem").read_bytes(), source="test")

    compose = _with_override(_compose(), yaml.safe_load(OWN_KEYS_FILE.read_text()))
    machine = Machine(compose, tmp_path / "machine", project)
    try:
        for name in _start_order(machine.services):
            if name not in machine.ports:
                assert machine.run_job(name).returncode == 0
                continue
            machine.start(name)
            wait_until(lambda name=name: machine.healthy(name), timeout=60,
                       what=f"{name}'s compose healthcheck")
        issued = requests.post(
            f"{machine.url('issuer')}/v1/tokens", json={"userId": "42"},
            headers={"Authorization": f"Bearer {web_key}"}, timeout=10,
        )
        assert issued.status_code == 201, issued.text
        assert issued.json()["kid"] == own_key.kid
        verified = requests.post(f"{machine.url('verifier')}/v1/verify",
                                 json={"token": issued.json()["token"]}, timeout=10)
        assert verified.status_code == 200, verified.text
        assert verified.json()["userId"] == "42"
    finally:
        machine.stop_all()


def test_image_ships_every_package_and_runs_unprivileged() -> None:
    """The Dockerfile and .dockerignore keep up with pyproject.toml (no engine here to build)."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    packages = [name.rstrip("*") for name in project["tool"]["setuptools"]["packages"]["find"]
                ["include"]]
    dockerfile = (REPO / "Dockerfile").read_text()
    allowed = (REPO / ".dockerignore").read_text().splitlines()
    for package in packages:
        assert f"!{package}/" in allowed, f".dockerignore leaves out {package}/"
        assert f"COPY {package} " in dockerfile, f"the Dockerfile does not copy {package}/"
    user = [line.split()[1] for line in dockerfile.splitlines() if line.startswith("USER ")]
    assert user, "the image must not run as root"
    assert user[-1].split(":")[0] not in ("0", "root")
    assert "jwt_auth.healthcheck" in dockerfile
    # the services' healthchecks use the same module the image ships
    for name in ("issuer", "verifier"):
        assert "jwt_auth.healthcheck" in _compose()["services"][name]["healthcheck"]["test"]
