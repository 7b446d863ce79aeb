"""A full ``state_dir`` (issue 9, finding 11): the ledger is a record, not a gate.

``state_dir`` is a small tmpfs, filled up while jobs are in flight (their claims recorded):
every ledger write and every status file write fails with "database or disk is full" / ENOSPC.
Those jobs and the files dropped meanwhile are processed and archived all the same, none is
dropped or left in the work area (the journal is the truth; a failed ``finish_done`` used to make
the job retry, then quarantine, then drop its ticket), the trouble is logged once and shown by
``status``, and once space is freed the ledger catches up by itself, without a restart.
Mounting needs root; elsewhere the test is skipped, saying why.
"""

from __future__ import annotations

import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from bgcut_watchd.commands.status import collect_status
from bgcut_watchd.fake_api import FakeApiServer
from tests.support import (
    DaemonProcess,
    assert_outbox_complete_and_decodable,
    drop_images,
    files_under,
    job_dirs,
    load_checked,
    states,
    wait_for,
    write_config,
)
from tests.torture.test_disk_full import fill

IN_FLIGHT = 3  # claimed and recorded before the disk fills
DROPPED_WHILE_FULL = 2


@pytest.fixture
def state_tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A fresh 1 MiB tmpfs for state_dir, unmounted afterwards; skips when mount is refused."""
    mount_point = tmp_path / "state"
    mount_point.mkdir()
    command = ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount_point)]
    try:
        result = subprocess.run(command, capture_output=True, text=True, check=False)
    except FileNotFoundError:
        pytest.skip("cannot mount a tmpfs for state_dir: no mount command")
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs for state_dir (needs root): "
                    f"{(result.stderr or result.stdout).strip()}")
    try:
        yield mount_point
    finally:
        if subprocess.run(["umount", str(mount_point)], check=False).returncode != 0:
            subprocess.run(["umount", "-l", str(mount_point)], check=False)  # still busy


def done_in_ledger(state_dir: Path) -> int:
    try:
        with sqlite3.connect(f"file:{state_dir / 'ledger.sqlite3'}?mode=ro", uri=True) as conn:
            return int(conn.execute("SELECT COUNT(*) FROM jobs WHERE outcome = 'done'")
                       .fetchone()[0])
    except sqlite3.Error:
        return -1


def test_a_full_state_dir_never_stops_a_job_and_the_ledger_catches_up_once_freed(
    tmp_path: Path, emulator: FakeApiServer, state_tmpfs: Path,
) -> None:
    config = write_config(tmp_path, emulator.base_url, daemon={"stability_s": 0.1})
    root = tmp_path / "studio"
    inbox = root / "inbox"
    total = 1 + IN_FLIGHT + DROPPED_WHILE_FULL
    with DaemonProcess(config) as daemon:
        sources = drop_images(inbox, 1, prefix="before")
        wait_for(lambda: done_in_ledger(state_tmpfs) == 1, what="the first job recorded")
        # A wide window: every job must sit in its process call at once, however staggered
        # their uploads are on a loaded machine (a call already sleeping keeps its latency).
        emulator.update(latency_process_s=4.0)
        sources.update(drop_images(inbox, IN_FLIGHT, prefix="flight"))
        wait_for(lambda: states(inbox).count("uploaded") == IN_FLIGHT, timeout_s=20,
                 what="jobs in flight")
        filler = fill(state_tmpfs, 0)
        emulator.update(latency_process_s=0.0)
        sources.update(drop_images(inbox, DROPPED_WHILE_FULL, prefix="full"))
        wait_for(lambda: len(files_under(root / "archive")) == total and not job_dirs(inbox),
                 timeout_s=30, what="every input archived, no job left behind, while full")
        assert files_under(root / "quarantine") == []
        assert done_in_ledger(state_tmpfs) == 1  # nothing could be recorded meanwhile
        doc = collect_status(load_checked(config))
        assert doc["daemon"]["running"] is True
        assert "full" in (doc["state_dir_problem"] or "")

        filler.unlink()
        wait_for(lambda: done_in_ledger(state_tmpfs) == total, timeout_s=15,
                 what="the ledger caught up once space was freed")
        wait_for(lambda: collect_status(load_checked(config))["state_dir_problem"] is None,
                 what="status no longer shows a problem")
        assert daemon.terminate() == 0
    log_text = daemon.log_text()
    assert log_text.count("cannot write the ledger") == 1  # once, not once per job
    assert log_text.count("the ledger") and "written again" in log_text
    assert "ticket dropped" not in log_text and "Traceback" not in log_text
    assert_outbox_complete_and_decodable(root / "outbox", sorted(sources))
