"""The daemon: the composition root and its lifecycle (``bgcut-watchd run``).

startup → main_loop → shutdown, in the manner of uvicorn's server: signal handlers only set
flags; the loop notices them. The first SIGTERM/SIGINT stops claiming and lets in-flight jobs
finish until ``shutdown_timeout_s``; a second one exits at once. Either way every unfinished
job stays resumable in its work area, so nothing is lost. SIGHUP re-reads the configuration.
"""

from __future__ import annotations

import logging
import os
import signal
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType

from bgcut_watchd.config import Config, load_config, resolve_config_path
from bgcut_watchd.config_checks import check_folders
from bgcut_watchd.engine import Engine
from bgcut_watchd.errors import ConfigError
from bgcut_watchd.exitcodes import EXIT_CONFIG, EXIT_OK
from bgcut_watchd.fsops import show_path
from bgcut_watchd.intake import IntakeCoordinator
from bgcut_watchd.logsetup import configure_logging
from bgcut_watchd.scheduler import JobTicket, Outcome
from bgcut_watchd.secrets import load_api_key
from bgcut_watchd.status import StatusReporter
from bgcut_watchd.systemd import Notifier

log = logging.getLogger("bgcut_watchd.service")

TICK_S = 0.05          # the loop's longest sleep while files are settling
IDLE_TICK_S = 1.0      # ... and while nothing is
REPORT_EVERY_S = 1.0   # status file, systemd STATUS= and WATCHDOG=1
DRAIN_POLL_S = 0.2     # a draining shutdown's longest sleep between looks
MAX_WAITING = 5000     # settled files queued at once; the rest wait in the inbox (cheap)


class Service:
    """One running daemon. ``run()`` returns the exit code."""

    def __init__(self, config_path: Path, config: Config, api_key: str,
                 notifier: Notifier | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.config_path = config_path
        self.config = config
        self.api_key = api_key
        self.notifier = notifier or Notifier()
        self.clock = clock
        self.should_exit = False
        self.force_exit = False
        self.reload_requested = False
        self._wakeup = threading.Event()
        self.engine = Engine(config, api_key, cancel=threading.Event(),
                             on_ticket_done=self._ticket_done, max_waiting=MAX_WAITING)
        self.intake = IntakeCoordinator(config.folders, config.daemon.stability_s, clock,
                                        on_new=self._wakeup.set)
        self.reporter = StatusReporter(config.daemon.state_dir, self.engine, self.intake)
        self._next_rescan = 0.0
        self._next_report = 0.0

    # -- signals --------------------------------------------------------------------------

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self.handle_exit)
        signal.signal(signal.SIGINT, self.handle_exit)
        signal.signal(signal.SIGHUP, self.handle_reload)

    def handle_exit(self, signum: int, frame: FrameType | None) -> None:
        """First signal: warm shutdown. Second: exit now (still losing nothing)."""
        if self.should_exit:
            self.force_exit = True
        self.should_exit = True
        self._wakeup.set()

    def handle_reload(self, signum: int, frame: FrameType | None) -> None:
        self.reload_requested = True
        self._wakeup.set()

    # -- lifecycle ------------------------------------------------------------------------

    def run(self) -> int:
        self.startup()
        try:
            self.main_loop()
        finally:
            self.shutdown()
        return EXIT_OK

    def startup(self) -> None:
        self.engine.start()
        resumed = self.engine.recover()
        self.intake.start_watching()
        folders = len(self.config.folders)
        log.info("watching %d folder(s), %d unfinished job(s) resumed", folders, resumed)
        self.notifier.ready(f"watching {folders} folder(s) · starting scan")
        self._rescan()

    def main_loop(self) -> None:
        while not self.should_exit:
            self._wakeup.clear()  # before the tick: a file noticed during it wakes the wait
            self.tick()
            self._wakeup.wait(self._sleep_s())

    def tick(self) -> None:
        """One turn: hand settled files to the workers, rescan, check watchers, report."""
        if self.reload_requested:
            self.reload_requested = False
            self.reload()
        now = self.clock()
        room = MAX_WAITING - self.engine.scheduler.stats().total.waiting
        if room > 0:
            for folder, path in self.intake.poll_due(now, max_items=room):
                if not self.engine.submit(folder, path):
                    self.intake.done(path)  # queued already or no room: a rescan brings it back
        if now >= self._next_rescan:
            self._rescan()
        if now >= self._next_report:
            self._next_report = now + REPORT_EVERY_S
            self.intake.check_watchers()
            self._report()

    def shutdown(self) -> None:
        self.notifier.stopping("stopping: finishing in-flight jobs")
        log.info("stopping: no new claims; in-flight jobs get %gs",
                 self.config.daemon.shutdown_timeout_s)
        self.intake.stop_watching()
        finished = self._drain(self.config.daemon.shutdown_timeout_s)
        self.engine.cancel.set()
        if not finished:
            log.warning("stopped with jobs in flight: they resume at the next start")
        self.reporter.write(stopped=True)
        self.engine.close()
        log.info("stopped")

    def reload(self) -> None:
        """SIGHUP: apply a valid new configuration; keep the old one on any error."""
        self.notifier.reloading()
        try:
            config = load_config(self.config_path)
            problems = check_folders(config)
            if problems:
                raise ConfigError(problems)
        except ConfigError as exc:
            log.error("reload refused, still running on the previous configuration: %s", exc)
            self.notifier.reloaded(self.reporter.status_line())
            return
        self.intake.stop_watching()
        added = {f.name for f in config.folders} - {f.name for f in self.config.folders}
        pending = restart_only_changes(self.config, config)
        self.config = config
        self.engine.apply_config(config)
        resumed = self.engine.recover(added) if added else 0  # jobs left in a re-added folder
        self.intake = IntakeCoordinator(config.folders, config.daemon.stability_s, self.clock,
                                        on_new=self._wakeup.set)
        self.reporter.intake = self.intake
        self.intake.start_watching()
        self._rescan()
        log.info("configuration reloaded: %d folder(s), %d unfinished job(s) resumed",
                 len(config.folders), resumed)
        if pending:
            log.warning("configuration reloaded, but changes to %s take effect only after a "
                        "restart", ", ".join(pending))
        self.notifier.reloaded(self.reporter.status_line())

    # -- internals ------------------------------------------------------------------------

    def _drain(self, timeout_s: float) -> bool:
        """Start no new job; wait for the running ones until ``timeout_s`` or a second signal.

        True when they all finished. Wakes on every finished job and every signal.
        """
        deadline = self.clock() + timeout_s
        finished = self.engine.scheduler.drain(0.0)  # stops the pool from starting more
        while not finished and not self.force_exit and (left_s := deadline - self.clock()) > 0:
            self._wakeup.wait(min(DRAIN_POLL_S, left_s))
            self._wakeup.clear()
            finished = self.engine.scheduler.stats().busy == 0
        return finished

    def _ticket_done(self, ticket: JobTicket, outcome: Outcome) -> None:
        if ticket.job_id is None:  # the claiming run: the inbox path is no longer ours
            self.intake.done(ticket.path)
        if self.should_exit:
            self._wakeup.set()  # a draining shutdown looks again

    def _rescan(self) -> None:
        self._next_rescan = self.clock() + self.config.daemon.rescan_interval_s
        noticed = self.intake.scan_all()
        log.debug("rescan: %d candidate(s) noticed", noticed)

    def _sleep_s(self) -> float:
        deadline = self.intake.next_deadline()
        if deadline is None:
            return IDLE_TICK_S if self.engine.scheduler.is_idle() else TICK_S * 4
        return min(IDLE_TICK_S, max(TICK_S, deadline - self.clock()))

    def _report(self) -> None:
        self.reporter.write()
        self.notifier.status(self.reporter.status_line())
        if self.notifier.watchdog_interval_s is not None and self._workers_healthy():
            self.notifier.watchdog()

    def _workers_healthy(self) -> bool:
        """WATCHDOG=1 only while workers progress or idle: a hung worker must trip it."""
        interval = self.notifier.watchdog_interval_s or 30.0
        return not self.engine.scheduler.is_stalled(max(interval * 2, self._longest_call_s()))

    def _longest_call_s(self) -> float:
        api = self.config.api
        return api.connect_timeout_s + max(api.upload_timeout_s, api.process_timeout_s,
                                           api.download_timeout_s) + 5.0


def run_daemon(config_arg: str | None, log_level: str) -> int:
    """``bgcut-watchd run``: load, validate, serve until a signal; exit 0, or 78 on bad config."""
    config_path = resolve_config_path(config_arg, os.environ)
    try:
        config = load_config(config_path)
        problems = check_folders(config)
        if problems:
            raise ConfigError(problems)
        api_key = load_api_key(config.api)
    except ConfigError as exc:
        log.error("%s", exc)
        return EXIT_CONFIG
    configure_logging(log_level, secret=api_key)
    for warning in config.warnings:
        log.warning("configuration: %s", warning)
    service = _build_service(config_path, config, api_key)
    if service is None:
        return EXIT_CONFIG
    service.install_signal_handlers()
    return service.run()


def _build_service(config_path: Path, config: Config, api_key: str) -> Service | None:
    """The Service, or None (logged) when its state directory's ledger cannot be used.

    A ledger from a newer version or a damaged one needs the administrator: exit 78 with the
    reason rather than a traceback and a systemd restart loop. Raises nothing else of its own.
    """
    try:
        return Service(config_path, config, api_key)
    except ConfigError as exc:
        log.error("%s", exc)
    except sqlite3.Error as exc:
        log.error("daemon.state_dir: cannot open the ledger in %s (%s); move the file away "
                  "to start a new history", show_path(config.daemon.state_dir), exc)
    return None


def restart_only_changes(old: Config, new: Config) -> list[str]:
    """The changed settings a reload does not apply (the client, limiter, retry policy, pool
    and ledger are built once at start-up), by their config names."""
    return [name for name, before, after in (
        ("[api]", old.api, new.api), ("[retry]", old.retry, new.retry),
        ("daemon.workers", old.daemon.workers, new.daemon.workers),
        ("daemon.state_dir", old.daemon.state_dir, new.daemon.state_dir),
    ) if before != after]
