"""The structured fields of a log line about one job (``JOB_ID=``, ``FOLDER=``... in the
journal: ``daemon.logsetup`` maps them)."""

from __future__ import annotations

import os


def job_fields(job_id: str | None, folder: str | None, input_path: os.PathLike[str] | str | None,
               stage: str | None = None, reason: str | None = None) -> dict[str, str]:
    """``extra=`` for a log call about one job; None values are left out.

    ``log.warning("job %s ...", job.job_id, ..., extra=job_fields(job.job_id, "studio",
    "sub/a.jpg", stage="upload"))``. Raises nothing.
    """
    values = {"job_id": job_id, "folder": folder,
              "input": None if input_path is None else os.fspath(input_path),
              "stage": stage, "reason": reason}
    return {key: value for key, value in values.items() if value is not None}
