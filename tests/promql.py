"""The PromQL the project ships (deploy/prometheus/alerts.yml, deploy/grafana/jwt-auth.json), read
for tests: each alert rule, each dashboard query with Grafana's variables filled in, and the
series selectors an expression reads.

The selectors are found by a small scanner, enough for the expressions written here (no string
literal outside a label matcher, no ``@`` modifier): a metric name with its matchers, after the
grouping clauses (``by (...)``, ``on (...)``) and range durations are taken out.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import yaml

from tests.procs import REPO

PROMETHEUS_DIR = REPO / "deploy" / "prometheus"
ALERTS_FILE = PROMETHEUS_DIR / "alerts.yml"
ALERTS_TEST_FILE = PROMETHEUS_DIR / "alerts.test.yml"
PROMETHEUS_CONFIG = PROMETHEUS_DIR / "prometheus.yml"
DASHBOARD_FILE = REPO / "deploy" / "grafana" / "jwt-auth.json"

INSTALL_HINT = (
    "run scripts/bootstrap --for-tests (it installs them), or: apt-get install "
    "--no-install-recommends prometheus (Debian/Ubuntu; it brings /usr/bin/prometheus and "
    "/usr/bin/promtool)"
)

_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_RANGE = re.compile(r"\[[^\]]*\]")
_SELECTOR = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(\{[^}]*\})?")
_KEYWORDS = frozenset({
    "and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring", "group_left",
    "group_right", "inf", "nan",
})
# what Grafana puts in for its variables before a query reaches Prometheus; the job and
# instance variables are multi-value with "All" as ".+", which the dashboard's =~ matchers take
GRAFANA_VARIABLES = {
    "$__rate_interval": "1m",
    "$__interval": "15s",
    "$job": ".+",
    "$instance": ".+",
}


def selectors(expr: str) -> set[str]:
    """The series selectors ``expr`` reads: ``name`` or ``name{matchers}``, as written."""
    text = _RANGE.sub(" ", _GROUPING.sub(" ", expr))
    found: set[str] = set()
    for match in _SELECTOR.finditer(text):
        name, matchers = match.group(1), match.group(2)
        if name.lower() in _KEYWORDS and not matchers:
            continue
        if not matchers and text[match.end():].lstrip().startswith("("):
            continue  # a function or an aggregation
        if _inside_string(text, match.start()):
            continue
        found.add(name + (matchers or ""))
    return found


def _inside_string(text: str, position: int) -> bool:
    return text[:position].count('"') % 2 == 1


def metric_name(selector: str) -> str:
    return selector.split("{", 1)[0]


def documented_name(name: str) -> str:
    """The name docs/metrics.md gives: a histogram's series without their suffix."""
    return re.sub(r"_(?:bucket|count|sum)$", "", name)


@dataclass(frozen=True)
class AlertRule:
    name: str
    expr: str
    rule: dict[str, Any]


def alert_rules() -> list[AlertRule]:
    document = yaml.safe_load(ALERTS_FILE.read_text())
    return [AlertRule(rule["alert"], rule["expr"], rule)
            for group in document["groups"] for rule in group["rules"] if "alert" in rule]


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD_FILE.read_text())
    return loaded


def data_panels(board: dict[str, Any]) -> list[dict[str, Any]]:
    """Every panel that queries (rows only group them), nested rows' panels included."""
    found: list[dict[str, Any]] = []
    for panel in board["panels"]:
        if panel.get("type") == "row":
            found.extend(panel.get("panels", []))
        else:
            found.append(panel)
    return found


def grafana_expr(expr: str) -> str:
    """A dashboard query as Grafana sends it, with its variables filled in."""
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    if "$" in expr:
        raise AssertionError(f"a Grafana variable the tests cannot fill in: {expr}")
    return expr


def dashboard_queries(board: dict[str, Any]) -> dict[str, str]:
    """Each panel query, named ``panel title [refId]``, with the variables filled in."""
    return {f"{panel['title']} [{target['refId']}]": grafana_expr(target["expr"])
            for panel in data_panels(board) for target in panel["targets"]}


def variable_queries(board: dict[str, Any]) -> dict[str, str]:
    """Each ``label_values(selector, label)`` variable, as the PromQL that lists its values."""
    queries: dict[str, str] = {}
    for variable in board["templating"]["list"]:
        if variable["type"] != "query":
            continue
        match = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", variable["query"]["query"])
        assert match, f"variable {variable['name']}: not a label_values(selector, label) query"
        queries[f"variable {variable['name']}"] = grafana_expr(
            f"count by ({match.group(2)}) ({match.group(1)})")
    return queries
