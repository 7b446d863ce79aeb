"""What the engine tells an observer (the daemon's metrics, status page and notifications).

The engine knows nothing of those: it calls :class:`EngineObserver` at two moments, a job that
ended (done, done by reusing an earlier job's outputs, or quarantined) and an API request that
was answered or failed. The observer runs on the worker thread that did the work, so it must be
quick and must not raise; whatever it raises is logged and dropped (``Engine``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from bgcut_watchd.job.steps import REUSED
from bgcut_watchd.job.workarea import ClaimedJob

DONE, DUPLICATE, QUARANTINED = "done", "duplicate", "quarantined"
JOB_OUTCOMES = (DONE, DUPLICATE, QUARANTINED)


@dataclass(frozen=True)
class JobReport:
    """One job that ended. ``input_path`` is where the input went (archive or quarantine; None
    when deleted or unknown); ``outputs`` are the published files, by variant name."""

    job_id: str
    folder: str
    relpath: str          # the input's path relative to its inbox (may hold lone surrogates)
    outcome: str          # one of JOB_OUTCOMES
    input_path: Path | None
    outputs: tuple[Path, ...]
    finished_at_s: float  # wall clock (time.time())


class EngineObserver(Protocol):
    """Told about ended jobs and API requests; called from worker threads, must be quick."""

    def job_finished(self, report: JobReport) -> None: ...

    def api_request(self, endpoint: str, code: str, duration_s: float) -> None: ...


def report_of(job: ClaimedJob, quarantined: bool, wall_clock: float | None = None) -> JobReport:
    """The report of ``job``, just finished (quarantined, or done when not)."""
    record = job.record
    reused = record.last_stage == REUSED
    outcome = QUARANTINED if quarantined else DUPLICATE if reused else DONE
    return JobReport(
        job_id=record.job_id, folder=record.folder, relpath=record.original_relpath,
        outcome=outcome, input_path=job.final_input_path,
        outputs=tuple(Path(p) for p in record.final_outputs),
        finished_at_s=time.time() if wall_clock is None else wall_clock,
    )
