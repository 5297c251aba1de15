"""docker-compose.yml, proven without Docker: each service's own command and environment, run here.

Service host names become 127.0.0.1, container ports become free ports, named volumes become
temporary folders; everything else (commands, variables, healthchecks, start order) is taken
from the file as written. A round trip issue -> verify through the JWKS wiring then proves that
the services, wired only by what the compose file says, work together.
"""

from __future__ import annotations

import copy
import json
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
from tests.nginx import Nginx
from tests.procs import REPO, free_port, wait_until
from verifier.browser import BrowserSettings

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

COMPOSE_FILE = REPO / "docker-compose.yml"
OWN_KEYS_FILE = REPO / "docs" / "compose.own-keys.yml"
CLUSTER_FILE = REPO / "docs" / "compose.cluster.yml"
TRAEFIK_FILE = REPO / "docs" / "compose.traefik.yml"
DEMO = frozenset({"demo"})
REDIS_PORT = 6379
# variables that would put a secret itself (not a file holding it) into the compose file
INLINE_SECRETS = {"ISSUER_PRIVATE_KEY", "ISSUER_KEY_PASSPHRASE", "VERIFIER_PUBLIC_KEY"}


def _compose() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text())
    return document


def _is_redis(service: dict[str, Any]) -> bool:
    return (service.get("command") or [None])[0] == "redis-server"


def _container_port(service: dict[str, Any]) -> int:
    """The port a service listens on inside its container (``--bind 0.0.0.0:PORT``)."""
    command = service["command"]
    if _is_redis(service):
        return int(command[command.index("--port") + 1]) if "--port" in command else REDIS_PORT
    bind = command[command.index("--bind") + 1]
    return int(bind.rsplit(":", 1)[1])


def _environment(service: dict[str, Any]) -> dict[str, str]:
    environment = service.get("environment") or {}
    if isinstance(environment, list):
        environment = dict(item.split("=", 1) for item in environment)
    return {str(key): str(value) for key, value in environment.items()}


def _dependencies(service: dict[str, Any]) -> dict[str, dict[str, Any]]:
    depends_on = service.get("depends_on") or {}
    if isinstance(depends_on, list):
        return {name: {"condition": "service_started"} for name in depends_on}
    return {str(name): dict(rule) for name, rule in depends_on.items()}


def _with_override(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """``docker compose -f base -f override``, by Compose's merge rules for the keys these files
    use: mappings merge (environment, each depends_on entry), secrets and volumes add up, any
    other key (command, profiles) of the override replaces the base's; new services are added."""
    merged = copy.deepcopy(base)
    for name, extra in override.get("services", {}).items():
        service = merged["services"].setdefault(name, {})
        for key, value in extra.items():
            if key == "environment":
                service[key] = {**_environment(service), **_environment(extra)}
            elif key == "depends_on":
                ours, theirs = _dependencies(service), _dependencies(extra)
                service[key] = {dependency: {**ours.get(dependency, {}), **rule}
                                for dependency, rule in {**ours, **theirs}.items()}
            elif key in ("secrets", "volumes"):
                service[key] = [*(service.get(key) or []), *copy.deepcopy(value)]
            else:
                service[key] = copy.deepcopy(value)
    for section in ("secrets", "volumes"):
        merged[section] = {**(base.get(section) or {}), **(override.get(section) or {})}
    return merged


def _enabled(compose: dict[str, Any], profiles: frozenset[str] = frozenset()) -> dict[str, Any]:
    """What ``docker compose up`` runs: without the services of a profile that is not active.

    Compose refuses a project in which a service depends on a disabled one, unless that
    dependency says ``required: false``; then it is not waited for. So does this.
    """
    active = copy.deepcopy(compose)
    services = active["services"]
    disabled = {name for name, service in services.items()
                if service.get("profiles") and not set(service["profiles"]) & profiles}
    for name in disabled:
        del services[name]
    for name, service in services.items():
        dependencies = _dependencies(service)
        for dependency in disabled & set(dependencies):
            assert dependencies[dependency].get("required") is False, (
                f"{name} depends on {dependency}, which a profile disables: Compose refuses that"
            )
            del dependencies[dependency]
        if "depends_on" in service:
            service["depends_on"] = dependencies
    return active


def _interpolated(text: str) -> str:
    """Compose's interpolation, for files that substitute no variable: ``$$`` is one ``$``."""
    pieces = text.split("$$")
    assert not any("$" in piece for piece in pieces), f"a variable Compose would fill in: {text}"
    return "$".join(pieces)


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
        self.project = project
        # file-based Compose secrets appear in the container as /run/secrets/NAME
        self.secrets = {
            f"/run/secrets/{name}": project / definition["file"]
            for name, definition in (compose.get("secrets") or {}).items()
        }
        self.volumes = {name: root / "volumes" / name for name in compose.get("volumes") or {}}
        for folder in self.volumes.values():
            folder.mkdir(parents=True)
        self._taken: set[int] = set()
        self.ports = {name: self._free_port() for name in self.services if self._listens(name)}
        # a cluster node's bus port, port + 10000 by default, may be above 65535 here
        self.bus_ports = {name: self._free_port() for name in self.ports
                          if "--cluster-enabled" in self.services[name]["command"]}
        self.processes: dict[str, subprocess.Popen[bytes]] = {}

    def _free_port(self) -> int:
        """A free port none of this machine's services got yet (free_port may repeat one)."""
        for _ in range(100):
            port = free_port()
            if port not in self._taken:
                self._taken.add(port)
                return port
        raise AssertionError("no distinct free port found")

    def _listens(self, name: str) -> bool:
        service = self.services[name]
        return _is_redis(service) or "--bind" in (service.get("command") or [])

    def mounts(self, name: str) -> dict[str, Path]:
        """Container path -> local path, for the service's volumes and secrets."""
        mounts: dict[str, Path] = {}
        for volume in self.services[name].get("volumes") or []:
            source, target = volume.split(":")[:2]
            if source.startswith("./"):
                # a bind mount of a file or folder of the project (relative to it)
                mounts[target] = self.project / source
                continue
            assert source in self.volumes, f"{name}: {source} is not a named volume"
            mounts[target] = self.volumes[source]
        for secret in self.services[name].get("secrets") or []:
            mounts[f"/run/secrets/{secret}"] = self.secrets[f"/run/secrets/{secret}"]
        return mounts

    def substitute(self, name: str, text: str) -> str:
        """Rewrite one string of service ``name`` as it must read on this machine."""
        text = _interpolated(text)
        replacements: dict[str, str] = {}
        for other, port in self.ports.items():
            replacements[f"{other}:{_container_port(self.services[other])}"] = (
                f"127.0.0.1:{port}"
            )
        if name in self.ports:
            own = _container_port(self.services[name])
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
            bus = ["--cluster-port", str(self.bus_ports[name])] if name in self.bus_ports else []
            return [program, *rest, "--port", str(self.ports[name]), "--bind", "127.0.0.1",
                    "--dir", str(self.mounts(name)["/data"]), "--daemonize", "no", *bus]
        if program == "redis-cli":
            return [program, "-p", str(self.ports[name]), *rest]
        if program == "sh":
            # the redis image's sh is Debian's dash, as here
            return [program, *rest]
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
        return result.returncode == 0 and (
            not _is_redis(self.services[name]) or "PONG" in result.stdout
        )

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
    # what `docker compose up` starts: the demo profile's services stay off
    local = Machine(_enabled(_compose()), tmp_path)
    yield local
    local.stop_all()


def _assert_compose_schema(path: Path) -> None:
    checker = Path(sys.executable).with_name("check-jsonschema")
    result = subprocess.run(
        [str(checker), "--builtin-schema", "vendor.compose-spec", str(path)],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _assert_dependencies_can_be_met(services: dict[str, Any]) -> None:
    """Each depends_on waits for something that happens: a healthcheck, or a job's exit."""
    for name, service in services.items():
        for dependency, rule in _dependencies(service).items():
            if rule["condition"] == "service_healthy":
                assert "test" in services[dependency]["healthcheck"], (name, dependency)
            else:
                assert rule["condition"] == "service_completed_successfully", (name, dependency)
                assert services[dependency].get("restart") == "no", dependency


def _dev_client_key(keys_job: subprocess.CompletedProcess[str]) -> str:
    """The dev client key the keys job prints once, as the line after its title."""
    assert keys_job.returncode == 0, keys_job.stdout + keys_job.stderr
    lines = keys_job.stdout.splitlines()
    title = next(i for i, line in enumerate(lines) if line.startswith("dev issuer client key"))
    client_key = lines[title + 1].strip()
    assert client_key.startswith("jwta_")
    return client_key


@pytest.mark.parametrize("path", [COMPOSE_FILE, OWN_KEYS_FILE, CLUSTER_FILE, TRAEFIK_FILE],
                         ids=lambda path: path.name)
def test_compose_files_match_the_compose_schema(path: Path) -> None:
    _assert_compose_schema(path)


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
    _assert_dependencies_can_be_met(services)


def test_each_service_runs_here_with_its_compose_command_and_environment(
    machine: Machine,
) -> None:
    order = _start_order(machine.services)
    jobs = [name for name in order if name not in machine.ports]
    assert jobs == ["keys"]

    first = machine.run_job("keys")
    # the dev client key is printed once (docker compose logs keys)
    client_key = _dev_client_key(first)
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
    # discovery, as `jwt-auth up` has it: the issuer named as clients reach it, and its keys
    issuer_url = machine.env("issuer")["ISSUER_ISSUER"]
    assert verified.json()["claims"]["iss"] == issuer_url
    discovered = requests.get(f"{machine.url('issuer')}/.well-known/openid-configuration",
                              timeout=10).json()
    assert discovered["issuer"] == issuer_url
    assert requests.get(discovered["jwks_uri"], timeout=10).json() == jwks


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

    compose = _enabled(_with_override(_compose(), yaml.safe_load(OWN_KEYS_FILE.read_text())))
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


CLUSTER_INIT = "redis-cluster-init"


def _cluster_merged() -> dict[str, Any]:
    """``docker compose -f docker-compose.yml -f docs/compose.cluster.yml``, before profiles."""
    return _with_override(_compose(), yaml.safe_load(CLUSTER_FILE.read_text()))


def _cluster_nodes(services: dict[str, Any]) -> list[str]:
    return [name for name, service in services.items()
            if "--cluster-enabled" in (service.get("command") or [])]


def test_cluster_override_keeps_each_node_durable_and_leaves_the_single_redis_out(
    tmp_path: Path,
) -> None:
    merged = _cluster_merged()
    # the project Compose builds from both files is a valid one too
    (tmp_path / "merged.json").write_text(json.dumps(merged))
    _assert_compose_schema(tmp_path / "merged.json")

    services = _enabled(merged)["services"]
    assert "redis" not in services
    assert "redis" in _enabled(merged, frozenset({"standalone-redis"}))["services"]
    nodes = _cluster_nodes(services)
    assert nodes == [f"redis-{number}" for number in range(1, 7)]
    data_volumes = set()
    for name in nodes:
        command = services[name]["command"]
        assert command[command.index("--appendonly") + 1] == "yes"
        assert command[command.index("--appendfsync") + 1] == "always"
        assert command[command.index("--cluster-config-file") + 1] == "nodes.conf"
        [volume] = [volume.split(":")[0] for volume in services[name]["volumes"]
                    if volume.endswith(":/data")]
        data_volumes.add(volume)
    # a node's data and its identity (nodes.conf) are its own
    assert len(data_volumes) == len(nodes)
    assert set(_dependencies(services[CLUSTER_INIT])) == set(nodes)
    environment = _environment(services["verifier"])
    assert environment["VERIFIER_REDIS_MODE"] == "cluster"
    assert environment["REDIS_URL"] == ",".join(f"redis://{name}:6379" for name in nodes)
    assert _dependencies(services["verifier"])[CLUSTER_INIT]["condition"] == (
        "service_completed_successfully"
    )
    _assert_dependencies_can_be_met(services)


def _cluster_layout(machine: Machine, nodes: list[str]) -> dict[str, list[tuple[str, ...]]]:
    """What each node says of the cluster: ids, roles, masters, config epochs and slots."""
    layout = {}
    for name in nodes:
        client = redis.Redis(port=machine.ports[name], decode_responses=True, socket_timeout=5)
        try:
            text = client.execute_command("CLUSTER", "NODES")  # type: ignore[no-untyped-call]
        finally:
            client.close()
        # <id> <address> <flags> <master> <ping> <pong> <epoch> <link> <slot>...: the
        # addresses, ping times and links are left out, they differ from run to run
        layout[name] = sorted(
            (fields[0], fields[2], fields[3], fields[6], *fields[8:])
            for fields in (line.split() for line in text.splitlines() if line.strip())
        )
    return layout


def _replication(machine: Machine, name: str) -> dict[str, Any]:
    client = redis.Redis(port=machine.ports[name], decode_responses=True, socket_timeout=5)
    try:
        replication: dict[str, Any] = client.info("replication")
    finally:
        client.close()
    return replication


def _key_counts(machine: Machine, nodes: list[str]) -> dict[str, int]:
    counts = {}
    for name in nodes:
        client = redis.Redis(port=machine.ports[name], socket_timeout=5)
        try:
            counts[name] = int(client.dbsize())
        finally:
            client.close()
    return counts


def _slot_count(ranges: tuple[str, ...]) -> int:
    count = 0
    for slots in ranges:
        first, _, last = slots.partition("-")
        count += int(last or first) - int(first) + 1
    return count


def test_cluster_override_runs_here_with_its_commands_and_environment(tmp_path: Path) -> None:
    """docs/compose.cluster.yml over docker-compose.yml: six nodes, the init job (twice), the
    keys job, the issuer and the verifier, each as the merged files say, then a round trip."""
    machine = Machine(_enabled(_cluster_merged()), tmp_path)
    nodes = _cluster_nodes(machine.services)
    try:
        order = _start_order(machine.services)
        jobs = [name for name in order if name not in machine.ports]
        assert sorted(jobs) == ["keys", CLUSTER_INIT]
        client_key = ""
        for name in order:
            if name == "keys":
                client_key = _dev_client_key(machine.run_job(name))
            elif name == CLUSTER_INIT:
                created = machine.run_job(name)
                assert created.returncode == 0, created.stdout + created.stderr
                assert "the cluster is ready" in created.stdout, created.stdout
                layout = _cluster_layout(machine, nodes)
                # every later `docker compose up` runs it again: it must change nothing
                again = machine.run_job(name)
                assert again.returncode == 0, again.stdout + again.stderr
                assert again.stdout.strip() == "the cluster exists already: nothing to do"
                assert _cluster_layout(machine, nodes) == layout
            else:
                machine.start(name)
                wait_until(lambda name=name: machine.healthy(name), timeout=60,
                           what=f"{name}'s compose healthcheck")

        # 3 masters sharing the 16384 slots, each with one replica
        view = layout[nodes[0]]
        masters = {line[0]: line for line in view if "master" in line[1]}
        replicas = [line for line in view if "slave" in line[1]]
        assert len(masters) == 3
        assert sum(_slot_count(line[4:]) for line in masters.values()) == 16384
        assert sorted(line[2] for line in replicas) == sorted(masters)

        verifier = machine.url("verifier")
        issued = requests.post(
            f"{machine.url('issuer')}/v1/tokens", json={"userId": "123"},
            headers={"Authorization": f"Bearer {client_key}"}, timeout=10,
        )
        assert issued.status_code == 201, issued.text
        token = issued.json()["token"]
        verified = requests.post(f"{verifier}/v1/verify", json={"token": token}, timeout=10)
        assert verified.status_code == 200, verified.text
        assert verified.json()["userId"] == "123"

        login = requests.post(f"{verifier}/v1/sessions", json={"token": token}, timeout=10)
        assert login.status_code == 201, login.text
        session_id = login.json()["sessionId"]
        forwarded = requests.get(f"{verifier}/v1/auth",
                                 headers={"Authorization": f"Bearer {session_id}"}, timeout=10)
        assert forwarded.status_code == 200, forwarded.text
        assert forwarded.headers["X-Auth-User-Id"] == "123"

        before = _key_counts(machine, nodes)
        for _ in range(3):
            revoked = requests.post(f"{verifier}/v1/revocations", json={"token": token},
                                    timeout=10)
            # 503 is the documented answer of a replica that did not confirm within 150 ms
            # (a loaded machine): the revocation is sent again, as a client would
            if revoked.status_code != 503:
                break
        assert revoked.status_code == 204, revoked.text
        refused = requests.post(f"{verifier}/v1/verify", json={"token": token}, timeout=10)
        assert (refused.status_code, refused.json()["code"]) == (401, "token_revoked")

        # the revocation was acknowledged once a replica held it (WAIT 1, the cluster default):
        # the master of its user's slot and that master's replica gained a key, no other node
        after = _key_counts(machine, nodes)
        holders = {name: _replication(machine, name) for name in nodes
                   if after[name] > before[name]}
        roles = sorted(replication["role"] for replication in holders.values())
        assert roles == ["master", "slave"], holders
        [replica] = [replication for replication in holders.values()
                     if replication["role"] == "slave"]
        [master] = [name for name, replication in holders.items()
                    if replication["role"] == "master"]
        assert replica["master_port"] == machine.ports[master]

        log = (tmp_path / "verifier.log").read_text(errors="replace")
        assert "Redis Cluster mode" in log
        assert "connected replica(s)" not in log
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


def _nginx_text_here(machine: Machine, text: str, listen: dict[int, int]) -> str:
    """An nginx file of demo-proxy as it must read here: service host:port addresses become
    this machine's (as ``Machine.substitute`` does for commands), ``listen`` ports free ones."""
    for other, port in machine.ports.items():
        text = text.replace(f"{other}:{_container_port(machine.services[other])}",
                            f"127.0.0.1:{port}")
    for inside, here in listen.items():
        text = re.sub(rf"^(\s*)listen {inside};", rf"\g<1>listen 127.0.0.1:{here};", text,
                      flags=re.MULTILINE)
    return text


def _demo_proxy_etc(machine: Machine, listen: dict[int, int]) -> Path:
    """The nginx image's /etc/nginx as demo-proxy's mounts make it, here: mounted folders are
    the project's own (linked, as they are), mounted files are copied with addresses here."""
    etc = machine.root / "demo-proxy"
    for target, source in machine.mounts("demo-proxy").items():
        assert target.startswith("/etc/nginx/"), target
        local = etc / target.removeprefix("/etc/nginx/")
        local.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            local.symlink_to(source, target_is_directory=True)
        else:
            local.write_text(_nginx_text_here(machine, source.read_text(), listen))
    return etc


def test_demo_profile_is_off_by_default_and_publishes_nginx_on_8080() -> None:
    compose = _compose()
    assert not {"demo-app", "demo-proxy"} & set(_enabled(compose)["services"])
    services = _enabled(compose, DEMO)["services"]
    proxy = services["demo-proxy"]
    assert proxy["image"].startswith("nginx:")
    assert proxy["ports"] == ["127.0.0.1:8080:8080"]
    assert all(volume.endswith(":ro") for volume in proxy["volumes"])
    # demo.conf listens where the port is published, and sends to the services' own ports
    demo = (REPO / "docs" / "nginx" / "demo.conf").read_text()
    assert re.search(r"^\s*listen 8080;", demo, flags=re.MULTILINE)
    assert f"server demo-app:{_container_port(services['demo-app'])};" in demo
    assert f"server verifier:{_container_port(services['verifier'])};" in demo
    _assert_dependencies_can_be_met(services)


def test_demo_profile_runs_here_nginx_protecting_the_demo_app(tmp_path: Path) -> None:
    """`docker compose --profile demo up`: every service as the file says, demo-proxy as a local
    nginx on the files the compose file mounts; then one request through it, with a token."""
    machine = Machine(_enabled(_compose(), DEMO), tmp_path)
    proxy_port = machine._free_port()
    nginx = Nginx(_demo_proxy_etc(machine, {8080: proxy_port}),
                  # what the nginx image's /etc/nginx/nginx.conf includes
                  "    include conf.d/*.conf;", proxy_port)
    try:
        client_key = ""
        for name in _start_order(machine.services):
            if name == "demo-proxy":
                nginx.start()
            elif name not in machine.ports:
                client_key = _dev_client_key(machine.run_job(name))
            else:
                machine.start(name)
                wait_until(lambda name=name: machine.healthy(name), timeout=60,
                           what=f"{name}'s compose healthcheck")
        issued = requests.post(
            f"{machine.url('issuer')}/v1/tokens", json={"userId": "123", "isAdmin": True},
            headers={"Authorization": f"Bearer {client_key}"}, timeout=10,
        )
        assert issued.status_code == 201, issued.text
        token = issued.json()["token"]

        shown = requests.get(f"{nginx.url}/hello", headers={"Authorization": f"Bearer {token}"},
                             timeout=10)
        assert shown.status_code == 200, shown.text + nginx.log()
        assert shown.json()["path"] == "/hello"
        assert shown.json()["headers"] == {"X-Auth-User-Id": "123", "X-Auth-Is-Admin": "true",
                                           "X-Auth-Provider": "jwt"}
        refused = requests.get(f"{nginx.url}/hello", timeout=10)
        assert refused.status_code == 401
        assert refused.headers["Content-Type"] == "application/problem+json"
    finally:
        nginx.stop()
        machine.stop_all()


def test_traefik_override_forwards_auth_to_the_verifier_for_the_demo_app(tmp_path: Path) -> None:
    """docs/compose.traefik.yml: schema only (no Traefik here), and its labels name the
    verifier's forward-auth endpoint and the demo app's port as docker-compose.yml has them."""
    merged = _with_override(_compose(), yaml.safe_load(TRAEFIK_FILE.read_text()))
    (tmp_path / "merged.json").write_text(json.dumps(merged))
    _assert_compose_schema(tmp_path / "merged.json")
    assert "traefik" not in _enabled(merged)["services"]
    services = _enabled(merged, DEMO)["services"]
    labels = services["demo-app"]["labels"]
    middleware = "traefik.http.middlewares.jwt-auth.forwardauth"
    verifier_port = _container_port(services["verifier"])
    assert labels[f"{middleware}.address"] == f"http://verifier:{verifier_port}/v1/auth"
    assert set(labels[f"{middleware}.authResponseHeaders"].split(",")) == {
        "X-Auth-User-Id", "X-Auth-User-Id-Encoding", "X-Auth-Is-Admin", "X-Auth-Provider"}
    assert labels["traefik.http.services.demo.loadbalancer.server.port"] == str(
        _container_port(services["demo-app"]))
    assert labels["traefik.http.routers.demo.middlewares"] == "jwt-auth"
    # a browser is sent to a login page on Traefik's own address, and rd back to it
    browser = BrowserSettings.from_env(services["verifier"]["environment"])
    traefik_port = merged["services"]["traefik"]["ports"][0].rsplit(":", 1)[0]
    assert traefik_port == "127.0.0.1:8081"
    assert browser.login_url == f"http://{traefik_port}/login"
    assert browser.redirect_hosts == (traefik_port,)
    _assert_dependencies_can_be_met(services)
