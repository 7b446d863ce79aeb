"""Recovery of a dead daemon's work area (``engine.recovery``): a job found in ``uploaded`` looks
for its outputs before paying again only if it had sent its process call."""

from __future__ import annotations

from pathlib import Path

from bgcut_watchd.config import FolderConfig, Variant
from bgcut_watchd.engine.recovery import recover_folder
from bgcut_watchd.job.journal import JobState
from bgcut_watchd.job.lookout import PROCESS_AMBIGUOUS
from bgcut_watchd.job.workarea import WorkArea


def _folder(tmp_path: Path) -> FolderConfig:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    return FolderConfig("studio", inbox, tmp_path / "out", tmp_path / "q", (Variant("full"),))


def _left_in_uploaded(area: WorkArea, inbox: Path, name: str, sent: bool) -> None:
    (inbox / name).write_bytes(b"img")
    job = area.claim("studio", inbox / name)
    assert job is not None
    job.save(job.record.advance(JobState.UPLOADED, remote_input=f"r/{name}",
                                process_sent_at="2026-01-01T00:00:00+00:00" if sent else None))
    job.release()  # the daemon dies


def test_only_a_job_that_sent_its_process_call_looks_for_its_outputs_first(
        tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    area = WorkArea(folder.inbox)
    _left_in_uploaded(area, folder.inbox, "sent.jpg", sent=True)
    _left_in_uploaded(area, folder.inbox, "waiting.jpg", sent=False)
    jobs = {job.record.original_relpath: job for job in recover_folder(folder, area)}
    try:
        sent, waiting = jobs["sent.jpg"].record, jobs["waiting.jpg"].record
        assert (sent.last_stage, sent.ambiguous_since is not None) == (PROCESS_AMBIGUOUS, True)
        assert (waiting.last_stage, waiting.ambiguous_since) == (None, None)
    finally:
        for job in jobs.values():
            job.release()


def test_a_job_already_looking_keeps_the_start_of_its_look_out(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    area = WorkArea(folder.inbox)
    (folder.inbox / "a.jpg").write_bytes(b"img")
    job = area.claim("studio", folder.inbox / "a.jpg")
    assert job is not None
    job.save(job.record.advance(JobState.UPLOADED, remote_input="r/a.jpg",
                                process_sent_at="2026-01-01T00:00:00+00:00",
                                last_stage=PROCESS_AMBIGUOUS,
                                ambiguous_since="2026-01-01T00:00:05+00:00"))
    job.release()
    [again] = recover_folder(folder, area)
    try:
        assert again.record.ambiguous_since == "2026-01-01T00:00:05+00:00"
    finally:
        again.release()
