"""``daemon.metrics``: what the exposition holds (the endpoint after a real run is tested by
``test_metrics_endpoint``)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from bgcut_watchd.daemon.metrics import DaemonMetrics, LiveFigures
from bgcut_watchd.engine.observe import JobReport


def test_no_created_series_and_other_registries_are_left_alone() -> None:
    metrics = DaemonMetrics(LiveFigures, lambda: ["studio"])
    metrics.job_finished(JobReport("j1", "studio", "a.jpg", "done", None, (), 1.0e9))
    metrics.api_request("upload", "200", 0.2)
    names = {s.name for family in text_string_to_metric_families(metrics.exposition().decode())
             for s in family.samples}
    assert {"bgcut_jobs_total", "bgcut_api_requests_total",
            "bgcut_api_request_duration_seconds_count"} <= names
    assert [n for n in names if n.endswith("_created")] == []
    other = CollectorRegistry()
    Counter("other_things", "a counter of another registry", registry=other).inc()
    assert b"other_things_created" in generate_latest(other)
