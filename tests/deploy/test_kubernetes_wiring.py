"""deploy/kubernetes held to the services' own contract: every variable a container gets is one
its service reads (strict mode on, service links or not), every probe asks a route the service
has, every file variable points into a mounted volume, the verifier reaches the issuer and its
Redis by names the manifests define, and the dev overlay's Secrets start both services.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest

from issuer.app import create_app as create_issuer
from issuer.config import PREFIXES as ISSUER_PREFIXES
from issuer.config import VARIABLES as ISSUER_VARIABLES
from issuer.config import IssuerSettings
from jwt_auth.devkeys import DevPaths
from shared.config import STRICT_VARIABLE, env_bool, unknown_variables
from tests.deploy.manifests import (
    ROOT,
    SERVICE_RANGES,
    AppContainer,
    Obj,
    app_containers,
    materialise_secret_mounts,
    named,
    objects_of,
    pod_spec,
    service_link_environment,
)
from tests.keypairs import KeyPair
from tests.procs import RedisServer
from verifier.app import create_app as create_verifier
from verifier.config import PREFIXES as VERIFIER_PREFIXES
from verifier.config import VARIABLES as VERIFIER_VARIABLES
from verifier.config import VerifierSettings

CONTRACT = {
    "issuer": (ISSUER_VARIABLES, ISSUER_PREFIXES),
    "verifier": (VERIFIER_VARIABLES, VERIFIER_PREFIXES),
}


def _apps(rendered: list[Obj]) -> dict[str, AppContainer]:
    apps = {app.service: app for app in app_containers(rendered)}
    assert set(apps) == {"issuer", "verifier"}
    return apps


# --- the environment ------------------------------------------------------------------------


def test_every_variable_is_one_its_service_reads_in_strict_mode(rendered: list[Obj]) -> None:
    for service, app in _apps(rendered).items():
        environment = app.environment(rendered)
        known, prefixes = CONTRACT[service]
        assert env_bool(environment, STRICT_VARIABLE, False), service
        assert unknown_variables(environment, known, prefixes) == [], service


@pytest.mark.parametrize("service_range", SERVICE_RANGES)
def test_strict_mode_survives_service_links_turned_back_on(
    rendered: list[Obj], service_range: str
) -> None:
    links = service_link_environment(objects_of(rendered, "Service"), service_range)
    # the Services are named under the services' own prefixes (JWT_AUTH_..., REDIS in the
    # verifier's eyes...): the check below is only worth something if links land there
    assert "JWT_AUTH_ISSUER_SERVICE_HOST" in links
    assert "JWT_AUTH_VERIFIER_PORT_8002_TCP_ADDR" in links
    for service, app in _apps(rendered).items():
        environment = {**links, **app.environment(rendered)}
        known, prefixes = CONTRACT[service]
        assert unknown_variables(environment, known, prefixes) == [], service


def test_service_links_would_not_be_mistaken_for_settings(rendered: list[Obj]) -> None:
    # kubelet does not overwrite a variable the container sets; a link named like a setting
    # would be read as one (a Service called "verifier-redis-mode" ...)
    links = service_link_environment(objects_of(rendered, "Service"))
    for known, _ in CONTRACT.values():
        assert not set(links) & known


# --- probes ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def openapi_paths(key_pair: KeyPair, redis_server: RedisServer) -> Iterator[dict[str, set[str]]]:
    """Each service's routes, from its OpenAPI document, built from explicit settings."""
    issuer = create_issuer(IssuerSettings(private_key_file=str(key_pair.private_path),
                                          key_passphrase_file=str(key_pair.passphrase_path)))
    verifier = create_verifier(VerifierSettings(public_key_file=str(key_pair.public_path),
                                                redis_url=redis_server.url))
    yield {"issuer": set(issuer.api.document()["paths"]),
           "verifier": set(verifier.api.document()["paths"])}
    verifier.flask.extensions["verifier"].store.close()


def test_every_probe_asks_a_route_the_service_has(
    rendered: list[Obj], openapi_paths: dict[str, set[str]]
) -> None:
    for service, app in _apps(rendered).items():
        probes = {name: app.container[name]["httpGet"]["path"]
                  for name in ("startupProbe", "livenessProbe", "readinessProbe")}
        assert probes["livenessProbe"] == "/healthz"
        assert probes["readinessProbe"] == "/readyz"
        for name, path in probes.items():
            assert path in openapi_paths[service], (service, name, path)


# --- files --------------------------------------------------------------------------------------


def _file_variables(environment: dict[str, str]) -> dict[str, str]:
    return {name: value for name, value in environment.items()
            if name.endswith(("_FILE", "_DIR")) and value}


def test_every_file_variable_points_into_a_mounted_volume(rendered: list[Obj]) -> None:
    for service, app in _apps(rendered).items():
        variables = _file_variables(app.environment(rendered))
        assert variables, service
        for name, path in variables.items():
            found = app.mount_of(path)
            assert found is not None, f"{service}: {name}={path} is in no mounted volume"
            mount, volume = found
            if "secret" not in volume:
                continue
            relative = path[len(mount["mountPath"].rstrip("/")) + 1:]
            if name.endswith("_FILE"):
                # one key of the Secret, the file's name in the folder kubelet writes
                assert relative, (name, path)
                assert "/" not in relative, (name, path)
            secret = volume["secret"]["secretName"]
            rendered_secret = [item for item in objects_of(rendered, "Secret")
                               if item["metadata"]["name"] == secret]
            if rendered_secret and name.endswith("_FILE"):
                keys = {**rendered_secret[0].get("data", {}),
                        **rendered_secret[0].get("stringData", {})}
                assert relative in keys, f"{name}: Secret {secret} has no key {relative}"


def _documented_secret_commands() -> dict[str, str]:
    """Each ``kubectl create secret generic NAME ...`` of docs/kubernetes.md, whole."""
    text = (ROOT / "docs" / "kubernetes.md").read_text(encoding="utf-8").replace("\\\n", " ")
    return {match[1]: match[0]
            for match in re.finditer(r"kubectl create secret generic ([a-z0-9-]+)[^\n|]*", text)}


def test_every_secret_the_manifests_mount_has_its_command_in_the_docs(
    rendered_overlays: dict[str, list[Obj]]
) -> None:
    # production renders no Secret: each one it mounts is made by a documented command, with
    # the key (the file name) the variable pointing into it expects
    objects = rendered_overlays["production"]
    commands = _documented_secret_commands()
    for service, app in _apps(objects).items():
        for name, path in _file_variables(app.environment(objects)).items():
            found = app.mount_of(path)
            assert found is not None
            volume = found[1]
            if "secret" not in volume:
                continue
            secret = volume["secret"]["secretName"]
            assert secret in commands, f"docs/kubernetes.md never creates Secret {secret}"
            if name.endswith("_FILE"):
                key = Path(path).name
                assert re.search(rf"--from-file={re.escape(key)}=|/{re.escape(key)}\b",
                                 commands[secret]), (service, name, commands[secret])


# --- the verifier finds the issuer and Redis ----------------------------------------------------


def _reachable_port(rendered: list[Obj], host: str, port: int) -> Obj:
    """The Service ``host`` exposing ``port``, asserted to exist; the Service itself."""
    service = named(rendered, "Service", host)
    assert port in [entry["port"] for entry in service["spec"]["ports"]], (host, port)
    return service


def test_the_verifier_trusts_the_issuer_through_its_service(
    rendered: list[Obj], openapi_paths: dict[str, set[str]]
) -> None:
    apps = _apps(rendered)
    url = urllib.parse.urlsplit(apps["verifier"].environment(rendered)["VERIFIER_JWKS_URL"])
    assert url.scheme == "http"
    assert url.hostname is not None
    assert url.port is not None
    service = _reachable_port(rendered, url.hostname, url.port)
    assert service["spec"]["selector"].items() <= \
        apps["issuer"].workload["spec"]["template"]["metadata"]["labels"].items()
    assert url.path in openapi_paths["issuer"]


def test_dev_uses_its_one_redis_through_a_service(
    rendered_overlays: dict[str, list[Obj]]
) -> None:
    objects = rendered_overlays["dev"]
    environment = _apps(objects)["verifier"].environment(objects)
    assert environment["VERIFIER_REDIS_MODE"] == "standalone"
    url = urllib.parse.urlsplit(environment["REDIS_URL"])
    assert url.hostname is not None
    _reachable_port(objects, url.hostname, url.port or 6379)
    redis = named(objects, "StatefulSet", "jwt-auth-redis")
    command = pod_spec(redis)["containers"][0]["command"]
    assert " ".join(command).count("--appendonly yes --appendfsync always") == 1


def test_production_asks_the_sentinels_of_its_statefulset(
    rendered_overlays: dict[str, list[Obj]]
) -> None:
    objects = rendered_overlays["production"]
    verifier = _apps(objects)["verifier"]
    environment = verifier.environment(objects)
    assert environment["VERIFIER_REDIS_MODE"] == "sentinel"
    assert environment["VERIFIER_REDIS_MIN_REPLICAS"] == "1"
    redis = named(objects, "StatefulSet", "jwt-auth-redis")
    headless = named(objects, "Service", redis["spec"]["serviceName"])
    assert headless["spec"]["clusterIP"] == "None"
    sentinel_ports = [port["containerPort"] for container in pod_spec(redis)["containers"]
                      for port in container["ports"] if port["name"] == "sentinel"]
    expected = [f"{redis['metadata']['name']}-{ordinal}.{headless['metadata']['name']}"
                for ordinal in range(redis["spec"]["replicas"])]
    urls = [urllib.parse.urlsplit(url) for url in environment["REDIS_URL"].split(",")]
    assert [url.hostname for url in urls] == expected
    assert {url.port for url in urls} == set(sentinel_ports)
    assert redis["spec"]["replicas"] >= 3  # a quorum of two survives the loss of one
    # the verifier reads the password the Redis nodes require, from the same Secret
    password_file = environment["REDIS_PASSWORD_FILE"]
    found = verifier.mount_of(password_file)
    assert found is not None
    node_password = {volume["secret"]["secretName"] for volume in pod_spec(redis)["volumes"]
                     if "secret" in volume}
    assert found[1]["secret"]["secretName"] in node_password


# --- the dev Secrets, as the services would read them --------------------------------------------


def _as_mounted(app: AppContainer, objects: list[Obj], root: Path) -> dict[str, str]:
    """The container's environment with its Secret folders written under ``root`` and its
    paths pointing there, as if this machine were the pod."""
    mounts = list(materialise_secret_mounts(objects, app, root))
    environment = app.environment(objects)
    for name, value in environment.items():
        if any(value == mount or value.startswith(mount + "/") for mount in mounts):
            environment[name] = str(root / value.lstrip("/"))
    return environment


def test_the_dev_secrets_start_both_services_and_a_token_goes_through(
    rendered_overlays: dict[str, list[Obj]], dev_keys: DevPaths, tmp_path: Path, redis_url: str
) -> None:
    objects = rendered_overlays["dev"]
    apps = _apps(objects)
    issuer = create_issuer(IssuerSettings.from_env(
        _as_mounted(apps["issuer"], objects, tmp_path / "issuer-pod")))
    client_key = dev_keys.client_key.read_text(encoding="utf-8").strip()
    answer = issuer.test_client().post("/v1/tokens", json={"userId": "123"},
                                       headers={"Authorization": f"Bearer {client_key}"})
    assert answer.status_code == 201, answer.get_data(as_text=True)
    token = answer.get_json()["token"]

    environment = _as_mounted(apps["verifier"], objects, tmp_path / "verifier-pod")
    # what the cluster's names stand for on this machine: the test's Redis, and the issuer's
    # public key in place of its JWKS URL (test_the_verifier_trusts_the_issuer_through_its_service)
    environment["REDIS_URL"] = redis_url
    del environment["VERIFIER_JWKS_URL"]
    environment["VERIFIER_PUBLIC_KEY_FILE"] = str(dev_keys.public_key)
    verifier = create_verifier(VerifierSettings.from_env(environment))
    try:
        client = verifier.test_client()
        checked = client.post("/v1/verify", json={"token": token})
        assert checked.status_code == 200, checked.get_data(as_text=True)
        admin_key = dev_keys.admin_key.read_text(encoding="utf-8").strip()
        ended = client.delete("/v1/users/123/sessions",
                              headers={"Authorization": f"Bearer {admin_key}"})
        assert ended.status_code < 300, ended.get_data(as_text=True)
    finally:
        verifier.flask.extensions["verifier"].store.close()
