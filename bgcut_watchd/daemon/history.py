"""The last jobs of the history (the ledger) as the status page lists them after a restart,
with the pictures each had: where its input went and what it made."""

from __future__ import annotations

import hashlib
from pathlib import Path

from bgcut_watchd.config.model import FolderConfig
from bgcut_watchd.engine.observe import QUARANTINED, JobReport
from bgcut_watchd.job.naming import split_name
from bgcut_watchd.ledger import FinishedEntry

ARCHIVE_NAMES = 10  # an archived input is looked for as name, stem-1 ... stem-9


def history_report(entry: FinishedEntry, folder: FolderConfig | None) -> JobReport:
    """A job of the history as the page lists it: a quarantined job's input is the one path
    the ledger records for it (no output); a done job's input is where it was archived."""
    finished_at_s = entry.finished_at.timestamp()
    if entry.outcome == QUARANTINED:
        return JobReport(entry.job_id, entry.folder, entry.input_name, entry.outcome,
                         next(iter(entry.outputs), None), (), finished_at_s)
    return JobReport(entry.job_id, entry.folder, entry.input_name, entry.outcome,
                     archived_input(entry, folder), entry.outputs, finished_at_s)


def archived_input(entry: FinishedEntry, folder: FolderConfig | None) -> Path | None:
    """Where a done job's input was archived, if it still is: in the archive's subfolder of
    the job's first output, under its name or the first ``stem-N`` names (the one holding the
    input's bytes when several exist). None when the folder deletes its inputs, the job made
    no output in its outbox, or no candidate is left."""
    if folder is None or folder.archive is None or folder.on_success != "archive" \
            or not entry.outputs:
        return None
    try:
        subfolder = entry.outputs[0].parent.relative_to(folder.outbox)
    except ValueError:
        return None
    stem, suffix = split_name(entry.input_name)
    names = [entry.input_name, *(f"{stem}-{n}{suffix}" for n in range(1, ARCHIVE_NAMES))]
    found = [p for p in (folder.archive / subfolder / n for n in names) if p.is_file()]
    if len(found) <= 1 or entry.sha256 is None:
        return next(iter(found), None)
    return next((p for p in found if _sha256_of(p) == entry.sha256), None)


def _sha256_of(path: Path) -> str | None:
    try:
        with path.open("rb") as stream:
            return hashlib.file_digest(stream, "sha256").hexdigest()
    except OSError:
        return None
