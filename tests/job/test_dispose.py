"""Archiving and deleting inputs once their outputs are durable (real folders)."""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from bgcut_watchd import fsops
from bgcut_watchd.errors import LocalDiskError
from bgcut_watchd.job import dispose


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


@pytest.mark.parametrize(
    "name", ["photo.jpg", "-x y\n.jpg", os.fsdecode(b"\xff\xfe.jpg"), "z" * 251 + ".jpg"])
def test_archive_keeps_subfolder_and_name(tmp_path: Path, name: str) -> None:
    source = claimed(tmp_path)
    result = dispose.archive(source, tmp_path / "done", Path("a/b"), name)
    assert result == tmp_path / "done" / "a" / "b" / name
    assert result.read_bytes() == b"img"
    assert not source.exists()


def test_archive_never_overwrites(tmp_path: Path) -> None:
    (tmp_path / "done").mkdir()
    (tmp_path / "done" / "photo.jpg").write_bytes(b"first")
    (tmp_path / "done" / "photo-1.jpg").write_bytes(b"second")
    result = dispose.archive(claimed(tmp_path, b"third"), tmp_path / "done", Path("."), "photo.jpg")
    assert result.name == "photo-2.jpg"
    assert [(tmp_path / "done" / n).read_bytes() for n in ("photo.jpg", "photo-1.jpg")] == [
        b"first", b"second"]


def test_archive_across_filesystems(tmp_path: Path, other_fs: Path) -> None:
    source = claimed(tmp_path, b"x" * 100_000)
    result = dispose.archive(source, other_fs / "done", Path("sub"), "photo.jpg")
    assert result.read_bytes() == b"x" * 100_000
    assert not source.exists()
    assert os.listdir(other_fs / "done" / "sub") == ["photo.jpg"]


def test_archive_failure_keeps_the_input(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = claimed(tmp_path)

    def broken(src: object, dst: object, *, overwrite: bool = False) -> None:
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(dst))

    monkeypatch.setattr(dispose, "move_file", broken)
    with pytest.raises(LocalDiskError, match="Read-only file system"):
        dispose.archive(source, tmp_path / "done", Path("."), "photo.jpg")
    assert source.read_bytes() == b"img"


def test_a_lost_race_takes_the_next_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = claimed(tmp_path)
    (tmp_path / "done").mkdir()

    def racer_wins_first(src: Path, dst: Path, *, overwrite: bool = False) -> None:
        if dst.name == "photo.jpg":
            dst.write_bytes(b"racer")  # created between free_name and the move
        fsops.move_file(src, dst, overwrite=overwrite)

    monkeypatch.setattr(dispose, "move_file", racer_wins_first)
    result = dispose.archive(source, tmp_path / "done", Path("."), "photo.jpg")
    assert result.name == "photo-1.jpg"
    assert (tmp_path / "done" / "photo.jpg").read_bytes() == b"racer"


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
