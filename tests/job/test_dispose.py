"""Archiving and deleting inputs once their outputs are durable (real folders)."""

from __future__ import annotations

import dataclasses
import errno
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from bgcut_watchd import fsops
from bgcut_watchd.config.model import FolderConfig, Variant
from bgcut_watchd.errors import LocalDiskError
from bgcut_watchd.job import dispose
from bgcut_watchd.job.journal import JobState
from bgcut_watchd.job.workarea import ClaimedJob, WorkArea


@pytest.fixture
def other_fs(tmp_path: Path) -> Iterator[Path]:
    """A folder on another filesystem than tmp_path (/dev/shm is a tmpfs), or skip."""
    if not Path("/dev/shm").is_dir():
        pytest.skip("no /dev/shm here: cannot test a cross-filesystem move")
    folder = Path(tempfile.mkdtemp(prefix="bgcut-test-", dir="/dev/shm"))
    try:
        if folder.stat().st_dev == tmp_path.stat().st_dev:
            pytest.skip("/dev/shm and tmp_path share a filesystem here")
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def claimed(tmp_path: Path, data: bytes = b"img") -> Path:
    job_dir = tmp_path / "inbox" / ".bgcut-work" / "job1"
    job_dir.mkdir(parents=True, exist_ok=True)
    path = job_dir / "input.jpg"
    path.write_bytes(data)
    return path


def _job(tmp_path: Path, relpath: str, data: bytes = b"img", archive: Path | None = None,
         ) -> tuple[FolderConfig, ClaimedJob]:
    """A folder archiving to ``archive`` (``tmp_path/done``) and a job claimed from its inbox."""
    inbox = tmp_path / "inbox"
    source = inbox / relpath
    source.parent.mkdir(parents=True, exist_ok=True)
    source.write_bytes(data)
    folder = FolderConfig("studio", inbox, tmp_path / "out", tmp_path / "q", (Variant("full"),),
                          archive=archive or tmp_path / "done")
    job = WorkArea(inbox).claim("studio", source)
    assert job is not None
    return folder, job


def _disposed(folder: FolderConfig, job: ClaimedJob) -> Path | None:
    """Dispose of the job's input the job's way (``archive_target_of`` is journaled with the
    publish, then ``dispose_input``); where the input went."""
    job.save(job.record.advance(JobState.PUBLISHED,
                                dispose_target=dispose.archive_target_of(folder, job)))
    dispose.dispose_input(folder, job)
    return job.final_input_path


@pytest.mark.parametrize(
    "name", ["photo.jpg", "-x y\n.jpg", os.fsdecode(b"\xff\xfe.jpg"), "z" * 251 + ".jpg"])
def test_archive_keeps_subfolder_and_name(tmp_path: Path, name: str) -> None:
    folder, job = _job(tmp_path, f"a/b/{name}")
    source = job.input_path
    result = _disposed(folder, job)
    assert result == tmp_path / "done" / "a" / "b" / name
    assert result.read_bytes() == b"img"
    assert not source.exists()


def test_archive_never_overwrites(tmp_path: Path) -> None:
    (tmp_path / "done").mkdir()
    (tmp_path / "done" / "photo.jpg").write_bytes(b"first")
    (tmp_path / "done" / "photo-1.jpg").write_bytes(b"second")
    result = _disposed(*_job(tmp_path, "photo.jpg", b"third"))
    assert result is not None and result.name == "photo-2.jpg"
    assert [(tmp_path / "done" / n).read_bytes() for n in ("photo.jpg", "photo-1.jpg")] == [
        b"first", b"second"]


def test_archive_across_filesystems(tmp_path: Path, other_fs: Path) -> None:
    folder, job = _job(tmp_path, "sub/photo.jpg", b"x" * 100_000, archive=other_fs / "done")
    source = job.input_path
    result = _disposed(folder, job)
    assert result is not None and result.read_bytes() == b"x" * 100_000
    assert not source.exists()
    assert os.listdir(other_fs / "done" / "sub") == ["photo.jpg"]


def test_archive_failure_keeps_the_input(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder, job = _job(tmp_path, "photo.jpg")

    def broken(src: object, dst: object, *, overwrite: bool = False) -> None:
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(dst))

    monkeypatch.setattr(dispose, "move_file", broken)
    with pytest.raises(LocalDiskError, match="Read-only file system"):
        _disposed(folder, job)
    assert job.input_path.read_bytes() == b"img"


def test_a_lost_race_takes_the_next_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder, job = _job(tmp_path, "photo.jpg")

    def racer_wins_first(src: Path, dst: Path, *, overwrite: bool = False) -> None:
        if dst.name == "photo.jpg":
            dst.write_bytes(b"racer")  # created after the name was chosen and journaled
        fsops.move_file(src, dst, overwrite=overwrite)

    monkeypatch.setattr(dispose, "move_file", racer_wins_first)
    result = _disposed(folder, job)
    assert result is not None and result.name == "photo-1.jpg"
    assert job.record.dispose_target == os.fsdecode(result)  # the new choice was journaled
    assert (tmp_path / "done" / "photo.jpg").read_bytes() == b"racer"


def test_races_lost_every_time_end_in_a_local_disk_error(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder, job = _job(tmp_path, "photo.jpg")

    def always_taken(src: Path, dst: Path, *, overwrite: bool = False) -> None:
        dst.write_bytes(b"racer")
        fsops.move_file(src, dst, overwrite=overwrite)

    monkeypatch.setattr(dispose, "move_file", always_taken)
    with pytest.raises(LocalDiskError, match=r"no free archive name for 'photo\.jpg' after 100"):
        _disposed(folder, job)
    assert job.input_path.read_bytes() == b"img"


@pytest.mark.parametrize(("on_success", "detached"), [("delete", False), ("archive", True)])
def test_a_deleted_input_has_no_archive_target(
        tmp_path: Path, on_success: str, detached: bool) -> None:
    folder, job = _job(tmp_path, "photo.jpg")
    folder = dataclasses.replace(folder, on_success=on_success)
    job.keep(job.record.advance(job.record.state, detached=detached))
    source = job.input_path
    assert dispose.archive_target_of(folder, job) is None
    assert _disposed(folder, job) is None
    assert not source.exists() and not (tmp_path / "done").exists()


def test_requeue_moves_to_a_free_name_and_never_overwrites(tmp_path: Path) -> None:
    (tmp_path / "inbox").mkdir()
    (tmp_path / "inbox" / "photo.jpg").write_bytes(b"first")
    source = claimed(tmp_path, b"second")
    result = dispose.move_to_free_name(source, tmp_path / "inbox", "photo.jpg")
    assert result == tmp_path / "inbox" / "photo-1.jpg" and result.read_bytes() == b"second"
    assert (tmp_path / "inbox" / "photo.jpg").read_bytes() == b"first"


def test_delete_input_is_idempotent(tmp_path: Path) -> None:
    source = claimed(tmp_path)
    dispose.delete_input(source)
    assert not source.exists()
    dispose.delete_input(source)  # a resume after a crash right after the unlink


def test_delete_failure_is_a_local_disk_error(tmp_path: Path) -> None:
    folder = tmp_path / "a-folder.jpg"
    folder.mkdir()
    with pytest.raises(LocalDiskError, match=r"a-folder\.jpg"):
        dispose.delete_input(folder)


# -- a journaled target: an interrupted move is finished, never repeated -------------------

def test_archive_target_is_the_first_free_name(tmp_path: Path) -> None:
    assert dispose.archive_target(tmp_path / "a", "sub", "x.jpg") == tmp_path / "a/sub/x.jpg"
    (tmp_path / "a" / "sub" / "x.jpg").write_bytes(b"earlier")
    assert dispose.archive_target(tmp_path / "a", "sub", "x.jpg") == tmp_path / "a/sub/x-1.jpg"


def test_move_to_target_finishes_a_move_interrupted_before_its_unlink(
    tmp_path: Path, other_fs: Path,
) -> None:
    source = claimed(tmp_path, b"img bytes")
    target = other_fs / "sub" / "x.jpg"
    target.parent.mkdir()
    target.write_bytes(b"img bytes")  # the copy a crash left before the unlink
    assert dispose.move_to_target(source, target) is True
    assert not source.exists()
    assert os.listdir(other_fs / "sub") == ["x.jpg"]  # no x-1.jpg


def test_move_to_target_refuses_a_name_taken_by_other_content(tmp_path: Path) -> None:
    source = claimed(tmp_path, b"mine")
    target = tmp_path / "archive" / "x.jpg"
    target.parent.mkdir()
    target.write_bytes(b"theirs")
    assert dispose.move_to_target(source, target) is False
    assert source.read_bytes() == b"mine" and target.read_bytes() == b"theirs"
    assert dispose.move_to_target(source, tmp_path / "archive" / "new" / "x.jpg") is True
    assert not source.exists()
