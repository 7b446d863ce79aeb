"""WorkArea.claim_copy: the copy-claim of ``process`` for files outside every inbox."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bgcut_watchd.job import workarea as workarea_module
from bgcut_watchd.job.journal import JobRecord, JobState, Journal
from bgcut_watchd.job.workarea import COPY_TEMP_NAME, WorkArea

FOLDER = "studio"


@pytest.fixture
def inbox(tmp_path: Path) -> Path:
    path = tmp_path / "inbox"
    path.mkdir()
    return path


@pytest.fixture
def source(tmp_path: Path) -> Path:
    path = tmp_path / "elsewhere" / "Shot.JPG"
    path.parent.mkdir()
    path.write_bytes(b"pixels")
    return path


def test_copy_claim_leaves_the_source_and_is_claimed(inbox: Path, source: Path) -> None:
    job = WorkArea(inbox).claim_copy(FOLDER, source, "sub/Shot.JPG")
    assert job is not None
    try:
        assert source.read_bytes() == b"pixels"
        assert job.input_path == inbox / ".bgcut-work" / job.job_id / "input.jpg"
        assert job.input_path.read_bytes() == b"pixels"
        assert not job.input_path.samefile(source)
        assert (job.record.state, job.record.original_relpath) == (JobState.CLAIMED,
                                                                   "sub/Shot.JPG")
        assert Journal(job.job_dir).read().state is JobState.CLAIMING  # "claimed" is kept
        assert sorted(os.listdir(job.job_dir)) == ["input.jpg", "job.json", "lock"]
        job.save(job.record)  # and journaled with the job's next write
        assert Journal(job.job_dir).read() == job.record
    finally:
        job.release()


def test_a_copied_job_is_recovered_like_a_renamed_one(inbox: Path, source: Path) -> None:
    area = WorkArea(inbox)
    job = area.claim_copy(FOLDER, source, "Shot.JPG")
    assert job is not None
    job.release()  # the process died: its lock is gone
    recovered = area.recover(FOLDER)
    try:
        assert [j.job_id for j in recovered] == [job.job_id]
        assert recovered[0].record.original_relpath == "Shot.JPG"
    finally:
        for j in recovered:
            j.release()


@pytest.mark.parametrize("relpath", ["", "/abs/x.jpg", "../x.jpg", "a/../../x.jpg",
                                     ".bgcut-work/x.jpg"])
def test_a_relpath_outside_the_inbox_is_refused(inbox: Path, source: Path, relpath: str) -> None:
    with pytest.raises(ValueError, match="not a path inside an inbox"):
        WorkArea(inbox).claim_copy(FOLDER, source, relpath)
    assert not (inbox / ".bgcut-work").exists()


def test_a_symlink_or_a_fifo_is_never_opened(inbox: Path, source: Path, tmp_path: Path) -> None:
    link = tmp_path / "link.jpg"
    link.symlink_to(source)
    fifo = tmp_path / "pipe.jpg"
    os.mkfifo(fifo)
    area = WorkArea(inbox)
    for path in (link, fifo, tmp_path):
        with pytest.raises(ValueError, match="not a regular file"):
            area.claim_copy(FOLDER, path, "x.jpg")
    assert area.pending_count() == 0


def test_a_failed_copy_removes_the_job_dir_and_keeps_the_source(
    inbox: Path, source: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken_copy(src: Path, dst: Path) -> None:
        Path(dst).write_bytes(b"pix")  # a partial copy, then the disk fails
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(workarea_module, "copy_file_durably", broken_copy)
    area = WorkArea(inbox)
    with pytest.raises(OSError, match="No space"):
        area.claim_copy(FOLDER, source, "Shot.JPG")
    assert area.pending_count() == 0
    assert source.read_bytes() == b"pixels"


def test_a_crash_during_the_copy_leaves_nothing_to_resume(inbox: Path) -> None:
    """kill -9 mid-copy: a ``claiming`` journal and a partial hidden temporary, no input."""
    area = WorkArea(inbox)
    job_dir = area.root / "deadbeef"
    job_dir.mkdir(parents=True)
    Journal(job_dir).write(JobRecord.start("deadbeef", FOLDER, "Shot.JPG", "2024-01-01"))
    (job_dir / COPY_TEMP_NAME).write_bytes(b"pix")
    assert area.recover(FOLDER) == []
    assert area.pending_count() == 0
