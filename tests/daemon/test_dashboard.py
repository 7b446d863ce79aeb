"""``contrib/grafana-dashboard.json`` is built on the daemon's own metrics: every metric its
queries name exists in a daemon's exposition."""

from __future__ import annotations

import json
import re

from prometheus_client.parser import text_string_to_metric_families

from bgcut_watchd.daemon.metrics import DaemonMetrics, LiveFigures
from tests.support import REPO

DASHBOARD = REPO / "contrib" / "grafana-dashboard.json"


def test_every_metric_the_dashboard_queries_is_exported() -> None:
    live = LiveFigures(waiting={"studio": 1}, in_progress={"studio": 1},
                       quarantined={"studio": 1}, paused={"api": "credits"})
    metrics = DaemonMetrics(lambda: live, lambda: ["studio"])
    metrics.add_folders({"studio": 1.7e9})
    metrics.api_request("upload", "200", 0.1)
    exported = set()
    for family in text_string_to_metric_families(metrics.exposition().decode()):
        exported |= {sample.name for sample in family.samples}
    dashboard = json.loads(DASHBOARD.read_text("utf-8"))
    queries = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    queries.append(dashboard["templating"]["list"][0]["query"])
    named = {name for q in queries for name in re.findall(r"\bbgcut_[a-z_]+", q)}
    assert named and named <= exported, named - exported
    assert {p["gridPos"]["y"] for p in dashboard["panels"]}  # laid out
