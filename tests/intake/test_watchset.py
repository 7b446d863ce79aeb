"""The watch follows the folder (issue 9, finding 13): an inbox moved away and recreated, or a
share mounted over it after the start, is watched anew within a check (the service checks every
second), followed by a scan; before, the watch stayed on the old directory and new files waited
for the next rescan (up to 5 minutes). Real folders, real inotify, a real tmpfs mount (root)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from bgcut_watchd.config import FolderConfig, Variant
from bgcut_watchd.fake_api import FakeApiServer
from bgcut_watchd.intake import IntakeCoordinator
from tests.hostile import make_valid_jpeg
from tests.support import InProcessDaemon, files_under, job_dirs, wait_for, write_config

from .conftest import wait_for as poll

REWATCH_S = 5.0  # the service checks every second: a few seconds at most, never a rescan


@pytest.fixture
def coordinator(tmp_path: Path) -> Iterator[IntakeCoordinator]:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    folder = FolderConfig(name="studio", inbox=inbox, outbox=tmp_path / "out",
                          quarantine=tmp_path / "q", variants=(Variant("full"),),
                          watch="inotify")
    made = IntakeCoordinator([folder], 60.0)
    made.start_watching()
    yield made
    made.stop_watching()


@pytest.fixture
def mount_over(tmp_path: Path) -> Iterator[list[Path]]:
    """Mount tmpfs over the paths appended to the list; unmounted afterwards."""
    mounted: list[Path] = []
    yield mounted
    for path in reversed(mounted):
        if subprocess.run(["umount", str(path)], check=False).returncode != 0:
            subprocess.run(["umount", "-l", str(path)], check=False)


def mount_tmpfs(mounted: list[Path], path: Path) -> None:
    try:
        result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(path)],
                                capture_output=True, text=True, check=False)
    except FileNotFoundError:
        pytest.skip("cannot mount over the inbox: no mount command")
    if result.returncode != 0:
        pytest.skip(f"cannot mount over the inbox (needs root): {result.stderr.strip()}")
    mounted.append(path)


def test_an_inbox_moved_away_and_recreated_is_watched_anew_and_scanned(
    coordinator: IntakeCoordinator, tmp_path: Path,
) -> None:
    inbox = tmp_path / "inbox"
    assert coordinator.check_watchers() == []
    inbox.rename(tmp_path / "inbox.old")
    assert coordinator.check_watchers() == []  # gone: nothing to watch yet
    assert coordinator.watch_modes() == {"studio": "stopped"}
    inbox.mkdir()
    (inbox / "waiting.jpg").write_bytes(b"in before the check")
    assert coordinator.check_watchers() == ["studio"]
    assert coordinator.waiting_counts() == {"studio": 1}  # the scan found it
    (inbox / "new.jpg").write_bytes(b"after")  # ... and events flow from the new folder
    assert poll(lambda: coordinator.waiting_counts() == {"studio": 2})
    (tmp_path / "inbox.old" / "stale.jpg").write_bytes(b"not ours any more")
    assert coordinator.check_watchers() == []
    assert coordinator.waiting_counts() == {"studio": 2}


def test_a_share_mounted_over_the_inbox_is_watched_anew(
    coordinator: IntakeCoordinator, tmp_path: Path, mount_over: list[Path],
) -> None:
    mount_tmpfs(mount_over, tmp_path / "inbox")
    assert coordinator.check_watchers() == ["studio"]
    (tmp_path / "inbox" / "on-the-share.jpg").write_bytes(b"data")
    assert poll(lambda: coordinator.waiting_counts() == {"studio": 1})


@pytest.mark.parametrize("how", ["recreated", "mounted_over"])
def test_the_daemon_processes_files_in_a_replaced_inbox_within_seconds(
    tmp_path: Path, emulator: FakeApiServer, mount_over: list[Path], how: str,
) -> None:
    config = write_config(tmp_path, emulator.base_url, daemon={"rescan_interval_s": 300})
    root = tmp_path / "studio"
    inbox = root / "inbox"
    inbox.mkdir(parents=True, exist_ok=True)
    with InProcessDaemon(config):
        make_valid_jpeg(inbox, "first.jpg")
        wait_for(lambda: len(files_under(root / "archive")) == 1 and not job_dirs(inbox),
                 what="the first file's job finished")
        if how == "recreated":
            inbox.rename(root / "inbox.old")
            inbox.mkdir()
        else:
            mount_tmpfs(mount_over, inbox)
        make_valid_jpeg(inbox, "second.jpg", size=(70, 50))
        wait_for(lambda: len(files_under(root / "archive")) == 2, timeout_s=REWATCH_S,
                 what="the file in the replaced inbox archived")
