"""Publishing a job's downloaded temporaries into the outbox (real folders)."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from bgcut_watchd import fsops
from bgcut_watchd.errors import LocalDiskError
from bgcut_watchd.job import naming, publish

JOB = "0123456789abcdef0123456789abcdef"


def make_temps(out_dir: Path, contents: list[bytes], job_id: str = JOB) -> list[Path]:
    temps = [naming.temp_path_for(out_dir, job_id, i) for i in range(len(contents))]
    for temp, data in zip(temps, contents, strict=True):
        temp.write_bytes(data)
        fsops.fsync_file(temp)
    return temps


def finals_in(out_dir: Path) -> list[Path]:
    return [out_dir / n for n in ("p.full.png", "p.thumb.webp", "-p\n.white.jpg")]


def test_temp_path_is_hidden_and_names_the_job(tmp_path: Path) -> None:
    assert naming.temp_path_for(tmp_path, JOB, 2) == tmp_path / f".bgcut-{JOB}-2.part"


def test_publish_renames_every_temp_into_place(tmp_path: Path) -> None:
    temps = make_temps(tmp_path, [b"a", b"b", b"c"])
    finals = finals_in(tmp_path)
    publish.publish_set(temps, finals, overwrite=False)
    assert [f.read_bytes() for f in finals] == [b"a", b"b", b"c"]
    assert sorted(os.listdir(tmp_path)) == sorted(f.name for f in finals)


def test_publish_is_idempotent_after_a_crash_half_way(tmp_path: Path) -> None:
    temps = make_temps(tmp_path, [b"a", b"b", b"c"])
    finals = finals_in(tmp_path)
    temps[0].rename(finals[0])  # the crash came after the first rename
    publish.publish_set(temps, finals, overwrite=False)
    publish.publish_set(temps, finals, overwrite=False)  # and once more, all done already
    assert [f.read_bytes() for f in finals] == [b"a", b"b", b"c"]
    assert len(os.listdir(tmp_path)) == 3


def test_publish_finishes_an_interrupted_link_unlink(tmp_path: Path) -> None:
    temps = make_temps(tmp_path, [b"a"])
    final = tmp_path / "p.full.png"
    os.link(temps[0], final)  # rename_noreplace's fallback crashed before its unlink
    publish.publish_set(temps, [final], overwrite=False)
    assert os.listdir(tmp_path) == ["p.full.png"]


def test_a_foreign_final_stops_the_set_before_anything_moves(tmp_path: Path) -> None:
    temps = make_temps(tmp_path, [b"a", b"b", b"c"])
    finals = finals_in(tmp_path)
    finals[2].write_bytes(b"someone else's")
    with pytest.raises(FileExistsError):
        publish.publish_set(temps, finals, overwrite=False)
    assert all(t.exists() for t in temps)
    assert not finals[0].exists() and not finals[1].exists()
    assert finals[2].read_bytes() == b"someone else's"


def test_overwrite_replaces_existing_outputs(tmp_path: Path) -> None:
    temps = make_temps(tmp_path, [b"a", b"b", b"c"])
    finals = finals_in(tmp_path)
    finals[1].write_bytes(b"old")
    publish.publish_set(temps, finals, overwrite=True)
    assert finals[1].read_bytes() == b"b"
    assert not any(t.exists() for t in temps)


def test_a_lost_temp_asks_for_a_new_download(tmp_path: Path) -> None:
    temps = make_temps(tmp_path, [b"a", b"b"])
    temps[1].unlink()
    with pytest.raises(FileNotFoundError):
        publish.publish_set(temps, finals_in(tmp_path)[:2], overwrite=False)
    assert temps[0].exists()


def test_disk_failure_becomes_local_disk_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    temps = make_temps(tmp_path, [b"a"])

    def full(src: object, dst: object) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(src), None, str(dst))

    monkeypatch.setattr(publish, "rename_noreplace", full)
    with pytest.raises(LocalDiskError, match="No space left on device") as caught:
        publish.publish_set(temps, [tmp_path / "p.png"], overwrite=False)
    assert str(temps[0]) in str(caught.value)
    assert temps[0].read_bytes() == b"a"


def test_mismatched_lengths_are_a_programming_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        publish.publish_set([tmp_path / "a"], [], overwrite=False)


def test_discard_temps_removes_only_this_jobs_parts(tmp_path: Path) -> None:
    mine = make_temps(tmp_path, [b"a", b"b"])
    theirs = make_temps(tmp_path, [b"c"], job_id="f" * 32)
    (tmp_path / f".bgcut-{JOB}-x.part").write_bytes(b"")
    (tmp_path / "p.full.png").write_bytes(b"")
    assert sorted(publish.discard_temps(tmp_path, JOB)) == sorted(mine)
    assert sorted(os.listdir(tmp_path)) == sorted(
        [theirs[0].name, f".bgcut-{JOB}-x.part", "p.full.png"])
    assert publish.discard_temps(tmp_path / "missing", JOB) == []
