"""The one claim path, and the claimed jobs this process holds.

A claim moves (or, for ``process`` and a file outside every inbox, copies) the input into a new
job directory of the inbox's work area, then records the job in the ledger (``engine.history``:
a record, not a gate; the journal is the truth). Every claimed job is *held* (its lock stays
open) until it ends, so no recovery takes it, ours (the periodic adoption of orphans) or another
daemon's; :meth:`Claims.release_all` lets go of them at shutdown, leaving them resumable.

A held job keeps the folder's parts (its runner: variants, naming, limits) it was claimed or
recovered with, for its whole life in this process: a reload (SIGHUP) changes what the jobs that
start from then on use, never a job half done (a variant set changed between its process call
and its publication would name its downloads after the wrong variants).
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass, replace
from pathlib import Path

from bgcut_watchd.control.tickets import JobTicket
from bgcut_watchd.job.steps import JobRunner
from bgcut_watchd.job.workarea import ClaimedJob, WorkArea

log = logging.getLogger("bgcut_watchd.engine")

CLAIM_TRIES = 3  # a brand-new job dir can be taken by a recovery between its mkdir and its lock


@dataclass(frozen=True)
class FolderParts:
    """What the engine needs of one configured folder."""

    runner: JobRunner
    workarea: WorkArea


class Claims:
    """Claims inputs and holds the claimed jobs by id. Thread-safe."""

    def __init__(self) -> None:
        self._held: dict[str, tuple[ClaimedJob, FolderParts]] = {}
        self._lock = threading.Lock()

    def claim(self, folder: str, parts: FolderParts, source: Path,
              copy_as: str | None = None, output_dir: Path | None = None) -> ClaimedJob | None:
        """Claim ``source`` for ``folder``: rename it into the work area, or with ``copy_as``
        (its place "in the inbox") copy it there as a detached job (``WorkArea.claim_copy``,
        outputs in ``output_dir`` when given), never touching the original. Record it in the
        ledger and hold it with ``parts``.

        Returns None when the file is gone or another process took it first. Raises OSError or
        ValueError when it cannot be claimed (nothing moved).
        """
        variants = parts.runner.folder.variants  # journaled: the job keeps them
        for _ in range(CLAIM_TRIES):
            job = (parts.workarea.claim(folder, source, variants) if copy_as is None
                   else parts.workarea.claim_copy(folder, source, copy_as, variants,
                                                  output_dir))
            if job is not None or not os.path.lexists(source):
                break
        if job is None:
            return None
        self.record(job, parts)
        self.hold(job, parts)
        return job

    @staticmethod
    def record(job: ClaimedJob, parts: FolderParts) -> None:
        """Record ``job`` in the ledger (kept as is if known). Raises nothing: a record."""
        name = Path(job.record.original_relpath).name
        parts.runner.ledger.record_claim(job.job_id, job.record.folder, name,
                                         parts.runner.variant_key_of(job))

    def hold(self, job: ClaimedJob, parts: FolderParts) -> JobTicket:
        """Keep ``job`` (a fresh claim or a recovered one) with ``parts``, or with the parts it
        is held with already; the ticket that runs it next."""
        with self._lock:
            self._held.setdefault(job.job_id, (job, parts))
        return JobTicket(job.record.folder, job.input_path, job.record.attempts + 1, job.job_id)

    def ticket_again(self, job: ClaimedJob, ticket: JobTicket) -> JobTicket:
        """``ticket`` pointed at held ``job``, so its next run finds the job, not the inbox."""
        return replace(ticket, job_id=job.job_id, path=job.input_path)

    def get(self, job_id: str) -> tuple[ClaimedJob, FolderParts] | None:
        """The held job and the parts it runs with, or None when it is not held."""
        with self._lock:
            return self._held.get(job_id)

    def forget(self, job: ClaimedJob) -> None:
        """``job`` ended (its directory is gone): stop holding it."""
        with self._lock:
            self._held.pop(job.job_id, None)

    def release(self, job_id: str) -> None:
        """Stop holding the job and drop its lock; it stays resumable in its work area (and
        the next recovery pass, ours or another daemon's, adopts it)."""
        with self._lock:
            held = self._held.pop(job_id, None)
        if held is not None:
            held[0].release()

    def release_all(self) -> None:
        """Drop every job lock we hold (shutdown): the jobs stay resumable in their work areas."""
        with self._lock:
            held, self._held = list(self._held.values()), {}
        for job, _ in held:
            job.release()
