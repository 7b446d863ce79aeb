"""Durable filesystem operations, on real folders (tmp_path) and across two filesystems."""

from __future__ import annotations

import errno
import json
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bgcut_watchd import fsops
from bgcut_watchd.errors import LocalDiskError

ODD_NAMES = [
    "with space.jpg",
    "new\nline.jpg",
    os.fsdecode(b"bad-\xff\xfe-utf8.jpg"),
    "-leading-dash.jpg",
    "é" * 125 + ".jpg",  # 254 bytes
    "x" * 251 + ".jpg",  # 255 bytes: NAME_MAX
]


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


def hidden_leftovers(folder: Path) -> list[str]:
    return sorted(n for n in os.listdir(folder) if n.startswith(fsops.TEMP_PREFIX))


def test_temp_names_are_hidden_short_and_unique_even_for_255_byte_targets(tmp_path: Path) -> None:
    target = tmp_path / ("x" * 255)
    first, second = fsops.temp_path_beside(target), fsops.temp_path_beside(target)
    assert first.parent == tmp_path
    assert first.name.startswith(".bgcut-")
    assert len(os.fsencode(first.name)) < 40
    assert first != second


def test_atomic_write_bytes_creates_and_replaces_without_leftovers(tmp_path: Path) -> None:
    target = tmp_path / "out.bin"
    fsops.atomic_write_bytes(target, b"one")
    fsops.atomic_write_bytes(target, b"two")
    assert target.read_bytes() == b"two"
    assert os.listdir(tmp_path) == ["out.bin"]


def test_atomic_write_failure_keeps_old_content_and_removes_temp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")

    def broken_replace(src: object, dst: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="No space"):
        fsops.atomic_write_bytes(target, b"new")
    assert target.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["out.bin"]


def test_atomic_write_json_round_trips_names_that_are_not_utf8(tmp_path: Path) -> None:
    odd = os.fsdecode(b"caf\xe9 \xff.jpg")
    fsops.atomic_write_json(tmp_path / "j.json", {"file": odd})
    assert json.loads((tmp_path / "j.json").read_text("ascii"))["file"] == odd


@pytest.mark.parametrize("name", ODD_NAMES)
def test_atomic_write_handles_odd_names(tmp_path: Path, name: str) -> None:
    fsops.atomic_write_bytes(tmp_path / name, b"data")
    assert (tmp_path / name).read_bytes() == b"data"
    assert os.listdir(tmp_path) == [name]


@pytest.mark.parametrize("renameat2", ["native", "link-fallback", "check-fallback"])
def test_durable_rename_never_clobbers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, renameat2: str,
) -> None:
    if renameat2 != "native":
        monkeypatch.setattr(fsops, "_RENAMEAT2", None)
    if renameat2 == "check-fallback":
        def no_hardlinks(*args: object, **kwargs: object) -> None:
            raise OSError(errno.EPERM, "Operation not permitted")
        monkeypatch.setattr(os, "link", no_hardlinks)
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.write_bytes(b"new")
    dst.write_bytes(b"theirs")
    with pytest.raises(FileExistsError):
        fsops.durable_rename(src, dst, overwrite=False)
    assert (src.read_bytes(), dst.read_bytes()) == (b"new", b"theirs")
    dst.unlink()
    fsops.durable_rename(src, dst, overwrite=False)
    assert dst.read_bytes() == b"new"
    assert not src.exists()


def test_durable_rename_with_overwrite_replaces(tmp_path: Path) -> None:
    (tmp_path / "a").write_bytes(b"new")
    (tmp_path / "b").write_bytes(b"old")
    fsops.durable_rename(tmp_path / "a", tmp_path / "b", overwrite=True)
    assert os.listdir(tmp_path) == ["b"]
    assert (tmp_path / "b").read_bytes() == b"new"


@pytest.mark.parametrize("name", ODD_NAMES)
def test_move_file_same_fs_with_odd_names(tmp_path: Path, name: str) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / name).write_bytes(b"img")
    fsops.move_file(tmp_path / "a" / name, tmp_path / name)
    assert (tmp_path / name).read_bytes() == b"img"
    assert os.listdir(tmp_path / "a") == []


@pytest.mark.parametrize("name", ODD_NAMES)
def test_move_file_across_filesystems(tmp_path: Path, other_fs: Path, name: str) -> None:
    src = tmp_path / name
    src.write_bytes(b"\x89PNG" * 1000)
    os.utime(src, ns=(1_000_000_000, 2_000_000_000))
    fsops.move_file(src, other_fs / name)
    moved = other_fs / name
    assert moved.read_bytes() == b"\x89PNG" * 1000
    assert moved.stat().st_mtime_ns == 2_000_000_000
    assert not src.exists()
    assert os.listdir(other_fs) == [name]


def test_move_file_across_filesystems_refuses_existing_target(
    tmp_path: Path, other_fs: Path,
) -> None:
    (tmp_path / "in.jpg").write_bytes(b"mine")
    (other_fs / "in.jpg").write_bytes(b"theirs")
    with pytest.raises(FileExistsError):
        fsops.move_file(tmp_path / "in.jpg", other_fs / "in.jpg")
    assert (tmp_path / "in.jpg").read_bytes() == b"mine"
    assert (other_fs / "in.jpg").read_bytes() == b"theirs"
    assert hidden_leftovers(other_fs) == []
    fsops.move_file(tmp_path / "in.jpg", other_fs / "in.jpg", overwrite=True)
    assert (other_fs / "in.jpg").read_bytes() == b"mine"
    assert not (tmp_path / "in.jpg").exists()


@pytest.mark.parametrize("overwrite", [False, True])
def test_crash_inside_cross_fs_move_keeps_the_source(
    tmp_path: Path, other_fs: Path, monkeypatch: pytest.MonkeyPatch, overwrite: bool,
) -> None:
    """The copy is complete; committing it (the rename into place) fails."""
    src = tmp_path / "in.jpg"
    src.write_bytes(b"precious")
    committed: list[bytes] = []
    real_replace, real_noreplace = os.replace, fsops.rename_noreplace

    def crash_on_commit(real: Any) -> Any:
        def rename(a: Path, b: Path) -> None:
            if not Path(a).name.startswith(fsops.TEMP_PREFIX):
                real(a, b)  # the first attempt: a plain rename, EXDEV
                return
            committed.append(Path(a).read_bytes())
            raise OSError(errno.EIO, "Input/output error")
        return rename

    monkeypatch.setattr(os, "replace", crash_on_commit(real_replace))
    monkeypatch.setattr(fsops, "rename_noreplace", crash_on_commit(real_noreplace))
    with pytest.raises(OSError, match="Input/output"):
        fsops.move_file(src, other_fs / "in.jpg", overwrite=overwrite)
    assert committed == [b"precious"]
    assert src.read_bytes() == b"precious"
    assert os.listdir(other_fs) == []


def test_crash_inside_same_fs_move_keeps_the_source(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    src = tmp_path / "in.jpg"
    src.write_bytes(b"precious")

    def crash(*args: object, **kwargs: object) -> None:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError):
        fsops.move_file(src, tmp_path / "out.jpg", overwrite=True)
    assert src.read_bytes() == b"precious"
    assert not (tmp_path / "out.jpg").exists()


def test_cross_fs_move_of_fifo_and_symlink_never_reads_them(
    tmp_path: Path, other_fs: Path,
) -> None:
    os.mkfifo(tmp_path / "pipe.jpg")
    (tmp_path / "link.jpg").symlink_to("/nonexistent/target")
    fsops.move_file(tmp_path / "pipe.jpg", other_fs / "pipe.jpg")
    fsops.move_file(tmp_path / "link.jpg", other_fs / "link.jpg")
    assert stat.S_ISFIFO(os.lstat(other_fs / "pipe.jpg").st_mode)
    assert os.readlink(other_fs / "link.jpg") == "/nonexistent/target"
    assert os.listdir(tmp_path) == []


def test_make_dirs_creates_parents_and_fsyncs_each(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    synced: list[Path] = []
    real_fsync_dir = fsops.fsync_dir

    def record(path: fsops.StrPath) -> None:
        synced.append(Path(path))
        real_fsync_dir(path)

    monkeypatch.setattr(fsops, "fsync_dir", record)
    fsops.make_dirs(tmp_path / "a" / "b c" / "d")
    assert (tmp_path / "a" / "b c" / "d").is_dir()
    assert synced == [tmp_path, tmp_path / "a", tmp_path / "a" / "b c"]
    synced.clear()
    fsops.make_dirs(tmp_path / "a" / "b c" / "d")
    assert synced == []


def test_make_dirs_refuses_a_file_in_the_way(tmp_path: Path) -> None:
    (tmp_path / "file").write_bytes(b"")
    with pytest.raises(OSError):
        fsops.make_dirs(tmp_path / "file" / "sub")


def test_local_disk_names_path_and_reason_and_keeps_the_cause() -> None:
    odd = "out\nbox"
    with pytest.raises(LocalDiskError) as caught, fsops.local_disk("publishing", odd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), odd)
    message = str(caught.value)
    assert "publishing failed for 'out\\nbox'" in message
    assert "No space left on device" in message
    assert "\n" not in message
    assert isinstance(caught.value.__cause__, OSError)


def test_local_disk_lets_passthrough_errors_through() -> None:
    with pytest.raises(FileExistsError), fsops.local_disk("x", passthrough=(FileExistsError,)):
        raise FileExistsError(errno.EEXIST, "exists")


# -- a move across filesystems verifies its copy, and is finished after an interruption --------

def test_a_cross_fs_move_whose_source_changes_while_copied_keeps_the_source(
    tmp_path: Path, other_fs: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    src = tmp_path / "scan.jpg"
    src.write_bytes(b"first half")
    real_copy = fsops._copy_regular

    def writer_resumes_meanwhile(source: Path, temp: Path, st: os.stat_result) -> Any:
        copied = real_copy(source, temp, st)
        with source.open("ab") as stream:  # the writer's second half, during the move
            stream.write(b" and the second half")
        return copied

    monkeypatch.setattr(fsops, "_copy_regular", writer_resumes_meanwhile)
    with pytest.raises(fsops.CopyMismatchError):
        fsops.move_file(src, other_fs / "scan.jpg")
    assert src.read_bytes() == b"first half and the second half"  # whole, where it was
    assert os.listdir(other_fs) == []  # no copy, no temporary


def test_a_cross_fs_move_interrupted_before_its_unlink_leaves_two_same_copies(
    tmp_path: Path, other_fs: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    src = tmp_path / "in.jpg"
    src.write_bytes(b"precious")
    real_unlink = Path.unlink

    def unlink(path: Path, missing_ok: bool = False) -> None:
        if path == src:
            raise PermissionError(errno.EPERM, "Operation not permitted", str(path))
        real_unlink(path, missing_ok=missing_ok)

    monkeypatch.setattr(Path, "unlink", unlink)
    with pytest.raises(PermissionError):
        fsops.move_file(src, other_fs / "in.jpg")
    monkeypatch.undo()
    assert fsops.same_content(src, other_fs / "in.jpg")  # the caller finishes: unlink only
    fsops.remove_file(src)
    assert not src.exists() and (other_fs / "in.jpg").read_bytes() == b"precious"


def test_same_content_compares_size_and_sha256(tmp_path: Path) -> None:
    (tmp_path / "a").write_bytes(b"one")
    (tmp_path / "b").write_bytes(b"one")
    (tmp_path / "c").write_bytes(b"two")
    (tmp_path / "d").write_bytes(b"three")
    assert fsops.same_content(tmp_path / "a", tmp_path / "b")
    assert not fsops.same_content(tmp_path / "a", tmp_path / "c")  # same size, other bytes
    assert not fsops.same_content(tmp_path / "a", tmp_path / "d")
    assert not fsops.same_content(tmp_path / "a", tmp_path / "missing")
    os.symlink(tmp_path / "a", tmp_path / "link")
    assert not fsops.same_content(tmp_path / "a", tmp_path / "link")  # never followed


def test_remove_file_is_idempotent(tmp_path: Path) -> None:
    (tmp_path / "x").write_bytes(b"x")
    fsops.remove_file(tmp_path / "x")
    fsops.remove_file(tmp_path / "x")
    assert os.listdir(tmp_path) == []
