"""Recovery: what a daemon takes over from a work area that no live process owns.

At start-up (and for a folder a reload adds) every job directory whose lock is free belongs to
a dead process: half-done quarantines are completed, and every unfinished job is handed back for
resumption. While running, the same pass *adopts* (``adopt=True``, from every periodic rescan):
another daemon on the same inbox died, or a run of ours let its job go, and the jobs it held sit
in the work area with a free lock; they are taken over without a restart. Jobs held by a live
process, this one included, keep their lock and are skipped. An adopting pass leaves pending
quarantine records alone: a live worker may be between writing one and moving its input in.

A job found in ``uploaded`` that had sent its process call (journaled just before the call) may
have been charged for it before the daemon died, and the call may still be running: it is
marked so the job looks for its outputs, for ``api.process_timeout_s`` from now
(``job.lookout``), before paying again (api-v3.md, "Credits"). One that never sent it sends it.
"""

from __future__ import annotations

import logging

from bgcut_watchd.clock import iso_utc, utc_now
from bgcut_watchd.config.model import FolderConfig
from bgcut_watchd.errors import LocalDiskError
from bgcut_watchd.job.journal import JobState
from bgcut_watchd.job.lookout import PROCESS_AMBIGUOUS, mark_ambiguous
from bgcut_watchd.job.quarantine import complete_pending
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
    process call, if it sent it. One already looking keeps its look-out's start. Raises
    nothing: at worst the call is sent again."""
    record = job.record
    if record.state is not JobState.UPLOADED or record.process_sent_at is None:
        return
    if record.last_stage == PROCESS_AMBIGUOUS and record.ambiguous_since is not None:
        return
    try:
        mark_ambiguous(job, iso_utc(utc_now()))
    except OSError as exc:
        log.warning("job %s: cannot journal its resumption: %s", job.job_id, exc)
