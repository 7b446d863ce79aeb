"""No blind re-send of a paid call: the look-out for the outputs of an unanswered process call.

A process call that timed out, lost its connection after it was sent, or got a 502/504 from a
gateway (``AmbiguousOutcomeError``), and one a restart found in flight (``engine.recovery``),
may still be running at the API, and it is paid for. So before it is sent again its outputs
are looked for (a download of each expected output path tells), with backoff, for a settle
window journaled as ``ambiguous_since`` (it survives a restart).

The window is ``api.process_timeout_s``, from the failure (or from the restart). A call the API
still runs after our timeout is most often a slow one, not a lost one, and the operator sized
that timeout to the API's latency: a call still running a whole timeout after we gave up on it
is taken as lost. Looks are spaced by ``LOOK_GROWTH`` times the time waited so far (at least
``LOOK_MIN_S``): about 15 looks over the default 300 s, each a GET per output. Meanwhile the
worker is free: each look that finds nothing hands the job back (``OutputsPendingError``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from bgcut_watchd.clock import WallClock, iso_utc
from bgcut_watchd.errors import OutputsPendingError
from bgcut_watchd.fsops import show_path
from bgcut_watchd.job.journal import JobState
from bgcut_watchd.job.logfields import job_fields
from bgcut_watchd.job.workarea import ClaimedJob

log = logging.getLogger("bgcut_watchd.job")

PROCESS_AMBIGUOUS = "process-ambiguous"  # last_stage: the process call may have run
LOOK_MIN_S = 0.5
LOOK_GROWTH = 0.5


def next_look_s(waited_s: float, window_s: float) -> float:
    """The wait before the next look, ``waited_s`` into a window of ``window_s`` (> waited_s):
    growing with the time waited, the last look at the window's end."""
    return min(max(LOOK_MIN_S, waited_s * LOOK_GROWTH), window_s - waited_s)


def mark_ambiguous(job: ClaimedJob, now: str) -> None:
    """Journal that ``job``'s process call may have run, the look-out starting ``now`` (ISO).
    Raises OSError."""
    job.save(job.record.advance(JobState.UPLOADED, last_stage=PROCESS_AMBIGUOUS,
                                ambiguous_since=now))


def earlier_call_ran(job: ClaimedJob, wanted: list[str], outputs_exist: Callable[[], bool],
                     window_s: float, wall_clock: WallClock, folder_name: str) -> bool:
    """After an unanswered process call of ``job``: True (journaled ``processed`` with the
    ``wanted`` outputs) when ``outputs_exist()``; False once ``window_s`` has passed without
    them: send the call again.

    Raises OutputsPendingError meanwhile (look again later), ApiError subclasses from the look,
    OSError when the journal cannot be written.
    """
    name = show_path(job.record.original_relpath)
    fields = job_fields(job.job_id, folder_name, job.record.original_relpath, stage="process")
    if outputs_exist():
        job.save(job.record.advance(JobState.PROCESSED, remote_outputs=tuple(wanted),
                                    last_stage="process"))
        log.info("job %s [%s] %s: the unanswered process call had run: outputs found, not "
                 "paid again", job.job_id, folder_name, name, extra=fields)
        return True
    if job.record.ambiguous_since is None:  # journaled before the look-out existed
        mark_ambiguous(job, iso_utc(wall_clock()))
    assert job.record.ambiguous_since is not None
    since = datetime.fromisoformat(job.record.ambiguous_since)
    waited_s = max(0.0, (wall_clock() - since).total_seconds())
    if waited_s < window_s:
        raise OutputsPendingError(
            f"process: no answer; looking for its outputs for up to {window_s:g}s",
            retry_in_s=next_look_s(waited_s, window_s))
    log.warning("job %s [%s] %s: no outputs %.0fs after an unanswered process call: sending "
                "it again", job.job_id, folder_name, name, waited_s, extra=fields)
    return False
