"""Housekeeping: emptied inbox subfolders removed, archive and quarantine retention."""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from pathlib import Path

import pytest

from bgcut_watchd.config.model import FolderConfig, Variant
from bgcut_watchd.daemon.housekeeping import (
    DAY_S,
    RETENTION_EVERY_S,
    Housekeeper,
    apply_retention,
)
from bgcut_watchd.fake_api import FakeApiServer
from tests.hostile import make_valid_jpeg
from tests.support import InProcessDaemon, files_under, wait_for, write_config


def _folder(root: Path, **overrides: object) -> FolderConfig:
    folder = FolderConfig("studio", root / "inbox", root / "outbox", root / "quarantine",
                          (Variant("full"),), archive=root / "archive")
    return replace(folder, **overrides)


@pytest.mark.parametrize("enabled", [True, False])
def test_subfolders_the_daemon_emptied_are_removed_never_the_inbox(
        tmp_path: Path, emulator: FakeApiServer, enabled: bool) -> None:
    config = write_config(tmp_path, emulator.base_url, daemon={"stability_s": 0.2},
                          folder={"remove_empty_subfolders": enabled})
    inbox = tmp_path / "studio" / "inbox"
    (inbox / "kept-empty").mkdir(parents=True)  # made empty on purpose: never touched
    with InProcessDaemon(config):
        (inbox / "shoot" / "day2").mkdir(parents=True)
        make_valid_jpeg(inbox / "shoot", "a.jpg")
        make_valid_jpeg(inbox / "shoot" / "day2", "b.jpg")
        wait_for(lambda: len(files_under(tmp_path / "studio" / "archive")) == 2,
                 what="both inputs archived")
        if enabled:
            wait_for(lambda: not (inbox / "shoot").exists(), what="the emptied drop removed")
        else:
            wait_for(lambda: not files_under(inbox / "shoot"), what="files taken")
    assert inbox.is_dir() and (inbox / "kept-empty").is_dir()
    assert (inbox / "shoot" / "day2").is_dir() is (not enabled)


def test_retention_deletes_what_stayed_longer_than_its_days_with_error_files(
        tmp_path: Path) -> None:
    folder = _folder(tmp_path, archive_retention_days=3, quarantine_retention_days=7)
    (folder.quarantine / "sub").mkdir(parents=True)
    (folder.archive / "2024" / "may").mkdir(parents=True)
    for path in (folder.archive / "2024" / "may" / "a.jpg",
                 folder.quarantine / "sub" / "b.jpg",
                 folder.quarantine / "sub" / "b.jpg.error.json",
                 folder.quarantine / "orphan.jpg.error.json"):
        path.write_bytes(b"x")
    now_s = time.time()
    apply_retention(folder, now_s + 2 * DAY_S)  # younger than both periods: all kept
    assert len(files_under(tmp_path)) == 4
    apply_retention(folder, now_s + 4 * DAY_S)  # over 3 days: the archive only
    assert not (folder.archive / "2024").exists() and folder.archive.is_dir()
    assert len(files_under(folder.quarantine)) == 3
    apply_retention(folder, now_s + 8 * DAY_S)  # over 7 days: the quarantine, pairs together
    assert files_under(folder.quarantine) == [] and folder.quarantine.is_dir()
    assert not (folder.quarantine / "sub").exists()


def test_zero_days_keeps_forever(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    folder.archive.mkdir(parents=True)
    (folder.archive / "a.jpg").write_bytes(b"x")
    apply_retention(folder, time.time() + 10_000 * DAY_S)
    assert (folder.archive / "a.jpg").exists()


def test_retention_runs_at_start_then_once_an_hour_and_says_so(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    folder = _folder(tmp_path, archive_retention_days=1, quarantine_retention_days=1)
    folder.archive.mkdir(parents=True)
    folder.quarantine.mkdir(parents=True)
    now = {"mono": 1000.0, "wall": time.time()}
    keeper = Housekeeper([folder], stability_s=1.0, clock=lambda: now["mono"],
                         wall_clock=lambda: now["wall"])

    def age_files() -> None:  # files two days old by the wall clock the keeper reads
        (folder.archive / "a.jpg").write_bytes(b"x")
        (folder.quarantine / "q.jpg").write_bytes(b"x")
        (folder.quarantine / "q.jpg.error.json").write_bytes(b"{}")
        now["wall"] = time.time() + 2 * DAY_S

    age_files()
    with caplog.at_level(logging.INFO, logger="bgcut_watchd.daemon.housekeeping"):
        keeper.tick()  # the first tick applies it at once
        assert files_under(tmp_path) == []
        said = [r.getMessage() for r in caplog.records]
        assert said == ["folder studio: deleted 1 archived input(s) older than 1 day(s)",
                        "folder studio: deleted 1 quarantined input(s) older than 1 day(s), "
                        "with their error files"]
        age_files()
        now["mono"] += RETENTION_EVERY_S - 1  # not yet an hour: nothing deleted
        keeper.tick()
        assert len(files_under(tmp_path)) == 3
        now["mono"] += 1
        keeper.tick()  # the hour is up
        assert files_under(tmp_path) == []
        assert len(caplog.records) == 4
        now["mono"] += RETENTION_EVERY_S
        keeper.tick()  # nothing old: every run says so, 0 included
        said = [r.getMessage() for r in caplog.records[4:]]
        assert said == ["folder studio: deleted 0 archived input(s) older than 1 day(s)",
                        "folder studio: deleted 0 quarantined input(s) older than 1 day(s), "
                        "with their error files"]
