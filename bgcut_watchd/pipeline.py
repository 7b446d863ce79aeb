"""From a scheduler ticket to an outcome: claim the file, run its job, decide on failures.

The decision on a failure is taken here and only here, from the exception's class
(``retry.classify``): quarantine the input, pause everything (401/402), pause the folder (local
disk), or retry with backoff. ``attempts`` counts consecutive failures of one step: a job that
gets further before failing again starts its count afresh, so a long job on a flaky network
is not quarantined for failures it has already recovered from.
"""

from __future__ import annotations

import dataclasses
import logging
import random
import threading
from collections.abc import Mapping
from pathlib import Path

from bgcut_watchd.errors import LocalDiskError, RateLimitedError
from bgcut_watchd.fsops import show_path
from bgcut_watchd.guard import GateClosed
from bgcut_watchd.job.runner import STAGE_OF, JobRunner
from bgcut_watchd.job.workarea import ClaimedJob, WorkArea
from bgcut_watchd.pause import FolderPauses
from bgcut_watchd.retry import Decision, RetryPolicy, classify
from bgcut_watchd.scheduler import JobTicket, Outcome

log = logging.getLogger("bgcut_watchd.pipeline")

GATE_RETRY_S = 0.5  # a job handed back at a closed gate is offered again this soon


@dataclasses.dataclass
class FolderParts:
    """What the pipeline needs of one configured folder."""

    runner: JobRunner
    workarea: WorkArea


class Pipeline:
    """Runs tickets for every folder; shared by the worker threads."""

    def __init__(self, folders: Mapping[str, FolderParts], policy: RetryPolicy,
                 folder_pauses: FolderPauses, rng: random.Random | None = None) -> None:
        self.folders = dict(folders)
        self.policy = policy
        self.folder_pauses = folder_pauses
        self._rng = rng or random.Random()
        self._rng_lock = threading.Lock()
        self._held: dict[str, ClaimedJob] = {}  # job_id -> claimed job whose flock we hold
        self._held_lock = threading.Lock()

    # -- tickets --------------------------------------------------------------------------

    def ticket_for(self, job: ClaimedJob) -> JobTicket:
        """Hold a recovered (or otherwise claimed) job and return the ticket that runs it."""
        with self._held_lock:
            self._held[job.job_id] = job
        return JobTicket(job.record.folder, job.input_path, job.record.attempts + 1, job.job_id)

    def run_ticket(self, ticket: JobTicket) -> Outcome:
        """The scheduler's ``run_job``: never raises (the scheduler logs what escapes)."""
        parts = self.folders.get(ticket.folder)
        if parts is None:  # the folder was removed by a reload: leave the file where it is
            self._release(ticket)
            return Outcome.skipped()
        if not self.folder_pauses.admit(ticket.folder):
            return Outcome.paused(max(GATE_RETRY_S, self.folder_pauses.remaining_s(
                ticket.folder)), ticket)
        job = self._job_for(parts, ticket)
        if job is None:
            self._release_folder_probe(ticket.folder)
            return Outcome.skipped()
        return self._run(parts, ticket, job)

    def held_jobs(self) -> list[ClaimedJob]:
        with self._held_lock:
            return list(self._held.values())

    def release_all(self) -> None:
        """Drop every flock we hold (shutdown): the jobs stay resumable in their work areas."""
        with self._held_lock:
            jobs, self._held = list(self._held.values()), {}
        for job in jobs:
            job.release()

    # -- internals ------------------------------------------------------------------------

    def _job_for(self, parts: FolderParts, ticket: JobTicket) -> ClaimedJob | None:
        if ticket.job_id is not None:
            with self._held_lock:
                return self._held.get(ticket.job_id)
        try:
            job = parts.workarea.claim(ticket.folder, ticket.path)
        except (OSError, ValueError) as exc:
            log.error("folder %s: cannot claim %s: %s", ticket.folder, show_path(ticket.path),
                      exc)
            return None
        if job is not None:
            parts.runner.ledger.record_claim(job.job_id, ticket.folder, ticket.path.name,
                                             parts.runner.variant_key)
        return job

    def _run(self, parts: FolderParts, ticket: JobTicket, job: ClaimedJob) -> Outcome:
        progress_before = parts.runner.progress(job)
        try:
            parts.runner.run(job)
        except GateClosed:
            self._release_folder_probe(ticket.folder)
            return Outcome.paused(GATE_RETRY_S, self._hold(job, ticket))
        except Exception as exc:  # every failure is classified; nothing escapes
            return self._failed(parts, ticket, job, exc, progress_before)
        self._forget(job)
        self._end_folder_pause_if_probe(ticket.folder)
        return Outcome.done()

    def _end_folder_pause_if_probe(self, folder: str) -> None:
        """Only the folder's probe proves its disk works again. A job that started before
        the pause and finished anyway (another subfolder, a smaller file) must not lift it:
        new files would be claimed and paid for, only to fail at download."""
        pause = self.folder_pauses.snapshot().get(folder)
        if pause is not None and pause.prober == threading.get_ident():
            self.folder_pauses.resume(folder)

    def _failed(self, parts: FolderParts, ticket: JobTicket, job: ClaimedJob,
                exc: Exception, progress_before: tuple[int, int]) -> Outcome:
        decision = classify(exc)
        if decision is not Decision.PAUSE_FOLDER:
            self._release_folder_probe(ticket.folder)
        if decision is Decision.QUARANTINE:
            return self._quarantine(parts, ticket, job, exc)
        if decision is Decision.PAUSE_FOLDER:
            # pause() logs the one line: "folder X paused for Ns: <the disk error>"
            self.folder_pauses.pause(ticket.folder, self.policy.folder_pause_s, str(exc))
            return Outcome.paused(self.policy.folder_pause_s, self._hold(job, ticket))
        if decision.is_pause:  # 401/402: the guard has paused every worker already
            return Outcome.paused(GATE_RETRY_S, self._hold(job, ticket))
        return self._retry(parts, ticket, job, exc, decision, progress_before)

    def _retry(self, parts: FolderParts, ticket: JobTicket, job: ClaimedJob, exc: Exception,
               decision: Decision, progress_before: tuple[int, int]) -> Outcome:
        # Progress (a later state, or one more whole download) starts the count afresh; a redo
        # after a 404 is no progress, so a file that keeps vanishing remotely ends in
        # quarantine after max_attempts.
        progressed = parts.runner.progress(job) > progress_before
        attempts = 1 if progressed else job.record.attempts + 1
        try:
            job.save(job.record.advance(job.record.state, attempts=attempts,
                                        last_error=str(exc)[:500]))
        except OSError as disk:
            log.error("job %s: cannot journal the failure: %s", job.job_id, disk)
        parts.runner.ledger.update(job.job_id, attempts=attempts, last_error=str(exc)[:500])
        if decision is Decision.UNEXPECTED:
            log.error("job %s: unexpected failure", job.job_id, exc_info=exc)
        if not self.policy.should_retry(attempts):
            return self._quarantine(parts, ticket, job, exc)
        retry_after = exc.retry_after_s if isinstance(exc, RateLimitedError) else None
        with self._rng_lock:
            delay_s = self.policy.next_delay_s(attempts, self._rng, retry_after)
        log.warning("job %s [%s] %s: attempt %d failed at %s, retrying in %.1fs: %s",
                    job.job_id, ticket.folder, show_path(job.record.original_relpath),
                    attempts, job.record.state, delay_s, exc,
                    extra=parts.runner.log_fields(job, stage=STAGE_OF.get(job.record.state)))
        return Outcome.retry(delay_s, dataclasses.replace(
            self._hold(job, ticket), attempt=attempts + 1))

    def _quarantine(self, parts: FolderParts, ticket: JobTicket, job: ClaimedJob,
                    exc: Exception) -> Outcome:
        try:
            parts.runner.quarantine(job, exc)
        except (LocalDiskError, OSError) as disk:
            self.folder_pauses.pause(ticket.folder, self.policy.folder_pause_s, str(disk))
            log.error("folder %s: cannot quarantine, input kept, folder paused: %s",
                      ticket.folder, disk)
            return Outcome.paused(self.policy.folder_pause_s, self._hold(job, ticket))
        self._forget(job)
        return Outcome.quarantined()

    def _release_folder_probe(self, folder: str) -> None:
        """This job ended without telling whether the folder's disk works again: if it was
        the folder's probe, let the next job probe at once instead of after the probe lease."""
        pause = self.folder_pauses.snapshot().get(folder)
        if pause is not None and pause.prober == threading.get_ident():
            self.folder_pauses.pause(folder, 0.0, pause.reason)

    def _hold(self, job: ClaimedJob, ticket: JobTicket) -> JobTicket:
        with self._held_lock:
            self._held[job.job_id] = job
        return dataclasses.replace(ticket, job_id=job.job_id, path=job.input_path)

    def _forget(self, job: ClaimedJob) -> None:
        with self._held_lock:
            self._held.pop(job.job_id, None)

    def _release(self, ticket: JobTicket) -> None:
        if ticket.job_id is None:
            return
        with self._held_lock:
            job = self._held.pop(ticket.job_id, None)
        if job is not None:
            job.release()


__all__ = ["FolderParts", "Path", "Pipeline"]
