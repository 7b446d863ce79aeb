"""See it, hear it, steer it: the daemon's metrics, status page, notifications and listener.

:class:`Monitor` is the engine's observer (jobs that ended, API requests), the status page's
backend (``daemon.http.Backend``), and the owner of the notifier and the HTTP listener. The
service builds it before the engine, :meth:`Monitor.attach` gives it the running parts, starts
and stops it with the daemon, and calls :meth:`Monitor.tick` from the main loop about once a
second. Everything here is read on demand and cached for a moment: an idle daemon with the
listener on does nothing more than without it.

Over 300 lines on purpose: one facade for the page, the metrics and the notifier, whose reads
share one cache; split, each would read the folders and the status on its own.
"""

from __future__ import annotations

import logging
import os
import socket
import sqlite3
import threading
import time
from collections import deque
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from bgcut_watchd import __version__
from bgcut_watchd.config.model import Config
from bgcut_watchd.config.secrets import load_http_token
from bgcut_watchd.daemon.cache import Cached
from bgcut_watchd.daemon.events import StateWatch
from bgcut_watchd.daemon.history import history_report
from bgcut_watchd.daemon.metrics import API_SCOPE, DaemonMetrics, LiveFigures, folder_scope
from bgcut_watchd.daemon.notify import EventNotifier, targets_for
from bgcut_watchd.daemon.status import StatusReporter
from bgcut_watchd.daemon.web.listing import (
    QuarantineIndex,
    QuarantineList,
    error_of,
    resolve_key,
)
from bgcut_watchd.daemon.web.page import ApiPause, FolderRow, JobRow, PageData
from bgcut_watchd.daemon.web.thumbs import ThumbnailCache
from bgcut_watchd.engine import Engine
from bgcut_watchd.engine.budget import month_bounds
from bgcut_watchd.engine.observe import QUARANTINED, JobReport
from bgcut_watchd.errors import LocalDiskError
from bgcut_watchd.job.quarantine import requeue

if TYPE_CHECKING:
    from bgcut_watchd.daemon.http import HttpListener

log = logging.getLogger("bgcut_watchd.daemon.monitor")

RECENT_JOBS = 50
QUARANTINE_LISTED = 100     # per folder on the page
LIVE_TTL_S = 1.0            # how long live figures, done-today counts, credits and
                            # quarantine listings are reused (a listing is scanned again
                            # only when its folders changed: QuarantineIndex)
LISTEN_RETRY_S = 30.0
Credits = tuple[dict[str, float], dict[str, float]]  # per folder: today, this month


class ServiceView(Protocol):
    """What the monitor reads of the running service."""

    config: Config
    engine: Engine
    reporter: StatusReporter

    def health(self) -> tuple[bool, str]: ...
    def workers_healthy(self) -> bool: ...
    def stall_limit_s(self) -> float: ...
    def status_document(self) -> dict[str, Any]: ...


class Monitor:
    """Observer of the engine, backend of the status page, owner of notifier and listener."""

    def __init__(self, config: Config, secret: str,
                 notifier: EventNotifier | None = None) -> None:
        """Raises ConfigError when ``http.token_file`` cannot be read."""
        self._startup_config = config
        self._view: ServiceView | None = None
        self._recent: deque[JobReport] = deque(maxlen=RECENT_JOBS)
        self._lock = threading.Lock()
        self.metrics = DaemonMetrics(self._live_figures, self._folder_names)
        self.notifier = notifier or EventNotifier(targets_for(config.notify),
                                                  config.notify.digest_s, secret)
        self.watch = StateWatch(self.notifier.publish)
        self.thumbs = ThumbnailCache(config.daemon.max_input_pixels)
        token = load_http_token(config.http)
        self.listener = _listener(config.http.listen, self, token) \
            if config.http.listen else None
        self._next_listen_s = 0.0
        self._live = Cached(LIVE_TTL_S, self._read_live)
        self._done_today = Cached(LIVE_TTL_S, self._read_done_today)
        self._credits = Cached(LIVE_TTL_S, self._read_credits)
        self._quarantine = Cached(LIVE_TTL_S, self._read_quarantine)
        self._indexes: dict[Path, QuarantineIndex] = {}
        self._host = socket.gethostname()

    @property
    def config(self) -> Config:
        return self._view.config if self._view is not None else self._startup_config

    @property
    def url(self) -> str | None:
        """Where the listener answers, once it does."""
        return self.listener.url if self.listener is not None else None

    # -- lifecycle ------------------------------------------------------------------------

    def attach(self, view: ServiceView) -> None:
        """Read the running parts from now on; seed the last jobs from the history."""
        self._view = view
        try:
            finished = view.engine.ledger.recent_finished(RECENT_JOBS)
            last_done = view.engine.ledger.last_done_at()
        except sqlite3.Error as exc:
            log.warning("cannot read the last jobs from the ledger: %s", exc)
            finished, last_done = [], {}
        folders = {f.name: f for f in view.config.folders}
        for entry in reversed(finished):
            self._recent.append(history_report(entry, folders.get(entry.folder)))
        self.metrics.add_folders({f: at.timestamp() for f, at in last_done.items()})

    def start(self) -> None:
        self.notifier.start()
        self._listen()

    def stop(self) -> None:
        if self.listener is not None:
            self.listener.stop()
        self.notifier.stop()

    def tick(self) -> None:
        """From the main loop, about once a second: events, digests, a listener to retry."""
        view = self._view
        if view is None:
            return
        if self.listener is not None and self.listener.url is None:
            self._listen()
        self.watch.observe_pauses(view.engine.api_pause.state(),
                                  view.engine.folder_pauses.snapshot())
        self.watch.observe_stall(not view.workers_healthy(),
                                 view.engine.scheduler.stats().busy, view.stall_limit_s())
        self.notifier.flush_due()

    def _listen(self) -> None:
        if self.listener is None or time.monotonic() < self._next_listen_s:
            return
        try:
            self.listener.start()
        except OSError as exc:
            self._next_listen_s = time.monotonic() + LISTEN_RETRY_S
            log.error("http: cannot listen on %s: %s; the status page is off, trying again "
                      "in %.0fs", self.config.http.listen, exc.strerror or exc, LISTEN_RETRY_S)
            return
        log.info("http: status page and metrics on %s", self.listener.url)

    # -- the engine's observer ----------------------------------------------------------

    def job_finished(self, report: JobReport) -> None:
        with self._lock:
            self._recent.append(report)
        self.metrics.job_finished(report)
        if report.outcome == QUARANTINED:
            self._forget_quarantine()
            reason, detail = error_of(report.input_path)
            self.notifier.quarantined(report.folder, report.relpath, reason, detail)

    def api_request(self, endpoint: str, code: str, duration_s: float) -> None:
        self.metrics.api_request(endpoint, code, duration_s)

    # -- the status page's backend ------------------------------------------------------

    def metrics_text(self) -> bytes:
        return self.metrics.exposition()

    def page_data(self) -> PageData:
        live = self._live.get()
        done_today: dict[str, int] | None = self._done_today.get()
        quarantine: dict[str, QuarantineList] = self._quarantine.get()
        credits: Credits | None = self._credits.get()
        next_tries = self._folder_next_tries()
        rows = [FolderRow(
            name=f.name, watch=live["folders"].get(f.name, {}).get("watch", "stopped"),
            waiting=_waiting(live["folders"].get(f.name, {})),
            in_progress=live["folders"].get(f.name, {}).get("in_progress", 0),
            done_today=None if done_today is None else done_today.get(f.name, 0),
            quarantined=quarantine[f.name].total if f.name in quarantine else None,
            paused=live["folders"].get(f.name, {}).get("paused"),
            credits_today=None if credits is None else credits[0].get(f.name),
            credits_month=None if credits is None else credits[1].get(f.name),
            next_try=next_tries.get(f.name),
        ) for f in self.config.folders]
        healthy, why = self.health()
        return PageData(host=self._host, version=__version__, now=datetime.now().astimezone(),
                        api_pause=self._api_pause(), folders=rows, jobs=self._job_rows(),
                        quarantine=quarantine, unhealthy=None if healthy else why)

    def status_document(self) -> dict[str, Any]:
        assert self._view is not None
        return self._view.status_document()

    def health(self) -> tuple[bool, str]:
        if self._view is None:
            return False, "starting"
        return self._view.health()

    def thumbnail(self, job_id: str, which: str) -> bytes | None:
        with self._lock:
            report = next((r for r in self._recent if r.job_id == job_id), None)
        if report is None:
            return None
        path = report.input_path if which == "in" else next(iter(report.outputs), None)
        return self.thumbs.get(path) if path is not None else None

    def requeue(self, folder_name: str, key: str | None) -> int:
        """Move one quarantined input (``key``) or all of a folder back into its inbox; the
        count moved. Raises LookupError for an unknown folder, ValueError for a bad key,
        OSError when the disk fails."""
        folder = next((f for f in self.config.folders if f.name == folder_name), None)
        if folder is None:
            raise LookupError(f"no folder named {folder_name!r}")
        targets = "all" if key is None else [resolve_key(folder.quarantine, key)]
        try:
            moved = requeue(folder.quarantine, folder.inbox, targets)
        except FileNotFoundError:
            return 0  # requeued already (another click, or the command line)
        except LocalDiskError as exc:
            raise OSError(str(exc)) from exc
        finally:
            self._forget_quarantine()
        log.info("folder %s: %d quarantined input(s) moved back into the inbox", folder.name,
                 len(moved))
        return len(moved)

    def resume(self) -> bool:
        """End an API pause now; False when there was none."""
        assert self._view is not None
        pause = self._view.engine.api_pause
        if not pause.state().paused:
            return False
        pause.resume()
        return True

    # -- internals --------------------------------------------------------------------------

    def _folder_names(self) -> list[str]:
        return [f.name for f in self.config.folders]

    def _read_live(self) -> dict[str, Any]:
        if self._view is None:
            return {"folders": {}}
        return self._view.reporter.snapshot()

    def _read_done_today(self) -> dict[str, int] | None:
        if self._view is None:
            return None
        midnight = datetime.now().astimezone().replace(hour=0, minute=0, second=0,
                                                       microsecond=0)
        try:
            return self._view.engine.ledger.done_since(midnight)
        except sqlite3.Error as exc:
            log.warning("cannot count today's jobs in the ledger: %s", exc)
            return None

    def _read_credits(self) -> Credits | None:
        """Credits the spend model counted for each configured folder (0 when none): today,
        and this calendar month."""
        if self._view is None:
            return None
        today = datetime.now().astimezone().date()
        first, last = month_bounds(today)
        try:
            ledger = self._view.engine.ledger
            spent_today = ledger.credits_spent(today.isoformat(), today.isoformat())
            spent_month = ledger.credits_spent(first, last)
        except sqlite3.Error as exc:
            log.warning("cannot read the credits counted in the ledger: %s", exc)
            return None
        names = self._folder_names()
        return ({n: spent_today.get(n, 0.0) for n in names},
                {n: spent_month.get(n, 0.0) for n in names})

    def _read_quarantine(self) -> dict[str, QuarantineList]:
        folders = self.config.folders
        with self._lock:
            indexes = {f.quarantine: self._indexes.get(f.quarantine)
                       or QuarantineIndex(f.quarantine) for f in folders}
            self._indexes = indexes  # a reload drops the quarantines no longer configured
        return {f.name: indexes[f.quarantine].get(QUARANTINE_LISTED) for f in folders}

    def _forget_quarantine(self) -> None:
        with self._lock:
            indexes = list(self._indexes.values())
        for index in indexes:
            index.forget()
        self._quarantine.forget()

    def _live_figures(self) -> LiveFigures:
        live = self._read_live()  # a scrape reads the figures of this moment
        folders: dict[str, Any] = live["folders"]
        paused = {folder_scope(name): "disk" for name, f in folders.items() if f.get("paused")}
        if self._view is not None:
            state = self._view.engine.api_pause.state()
            if state.paused and state.reason is not None:
                paused[API_SCOPE] = state.reason.value
            for name, folder_state in self._view.engine.folder_pauses.snapshot().items():
                if folder_state.reason is not None:
                    paused[folder_scope(name)] = folder_state.reason.value
        quarantine: dict[str, QuarantineList] = self._quarantine.get()
        credits: Credits | None = self._credits.get()
        return LiveFigures(
            waiting={n: _waiting(f) for n, f in folders.items()},
            in_progress={n: f.get("in_progress", 0) for n, f in folders.items()},
            quarantined={n: q.total for n, q in quarantine.items()}, paused=paused,
            credits_today={} if credits is None else credits[0],
            credits_month={} if credits is None else credits[1])

    def _api_pause(self) -> ApiPause | None:
        if self._view is None:
            return None
        state = self._view.engine.api_pause.state()
        if not state.paused or state.reason is None:
            return None
        next_try = None if state.probing else datetime.fromtimestamp(
            time.time() + state.probe_in_s).astimezone()
        return ApiPause(reason=state.reason.value, description=state.reason.description,
                        detail=state.detail, next_try=next_try, probing=state.probing)

    def _folder_next_tries(self) -> dict[str, datetime]:
        """When each paused folder next tries its disk (none while a try is running)."""
        if self._view is None:
            return {}
        return {name: datetime.fromtimestamp(time.time() + state.probe_in_s).astimezone()
                for name, state in self._view.engine.folder_pauses.snapshot().items()
                if state.paused and not state.probing}

    def _job_rows(self) -> list[JobRow]:
        with self._lock:
            reports = list(self._recent)
        return [JobRow(job_id=r.job_id, folder=r.folder, relpath=r.relpath, outcome=r.outcome,
                       finished_at=datetime.fromtimestamp(r.finished_at_s).astimezone(),
                       has_input=r.input_path is not None and os.path.lexists(r.input_path),
                       has_output=bool(r.outputs))
                for r in reversed(reports)]


def _waiting(folder: dict[str, Any]) -> int:
    return int(folder.get("settling", 0)) + int(folder.get("waiting", 0))


def _listener(listen: str, monitor: Monitor, token: str | None) -> HttpListener:
    """The HTTP listener, imported only when one is configured: werkzeug's server and the web
    app add ~13 MB to the resident set of a daemon that listens to nobody (the default)."""
    from bgcut_watchd.daemon.http import HttpListener

    return HttpListener(listen, monitor, token)
