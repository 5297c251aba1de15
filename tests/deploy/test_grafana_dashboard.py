"""deploy/grafana/jwt-auth.json: a dashboard Grafana imports as it is (one datasource variable,
every panel on it with a query, unique ids, a grid that fits), reading documented metrics only.

tests/e2e/test_prometheus.py runs every query against a real Prometheus scraping real services.
"""

from __future__ import annotations

import json
import re
from itertools import combinations

from tests.procs import REPO
from tests.promql import (
    DASHBOARD_FILE,
    dashboard,
    dashboard_queries,
    data_panels,
    documented_name,
    metric_name,
    selectors,
    variable_queries,
)

DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}


def test_the_dashboard_is_json_grafana_imports() -> None:
    board = json.loads(DASHBOARD_FILE.read_text())
    assert 36 <= board["schemaVersion"] <= 41
    assert board["title"]
    assert board["uid"]
    assert "id" not in board or board["id"] is None, "an id ties the import to one Grafana"
    variables = {variable["name"]: variable for variable in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for name in ("job", "instance"):
        assert variables[name]["type"] == "query"
        assert variables[name]["datasource"] == DATASOURCE
        assert variables[name]["includeAll"]
        assert variables[name]["allValue"] == ".+"


def test_every_panel_has_the_datasource_and_a_query() -> None:
    board = dashboard()
    panels = data_panels(board)
    assert len(panels) >= 20
    for panel in panels:
        title = panel.get("title")
        assert title, f"panel {panel['id']} has no title"
        assert panel.get("datasource") == DATASOURCE, title
        assert panel.get("description"), f"{title}: say which metric it shows"
        targets = panel.get("targets") or []
        assert targets, f"{title}: no query"
        refs = [target["refId"] for target in targets]
        assert len(refs) == len(set(refs)), title
        for target in targets:
            assert target.get("datasource") == DATASOURCE, title
            assert target.get("expr", "").strip(), f"{title} [{target['refId']}]: empty query"
            # only the jobs and pods the viewer chose
            for matcher in ('job=~"$job"', 'instance=~"$instance"'):
                assert matcher in target["expr"], f"{title} [{target['refId']}]: no {matcher}"


def test_panel_ids_are_unique_and_the_grid_fits() -> None:
    board = dashboard()
    everything = [*board["panels"], *(nested for panel in board["panels"]
                                      for nested in panel.get("panels", []))]
    ids = [panel["id"] for panel in everything]
    assert len(ids) == len(set(ids)), f"repeated panel ids: {sorted(ids)}"
    boxes = []
    for panel in everything:
        grid = panel["gridPos"]
        assert all(isinstance(grid[key], int) for key in ("x", "y", "w", "h")), panel["title"]
        assert grid["x"] >= 0, panel["title"]
        assert grid["w"] >= 1, panel["title"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        assert grid["y"] >= 0, panel["title"]
        assert grid["h"] >= 1, panel["title"]
        if panel["type"] == "row":
            assert (grid["w"], grid["h"], grid["x"]) == (24, 1, 0), panel["title"]
        boxes.append((panel["title"], grid))
    for (first, a), (second, b) in combinations(boxes, 2):
        apart = (a["x"] + a["w"] <= b["x"] or b["x"] + b["w"] <= a["x"]
                 or a["y"] + a["h"] <= b["y"] or b["y"] + b["h"] <= a["y"])
        assert apart, f"panels {first!r} and {second!r} overlap"


def test_every_metric_the_dashboard_reads_is_documented() -> None:
    documented = set(re.findall(r"^\| `([a-z_:]+)` \|",
                                (REPO / "docs" / "metrics.md").read_text(), re.MULTILINE))
    board = dashboard()
    shown: set[str] = set()
    for name, query in {**dashboard_queries(board), **variable_queries(board)}.items():
        names = {metric_name(selector) for selector in selectors(query)}
        assert names, f"{name}: no metric found in {query!r}"
        unknown = {metric for metric in names if documented_name(metric) not in documented}
        assert not unknown - {"up"}, f"{name} reads metrics docs/metrics.md lacks: {unknown}"
        shown |= {documented_name(metric) for metric in names}
    # one dashboard for everything the services export
    assert not documented - shown, f"metrics no panel shows: {sorted(documented - shown)}"
