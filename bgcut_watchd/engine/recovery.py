"""Recovery: what a daemon takes over from a work area that no live process owns.

At start-up (and for a folder a reload adds) every job directory whose flock is free belongs to
a dead process: half-done quarantines are completed, and every unfinished job is handed back for
resumption. While running, the same pass *adopts* (``adopt=True``, from every periodic rescan):
another daemon on the same inbox died, or a run of ours let its job go, and the jobs it held sit
in the work area with a free flock; they are taken over without a restart. Jobs held by a live
process, this one included, keep their flock and are skipped. An adopting pass leaves pending
quarantine records alone: a live worker may be between writing one and moving its input in.

A job found in ``uploaded`` may have sent its process call (and been charged) before the daemon
died: it is marked so the job looks for its outputs before paying again (api-v3.md, "Credits").
"""

from __future__ import annotations

import logging

from bgcut_watchd.config.model import FolderConfig
from bgcut_watchd.errors import LocalDiskError
from bgcut_watchd.job.journal import JobState
from bgcut_watchd.job.quarantine import complete_pending
from bgcut_watchd.job.steps import PROCESS_AMBIGUOUS
from bgcut_watchd.job.workarea import ClaimedJob, WorkArea

log = logging.getLogger("bgcut_watchd.engine")


def recover_folder(folder: FolderConfig, workarea: WorkArea, *,
                   adopt: bool = False) -> list[ClaimedJob]:
    """Finish ``folder``'s interrupted quarantines (not when ``adopt``) and take its orphaned
    jobs, oldest first.

    The jobs returned are locked by this process. Raises nothing: a folder that cannot be
    recovered is logged and yields no job.
    """
    try:
        if not adopt:
            complete_pending(folder.quarantine)
        jobs = workarea.recover(folder.name)
    except (OSError, LocalDiskError) as exc:
        log.error("folder %s: cannot recover its work area: %s", folder.name, exc)
        return []
    for job in jobs:
        _mark_process_ambiguous(job)
    if jobs and adopt:
        log.warning("folder %s: adopting %d orphaned job(s): the process that held them is "
                    "gone", folder.name, len(jobs))
    elif jobs:
        log.info("folder %s: resuming %d unfinished job(s)", folder.name, len(jobs))
    return jobs


def _mark_process_ambiguous(job: ClaimedJob) -> None:
    """Have a job recovered in ``uploaded`` look for its outputs before re-sending its paid
    process call. Raises nothing: at worst the call is sent again."""
    if job.record.state is not JobState.UPLOADED or job.record.last_stage == PROCESS_AMBIGUOUS:
        return
    try:
        job.save(job.record.advance(JobState.UPLOADED, last_stage=PROCESS_AMBIGUOUS))
    except OSError as exc:
        log.warning("job %s: cannot journal its resumption: %s", job.job_id, exc)
