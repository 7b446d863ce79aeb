"""The one claim path, and the claimed jobs this process holds.

A claim moves (or, for ``process`` and a file outside every inbox, copies) the input into a new
job directory of the inbox's work area, then records the job in the ledger. The ledger is a
record, not a gate: a ledger failure is logged and the job goes on (the journal is the truth).
Every claimed job is *held* (its flock stays open) until it ends, so no other daemon's recovery
takes it; :meth:`Claims.release_all` lets go of them at shutdown, leaving them resumable.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from dataclasses import dataclass, replace
from pathlib import Path

from bgcut_watchd.control.tickets import JobTicket
from bgcut_watchd.job.steps import JobRunner
from bgcut_watchd.job.workarea import ClaimedJob, WorkArea

log = logging.getLogger("bgcut_watchd.engine")


@dataclass(frozen=True)
class FolderParts:
    """What the engine needs of one configured folder."""

    runner: JobRunner
    workarea: WorkArea


class Claims:
    """Claims inputs and holds the claimed jobs by id. Thread-safe."""

    def __init__(self) -> None:
        self._held: dict[str, ClaimedJob] = {}
        self._lock = threading.Lock()

    def claim(self, folder: str, parts: FolderParts, source: Path,
              copy_as: str | None = None) -> ClaimedJob | None:
        """Claim ``source`` for ``folder``: rename it into the work area, or with ``copy_as``
        (its place "in the inbox") copy it there, never touching the original. Record it in the
        ledger and hold it.

        Returns None when the file is gone or another process took it first. Raises OSError or
        ValueError when it cannot be claimed (nothing moved).
        """
        job = (parts.workarea.claim(folder, source) if copy_as is None
               else parts.workarea.claim_copy(folder, source, copy_as))
        if job is None:
            return None
        self.record(parts, job)
        self.hold(job)
        return job

    def record(self, parts: FolderParts, job: ClaimedJob) -> None:
        """Record a new job in the ledger (a claim, or a page a multi-page input handed over).
        Raises nothing: the ledger is the history only, the job itself is journaled."""
        name = Path(job.record.original_relpath).name
        try:
            parts.runner.ledger.record_claim(job.job_id, job.record.folder, name,
                                             parts.runner.variant_key)
        except sqlite3.Error as exc:
            log.error("job %s: cannot record the claim in the ledger: %s", job.job_id, exc)

    def hold(self, job: ClaimedJob) -> JobTicket:
        """Keep ``job`` (a fresh claim or a recovered one); the ticket that runs it next."""
        with self._lock:
            self._held[job.job_id] = job
        return JobTicket(job.record.folder, job.input_path, job.record.attempts + 1, job.job_id)

    def ticket_again(self, job: ClaimedJob, ticket: JobTicket) -> JobTicket:
        """``ticket`` pointed at held ``job``, so its next run finds the job, not the inbox."""
        with self._lock:
            self._held[job.job_id] = job
        return replace(ticket, job_id=job.job_id, path=job.input_path)

    def get(self, job_id: str) -> ClaimedJob | None:
        with self._lock:
            return self._held.get(job_id)

    def forget(self, job: ClaimedJob) -> None:
        """``job`` ended (its directory is gone): stop holding it."""
        with self._lock:
            self._held.pop(job.job_id, None)

    def release(self, job_id: str) -> None:
        """Stop holding the job and drop its flock; it stays resumable in its work area."""
        with self._lock:
            job = self._held.pop(job_id, None)
        if job is not None:
            job.release()

    def release_all(self) -> None:
        """Drop every flock we hold (shutdown): the jobs stay resumable in their work areas."""
        with self._lock:
            jobs, self._held = list(self._held.values()), {}
        for job in jobs:
            job.release()
