"""Moves to an archive or quarantine on another filesystem: copy, verify, then unlink; and a
move interrupted between the copy and the unlink (``kill -9``, or an unlink that fails) is
finished on resume, never repeated under a ``-1`` name.

The interruption is made real and deterministic: the claimed input is made immutable
(``chattr +i``), so the daemon's unlink fails right after its copy is in place.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bgcut_watchd.fake_api import FakeApiServer
from tests.hostile import make_valid_jpeg
from tests.support import (
    DaemonProcess,
    all_requests,
    files_under,
    job_dirs,
    journals,
    set_immutable,
    sha256_of,
    wait_for,
    write_config,
)


def _config(tmp_path: Path, emulator: FakeApiServer, other_fs: Path) -> Path:
    return write_config(tmp_path, emulator.base_url, retry={"disk_pause_s": 0.3},
                        daemon={"stability_s": 0.1},
                        folder={"archive": str(other_fs / "archive"),
                                "quarantine": str(other_fs / "quarantine")})


def _claimed_input(inbox: Path) -> Path:
    [job] = job_dirs(inbox)
    [found] = [p for p in job.iterdir() if p.name.startswith("input")]
    return found


@pytest.fixture
def frozen_inputs() -> Iterator[list[Path]]:
    """Files made immutable by a test: made mutable again whatever happens."""
    made: list[Path] = []
    yield made
    for path in made:
        set_immutable(path, False)


def _freeze(path: Path, made: list[Path]) -> None:
    if not set_immutable(path, True):
        pytest.skip("chattr +i is not possible here: cannot make an unlink fail")
    made.append(path)


@pytest.mark.parametrize("kill", [True, False], ids=["kill-9", "retry"])
def test_an_interrupted_archive_move_is_finished_not_repeated(
    tmp_path: Path, emulator: FakeApiServer, other_fs: Path, kill: bool,
    frozen_inputs: list[Path],
) -> None:
    emulator.update(latency_process_s=0.5)
    config = _config(tmp_path, emulator, other_fs)
    inbox = tmp_path / "studio" / "inbox"
    inbox.mkdir(parents=True, exist_ok=True)
    source = sha256_of(make_valid_jpeg(inbox, "x.jpg"))
    with DaemonProcess(config) as first:
        wait_for(lambda: [r["state"] for r in journals(inbox)] == ["uploaded"],
                 what="the job uploaded")
        claimed = _claimed_input(inbox)
        _freeze(claimed, frozen_inputs)
        wait_for(lambda: files_under(other_fs / "archive"), what="the copy in the archive")
        if kill:
            first.kill9()
        set_immutable(claimed, False)
        if not kill:
            wait_for(lambda: not job_dirs(inbox), what="the job finished")
            assert first.terminate() == 0
    if kill:
        with DaemonProcess(config) as second:
            wait_for(lambda: not job_dirs(inbox), what="the resumed job finished")
            assert second.terminate() == 0
    archived = files_under(other_fs / "archive")
    assert [p.name for p in archived] == ["x.jpg"]
    assert sha256_of(archived[0]) == source
    assert files_under(other_fs / "quarantine") == []
    assert len([r for r in all_requests(emulator) if r.endpoint == "process"]) == 1


def test_an_interrupted_quarantine_move_is_finished_not_repeated(
    tmp_path: Path, emulator: FakeApiServer, other_fs: Path, frozen_inputs: list[Path],
) -> None:
    emulator.update(latency_upload_s=1.0, max_upload_bytes=100)  # a 413: quarantine at once
    config = _config(tmp_path, emulator, other_fs)
    inbox = tmp_path / "studio" / "inbox"
    inbox.mkdir(parents=True, exist_ok=True)
    source = sha256_of(make_valid_jpeg(inbox, "x.jpg"))
    with DaemonProcess(config) as first:
        wait_for(lambda: job_dirs(inbox) and emulator.requests_in_progress() == 1,
                 what="the job checked and uploading")
        claimed = _claimed_input(inbox)
        _freeze(claimed, frozen_inputs)
        wait_for(lambda: (other_fs / "quarantine" / "x.jpg").exists(),
                 what="the copy in the quarantine")
        first.kill9()
    set_immutable(claimed, False)
    with DaemonProcess(config) as second:
        wait_for(lambda: not job_dirs(inbox), what="the resumed job finished")
        assert second.terminate() == 0
    names = sorted(p.name for p in files_under(other_fs / "quarantine"))
    assert names == ["x.jpg", "x.jpg.error.json"]
    assert sha256_of(other_fs / "quarantine" / "x.jpg") == source
    assert '"too_large"' in (other_fs / "quarantine" / "x.jpg.error.json").read_text()
    assert len([r for r in all_requests(emulator) if r.endpoint == "upload"]) == 1
