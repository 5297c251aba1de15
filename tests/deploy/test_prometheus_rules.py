"""deploy/prometheus: the alerting rules pass promtool's checks and unit tests, every alert has a
case that fires and one that must not, and the example configuration is valid.

promtool comes with Debian's ``prometheus`` package (scripts/bootstrap --for-tests installs
it); without it these tests fail, never skip. tests/e2e/test_prometheus.py runs the same
rules in a real Prometheus against real services.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.procs import REPO
from tests.promql import (
    ALERTS_FILE,
    ALERTS_TEST_FILE,
    INSTALL_HINT,
    PROMETHEUS_CONFIG,
    PROMETHEUS_DIR,
    alert_rules,
    documented_name,
    metric_name,
    selectors,
)

METRICS_DOC = REPO / "docs" / "metrics.md"


def promtool(*args: str, cwd: Path = PROMETHEUS_DIR) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("promtool")
    if binary is None:
        pytest.fail(f"promtool is not installed: {INSTALL_HINT}")
    return subprocess.run([binary, *args], cwd=cwd, capture_output=True, text=True, timeout=120,
                          check=False)


def test_promtool_checks_the_rules() -> None:
    result = promtool("check", "rules", ALERTS_FILE.name)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(alert_rules())} rules found" in result.stdout


def test_promtool_unit_tests_pass() -> None:
    result = promtool("test", "rules", ALERTS_TEST_FILE.name)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def _rule_tests() -> list[dict[str, Any]]:
    document = yaml.safe_load(ALERTS_TEST_FILE.read_text())
    assert document["rule_files"] == [ALERTS_FILE.name]
    return [check for case in document["tests"] for check in case.get("alert_rule_test", [])]


def test_every_alert_has_a_case_that_fires_and_one_that_must_not() -> None:
    names = [rule.name for rule in alert_rules()]
    assert len(names) == len(set(names)), "two alerts of the same name"
    firing = {check["alertname"] for check in _rule_tests() if check.get("exp_alerts")}
    quiet = {check["alertname"] for check in _rule_tests() if not check.get("exp_alerts")}
    assert not set(names) - firing, f"alerts with no firing case: {sorted(set(names) - firing)}"
    assert not set(names) - quiet, f"alerts with no quiet case: {sorted(set(names) - quiet)}"
    # promtool passes a test of an alert that does not exist (it expects none and gets none)
    unknown = (firing | quiet) - set(names)
    assert not unknown, f"cases for alerts that alerts.yml does not have: {sorted(unknown)}"


def test_every_alert_says_how_bad_and_what_to_do() -> None:
    doc = METRICS_DOC.read_text()
    for rule in alert_rules():
        assert rule.rule["labels"]["severity"] in {"critical", "warning"}, rule.name
        annotations = rule.rule["annotations"]
        assert annotations["summary"], rule.name
        assert annotations["description"], rule.name
        assert annotations["runbook"] == "docs/metrics.md#alerts", rule.name
        assert "Runbook: docs/metrics.md#alerts" in annotations["description"], rule.name
        assert "for" in rule.rule, f"{rule.name}: no `for`, so one bad evaluation pages"
        assert f"| `{rule.name}` |" in doc, f"{rule.name} is not in docs/metrics.md's Alerts table"


def test_every_metric_the_rules_read_is_documented() -> None:
    documented = set(re.findall(r"^\| `([a-z_:]+)` \|", METRICS_DOC.read_text(), re.MULTILINE))
    for rule in alert_rules():
        names = {metric_name(selector) for selector in selectors(rule.expr)}
        assert names, f"{rule.name}: no metric found in {rule.expr!r}"
        unknown = {name for name in names if documented_name(name) not in documented} - {"up"}
        assert not unknown, f"{rule.name} reads metrics docs/metrics.md does not list: {unknown}"


def test_the_example_configuration_is_valid_and_names_the_jobs_the_rules_assume() -> None:
    result = promtool("check", "config", PROMETHEUS_CONFIG.name)
    assert result.returncode == 0, result.stdout + result.stderr
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    assert config["rule_files"] == [ALERTS_FILE.name]
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert set(jobs) == {"jwt-auth-issuer", "jwt-auth-verifier"}
    assert jobs["jwt-auth-issuer"]["static_configs"] == [{"targets": ["127.0.0.1:8001"]}]
    assert jobs["jwt-auth-verifier"]["static_configs"] == [{"targets": ["127.0.0.1:8002"]}]
    named = {job for rule in alert_rules() for job in re.findall(r'job="([^"]+)"', rule.expr)}
    assert named, "no rule names a job"
    assert named <= set(jobs), f"rules name jobs the example lacks: {named - set(jobs)}"


def test_the_commented_kubernetes_example_selects_the_pods_of_the_manifests() -> None:
    # Debian's promtool is built without Kubernetes discovery, so it cannot check this part:
    # it is read as YAML and held to the labels and port name of deploy/kubernetes instead
    text = PROMETHEUS_CONFIG.read_text()
    start = text.index("  # - job_name: jwt-auth-verifier")
    example = "\n".join(line.removeprefix("  # ") for line in text[start:].splitlines()
                        if line.startswith("  # "))
    (job,) = yaml.safe_load(example)
    assert job["job_name"] == "jwt-auth-verifier"
    assert job["kubernetes_sd_configs"][0]["role"] == "pod"
    keep = {rule["source_labels"][0]: rule["regex"] for rule in job["relabel_configs"]
            if rule.get("action") == "keep"}
    assert keep == {"__meta_kubernetes_pod_label_app_kubernetes_io_name": "jwt-auth-verifier",
                    "__meta_kubernetes_pod_container_port_name": "http"}
    manifest = (REPO / "deploy" / "kubernetes" / "base" / "verifier.yaml").read_text()
    deployment = next(document for document in yaml.safe_load_all(manifest)
                      if document["kind"] == "Deployment")
    pod = deployment["spec"]["template"]
    assert pod["metadata"]["labels"]["app.kubernetes.io/name"] == "jwt-auth-verifier"
    ports = {port["name"] for container in pod["spec"]["containers"]
             for port in container.get("ports", [])}
    assert "http" in ports


@pytest.mark.parametrize(("expr", "expected"), [
    ('sum by (job, le) (rate(a_total{x="1", y=~"b|c"}[5m])) / on (job) b', {
        'a_total{x="1", y=~"b|c"}', "b"}),
    ("histogram_quantile(0.99, sum by (le) (rate(h_bucket[1m]))) > 0.25 and bool c", {
        "h_bucket", "c"}),
    ('absent(up{job="j"}) or time() - t > m + 60 unless on (i) d == 0', {
        'up{job="j"}', "t", "m", "d"}),
])
def test_the_selector_scanner_finds_each_metric(expr: str, expected: set[str]) -> None:
    assert selectors(expr) == expected
