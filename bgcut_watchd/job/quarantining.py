"""Quarantining one job: its input moved beside its error file (``job.quarantine``), the journal
and the ledger told; and a quarantine interrupted after its copy reached the quarantine (a crash
or a failed unlink, across filesystems) finished rather than started again.

The target name is journaled (``quarantine_target``) before the input moves. A job resumed with
a target that holds its input's bytes raises :class:`~bgcut_watchd.errors.QuarantineUnfinishedError`
from :meth:`JobQuarantine.check_interrupted`, carrying the error file's reason and stage: the
failure policy quarantines it, and :meth:`JobQuarantine.quarantine` only unlinks the input.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from bgcut_watchd.clock import iso_utc_seconds
from bgcut_watchd.config.model import FolderConfig, Variant
from bgcut_watchd.errors import (
    ApiError,
    InputError,
    QuarantineUnfinishedError,
)
from bgcut_watchd.fsops import sha256_of_regular_file, show_path
from bgcut_watchd.job.dispose import delete_input
from bgcut_watchd.job.journal import JobState
from bgcut_watchd.job.logfields import job_fields
from bgcut_watchd.job.naming import relative_subfolder
from bgcut_watchd.job.publish import discard_temps
from bgcut_watchd.job.quarantine import (
    QuarantineRecord,
    error_file_beside,
    interrupted_quarantine,
    quarantine,
)
from bgcut_watchd.job.workarea import ClaimedJob
from bgcut_watchd.ledger import Ledger

log = logging.getLogger("bgcut_watchd.job")

# The stage each state's next step belongs to (the quarantine file's "stage").
STAGE_OF = {
    JobState.CLAIMING: "validate", JobState.CLAIMED: "upload", JobState.UPLOADED: "process",
    JobState.PROCESSED: "download", JobState.DOWNLOADED: "publish",
    JobState.PUBLISHED: "publish",
}


@dataclass(frozen=True)
class JobQuarantine:
    """Quarantines one folder's jobs. Thread-safe."""

    folder: FolderConfig
    ledger: Ledger

    def quarantine(self, job: ClaimedJob, exc: BaseException, reason: str,
                   variants: Sequence[Variant]) -> Path | None:
        """Move the job's input to quarantine with its ``.error.json``; finish the job.
        ``reason`` is the error file's reason code, chosen by the failure policy
        (``engine.failures.quarantine_reason``); ``exc`` gives its detail and HTTP status.

        Returns the quarantined path (None when the input was already gone). Raises
        LocalDiskError when the quarantine folder cannot be written (the input stays).
        """
        stage = STAGE_OF.get(job.record.state, "validate")
        if isinstance(exc, QuarantineUnfinishedError):
            stage = exc.stage
        elif isinstance(exc, InputError) and not isinstance(exc, ApiError):
            stage = "validate"
        subfolder = relative_subfolder(self.folder.inbox, job.record.original_relpath)
        out_dir = Path(job.record.output_dir or self.folder.outbox) / subfolder
        discard_temps(out_dir, job.job_id)
        record = self._record(job, exc, reason, stage, variants)
        target = None
        if job.record.detached:  # a copy: its error file beside the outputs, the copy gone
            target = error_file_beside(out_dir, Path(job.record.original_relpath).name, record)
            if os.path.lexists(job.input_path):
                delete_input(job.input_path)
        elif os.path.lexists(job.input_path):
            target = quarantine(
                job.input_path, self.folder.quarantine, subfolder,
                Path(job.record.original_relpath).name, record,
                resume_at=job.record.quarantine_target,
                before_move=lambda chosen: self._journal_target(job, chosen))
        job.final_input_path = target
        job.save(job.record.advance(JobState.QUARANTINED, last_error=record.detail,
                                    last_stage=stage))
        self.ledger.finish_quarantined(job.job_id, stage, record.reason, record.detail,
                                       record.http_status, where=target)
        log.warning("job %s [%s] %s: quarantined at %s: %s (%s)", job.job_id, self.folder.name,
                    show_path(job.record.original_relpath), stage, record.reason, record.detail,
                    extra=job_fields(job.job_id, self.folder.name, job.record.original_relpath,
                                     stage=stage, reason=record.reason))
        job.finish()
        return target

    def check_interrupted(self, job: ClaimedJob) -> None:
        """For a job with a journaled quarantine target: raise QuarantineUnfinishedError when
        the target holds the input's bytes (finish that quarantine); else forget the target,
        and the job goes on. Raises OSError when the journal cannot be written."""
        assert job.record.quarantine_target is not None
        earlier = interrupted_quarantine(job.input_path, job.record.quarantine_target)
        if earlier is None:
            job.save(job.record.advance(job.record.state, quarantine_target=None))
            return
        raise QuarantineUnfinishedError(earlier.detail, earlier.reason, earlier.stage,
                                        earlier.http_status)

    def _journal_target(self, job: ClaimedJob, target: Path) -> None:
        job.save(job.record.advance(job.record.state, quarantine_target=os.fsdecode(target)))

    def _record(self, job: ClaimedJob, exc: BaseException, reason: str, stage: str,
                variants: Sequence[Variant]) -> QuarantineRecord:
        detail = getattr(exc, "detail", None) or str(exc) or type(exc).__name__
        return QuarantineRecord(
            file=os.fsdecode(self.folder.inbox / job.record.original_relpath),
            folder=self.folder.name, stage=stage, reason=reason,
            http_status=getattr(exc, "http_status", None), detail=str(detail),
            attempts=max(1, job.record.attempts),
            sha256=job.record.sha256 or sha256_of_regular_file(job.input_path),
            variants=tuple(v.name for v in variants),
            first_seen=iso_utc_seconds(job.record.first_seen),
            quarantined_at=iso_utc_seconds(datetime.now(UTC)),
        )
