"""A 200 whose body is not the image is the service's fault: fetched again, the job's process
call redone once, never published; quarantined as ``bad_output`` if it stays bad (issue 9,
findings 1 and 2). The real daemon in-process, the real emulator, real folders."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from PIL import Image

from bgcut_watchd.fake_api import FakeApiServer
from bgcut_watchd.fake_api.reqlog import RequestLogEntry
from tests.hostile import make_valid_jpeg
from tests.support import InProcessDaemon, files_under, visible_files, wait_for, write_config

FAULTS = [("fail_html_200", "html_200"), ("fail_cut_body", "cut_body")]


def _faulted(emulator: FakeApiServer, fault: str) -> list[RequestLogEntry]:
    return [e for e in emulator.requests() if e.fault == fault]


def _calls(emulator: FakeApiServer, endpoint: str) -> int:
    return sum(e.endpoint == endpoint and e.status == 200 for e in emulator.requests())


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _assert_nothing_published(root: Path) -> None:
    assert visible_files(root / "outbox") == []
    assert [p for p in files_under(root / "outbox") if p.name.endswith(".part")] == []
    assert files_under(root / "archive") == []


@pytest.mark.parametrize(("share", "fault"), FAULTS)
def test_a_bad_200_is_fetched_again_and_never_published(
    tmp_path: Path, emulator: FakeApiServer, share: str, fault: str,
) -> None:
    config = write_config(tmp_path, emulator.base_url, retry={"max_attempts": 50})
    root = tmp_path / "studio"
    (root / "inbox").mkdir(parents=True, exist_ok=True)
    emulator.update(**{share: 1.0})
    with InProcessDaemon(config):
        make_valid_jpeg(root / "inbox", "portal.jpg", size=(96, 64))
        wait_for(lambda: len(_faulted(emulator, fault)) >= 4, timeout_s=20,
                 what=f"four {fault} downloads")
        _assert_nothing_published(root)  # checked while the fault is on, job still running
        emulator.update(**{share: 0.0})
        wait_for(lambda: files_under(root / "archive"), timeout_s=20, what="the input archived")
    outputs = visible_files(root / "outbox")
    assert sorted(p.name for p in outputs) == [
        "portal.full.png", "portal.thumb.webp", "portal.white.jpg"]
    rendered = {_sha256(emulator.local_path(e.file_path)) for e in emulator.requests()
                if e.endpoint == "download" and e.status == 200 and e.fault is None
                and e.file_path}
    for path in outputs:
        assert _sha256(path) in rendered  # byte for byte what the emulator rendered
        with Image.open(path) as image:
            image.load()
    assert files_under(root / "quarantine") == []
    # One bad copy is fetched again; a second one redoes the process call, once per job.
    assert _calls(emulator, "process") == 2


@pytest.mark.parametrize(("share", "fault"), FAULTS)
def test_a_bad_200_that_stays_bad_ends_in_quarantine_as_bad_output(
    tmp_path: Path, emulator: FakeApiServer, share: str, fault: str,
) -> None:
    config = write_config(tmp_path, emulator.base_url, retry={"max_attempts": 3})
    root = tmp_path / "studio"
    (root / "inbox").mkdir(parents=True, exist_ok=True)
    emulator.update(**{share: 1.0})
    error_file = root / "quarantine" / "portal.jpg.error.json"
    with InProcessDaemon(config):
        make_valid_jpeg(root / "inbox", "portal.jpg", size=(96, 64))
        wait_for(error_file.exists, timeout_s=20, what="the input quarantined")
    error = json.loads(error_file.read_text())
    assert (error["stage"], error["reason"], error["attempts"]) == ("download", "bad_output", 3)
    assert "full" in error["detail"] and "PNG" in error["detail"]
    _assert_nothing_published(root)
    assert (root / "quarantine" / "portal.jpg").is_file()
    assert _calls(emulator, "process") == 2  # the redo is bounded: one per job
