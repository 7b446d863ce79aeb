"""The processing engine shared by ``run`` and ``process``: every part that carries a job from a
settled file to its outputs, archive or quarantine, wired once.

It knows nothing about watching folders or signals (that is ``daemon.service``): give it a
settled file (:meth:`Engine.submit`) or a claimed job (:meth:`Engine.submit_claimed`) and the
worker pool runs it: claim, then ``job.steps``, then the failure policy on any failure.

Reload without races: the configuration and the folders' parts built from it are one immutable
:class:`Wiring`, replaced in one assignment by :meth:`Engine.apply_config`; a run of a ticket
reads it once, and a claimed job keeps the parts it was claimed with (``engine.claim``).
Nothing escapes a run: whatever a bug raises, a job this run held is let go (its lock dropped),
so the next recovery pass adopts it instead of leaving it stranded until a restart.

Over 300 lines on purpose: the wiring and the run of a ticket share the :class:`Wiring`'s
lifetime (a run reads it once); apart, that rule would be spread over two modules.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Collection, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from bgcut_watchd.api import BackgroundCutClient
from bgcut_watchd.clock import Clock
from bgcut_watchd.config.model import Config
from bgcut_watchd.control.guard import ApiGuard, GateClosed
from bgcut_watchd.control.pause import FolderPauses, ProbedPause
from bgcut_watchd.control.ratelimit import RateLimiter
from bgcut_watchd.control.scheduler import Scheduler
from bgcut_watchd.control.slots import ApiSlots
from bgcut_watchd.control.tickets import JobTicket, Outcome, OutcomeKind
from bgcut_watchd.engine.budget import DailyBudget
from bgcut_watchd.engine.claim import Claims, FolderParts
from bgcut_watchd.engine.failures import GATE_RETRY_S, FailurePolicy
from bgcut_watchd.engine.history import JobHistory
from bgcut_watchd.engine.inflight import InFlight
from bgcut_watchd.engine.observe import EngineObserver, report_of
from bgcut_watchd.engine.recovery import recover_folder
from bgcut_watchd.fsops import show_path
from bgcut_watchd.job.duplicates import SameContentInFlight
from bgcut_watchd.job.fetch import DOWNLOADS_PER_JOB
from bgcut_watchd.job.steps import JobRunner
from bgcut_watchd.job.timeline import Timeline
from bgcut_watchd.job.validate import PixelBudget, return_freed_pixels_to_the_system
from bgcut_watchd.job.workarea import ClaimedJob, WorkArea

log = logging.getLogger("bgcut_watchd.engine")

# Pixels decoded at once by the local check and the verification of outputs, all workers
# together: 16 MP is about 64 MB (Pillow keeps 4 bytes a pixel); a larger image is decoded
# alone (bench/memory.py: 8 x 14 MP inputs peaked at 401 MB without this bound).
DECODE_BUDGET_PIXELS = 16_000_000
DRAIN_POLL_S = 0.2  # a draining stop's longest sleep between looks


def threads_for(workers: int) -> int:
    """Worker threads for ``workers`` API slots: half as many again (at least one more), so
    that while ``workers`` jobs wait on the API, others are claimed and checked, or published
    and disposed of. Measured (bench throughput, issue 14): a job's local work took ~20% of its
    wall time, which then stood outside the API calls."""
    return workers + max(1, workers // 2)


TicketDone = Callable[[JobTicket, Outcome], None]
PathReleased = Callable[[str, Path], None]
JobSpawned = Callable[[ClaimedJob], None]


class Wake(Protocol):
    """What a draining stop sleeps on (``daemon.wakeup.Wakeup``, or a ``threading.Event``)."""

    def wait(self, timeout: float | None = None, /) -> bool: ...
    def clear(self) -> None: ...


@dataclass(frozen=True)
class Wiring:
    """One configuration and every folder's parts built from it; replaced whole, never changed."""

    config: Config
    folders: Mapping[str, FolderParts]


class Engine:
    """Every part that processes jobs, wired once. Close it when done."""

    def __init__(self, config: Config, api_key: str, *, cancel: threading.Event,
                 on_ticket_done: TicketDone | None = None,
                 on_path_released: PathReleased | None = None,
                 on_job_spawned: JobSpawned | None = None,
                 max_waiting: int | None = None,
                 observer: EngineObserver | None = None) -> None:
        """``on_path_released(folder, path)`` runs on the worker once per run of a ticket for a
        settled file: right after the claim moved it out of the inbox, or when the run ends
        without a claim (gone, taken by another daemon, folder paused). ``on_ticket_done``
        runs after every run of a ticket; ``on_job_spawned`` for every page job a multi-page
        input hands over (before it is queued). ``observer`` hears of every job that ended and
        every API request (metrics, the status page, notifications). Raises OSError,
        sqlite3.Error, ConfigError (the ledger cannot be opened)."""
        self.cancel = cancel
        self.observer = observer
        self.ledger = JobHistory(config.daemon.state_dir)
        self.client = BackgroundCutClient(
            config.api, api_key, on_request=observer.api_request if observer else None)
        self.api_pause = ProbedPause("API work")
        self.folder_pauses = FolderPauses()
        self.claims = Claims()
        self.failures = FailurePolicy(config.retry, self.api_pause, self.folder_pauses,
                                      self.claims)
        self.guard = ApiGuard(self.api_pause, RateLimiter(config.api.max_requests_per_minute),
                              cancel, penalty_s=config.retry.base_delay_s,
                              on_answer=self._heartbeat, on_failure=self.failures.on_api_failure,
                              on_success=self.failures.on_api_success)
        self.budget = DailyBudget(config.budget, self.ledger, self.api_pause)
        self.decode_budget = PixelBudget(DECODE_BUDGET_PIXELS)
        self.in_flight = InFlight()  # identical content in flight at once is paid once
        # Helps with each job's other downloads (job.fetch); never makes a job wait for a
        # thread (``workers`` is read at start only: a reload does not change it).
        # ``workers`` jobs in API calls at once; the pool's extra threads check the next jobs
        # and finish the last ones meanwhile (job.steps).
        self.api_slots = ApiSlots(config.daemon.workers)
        self.downloads = ThreadPoolExecutor(config.daemon.workers * (DOWNLOADS_PER_JOB - 1),
                                            thread_name_prefix="bgcut-download")
        return_freed_pixels_to_the_system()  # else freed pixels stay in each worker's arena
        self.wiring = self._wire(config)
        self._on_ticket_done = on_ticket_done
        self._on_path_released = on_path_released
        self._on_job_spawned = on_job_spawned
        self._local = threading.local()  # per worker: did this run claim its file yet?
        self.scheduler = Scheduler(threads_for(config.daemon.workers), self._run_ticket,
                                   max_waiting=max_waiting)

    @property
    def config(self) -> Config:
        return self.wiring.config

    @property
    def folders(self) -> Mapping[str, FolderParts]:
        return self.wiring.folders

    def apply_config(self, config: Config) -> None:
        """Use a new configuration for the jobs that start from now on (SIGHUP); the jobs
        claimed already finish with the parts they started with."""
        self.wiring = self._wire(config)
        self.budget.configure(config.budget)

    def start(self) -> None:
        self.scheduler.start()

    def recover(self, folder_names: Collection[str] | None = None, *,
                adopt: bool = False) -> int:
        """Queue every unfinished job no live process owns (only in ``folder_names`` when
        given: the folders a reload added). ``adopt``: a pass while running (the periodic
        rescan), which takes over the orphans of a daemon that died and leaves interrupted
        quarantines to the start-up pass. Returns how many were queued. Raises nothing."""
        resumed = 0
        wiring = self.wiring
        for folder in wiring.config.folders:
            if folder_names is not None and folder.name not in folder_names:
                continue
            parts = wiring.folders[folder.name]
            for job in recover_folder(folder, parts.workarea, adopt=adopt):
                self.claims.record(job, parts)
                resumed += self._submit_held(job, parts, delay_s=0.0)
        return resumed

    def submit(self, folder: str, path: Path) -> bool:
        """Queue a settled file of ``folder``; False when it is already queued or no room."""
        return self.scheduler.submit(JobTicket(folder, path))

    def claim(self, folder: str, source: Path, copy_as: str | None = None,
              output_dir: Path | None = None) -> ClaimedJob | None:
        """Claim ``source`` for ``folder`` now (``process``); see ``Claims.claim``."""
        return self.claims.claim(folder, self.folders[folder], source, copy_as, output_dir)

    def submit_claimed(self, job: ClaimedJob, delay_s: float | None = None) -> bool:
        """Queue a job this process holds; False (the job stays held) when refused."""
        return self._submit_held(job, self.folders[job.record.folder], delay_s)

    def drain(self, timeout_s: float, wake: Wake, give_up: Callable[[], bool],
              clock: Clock) -> bool:
        """Warm stop: start no new job, let the running ones finish until ``timeout_s`` or
        ``give_up()`` (a second signal); then cancel whatever still waits. True when every
        running job finished. Wakes on ``wake`` (set it when a job ends or a signal comes)."""
        deadline_s = clock() + timeout_s
        self.scheduler.stop_accepting()  # the pool starts nothing more
        finished = self.scheduler.stats().busy == 0
        self.api_slots.close()  # a job waiting for a slot starts no API work now
        while not finished and not give_up() and (left_s := deadline_s - clock()) > 0:
            wake.wait(min(DRAIN_POLL_S, left_s))
            wake.clear()
            finished = self.scheduler.stats().busy == 0
        self.cancel.set()  # whatever still waits at the pause or the limiter gives up now
        return finished

    def close(self) -> None:
        """Release every held job and close the client and the ledger."""
        self.claims.release_all()
        self.downloads.shutdown(wait=True)
        self.client.close()
        self.ledger.catch_up()
        self.ledger.close()

    # -- one ticket, on a worker ------------------------------------------------------------

    def _submit_held(self, job: ClaimedJob, parts: FolderParts, delay_s: float | None) -> bool:
        ticket = self.claims.hold(job, parts)
        if delay_s is None:
            return self.scheduler.submit(ticket)
        return self.scheduler.submit_later(ticket, delay_s)

    def _run_ticket(self, ticket: JobTicket) -> Outcome:
        self._local.released = ticket.job_id is not None
        self._local.job_id = ticket.job_id
        try:
            outcome = self._outcome_of(ticket)
        except Exception:  # a bug: let go of the job rather than strand it (module docstring)
            log.exception("folder %s: the run of %s failed; its job is let go for the next "
                          "recovery pass", ticket.folder, show_path(ticket.path))
            if self._local.job_id is not None:
                self.claims.release(self._local.job_id)
            self.folder_pauses.of(ticket.folder).release_probe()
            self.api_pause.release_probe()
            outcome = Outcome.skipped()
        if not self._local.released:
            self._release_path(ticket)
        if self._on_ticket_done is not None:
            self._on_ticket_done(ticket, outcome)
        return outcome

    def _outcome_of(self, ticket: JobTicket) -> Outcome:
        """The scheduler's ``run_job``. Raises only what a bug raises (``_run_ticket``)."""
        parts = self.folders.get(ticket.folder)  # one read of the wiring for this run
        if parts is None:  # the folder was removed by a reload: leave the file in place
            if ticket.job_id is not None:
                self.claims.release(ticket.job_id)
            return Outcome.skipped()
        folder_pause = self.folder_pauses.of(ticket.folder)
        wait_s = folder_pause.try_enter()
        if wait_s is not None:
            return Outcome.paused(max(GATE_RETRY_S, wait_s), ticket)
        held = self._job_for(ticket, parts)
        if held is None:
            folder_pause.release_probe()
            return Outcome.skipped()
        job, parts = held
        return self._run(parts, ticket, job)

    def _job_for(self, ticket: JobTicket,
                 parts: FolderParts) -> tuple[ClaimedJob, FolderParts] | None:
        """The held job of ``ticket`` with its own parts, or a fresh claim with ``parts``."""
        if ticket.job_id is not None:
            return self.claims.get(ticket.job_id)
        timeline = Timeline()
        try:
            job = self.claims.claim(ticket.folder, parts, ticket.path)
        except (OSError, ValueError) as exc:
            log.error("folder %s: cannot claim %s: %s", ticket.folder, show_path(ticket.path),
                      exc)
            return None
        if job is None:
            return None
        job.timeline = timeline
        timeline.mark("claim")
        self._local.job_id = job.job_id
        # The inbox path is free again: a new file under the same name may come in while
        # this job runs (a camera after a card reset writes IMG_0001.JPG again).
        self.scheduler.release_running_key()
        self._release_path(ticket)
        return job, parts

    def _release_path(self, ticket: JobTicket) -> None:
        self._local.released = True
        if self._on_path_released is not None:
            self._on_path_released(ticket.folder, ticket.path)

    def _run(self, parts: FolderParts, ticket: JobTicket, job: ClaimedJob) -> Outcome:
        progress_before = parts.runner.progress(job)
        job.timeline.mark("wait")  # after the claim, or since the run before (a retry)
        try:
            parts.runner.run(job)
        except (GateClosed, SameContentInFlight):  # wait outside the pool, count no attempt
            self.folder_pauses.of(ticket.folder).release_probe()
            return Outcome.paused(GATE_RETRY_S, self.claims.ticket_again(job, ticket))
        except Exception as exc:  # every failure is classified; nothing escapes
            outcome = self.failures.outcome(parts.runner, ticket, job, exc, progress_before)
            if outcome.kind is OutcomeKind.QUARANTINED:
                self._tell_observer(job, quarantined=True)
            return outcome
        self.claims.forget(job)
        self._tell_observer(job, quarantined=False)
        # Only the folder's probe proves its disk works again: a job that started before the
        # pause and finished anyway must not lift it (report_success ignores other threads).
        self.folder_pauses.of(ticket.folder).report_success()
        return Outcome.done()

    def _tell_observer(self, job: ClaimedJob, *, quarantined: bool) -> None:
        if self.observer is None:
            return
        try:
            self.observer.job_finished(report_of(job, quarantined))
        except Exception:  # the observer's trouble never becomes the job's
            log.exception("job %s: the observer failed", job.job_id)

    def _spawned(self, job: ClaimedJob) -> None:
        """A page of a multi-page input became a job of its own (``job.pages``): record it,
        hold it and queue it now, like a fresh claim."""
        parts = self.folders.get(job.record.folder)
        if parts is None:  # its folder was removed by a reload: the job waits in its work area
            job.release()
            return
        self.claims.record(job, parts)
        if self._on_job_spawned is not None:
            self._on_job_spawned(job)
        self._submit_held(job, parts, delay_s=0.0)

    def _heartbeat(self) -> None:
        """Every API answer shows the calling worker alive (for the systemd watchdog)."""
        self.scheduler.heartbeat()

    def _wire(self, config: Config) -> Wiring:
        return Wiring(config, {
            folder.name: FolderParts(
                JobRunner(folder, config.api, config.daemon, self.client, self.ledger,
                          self.guard, decode_budget=self.decode_budget,
                          in_flight=self.in_flight, spawn=self._spawned,
                          spend=self.budget, downloads=self.downloads,
                          api_slots=self.api_slots),
                WorkArea(folder.inbox),
            )
            for folder in config.folders
        })
