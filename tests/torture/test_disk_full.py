"""Torture 4: the outbox's disk fills up. The outbox is a 2 MiB tmpfs, filled but for room for
two small outputs: a download or two succeed, then every job fails at its next one (ENOSPC),
in the middle of its set. No partial output is ever visible (nor any partial temporary), every
input is kept (inbox or work area), nothing is quarantined or paid twice, and the work resumes
by itself, in the same process, once space is freed.

No set fits on purpose, so the state checked here is not a moving target.

Mounting needs root (CI runs as root); elsewhere the test is skipped, saying why. The folder
pause after a disk error is ``retry.disk_pause_s``, set short here (DISK_PAUSE_S).
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from bgcut_watchd.fake_api import FakeApiServer
from tests.support import (
    MAKERS,
    DaemonProcess,
    assert_outbox_complete_and_decodable,
    files_under,
    inputs_anywhere,
    job_dirs,
    journals,
    sha256_of,
    visible_files,
    wait_for,
    write_config,
)
from tests.torture import SIZES, Report

pytestmark = [pytest.mark.torture, pytest.mark.timeout(SIZES.timeout_s)]

TMPFS_SIZE = "2m"
PAGE_BYTES = 4096
ROOM_BYTES = 2 * PAGE_BYTES  # two small outputs (a page each): never a whole set of three
FILLER = ".filler"


@pytest.fixture
def small_tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A fresh 2 MiB tmpfs under tmp_path, unmounted afterwards; skips when mount is refused."""
    mount_point = tmp_path / "outbox-tmpfs"
    mount_point.mkdir()
    command = ["mount", "-t", "tmpfs", "-o", f"size={TMPFS_SIZE}", "tmpfs", str(mount_point)]
    try:
        result = subprocess.run(command, capture_output=True, text=True, check=False)
    except FileNotFoundError:
        pytest.skip("cannot mount a tmpfs for the full-disk test: no mount command")
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs for the full-disk test (needs root): "
                    f"{(result.stderr or result.stdout).strip()}")
    try:
        yield mount_point
    finally:
        if subprocess.run(["umount", str(mount_point)], check=False).returncode != 0:
            subprocess.run(["umount", "-l", str(mount_point)], check=False)  # still busy


def fill(mount_point: Path, leave_bytes: int) -> Path:
    """A filler file taking all the free space but ``leave_bytes``."""
    stats = os.statvfs(mount_point)
    filler = mount_point / FILLER
    with filler.open("wb") as stream:
        stream.truncate(0)
        remaining = stats.f_bavail * stats.f_frsize - leave_bytes
        block = b"\0" * (1 << 20)
        while remaining > 0:  # real blocks: a sparse file would take no space on tmpfs
            remaining -= stream.write(block[:remaining])
    return filler


def folder_paused(state_dir: Path) -> bool:
    try:
        status = json.loads((state_dir / "status.json").read_text("utf-8"))
    except (OSError, ValueError):  # being replaced right now
        return False
    return any(folder.get("paused") for folder in status.get("folders", {}).values())


def assert_hidden_temps_whole(outbox: Path) -> None:
    """Temporaries left by the failed jobs are whole downloads (``.part``), never partial."""
    hidden = [p for p in files_under(outbox)
              if p not in visible_files(outbox) and p.name != FILLER]
    for path in hidden:
        assert path.name.endswith(".part"), f"partial download left behind: {path.name}"
        with Image.open(path) as image:
            image.load()


DISK_PAUSE_S = 5.0


def test_a_full_outbox_keeps_every_input_and_resumes_once_space_is_freed(
    tmp_path: Path, emulator: FakeApiServer, small_tmpfs: Path, torture_report: Report,
) -> None:
    config = write_config(tmp_path, emulator.base_url, daemon={"stability_s": 0.1},
                          retry={"disk_pause_s": DISK_PAUSE_S},
                          folder={"outbox": str(small_tmpfs)})
    root, state_dir, outbox = tmp_path / "studio", tmp_path / "state", small_tmpfs
    inbox = root / "inbox"
    inbox.mkdir(parents=True, exist_ok=True)
    filler = fill(outbox, ROOM_BYTES)
    with DaemonProcess(config) as daemon:
        sources: dict[str, str] = {}
        for index in range(SIZES.disk_files):
            maker, ext = MAKERS[index % len(MAKERS)]
            path = maker(inbox, f"full-{index:02d}.{ext}", (64 + index, 48))
            sources[path.name] = sha256_of(path)
        wait_for(lambda: folder_paused(state_dir) and journals(inbox)
                 and all(r["state"] == "processed" for r in journals(inbox)),
                 timeout_s=30, what="the folder paused, its jobs waiting to download")
        assert files_under(root / "archive") == []
        assert visible_files(outbox) == []  # nothing half-published
        assert_hidden_temps_whole(outbox)
        assert inputs_anywhere(root) == Counter(sources.values())  # kept: inbox or work area
        assert files_under(root / "quarantine") == []
        waiting = len(job_dirs(inbox)), len(visible_files(inbox))
        temps = len(files_under(outbox)) - 1  # the filler aside
        assert daemon.proc is not None and daemon.proc.poll() is None

        filler.unlink()
        freed = time.monotonic()
        wait_for(lambda: len(files_under(root / "archive")) == SIZES.disk_files
                 and not job_dirs(inbox), timeout_s=DISK_PAUSE_S + 30,
                 interval_s=0.2, what="every input archived after the space was freed")
        resumed_s = time.monotonic() - freed
        assert daemon.terminate() == 0

    assert files_under(root / "quarantine") == []
    assert {p.name: sha256_of(p) for p in files_under(root / "archive")} == sources
    assert_outbox_complete_and_decodable(outbox, sorted(sources))
    assert files_under(outbox) == visible_files(outbox)  # no temporary left behind
    entries = emulator.requests()
    processed = [e for e in entries if e.endpoint == "process" and e.status == 200]
    assert len(processed) == SIZES.disk_files  # the full disk cost no second process call
    disk_errors = daemon.log_text().count("paused for")
    torture_report(
        f"{SIZES.disk_files} inputs, outbox a {TMPFS_SIZE} tmpfs with {ROOM_BYTES} bytes "
        f"free: {waiting[0]} job(s) stopped mid-set waiting in the work area, {waiting[1]} "
        f"input(s) left in the inbox, {temps} whole temporary output(s) kept; "
        f"{disk_errors} folder-pause log line(s); all archived {resumed_s:.0f}s after the "
        f"space was freed (folder pause {DISK_PAUSE_S:.0f}s); "
        f"{len(entries)} requests, {len(processed)} process calls")
