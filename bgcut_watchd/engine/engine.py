"""The processing engine shared by ``run`` and ``process``: every part that carries a job from a
settled file to its outputs, archive or quarantine, wired once.

It knows nothing about watching folders or signals (that is ``daemon.service``): give it a
settled file (:meth:`Engine.submit`) or a claimed job (:meth:`Engine.submit_claimed`) and the
worker pool runs it: claim, then ``job.steps``, then the failure policy on any failure.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Collection
from pathlib import Path

from bgcut_watchd.api import BackgroundCutClient
from bgcut_watchd.clock import Clock
from bgcut_watchd.config.model import Config, FolderConfig
from bgcut_watchd.control.guard import ApiGuard, GateClosed
from bgcut_watchd.control.pause import FolderPauses, ProbedPause
from bgcut_watchd.control.ratelimit import RateLimiter
from bgcut_watchd.control.scheduler import Scheduler
from bgcut_watchd.control.tickets import JobTicket, Outcome
from bgcut_watchd.engine.claim import Claims, FolderParts
from bgcut_watchd.engine.failures import GATE_RETRY_S, FailurePolicy
from bgcut_watchd.engine.recovery import recover_folder
from bgcut_watchd.fsops import show_path
from bgcut_watchd.job.steps import JobRunner
from bgcut_watchd.job.validate import PixelBudget, return_freed_pixels_to_the_system
from bgcut_watchd.job.workarea import ClaimedJob, WorkArea
from bgcut_watchd.ledger import Ledger

log = logging.getLogger("bgcut_watchd.engine")

# Pixels decoded at once by the local check and the verification of outputs, all workers
# together: 16 MP is about 64 MB (Pillow keeps 4 bytes a pixel); a larger image is decoded
# alone (bench/memory.py: 8 x 14 MP inputs peaked at 401 MB without this bound).
DECODE_BUDGET_PIXELS = 16_000_000
DRAIN_POLL_S = 0.2  # a draining stop's longest sleep between looks

TicketDone = Callable[[JobTicket, Outcome], None]
PathReleased = Callable[[str, Path], None]


class Engine:
    """Every part that processes jobs, wired once. Close it when done."""

    def __init__(self, config: Config, api_key: str, *, cancel: threading.Event,
                 on_ticket_done: TicketDone | None = None,
                 on_path_released: PathReleased | None = None,
                 max_waiting: int | None = None) -> None:
        """``on_path_released(folder, path)`` runs on the worker once per run of a ticket for a
        settled file: right after the claim moved it out of the inbox, or when the run ends
        without a claim (gone, taken by another daemon, folder paused). ``on_ticket_done``
        runs after every run of a ticket."""
        self.config = config
        self.cancel = cancel
        self.ledger = Ledger(config.daemon.state_dir)
        self.client = BackgroundCutClient(config.api, api_key)
        self.api_pause = ProbedPause("API work")
        self.folder_pauses = FolderPauses()
        self.claims = Claims()
        self.failures = FailurePolicy(config.retry, self.api_pause, self.folder_pauses,
                                      self.claims)
        self.guard = ApiGuard(self.api_pause, RateLimiter(config.api.max_requests_per_minute),
                              cancel, penalty_s=config.retry.base_delay_s,
                              on_answer=self._heartbeat, on_failure=self.failures.on_api_failure)
        self.decode_budget = PixelBudget(DECODE_BUDGET_PIXELS)
        return_freed_pixels_to_the_system()  # else freed pixels stay in each worker's arena
        self.folders = self._folder_parts(config.folders)
        self._on_ticket_done = on_ticket_done
        self._on_path_released = on_path_released
        self._local = threading.local()  # per worker: did this run claim its file yet?
        self.scheduler = Scheduler(config.daemon.workers, self._run_ticket,
                                   max_waiting=max_waiting)

    def apply_config(self, config: Config) -> None:
        """Use a new configuration for the jobs that start from now on (SIGHUP)."""
        self.config = config
        self.folders = self._folder_parts(config.folders)

    def start(self) -> None:
        self.scheduler.start()

    def recover(self, folder_names: Collection[str] | None = None) -> int:
        """Queue every unfinished job no live process owns (only in ``folder_names`` when
        given: the folders a reload added). Returns how many were queued. Raises nothing."""
        resumed = 0
        for folder in self.config.folders:
            if folder_names is not None and folder.name not in folder_names:
                continue
            for job in recover_folder(folder, self.folders[folder.name].workarea):
                resumed += self.submit_claimed(job, delay_s=0.0)
        return resumed

    def submit(self, folder: str, path: Path) -> bool:
        """Queue a settled file of ``folder``; False when it is already queued or no room."""
        return self.scheduler.submit(JobTicket(folder, path))

    def claim(self, folder: str, source: Path, copy_as: str | None = None) -> ClaimedJob | None:
        """Claim ``source`` for ``folder`` now (``process``); see ``Claims.claim``."""
        return self.claims.claim(folder, self.folders[folder], source, copy_as)

    def submit_claimed(self, job: ClaimedJob, delay_s: float | None = None) -> bool:
        """Queue a job this process holds; False (the job stays held) when refused."""
        ticket = self.claims.hold(job)
        if delay_s is None:
            return self.scheduler.submit(ticket)
        return self.scheduler.submit_later(ticket, delay_s)

    def drain(self, timeout_s: float, wake: threading.Event, give_up: Callable[[], bool],
              clock: Clock) -> bool:
        """Warm stop: start no new job, let the running ones finish until ``timeout_s`` or
        ``give_up()`` (a second signal); then cancel whatever still waits. True when every
        running job finished. Wakes on ``wake`` (set it when a job ends or a signal comes)."""
        deadline_s = clock() + timeout_s
        finished = self.scheduler.drain(0.0)  # stops the pool from starting more
        while not finished and not give_up() and (left_s := deadline_s - clock()) > 0:
            wake.wait(min(DRAIN_POLL_S, left_s))
            wake.clear()
            finished = self.scheduler.stats().busy == 0
        self.cancel.set()  # whatever still waits at the pause or the limiter gives up now
        return finished

    def close(self) -> None:
        """Release every held job and close the client and the ledger."""
        self.claims.release_all()
        self.client.close()
        self.ledger.close()

    # -- one ticket, on a worker ------------------------------------------------------------

    def _run_ticket(self, ticket: JobTicket) -> Outcome:
        self._local.released = ticket.job_id is not None
        outcome = self._outcome_of(ticket)
        if not self._local.released:
            self._release_path(ticket)
        if self._on_ticket_done is not None:
            self._on_ticket_done(ticket, outcome)
        return outcome

    def _outcome_of(self, ticket: JobTicket) -> Outcome:
        """The scheduler's ``run_job``: never raises (the scheduler logs what escapes)."""
        parts = self.folders.get(ticket.folder)
        if parts is None:  # the folder was removed by a reload: leave the file where it is
            if ticket.job_id is not None:
                self.claims.release(ticket.job_id)
            return Outcome.skipped()
        folder_pause = self.folder_pauses.of(ticket.folder)
        wait_s = folder_pause.try_enter()
        if wait_s is not None:
            return Outcome.paused(max(GATE_RETRY_S, wait_s), ticket)
        job = self._job_for(parts, ticket)
        if job is None:
            folder_pause.release_probe()
            return Outcome.skipped()
        return self._run(parts, ticket, job)

    def _job_for(self, parts: FolderParts, ticket: JobTicket) -> ClaimedJob | None:
        if ticket.job_id is not None:
            return self.claims.get(ticket.job_id)
        try:
            job = self.claims.claim(ticket.folder, parts, ticket.path)
        except (OSError, ValueError) as exc:
            log.error("folder %s: cannot claim %s: %s", ticket.folder, show_path(ticket.path),
                      exc)
            return None
        if job is not None:
            # The inbox path is free again: a new file under the same name may come in while
            # this job runs (a camera after a card reset writes IMG_0001.JPG again).
            self.scheduler.release_running_key()
            self._release_path(ticket)
        return job

    def _release_path(self, ticket: JobTicket) -> None:
        self._local.released = True
        if self._on_path_released is not None:
            self._on_path_released(ticket.folder, ticket.path)

    def _run(self, parts: FolderParts, ticket: JobTicket, job: ClaimedJob) -> Outcome:
        progress_before = parts.runner.progress(job)
        try:
            parts.runner.run(job)
        except GateClosed:
            self.folder_pauses.of(ticket.folder).release_probe()
            return Outcome.paused(GATE_RETRY_S, self.claims.ticket_again(job, ticket))
        except Exception as exc:  # every failure is classified; nothing escapes
            return self.failures.outcome(parts.runner, ticket, job, exc, progress_before)
        self.claims.forget(job)
        # Only the folder's probe proves its disk works again: a job that started before the
        # pause and finished anyway must not lift it (report_success ignores other threads).
        self.folder_pauses.of(ticket.folder).report_success()
        return Outcome.done()

    def _heartbeat(self) -> None:
        """Every API answer shows the calling worker alive (for the systemd watchdog)."""
        self.scheduler.heartbeat()

    def _folder_parts(self, folders: tuple[FolderConfig, ...]) -> dict[str, FolderParts]:
        return {
            folder.name: FolderParts(
                JobRunner(folder, self.config.api, self.config.daemon, self.client,
                          self.ledger, self.guard, decode_budget=self.decode_budget),
                WorkArea(folder.inbox),
            )
            for folder in folders
        }
