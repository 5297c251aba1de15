"""deploy/kubernetes as Kubernetes would take it: each overlay rendered with kubectl kustomize,
every object valid for a pinned Kubernetes version, and the shape the docs promise (security
settings, ports that line up, a grace period gunicorn fits in, autoscaling and budgets that
select what they mean to).

No cluster: what these tests cannot show is in docs/kubernetes.md, "What is tested".
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import kubernetes_validate
import pytest

from shared.web.gunicorn import GRACEFUL_TIMEOUT
from tests.deploy.manifests import (
    APP_UID,
    KUBERNETES_DIR,
    KUBERNETES_VERSION,
    ROOT,
    Obj,
    RenderError,
    all_containers,
    app_containers,
    objects_of,
    pod_spec,
    render,
    workloads,
)

# --- schema ---------------------------------------------------------------------------------


def test_every_object_is_valid_for_the_pinned_kubernetes_version(rendered: list[Obj]) -> None:
    # strict: a field Kubernetes does not know (a typo, a field of a newer version) fails too,
    # where the API server of that version would drop it or refuse the object
    problems = []
    for item in rendered:
        where = f"{item['kind']} {item['metadata']['name']}"
        try:
            kubernetes_validate.validate(item, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as error:
            path = ".".join(str(part) for part in error.path)
            problems.append(f"{where}: {path}: {error.message}")
        except kubernetes_validate.SchemaNotFoundError as error:
            problems.append(f"{where}: {error.message}")
    assert problems == []


def test_the_schemas_are_bundled_so_validation_needs_no_network() -> None:
    from importlib.resources import files

    schemas = files("kubernetes_validate") / "kubernetes-json-schema"
    pinned = f"v{KUBERNETES_VERSION}-local-strict"
    assert (schemas / pinned / "deployment-apps-v1.json").is_file()


def test_the_overlays_render_what_each_promises(rendered_overlays: dict[str, list[Obj]]) -> None:
    kinds = {overlay: {(item["kind"], item["metadata"]["name"]) for item in objects}
             for overlay, objects in rendered_overlays.items()}
    for objects in kinds.values():
        assert {("Deployment", "jwt-auth-issuer"), ("Deployment", "jwt-auth-verifier"),
                ("Service", "jwt-auth-issuer"), ("Service", "jwt-auth-verifier"),
                ("HorizontalPodAutoscaler", "jwt-auth-verifier"),
                ("PodDisruptionBudget", "jwt-auth-issuer"),
                ("PodDisruptionBudget", "jwt-auth-verifier"),
                ("StatefulSet", "jwt-auth-redis")} <= objects
    # dev: its Secrets come from the dev keys; production: none in the manifests at all
    assert {name for kind, name in kinds["dev"] if kind == "Secret"} == {
        "jwt-auth-issuer-keys", "jwt-auth-issuer-passphrase", "jwt-auth-issuer-clients",
        "jwt-auth-verifier-api-keys"}
    assert not [name for kind, name in kinds["production"] if kind == "Secret"]


def test_the_dev_overlay_without_dev_keys_fails_naming_the_folder(tmp_path: Path) -> None:
    copy = tmp_path / "kubernetes"
    shutil.copytree(KUBERNETES_DIR, copy, ignore=shutil.ignore_patterns("dev-keys"))
    with pytest.raises(RenderError, match="dev-keys"):
        render(copy / "overlays" / "dev")


def test_images_are_set_by_kustomize_with_a_version_tag(rendered: list[Obj]) -> None:
    # the manifests name bare images; the kustomizations' images: fields give the tags. A bare
    # name left over means an images: entry did not match, and `latest` would make every
    # start pull, which fails for an image loaded into a local cluster
    for workload in workloads(rendered):
        for container in all_containers(pod_spec(workload)):
            name, _, tag = container["image"].rpartition(":")
            assert name, container["image"]
            assert "/" not in tag, container["image"]
            assert tag != "latest", container["image"]
    for app in app_containers(rendered):
        assert app.container["image"].rpartition(":")[0].endswith("jwt-custom-auth")


# --- security -----------------------------------------------------------------------------


def _effective(container: Obj, spec: Obj, field: str) -> object:
    """A security field as Kubernetes applies it: the container's, else the pod's."""
    own = container.get("securityContext", {})
    return own[field] if field in own else spec.get("securityContext", {}).get(field)


def test_every_container_runs_locked_down(rendered: list[Obj]) -> None:
    checked = 0
    for workload in workloads(rendered):
        spec = pod_spec(workload)
        assert spec.get("enableServiceLinks") is False, workload["metadata"]["name"]
        assert spec.get("automountServiceAccountToken") is False, workload["metadata"]["name"]
        for container in all_containers(spec):
            where = f"{workload['metadata']['name']}/{container['name']}"
            own = container.get("securityContext", {})
            assert _effective(container, spec, "runAsNonRoot") is True, where
            assert isinstance(_effective(container, spec, "runAsUser"), int), where
            assert _effective(container, spec, "runAsUser") != 0, where
            assert own.get("allowPrivilegeEscalation") is False, where
            assert own.get("readOnlyRootFilesystem") is True, where
            assert own.get("privileged", False) is False, where
            assert own.get("capabilities") == {"drop": ["ALL"]}, where
            assert _effective(container, spec, "seccompProfile") == {"type": "RuntimeDefault"}, \
                where
            checked += 1
    assert checked >= 3


def test_the_services_run_as_the_images_own_user(rendered: list[Obj]) -> None:
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert re.search(rf"^USER {APP_UID}:{APP_UID}$", dockerfile, re.MULTILINE)
    for app in app_containers(rendered):
        assert _effective(app.container, app.spec, "runAsUser") == APP_UID
        assert _effective(app.container, app.spec, "runAsGroup") == APP_UID


def test_the_services_have_writable_memory_folders_where_they_write(rendered: list[Obj]) -> None:
    # a read-only root: gunicorn's worker heartbeats and Python's temporary files go to /tmp,
    # the workers' metrics to PROMETHEUS_MULTIPROC_DIR, both empty at each start
    for app in app_containers(rendered):
        for path in ("/tmp", app.environment(rendered)["PROMETHEUS_MULTIPROC_DIR"]):
            found = app.mount_of(path)
            assert found is not None, f"{app.service}: nothing mounted at {path}"
            mount, volume = found
            assert "emptyDir" in volume, path
            assert not mount.get("readOnly", False), path


def test_secrets_are_mounted_as_folders_that_follow_updates(rendered: list[Obj]) -> None:
    # kubelet swaps a Secret volume's files when the Secret changes, which is what makes the
    # services reload keys without a restart; a subPath mount keeps the first version forever
    for workload in workloads(rendered):
        spec = pod_spec(workload)
        secret_volumes = {volume["name"] for volume in spec.get("volumes", [])
                          if "secret" in volume}
        for container in all_containers(spec):
            for mount in container.get("volumeMounts", []):
                if mount["name"] in secret_volumes:
                    assert "subPath" not in mount, (container["name"], mount)
                    assert mount.get("readOnly") is True, (container["name"], mount)


# --- ports, probes, shutdown ---------------------------------------------------------------


def _selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


def _selected_workload(rendered: list[Obj], selector: dict[str, str]) -> Obj:
    matches = [workload for workload in workloads(rendered)
               if _selects(selector, workload["spec"]["template"]["metadata"]["labels"])]
    assert len(matches) == 1, f"{selector} selects {len(matches)} workloads"
    return matches[0]


def _container_port(workload: Obj, port: int | str) -> int:
    """The container port a Service's targetPort (a number or a port name) reaches."""
    for container in pod_spec(workload)["containers"]:
        for declared in container.get("ports", []):
            if port in (declared["containerPort"], declared.get("name")):
                number: int = declared["containerPort"]
                return number
    raise AssertionError(f"no container port {port!r} in {workload['metadata']['name']}")


def test_service_target_ports_reach_the_port_each_service_binds(rendered: list[Obj]) -> None:
    for service in objects_of(rendered, "Service"):
        workload = _selected_workload(rendered, service["spec"]["selector"])
        for port in service["spec"]["ports"]:
            _container_port(workload, port.get("targetPort", port["port"]))
    for app in app_containers(rendered):
        assert [port["containerPort"] for port in app.container["ports"]] == [app.bind_port]
        assert app.container["command"][app.container["command"].index("--bind") + 1] \
            .startswith("0.0.0.0:"), "a Service reaches a pod on its pod IP, not loopback"
        services = [service for service in objects_of(rendered, "Service")
                    if _selects(service["spec"]["selector"],
                                app.workload["spec"]["template"]["metadata"]["labels"])]
        assert len(services) == 1, app.service
        assert [_container_port(app.workload, port["targetPort"])
                for port in services[0]["spec"]["ports"]] == [app.bind_port]


def test_probes_ask_the_port_each_service_binds(rendered: list[Obj]) -> None:
    for app in app_containers(rendered):
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            port = app.container[probe]["httpGet"]["port"]
            assert _container_port(app.workload, port) == app.bind_port, (app.service, probe)


def test_the_grace_period_outlasts_gunicorns_graceful_timeout(rendered: list[Obj]) -> None:
    # kubelet's grace period covers the preStop pause and then gunicorn's own graceful stop;
    # one that ends sooner SIGKILLs requests still in flight
    for app in app_containers(rendered):
        grace = app.spec.get("terminationGracePeriodSeconds", 30)
        pre_stop = app.container.get("lifecycle", {}).get("preStop", {})
        pause = 0
        if "exec" in pre_stop:
            command = pre_stop["exec"]["command"]
            assert command[0] == "sleep", command
            pause = int(command[1])
        elif "sleep" in pre_stop:
            pause = int(pre_stop["sleep"]["seconds"])
        assert grace > pause + GRACEFUL_TIMEOUT, (app.service, grace, pause, GRACEFUL_TIMEOUT)


def test_rolling_updates_never_drop_below_the_wanted_count(rendered: list[Obj]) -> None:
    for deployment in objects_of(rendered, "Deployment"):
        rolling = deployment["spec"]["strategy"]["rollingUpdate"]
        assert rolling["maxUnavailable"] == 0, deployment["metadata"]["name"]
        assert rolling["maxSurge"] >= 1, deployment["metadata"]["name"]


# --- autoscaling and budgets ------------------------------------------------------------------


def test_the_verifier_autoscales_on_cpu_and_owns_its_count(rendered: list[Obj]) -> None:
    (autoscaler,) = objects_of(rendered, "HorizontalPodAutoscaler")
    assert autoscaler["apiVersion"] == "autoscaling/v2"
    target = autoscaler["spec"]["scaleTargetRef"]
    assert target["kind"] == "Deployment"
    assert target["name"] == "jwt-auth-verifier"
    (deployment,) = [item for item in objects_of(rendered, "Deployment")
                     if item["metadata"]["name"] == target["name"]]
    # a count in the Deployment would be put back by every apply
    assert "replicas" not in deployment["spec"]
    assert [metric["resource"]["name"] for metric in autoscaler["spec"]["metrics"]] == ["cpu"]
    # utilisation is a share of the request: without one the autoscaler cannot compute it
    for container in pod_spec(deployment)["containers"]:
        assert container["resources"]["requests"]["cpu"]
        assert container["resources"]["limits"]["memory"]
    spec = autoscaler["spec"]
    assert 1 <= spec["minReplicas"] < spec["maxReplicas"]


def test_budgets_select_one_workload_and_let_a_drain_proceed(rendered: list[Obj]) -> None:
    replicas = {item["metadata"]["name"]: item["spec"].get("replicas") for item in
                workloads(rendered)}
    autoscaled = {autoscaler["spec"]["scaleTargetRef"]["name"]: autoscaler["spec"]["minReplicas"]
                  for autoscaler in objects_of(rendered, "HorizontalPodAutoscaler")}
    for budget in objects_of(rendered, "PodDisruptionBudget"):
        workload = _selected_workload(rendered, budget["spec"]["selector"]["matchLabels"])
        name = workload["metadata"]["name"]
        count = autoscaled.get(name) or replicas[name]
        if "minAvailable" in budget["spec"]:
            # minAvailable equal to the count would block every drain for good
            assert budget["spec"]["minAvailable"] < count, name
        else:
            assert budget["spec"]["maxUnavailable"] not in (0, "0%"), name


def test_production_runs_more_than_dev(rendered_overlays: dict[str, list[Obj]]) -> None:
    def sizes(objects: list[Obj]) -> tuple[int, int, int]:
        issuer = next(item for item in objects_of(objects, "Deployment")
                      if item["metadata"]["name"] == "jwt-auth-issuer")
        (autoscaler,) = objects_of(objects, "HorizontalPodAutoscaler")
        return (issuer["spec"]["replicas"], autoscaler["spec"]["minReplicas"],
                autoscaler["spec"]["maxReplicas"])

    dev, production = sizes(rendered_overlays["dev"]), sizes(rendered_overlays["production"])
    assert all(low < high for low, high in zip(dev, production, strict=True))
    assert production[0] >= 3  # an issuer through a drain and a crash at once
