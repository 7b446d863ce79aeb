"""Prometheus metrics of one daemon, in a registry of its own (never the global default one).

Counters and the histogram are fed by the engine's observer (jobs that ended, API requests);
the gauges are read from the live figures at each scrape (:class:`LiveFigures`). Label values
are bounded: folder names from the configuration, endpoint names, HTTP status codes, pause
scopes and reasons; never a file name. No ``_created`` series (prometheus_client's creation
times of counters and histograms): they are left out of this registry's exposition only
(``disable_created_metrics()`` would change every registry of the process).

=========================================  ============================================
``bgcut_jobs_total{folder,outcome}``        jobs ended: done, duplicate, quarantined
``bgcut_api_requests_total{endpoint,code}``  API requests by HTTP status ("error": no answer)
``bgcut_api_request_duration_seconds``      histogram per endpoint, body included
``bgcut_files_waiting{folder}``             settling or queued
``bgcut_jobs_in_progress{folder}``          running now
``bgcut_files_quarantined{folder}``         inputs in the quarantine folder now
``bgcut_paused{scope,reason}``              1 while paused; scope "api" or "folder:<name>"
``bgcut_last_success_timestamp_seconds``    per folder, when a job was last done (Unix time)
``bgcut_credits_spent_today{folder}``       credits the ``[budget]`` model counted today
``bgcut_credits_spent_this_month{folder}``  ... and this calendar month (local time)
=========================================  ============================================
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from bgcut_watchd.control.pause import PauseReason
from bgcut_watchd.engine.observe import DUPLICATE, JOB_OUTCOMES, JobReport

API_ENDPOINTS = ("upload", "process", "download", "usage")
DURATION_BUCKETS_S = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
API_SCOPE = "api"


@dataclass(frozen=True)
class LiveFigures:
    """What the gauges show, read at each scrape."""

    waiting: Mapping[str, int] = field(default_factory=dict)
    in_progress: Mapping[str, int] = field(default_factory=dict)
    quarantined: Mapping[str, int | None] = field(default_factory=dict)
    paused: Mapping[str, str] = field(default_factory=dict)  # scope -> reason code
    credits_today: Mapping[str, float] = field(default_factory=dict)
    credits_month: Mapping[str, float] = field(default_factory=dict)


def folder_scope(folder: str) -> str:
    """The ``scope`` label of a folder's pause."""
    return f"folder:{folder}"


class _LiveCollector(Collector):
    def __init__(self, figures: Callable[[], LiveFigures], folders: Callable[[], list[str]]):
        self._figures = figures
        self._folders = folders

    def collect(self) -> Iterable[GaugeMetricFamily]:
        live, folders = self._figures(), self._folders()
        yield _per_folder("bgcut_files_waiting", "Files settling or queued, per folder",
                          folders, live.waiting)
        yield _per_folder("bgcut_jobs_in_progress", "Jobs running now, per folder",
                          folders, live.in_progress)
        yield _per_folder("bgcut_files_quarantined", "Inputs in the quarantine folder now",
                          folders, live.quarantined)
        yield _per_folder("bgcut_credits_spent_today", "Credits the [budget] spend model "
                          "counted for the folder today (local day; an estimate)",
                          folders, live.credits_today)
        yield _per_folder("bgcut_credits_spent_this_month", "Credits the [budget] spend "
                          "model counted for the folder this calendar month (an estimate)",
                          folders, live.credits_month)
        paused = GaugeMetricFamily("bgcut_paused", "1 while the scope is paused for the "
                                   "reason (scope: api, or folder:<name>)",
                                   labels=["scope", "reason"])
        for scope in [API_SCOPE] + [folder_scope(f) for f in folders]:
            for reason in sorted({r.value for r in PauseReason} | {live.paused.get(scope, "")}
                                 - {""}):
                paused.add_metric([scope, reason], 1.0 if live.paused.get(scope) == reason
                                  else 0.0)
        yield paused


def _per_folder(name: str, help_text: str, folders: list[str],
                values: Mapping[str, int | None] | Mapping[str, float]) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, help_text, labels=["folder"])
    for folder in folders:
        value = values.get(folder)
        if value is not None:
            family.add_metric([folder], float(value))
    return family


class DaemonMetrics:
    """The daemon's registry and the updates the observer makes. Thread-safe."""

    def __init__(self, figures: Callable[[], LiveFigures],
                 folders: Callable[[], list[str]]) -> None:
        self.registry = CollectorRegistry()
        self._folders = folders
        self.jobs = Counter("bgcut_jobs", "Jobs that ended, by folder and outcome (done, "
                            "duplicate, quarantined)", ["folder", "outcome"],
                            registry=self.registry)
        self.api_requests = Counter("bgcut_api_requests", "BackgroundCut API requests by "
                                    "endpoint and HTTP status (error: no answer)",
                                    ["endpoint", "code"], registry=self.registry)
        self.api_duration = Histogram("bgcut_api_request_duration_seconds", "BackgroundCut "
                                      "API request duration, body included", ["endpoint"],
                                      buckets=DURATION_BUCKETS_S, registry=self.registry)
        self.last_success = Gauge("bgcut_last_success_timestamp_seconds", "When a job of the "
                                  "folder was last done (Unix time)", ["folder"],
                                  registry=self.registry)
        self.registry.register(_LiveCollector(figures, folders))
        self.add_folders()
        for endpoint in API_ENDPOINTS:
            self.api_duration.labels(endpoint)

    def add_folders(self, last_done_s: Mapping[str, float] | None = None) -> None:
        """Make every (folder, outcome) series exist at 0, and seed the last success times
        (from the history, at start-up)."""
        for folder in self._folders():
            for outcome in JOB_OUTCOMES:
                self.jobs.labels(folder, outcome)
        for folder, at_s in (last_done_s or {}).items():
            self.last_success.labels(folder).set(at_s)

    def job_finished(self, report: JobReport) -> None:
        self.jobs.labels(report.folder, report.outcome).inc()
        if report.outcome in ("done", DUPLICATE):
            self.last_success.labels(report.folder).set(report.finished_at_s)

    def api_request(self, endpoint: str, code: str, duration_s: float) -> None:
        self.api_requests.labels(endpoint, code).inc()
        self.api_duration.labels(endpoint).observe(duration_s)

    def exposition(self) -> bytes:
        """The Prometheus text format of every metric, without ``_created`` series."""
        return generate_latest(_WithoutCreated(self.registry))


class _WithoutCreated(Collector):
    """A registry's metric families without their ``<name>_created`` samples."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._registry = registry

    def collect(self) -> Iterable[Metric]:
        for family in self._registry.collect():
            created = family.name + "_created"
            family.samples = [s for s in family.samples if s.name != created]
            yield family
