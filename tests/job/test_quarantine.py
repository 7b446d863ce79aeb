"""Quarantine pairs, crash windows and requeue (real folders)."""

from __future__ import annotations

import errno
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from bgcut_watchd.errors import LocalDiskError
from bgcut_watchd.job import quarantine as q

PRODUCT_FIELDS = [
    "file", "folder", "stage", "reason", "http_status", "detail", "attempts", "sha256",
    "variants", "first_seen", "quarantined_at",
]
ODD_NAME = os.fsdecode(b"-odd \xff\nname.jpg")


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


def record(name: str = "photo.jpg") -> q.QuarantineRecord:
    return q.QuarantineRecord(
        file=f"/srv/inbox/sub/{name}", folder="studio", stage="validate", reason="invalid_image",
        http_status=None, detail="cannot identify image file", attempts=1, sha256="ab" * 32,
        variants=("full", "thumb"), first_seen="2025-01-02T03:04:05.000000+00:00",
        quarantined_at="2025-01-02T03:04:06.000000+00:00",
    )


def claimed(tmp_path: Path, data: bytes = b"not an image", job: str = "job1") -> Path:
    job_dir = tmp_path / "inbox" / ".bgcut-work" / job
    job_dir.mkdir(parents=True, exist_ok=True)
    path = job_dir / "input.jpg"
    path.write_bytes(data)
    return path


def visible(folder: Path) -> list[str]:
    return sorted(n for n in os.listdir(folder) if not n.startswith("."))


def test_record_has_exactly_the_product_fields_and_round_trips() -> None:
    rec = record(ODD_NAME)
    data = json.loads(rec.to_json())
    assert list(data) == PRODUCT_FIELDS
    assert data["variants"] == ["full", "thumb"]
    assert q.QuarantineRecord.from_json(rec.to_json()) == rec
    with pytest.raises(ValueError):
        q.QuarantineRecord(**{**rec.to_dict(), "stage": "somewhere"})


@pytest.mark.parametrize("name", ["photo.jpg", ODD_NAME])
def test_quarantine_writes_the_pair(tmp_path: Path, name: str) -> None:
    source = claimed(tmp_path)
    result = q.quarantine(source, tmp_path / "q", Path("sub"), name, record(name))
    assert result == tmp_path / "q" / "sub" / name
    assert result.read_bytes() == b"not an image"
    assert not source.exists()
    error = json.loads((result.parent / (name + ".error.json")).read_text("ascii"))
    assert error["file"] == f"/srv/inbox/sub/{name}"
    assert sorted(os.listdir(result.parent)) == sorted([name, name + ".error.json"])


def test_an_existing_error_file_alone_moves_the_pair(tmp_path: Path) -> None:
    folder = tmp_path / "q"
    folder.mkdir()
    (folder / "photo.jpg.error.json").write_text("{}")
    result = q.quarantine(claimed(tmp_path), folder, Path("."), "photo.jpg", record())
    assert result.name == "photo-1.jpg"
    assert (folder / "photo-1.jpg.error.json").is_file()
    assert (folder / "photo.jpg.error.json").read_text() == "{}"


def test_a_255_byte_name_keeps_its_error_file_within_name_max(tmp_path: Path) -> None:
    name = "n" * 251 + ".jpg"
    result = q.quarantine(claimed(tmp_path), tmp_path / "q", Path("."), name, record(name))
    error_file = result.with_name(result.name + ".error.json")
    assert error_file.is_file()
    assert len(os.fsencode(error_file.name)) <= 255
    assert result.name.endswith(".jpg") and result.name.startswith("nnn")
    assert visible(tmp_path / "q") == sorted([result.name, error_file.name])


def test_quarantine_across_filesystems(tmp_path: Path, other_fs: Path) -> None:
    source = claimed(tmp_path)
    result = q.quarantine(source, other_fs, Path("a"), "photo.jpg", record())
    assert result.read_bytes() == b"not an image"
    assert not source.exists()
    assert sorted(os.listdir(other_fs / "a")) == ["photo.jpg", "photo.jpg.error.json"]


def test_failed_move_keeps_the_input_and_shows_no_error_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    source = claimed(tmp_path)

    def full(src: object, dst: object, *, overwrite: bool = False) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(dst))

    monkeypatch.setattr(q, "move_file", full)
    with pytest.raises(LocalDiskError, match="No space left"):
        q.quarantine(source, tmp_path / "q", Path("."), "photo.jpg", record())
    assert source.exists()
    assert os.listdir(tmp_path / "q") == []


def test_crash_before_the_reveal_is_completed_at_startup(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    source = claimed(tmp_path)

    def power_cut(*args: object, **kwargs: object) -> None:
        raise SystemExit("power cut")

    monkeypatch.setattr(q, "_reveal", power_cut)
    with pytest.raises(SystemExit):
        q.quarantine(source, tmp_path / "q", Path("."), "photo.jpg", record())
    monkeypatch.undo()
    assert visible(tmp_path / "q") == ["photo.jpg"]  # input safe, no error file without input
    revealed = q.complete_pending(tmp_path / "q")
    assert revealed == [tmp_path / "q" / "photo.jpg.error.json"]
    assert sorted(os.listdir(tmp_path / "q")) == ["photo.jpg", "photo.jpg.error.json"]


def test_a_pending_record_without_its_input_is_removed(tmp_path: Path) -> None:
    folder = tmp_path / "q" / "sub"
    folder.mkdir(parents=True)
    (folder / ".photo.jpg.error.json.pending").write_text("{}")
    assert q.complete_pending(tmp_path / "q") == []
    assert os.listdir(folder) == []


def quarantine_some(tmp_path: Path) -> dict[str, Path]:
    return {
        name: q.quarantine(claimed(tmp_path, name.encode("utf-8", "surrogateescape"), name),
                           tmp_path / "q", Path(sub), name, record(name))
        for name, sub in [("top.jpg", "."), ("deep.jpg", "a/b"), (ODD_NAME, "a")]
    }


def test_requeue_all_round_trip(tmp_path: Path) -> None:
    quarantine_some(tmp_path)
    moved = q.requeue(tmp_path / "q", tmp_path / "inbox", "all")
    inbox = tmp_path / "inbox"
    assert sorted(moved) == sorted(
        [inbox / "top.jpg", inbox / "a" / "b" / "deep.jpg", inbox / "a" / ODD_NAME])
    assert (inbox / "a" / ODD_NAME).read_bytes() == os.fsencode(ODD_NAME)
    leftover = [f for _, _, files in os.walk(tmp_path / "q") for f in files]
    assert leftover == []


def test_requeue_selected_by_input_or_error_file(tmp_path: Path) -> None:
    paths = quarantine_some(tmp_path)
    error_file = paths["deep.jpg"].with_name("deep.jpg.error.json")
    moved = q.requeue(tmp_path / "q", tmp_path / "inbox", [paths["top.jpg"], error_file])
    assert moved == [tmp_path / "inbox" / "top.jpg", tmp_path / "inbox" / "a" / "b" / "deep.jpg"]
    assert paths[ODD_NAME].exists()
    assert paths[ODD_NAME].with_name(ODD_NAME + ".error.json").exists()


def test_requeue_never_overwrites_in_the_inbox(tmp_path: Path) -> None:
    paths = quarantine_some(tmp_path)
    (tmp_path / "inbox" / "top.jpg").write_bytes(b"a new file with the same name")
    moved = q.requeue(tmp_path / "q", tmp_path / "inbox", [paths["top.jpg"]])
    assert moved == [tmp_path / "inbox" / "top-1.jpg"]
    assert (tmp_path / "inbox" / "top.jpg").read_bytes() == b"a new file with the same name"


def test_requeue_skips_orphan_error_files(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    folder = tmp_path / "q"
    folder.mkdir()
    (folder / "gone.jpg.error.json").write_text("{}")
    (folder / "kept.jpg").write_bytes(b"input without its error file")
    with caplog.at_level(logging.WARNING, logger=q.__name__):
        moved = q.requeue(folder, tmp_path / "inbox", "all")
        assert q.requeue(folder, tmp_path / "inbox", [folder / "gone.jpg.error.json"]) == []
    assert moved == [tmp_path / "inbox" / "kept.jpg"]
    assert os.listdir(folder) == ["gone.jpg.error.json"]
    assert "gone.jpg" in caplog.text


def test_an_input_named_like_an_error_file_is_still_an_input(tmp_path: Path) -> None:
    name = "report.error.json"
    q.quarantine(claimed(tmp_path), tmp_path / "q", Path("."), name, record(name))
    moved = q.requeue(tmp_path / "q", tmp_path / "inbox", "all")
    assert moved == [tmp_path / "inbox" / name]
    assert os.listdir(tmp_path / "q") == []


def test_requeue_refuses_paths_outside_or_missing(tmp_path: Path) -> None:
    (tmp_path / "q").mkdir()
    with pytest.raises(ValueError):
        q.requeue(tmp_path / "q", tmp_path / "inbox", [tmp_path / "elsewhere.jpg"])
    with pytest.raises(FileNotFoundError):
        q.requeue(tmp_path / "q", tmp_path / "inbox", [tmp_path / "q" / "nothing.jpg"])


# -- across filesystems: a quarantine interrupted after its copy is finished, not repeated ------

def _unlink_fails_for(monkeypatch: pytest.MonkeyPatch, victim: Path) -> None:
    real_unlink = Path.unlink

    def unlink(path: Path, missing_ok: bool = False) -> None:
        if path == victim:
            raise PermissionError(errno.EPERM, "Operation not permitted", str(path))
        real_unlink(path, missing_ok=missing_ok)

    monkeypatch.setattr(Path, "unlink", unlink)


def test_an_unlink_failing_after_the_copy_keeps_the_pair_whole_and_resumes(
    tmp_path: Path, other_fs: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    source = claimed(tmp_path)
    journaled: list[Path] = []
    _unlink_fails_for(monkeypatch, source)
    with pytest.raises(LocalDiskError, match="not permitted"):
        q.quarantine(source, other_fs, Path("a"), "photo.jpg", record(),
                     before_move=journaled.append)
    monkeypatch.undo()
    assert journaled == [other_fs / "a" / "photo.jpg"]
    assert sorted(os.listdir(other_fs / "a")) == ["photo.jpg", "photo.jpg.error.json"]
    earlier = q.interrupted_quarantine(source, journaled[0])
    assert earlier == record()
    result = q.quarantine(source, other_fs, Path("a"), "photo.jpg", record(),
                          resume_at=journaled[0])
    assert result == journaled[0] and not source.exists()
    assert sorted(os.listdir(other_fs / "a")) == ["photo.jpg", "photo.jpg.error.json"]


def test_a_crash_before_the_unlink_is_finished_from_the_pending_record(
    tmp_path: Path, other_fs: Path,
) -> None:
    source = claimed(tmp_path)
    folder = other_fs / "a"
    folder.mkdir()
    (folder / "photo.jpg").write_bytes(source.read_bytes())  # the copy, then kill -9
    (folder / ".photo.jpg.error.json.pending").write_text(record().to_json(), "ascii")
    assert q.interrupted_quarantine(source, folder / "photo.jpg") == record()
    q.quarantine(source, other_fs, Path("a"), "photo.jpg", record(),
                 resume_at=folder / "photo.jpg")
    assert not source.exists()
    assert sorted(os.listdir(folder)) == ["photo.jpg", "photo.jpg.error.json"]


def test_a_journaled_target_with_other_content_is_not_taken_for_the_input(
    tmp_path: Path,
) -> None:
    source = claimed(tmp_path, b"mine")
    folder = tmp_path / "q"
    folder.mkdir()
    (folder / "photo.jpg").write_bytes(b"someone else's")
    assert q.interrupted_quarantine(source, folder / "photo.jpg") is None
    result = q.quarantine(source, folder, Path("."), "photo.jpg", record(),
                          resume_at=folder / "photo.jpg")
    assert result == folder / "photo-1.jpg" and result.read_bytes() == b"mine"
