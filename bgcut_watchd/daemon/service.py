"""The daemon: the composition root and its lifecycle (``bgcut-watchd run``).

startup → main_loop → shutdown, in the manner of uvicorn's server: signal handlers only set
flags and ring a lock-free wake-up (``daemon.wakeup``: a ``threading.Event`` there deadlocked
the loop under a SIGHUP storm); the loop notices them. The first SIGTERM/SIGINT stops claiming
and lets in-flight jobs finish until ``shutdown_timeout_s``; a second one exits at once. Either
way every unfinished job stays resumable in its work area, so nothing is lost. SIGHUP re-reads
the configuration: the engine swaps its wiring whole and the intake reconfigures in place.

Every second the loop also checks the watchers (a replaced inbox is watched anew), holds its
lock on ``state_dir`` (re-created if the folder was removed: ``daemon.lock``), lets the ledger
catch up (``engine.history``) and reports. Every rescan also adopts the orphaned jobs of a
daemon that died (``engine.recovery``).
SIGUSR1 (``bgcut-watchd resume``) ends an API pause now. The status page, metrics and
notifications are the monitor's (``daemon.monitor``), told about each job by the engine.

Over 300 lines on purpose: the lifecycle (startup, loop, reload, shutdown, reports) reads top to
bottom in one class, as uvicorn's server does; each step is short.
"""

from __future__ import annotations

import logging
import signal
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

from bgcut_watchd.clock import Clock
from bgcut_watchd.config.folders import load_checked
from bgcut_watchd.config.model import Config
from bgcut_watchd.control.tickets import JobTicket, Outcome
from bgcut_watchd.daemon.housekeeping import Housekeeper
from bgcut_watchd.daemon.lock import DaemonLock
from bgcut_watchd.daemon.monitor import Monitor
from bgcut_watchd.daemon.standby import Standby
from bgcut_watchd.daemon.status import StatusReporter
from bgcut_watchd.daemon.systemd import Notifier
from bgcut_watchd.daemon.wakeup import Wakeup
from bgcut_watchd.engine import Engine
from bgcut_watchd.errors import ConfigError
from bgcut_watchd.exitcodes import EXIT_OK
from bgcut_watchd.intake import IntakeCoordinator
from bgcut_watchd.mounts import SYSTEM_TABLES, MountTables

log = logging.getLogger("bgcut_watchd.daemon.service")

TICK_S = 0.05          # the loop's longest sleep while files are settling
IDLE_TICK_S = 1.0      # ... and while nothing is
REPORT_EVERY_S = 1.0   # status file, systemd STATUS= and WATCHDOG=1
SCAN_SLICE_S = 0.05    # a turn of the loop scans this long, then hands out what is due
MAX_WAITING = 5000     # settled files queued at once; the rest wait in the inbox (cheap)
LOOP_STALE_S = 10.0    # /healthz: the main loop must have turned within this long

StatusDocument = Callable[[Config], dict[str, Any]]  # what ``status --json`` prints


class Service:
    """One running daemon. ``run()`` returns the exit code."""

    def __init__(self, config_path: Path, config: Config, api_key: str,
                 notifier: Notifier | None = None,
                 clock: Clock = time.monotonic,
                 mount_tables: MountTables = SYSTEM_TABLES,
                 status_document: StatusDocument | None = None) -> None:
        """``mount_tables``: where the declared and current mounts are read (standby). Raises
        ConfigError (``http.token_file`` unreadable), sqlite3.Error (the ledger)."""
        self.config_path = config_path
        self.config = config
        self.api_key = api_key
        self.notifier = notifier or Notifier()
        self.clock = clock
        self.should_exit = False
        self.force_exit = False
        self.reload_requested = False
        self.resume_requested = False
        self._status_document = status_document
        self._wakeup = Wakeup()
        self.monitor = Monitor(config, api_key)
        self.engine = Engine(config, api_key, cancel=threading.Event(),
                             on_ticket_done=self._ticket_done, on_path_released=self._path_released,
                             max_waiting=MAX_WAITING, observer=self.monitor)
        self._mount_tables = mount_tables
        self.standby = Standby(config.folders, mount_tables)
        self.standby.refresh()
        self.intake = IntakeCoordinator(self.standby.active(), config.daemon.stability_s, clock,
                                        on_new=self._wakeup.set)
        self.lock = DaemonLock(config.daemon.state_dir)
        self.reporter = StatusReporter(config.daemon.state_dir, self.engine, self.intake,
                                       standby=self.standby, health=self.health)
        self.housekeeper = Housekeeper(config.folders, config.daemon.stability_s)
        self._next_rescan = 0.0
        self._next_report = 0.0
        self._last_tick_s = clock()
        self.monitor.attach(self)

    # -- signals --------------------------------------------------------------------------

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self.handle_exit)
        signal.signal(signal.SIGINT, self.handle_exit)
        signal.signal(signal.SIGHUP, self.handle_reload)
        signal.signal(signal.SIGUSR1, self.handle_resume)

    def handle_exit(self, signum: int, frame: FrameType | None) -> None:
        """First signal: warm shutdown. Second: exit now (still losing nothing)."""
        if self.should_exit:
            self.force_exit = True
        self.should_exit = True
        self._wakeup.set()

    def handle_reload(self, signum: int, frame: FrameType | None) -> None:
        self.reload_requested = True
        self._wakeup.set()

    def handle_resume(self, signum: int, frame: FrameType | None) -> None:
        """SIGUSR1 (``bgcut-watchd resume``): end an API pause at the next turn."""
        self.resume_requested = True
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
        self._check_state_dir()
        self.monitor.start()
        self.reporter.http_url = self.monitor.url
        self.engine.start()
        resumed = self.engine.recover({f.name for f in self.standby.active()})
        self.intake.start_watching()
        folders = len(self.config.folders)
        log.info("watching %d folder(s), %d unfinished job(s) resumed", folders, resumed)
        self.notifier.ready(f"watching {folders} folder(s) · starting scan")
        self._rescan(adopt=False)  # the start-up recovery has just run

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
        if self.resume_requested:
            self.resume_requested = False
            log.warning("resume asked (SIGUSR1): ending the API pause now")
            self.engine.api_pause.resume()
        now = self._last_tick_s = self.clock()
        if self.intake.scanning:
            self._go_on_scanning()
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
            self._check_standby()
            self.housekeeper.tick()
            self._check_state_dir()
            self.engine.ledger.catch_up()
            self.monitor.tick()
            self.reporter.http_url = self.monitor.url
            self._report()

    def shutdown(self) -> None:
        self.notifier.stopping("stopping: finishing in-flight jobs")
        log.info("stopping: no new claims; in-flight jobs get %gs",
                 self.config.daemon.shutdown_timeout_s)
        self.intake.stop_watching()
        finished = self.engine.drain(self.config.daemon.shutdown_timeout_s, self._wakeup,
                                     lambda: self.force_exit, self.clock)
        if not finished:
            log.warning("stopped with jobs in flight: they resume at the next start")
        self.reporter.write(stopped=True)
        self.monitor.stop()
        self.engine.close()
        self.lock.release()
        self._wakeup.close()
        log.info("stopped")

    def reload(self) -> None:
        """SIGHUP: apply a valid new configuration; keep the old one on any error."""
        self.notifier.reloading()
        try:
            config = load_checked(self.config_path, tables=self._mount_tables)
        except ConfigError as exc:
            log.error("reload refused, still running on the previous configuration: %s", exc)
            self.notifier.reloaded(self.reporter.status_line())
            return
        added = {f.name for f in config.folders} - {f.name for f in self.config.folders}
        pending = restart_only_changes(self.config, config)
        self.config = config
        self.engine.apply_config(config)
        self.standby = self.reporter.standby = Standby(config.folders, self._mount_tables)
        self.standby.refresh()
        added &= {f.name for f in self.standby.active()}
        resumed = self.engine.recover(added) if added else 0  # jobs left in a re-added folder
        self.intake.reconfigure(self.standby.active(), config.daemon.stability_s)
        self.housekeeper = Housekeeper(config.folders, config.daemon.stability_s)
        self._rescan(adopt=False)
        log.info("configuration reloaded: %d folder(s), %d unfinished job(s) resumed",
                 len(config.folders), resumed)
        if pending:
            log.warning("configuration reloaded, but changes to %s take effect only after a "
                        "restart", ", ".join(pending))
        self.notifier.reloaded(self.reporter.status_line())

    # -- internals ------------------------------------------------------------------------

    def _path_released(self, folder: str, path: Path) -> None:
        """A worker claimed ``path`` (a new file under its name may come in at once) or left
        it where it was (a later event or rescan brings it back)."""
        self.intake.done(path)
        self.housekeeper.note_taken(folder, path)

    def _ticket_done(self, ticket: JobTicket, outcome: Outcome) -> None:
        if self.should_exit:
            self._wakeup.set()  # a draining shutdown looks again

    def _check_standby(self) -> None:
        """A share mounted (or gone): watch what can be watched now; recover and scan the
        folders that came off standby. Raises nothing."""
        before = set(self.standby.reasons)
        back = self.standby.refresh()
        if not self.standby.changed_since(before):
            return
        self.intake.reconfigure(self.standby.active(), self.config.daemon.stability_s)
        if back:
            self.engine.recover(set(back))
            for name in back:
                self.intake.scan(name)

    def _rescan(self, adopt: bool = True) -> None:
        """Begin a scan of every inbox, carried out a slice per turn of the loop; with
        ``adopt``, first take over the jobs of a daemon that died."""
        self._next_rescan = self.clock() + self.config.daemon.rescan_interval_s
        adopted = self.engine.recover(adopt=True) if adopt else 0
        if adopted:
            log.debug("rescan: %d orphaned job(s) adopted", adopted)
        self.intake.start_scan()
        self._go_on_scanning()

    def _go_on_scanning(self) -> None:
        noticed = self.intake.scan_some(SCAN_SLICE_S)
        if noticed is not None:
            log.debug("rescan: %d candidate(s) noticed", noticed)

    def _check_state_dir(self) -> None:
        """Hold the lock that tells ``status`` this daemon lives; when ``state_dir`` was removed
        or replaced, re-create it and reopen the ledger there. Raises nothing."""
        first = not self.lock.held
        try:
            replaced = self.lock.check()
        except OSError as exc:
            if self.reporter.lock_problem is None:
                log.error("state_dir: cannot hold the lock %s (%s): status cannot see this "
                          "daemon until it can", self.lock.path, exc.strerror or exc)
            self.reporter.lock_problem = f"cannot hold {self.lock.path}: {exc.strerror or exc}"
            return
        self.reporter.lock_problem = None
        if replaced and not first:
            log.warning("state_dir %s was removed or replaced under the running daemon: "
                        "re-created; the job history starts afresh there",
                        self.config.daemon.state_dir)
            try:
                self.engine.ledger.reopen()
            except (OSError, sqlite3.Error, ConfigError) as exc:
                log.error("state_dir: cannot reopen the ledger: %s", exc)
            self.reporter.forget_written()

    def _sleep_s(self) -> float:
        """Until the next thing due: a settled file, a turn while jobs run, or the report
        (never later than ``REPORT_EVERY_S`` after the last one: an idle sleep begun just before
        a report was due used to put up to two seconds between two WATCHDOG=1)."""
        if self.intake.scanning:
            return 0.0  # the next slice of the scan, after a look at what is due
        now = self.clock()
        report_in = max(0.0, self._next_report - now)
        deadline = self.intake.next_deadline()
        if deadline is None:
            turn = IDLE_TICK_S if self.engine.scheduler.is_idle() else TICK_S * 4
            return min(turn, report_in)
        return min(IDLE_TICK_S, report_in, max(TICK_S, deadline - now))

    def _report(self) -> None:
        self.reporter.write()
        self.notifier.status(self.reporter.status_line())
        if self.notifier.watchdog_interval_s is not None and self._workers_healthy():
            self.notifier.watchdog()

    def _workers_healthy(self) -> bool:
        """WATCHDOG=1 only while workers progress or idle: a hung worker must trip it."""
        return not self.engine.scheduler.is_stalled(self.stall_limit_s())

    def stall_limit_s(self) -> float:
        """How long a running job may show no sign of life before it counts as stuck."""
        interval = self.notifier.watchdog_interval_s or 30.0
        return max(interval * 2, self._longest_call_s())

    def workers_healthy(self) -> bool:
        return self._workers_healthy()

    def health(self) -> tuple[bool, str]:
        """``/healthz``: the main loop turns and no worker is stuck."""
        quiet_s = self.clock() - self._last_tick_s
        if quiet_s > LOOP_STALE_S:
            return False, f"the main loop has not turned for {quiet_s:.0f}s"
        if not self._workers_healthy():
            return False, f"a job has shown no progress for over {self.stall_limit_s():.0f}s"
        return True, "ok"

    def status_document(self) -> dict[str, Any]:
        """What ``status --json`` prints (``/api/status``)."""
        if self._status_document is None:
            return {"daemon": {"running": True, "pid": None}, "live": self.reporter.snapshot()}
        return self._status_document(self.config)

    def _longest_call_s(self) -> float:
        api = self.config.api
        return api.connect_timeout_s + max(api.upload_timeout_s, api.process_timeout_s,
                                           api.download_timeout_s) + 5.0


def restart_only_changes(old: Config, new: Config) -> list[str]:
    """The changed settings a reload does not apply (the client, limiter, retry policy, pool
    and ledger are built once at start-up), by their config names."""
    return [name for name, before, after in (
        ("[api]", old.api, new.api), ("[retry]", old.retry, new.retry),
        ("[http]", old.http, new.http), ("[notify]", old.notify, new.notify),
        ("daemon.workers", old.daemon.workers, new.daemon.workers),
        ("daemon.state_dir", old.daemon.state_dir, new.daemon.state_dir),
    ) if before != after]
