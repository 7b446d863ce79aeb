"""The processing engine shared by ``run`` and ``process``: client, guard, pipeline, pool.

It knows nothing about watching folders or signals (that is ``service.py``): give it tickets
and it carries them to outputs, archive or quarantine.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Collection
from pathlib import Path

from bgcut_watchd.api import BackgroundCutClient
from bgcut_watchd.config import Config, FolderConfig
from bgcut_watchd.guard import ApiGuard
from bgcut_watchd.job.journal import JobState
from bgcut_watchd.job.quarantine import complete_pending
from bgcut_watchd.job.runner import PROCESS_AMBIGUOUS, JobRunner
from bgcut_watchd.job.validate import PixelBudget
from bgcut_watchd.job.workarea import ClaimedJob, WorkArea
from bgcut_watchd.ledger import Ledger
from bgcut_watchd.pause import FolderPauses, PauseGate
from bgcut_watchd.pipeline import FolderParts, Pipeline
from bgcut_watchd.ratelimit import RateLimiter
from bgcut_watchd.retry import RetryPolicy
from bgcut_watchd.scheduler import JobTicket, Outcome, Scheduler

log = logging.getLogger("bgcut_watchd.engine")

# Pixels decoded at once by the local check, all workers together: 16 MP is about 50 MB of
# RGB; a larger input is decoded alone (bench/memory.py: 8 x 14 MP inputs peaked at 401 MB
# without this bound).
DECODE_BUDGET_PIXELS = 16_000_000

# The runner's mark for "the process call may have run": it looks for the outputs before
# sending the call again (job/runner.py, ``JobRunner._process``).

TicketDone = Callable[[JobTicket, Outcome], None]


class Engine:
    """Every part that processes jobs, wired once. Close it when done."""

    def __init__(self, config: Config, api_key: str, *, cancel: threading.Event,
                 on_ticket_done: TicketDone | None = None,
                 max_waiting: int | None = None) -> None:
        self.config = config
        self.cancel = cancel
        self.policy = RetryPolicy.from_config(config.retry)
        self.ledger = Ledger(config.daemon.state_dir)
        self.client = BackgroundCutClient(config.api, api_key)
        self.gate = PauseGate()
        self.guard = ApiGuard(self.gate, RateLimiter(config.api.max_requests_per_minute),
                              self.policy, cancel, on_answer=self._heartbeat)
        self.folder_pauses = FolderPauses()
        self.decode_budget = PixelBudget(DECODE_BUDGET_PIXELS)
        self.pipeline = Pipeline(self._folder_parts(config.folders), self.policy,
                                 self.folder_pauses)
        self._on_ticket_done = on_ticket_done
        self.scheduler = Scheduler(config.daemon.workers, self._run_ticket,
                                   max_waiting=max_waiting)

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

    def apply_config(self, config: Config) -> None:
        """Use a new configuration for the jobs that start from now on (SIGHUP)."""
        self.config = config
        self.pipeline.folders = self._folder_parts(config.folders)

    def start(self) -> None:
        self.scheduler.start()

    def recover(self, folder_names: Collection[str] | None = None) -> int:
        """Finish half-done quarantines and queue every unfinished job left in a work area.

        Only the folders named in ``folder_names`` when given (those a reload added). Returns
        how many jobs were queued for resumption. Raises nothing.
        """
        resumed = 0
        for folder in self.config.folders:
            if folder_names is not None and folder.name not in folder_names:
                continue
            try:
                complete_pending(folder.quarantine)
                jobs = self.pipeline.folders[folder.name].workarea.recover(folder.name)
            except OSError as exc:
                log.error("folder %s: cannot recover its work area: %s", folder.name, exc)
                continue
            for job in jobs:
                _mark_process_ambiguous(job)
                if self.scheduler.submit_later(self.pipeline.ticket_for(job), 0.0):
                    resumed += 1
            if jobs:
                log.info("folder %s: resuming %d unfinished job(s)", folder.name, len(jobs))
        return resumed

    def submit(self, folder: str, path: Path) -> bool:
        """Queue a settled file of ``folder``; False when it is already queued or no room."""
        return self.scheduler.submit(JobTicket(folder, path))

    def _run_ticket(self, ticket: JobTicket) -> Outcome:
        outcome = self.pipeline.run_ticket(ticket)
        if self._on_ticket_done is not None:
            self._on_ticket_done(ticket, outcome)
        return outcome

    def stop(self, timeout_s: float) -> bool:
        """Warm shutdown: let running jobs finish within ``timeout_s``; True when they did.

        Whatever did not finish stays resumable in its work area.
        """
        finished = self.scheduler.drain(timeout_s)
        self.cancel.set()  # whatever still waits at the gate or the limiter gives up now
        return finished

    def close(self) -> None:
        """Release every held job and close the client and the ledger."""
        self.pipeline.release_all()
        self.client.close()
        self.ledger.close()


def _mark_process_ambiguous(job: ClaimedJob) -> None:
    """A job recovered in ``uploaded`` may have sent its process call (and been charged)
    before the daemon died: have the runner look for its outputs before paying again
    (api-v3.md, "Credits"). Raises nothing: at worst the call is sent again.
    """
    if job.record.state is not JobState.UPLOADED or job.record.last_stage == PROCESS_AMBIGUOUS:
        return
    try:
        job.save(job.record.advance(JobState.UPLOADED, last_stage=PROCESS_AMBIGUOUS))
    except OSError as exc:
        log.warning("job %s: cannot journal its resumption: %s", job.job_id, exc)
