"""The Kubernetes manifests of deploy/kubernetes as Kubernetes would see them: rendered by
``kubectl kustomize``, with each container's environment resolved and the variables kubelet
would add for the Services (service links) computed the way kubelet computes them.

Shared by the tests of tests/deploy; nothing here talks to a cluster.
"""

from __future__ import annotations

import ipaddress
import re
import shlex
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
KUBERNETES_DIR = ROOT / "deploy" / "kubernetes"
OVERLAYS = ("dev", "production")
KUBECTL = "/usr/bin/kubectl"

KUBERNETES_VERSION = "1.32.0"
"""The Kubernetes version every object is validated against: the oldest minor still supported
upstream when the manifests were written, so they apply to clusters that are not the newest."""

APP_UID = 10001
"""The uid the Dockerfile's USER line runs the services as."""

WORKLOADS = ("Deployment", "StatefulSet", "DaemonSet", "Job")

Obj = dict[str, Any]


def kubectl() -> str:
    """The kubectl binary; the deploy tests fail (never skip) without it, saying what to do."""
    found = KUBECTL if Path(KUBECTL).exists() else shutil.which("kubectl")
    if found is None:
        pytest.fail(f"kubectl is needed to render deploy/kubernetes and was found neither at "
                    f"{KUBECTL} nor on PATH: install it (apt-get install kubectl, or the "
                    "release binary) and run the tests again", pytrace=False)
    return found


def render(directory: Path) -> list[Obj]:
    """Every object ``kubectl kustomize DIRECTORY`` renders, as ``kubectl apply -k`` sends it."""
    result = subprocess.run([kubectl(), "kustomize", str(directory)], capture_output=True,
                            text=True, timeout=120, check=False)
    if result.returncode != 0:
        raise RenderError(result.stderr.strip())
    return [item for item in yaml.safe_load_all(result.stdout) if item]


class RenderError(Exception):
    """kubectl kustomize refused the directory; the message is its error output."""


# --- looking things up in a rendered set -------------------------------------------------------

def objects_of(objects: list[Obj], kind: str) -> list[Obj]:
    return [item for item in objects if item["kind"] == kind]


def named(objects: list[Obj], kind: str, name: str) -> Obj:
    found = [item for item in objects_of(objects, kind) if item["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name}, found {len(found)}"
    return found[0]


def workloads(objects: list[Obj]) -> list[Obj]:
    return [item for item in objects if item["kind"] in WORKLOADS]


def pod_spec(workload: Obj) -> Obj:
    spec: Obj = workload["spec"]["template"]["spec"]
    return spec


def all_containers(spec: Obj) -> list[Obj]:
    return [*spec.get("initContainers", []), *spec["containers"]]


@dataclass(frozen=True)
class AppContainer:
    """A container running one of our services: which one, and where it runs."""

    service: str  # "issuer" or "verifier"
    workload: Obj
    container: Obj

    @property
    def spec(self) -> Obj:
        return pod_spec(self.workload)

    @property
    def bind_port(self) -> int:
        """The port of ``--bind HOST:PORT`` in the container's command."""
        command = self.container["command"]
        return int(command[command.index("--bind") + 1].rpartition(":")[2])

    def environment(self, objects: list[Obj]) -> dict[str, str]:
        """Every variable the service's process gets (``container_environment``)."""
        return container_environment(objects, self.container)

    def mount_of(self, path: str) -> tuple[Obj, Obj] | None:
        """The volume mount that ``path`` lies inside, with its volume; None if none does."""
        for mount in self.container.get("volumeMounts", []):
            mount_path = mount["mountPath"].rstrip("/")
            if path == mount_path or path.startswith(mount_path + "/"):
                volume = next(volume for volume in self.spec["volumes"]
                              if volume["name"] == mount["name"])
                return mount, volume
        return None


def app_containers(objects: list[Obj]) -> list[AppContainer]:
    """Every container that runs ``jwt-auth serve issuer|verifier``."""
    found = []
    for workload in workloads(objects):
        for container in all_containers(pod_spec(workload)):
            command = container.get("command") or []
            if command[:3] in (["jwt-auth", "serve", "issuer"], ["jwt-auth", "serve", "verifier"]):
                found.append(AppContainer(command[2], workload, container))
    return found


def container_environment(objects: list[Obj], container: Obj) -> dict[str, str]:
    """What the container's process gets: the image's ENV, then ``envFrom``, then ``env``
    (later wins, as in Kubernetes). A value from a Secret or a field reference is unknown
    here and stands as ``<from ...>``."""
    environment = image_environment()
    for source in container.get("envFrom", []):
        config_map = named(objects, "ConfigMap", source["configMapRef"]["name"])
        environment.update(config_map.get("data", {}))
    for variable in container.get("env", []):
        if "value" in variable:
            environment[variable["name"]] = variable["value"]
        else:
            environment[variable["name"]] = f"<from {sorted(variable['valueFrom'])[0]}>"
    return environment


def image_environment() -> dict[str, str]:
    """The ``ENV`` lines of the Dockerfile's last stage: the image that runs."""
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8").replace("\\\n", " ")
    stages = re.split(r"^FROM\s", text, flags=re.MULTILINE)
    environment: dict[str, str] = {}
    for line in stages[-1].splitlines():
        if line.startswith("ENV "):
            for word in shlex.split(line[len("ENV "):]):
                name, _, value = word.partition("=")
                environment[name] = value
    return environment


# --- what kubelet adds with enableServiceLinks: true ----------------------------------------

SERVICE_RANGES = ("10.96.0.0/12", "fd00:10:96::/112")
"""The Service address ranges kubeadm and kind use, IPv4 and IPv6."""


def service_link_environment(services: list[Obj], service_range: str = SERVICE_RANGES[0]
                             ) -> dict[str, str]:
    """The variables kubelet puts in every container of a pod for the Services of its namespace
    (and the API server's ``kubernetes`` Service), as pkg/kubelet/envvars does: for each Service
    with a cluster IP, ``NAME_SERVICE_HOST``, ``NAME_SERVICE_PORT``, ``NAME_SERVICE_PORT_<port
    name>``, ``NAME_PORT`` and, per port, ``NAME_PORT_<port>_<PROTO>`` with its ``_PROTO``,
    ``_PORT`` and ``_ADDR``. Headless Services get none. Cluster IPs are made up (a rendered
    Service has none yet) from ``service_range``."""
    api_server: Obj = {"metadata": {"name": "kubernetes"},
                       "spec": {"ports": [{"name": "https", "port": 443, "protocol": "TCP"}]}}
    addresses = ipaddress.ip_network(service_range).hosts()
    environment: dict[str, str] = {}
    for service in [api_server, *services]:
        cluster_ip = service["spec"].get("clusterIP")
        if cluster_ip == "None":
            continue
        address = cluster_ip or str(next(addresses))
        prefix = service["metadata"]["name"].upper().replace("-", "_")
        ports = service["spec"]["ports"]
        environment[f"{prefix}_SERVICE_HOST"] = address
        environment[f"{prefix}_SERVICE_PORT"] = str(ports[0]["port"])
        for port in ports:
            if port.get("name"):
                name = port["name"].upper().replace("-", "_")
                environment[f"{prefix}_SERVICE_PORT_{name}"] = str(port["port"])
        for index, port in enumerate(ports):
            protocol = port.get("protocol", "TCP")
            # net.JoinHostPort: an IPv6 address in brackets
            host = f"[{address}]" if ":" in address else address
            url = f"{protocol.lower()}://{host}:{port['port']}"
            if index == 0:
                environment[f"{prefix}_PORT"] = url
            base = f"{prefix}_PORT_{port['port']}_{protocol.upper()}"
            environment[base] = url
            environment[f"{base}_PROTO"] = protocol.lower()
            environment[f"{base}_PORT"] = str(port["port"])
            environment[f"{base}_ADDR"] = address
    return environment


# --- what a container would see in its mounted Secrets ---------------------------------------

def materialise_secret_mounts(objects: list[Obj], app: AppContainer, root: Path) -> Iterator[str]:
    """Write each rendered Secret the container mounts under ``root`` + its mount path, as
    kubelet lays it out (one file per key); yield each mount path written."""
    import base64

    for mount in app.container.get("volumeMounts", []):
        volume = next(volume for volume in app.spec["volumes"] if volume["name"] == mount["name"])
        if "secret" not in volume:
            continue
        secret = named(objects, "Secret", volume["secret"]["secretName"])
        folder = root / mount["mountPath"].lstrip("/")
        folder.mkdir(parents=True, exist_ok=True)
        for key, value in secret.get("data", {}).items():
            (folder / key).write_bytes(base64.b64decode(value))
        for key, value in secret.get("stringData", {}).items():
            (folder / key).write_text(value, encoding="utf-8")
        yield mount["mountPath"]
