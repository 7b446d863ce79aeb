"""Reloads (SIGHUP) and running jobs cannot race (issue 9, finding 14).

* The storm: SIGHUP every few milliseconds, hundreds of times, while files are processed, on a
  real daemon subprocess (only a real signal reaches the main loop between two bytecodes). It
  found the race: the handler rang a ``threading.Event`` whose lock the main loop itself held
  (inside ``Event.set``/``clear``), and the loop deadlocked for good, in most storms here. The
  quick variant repeats the storm a few times in one daemon; the ``torture`` one many more.
* A reload that changes the variants while a job is between its process call and its
  publication: the job finishes with the variants it was processed with (its parts are a
  snapshot), the next job uses the new ones.
"""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path

import pytest

from bgcut_watchd.fake_api import FakeApiServer
from tests.hostile import make_valid_jpeg
from tests.support import (
    DaemonProcess,
    InProcessDaemon,
    assert_outbox_complete_and_decodable,
    drop_images,
    files_under,
    job_dirs,
    states,
    visible_files,
    wait_for,
    wait_for_log,
    write_config,
)
from tests.torture import SIZES

STORM_SIGNALS = 300
STORM_GAP_S = 0.005
FILES_PER_STORM = 20


def sighup_storm(daemon: DaemonProcess, signals: int = STORM_SIGNALS,
                 gap_s: float = STORM_GAP_S) -> None:
    """``signals`` SIGHUPs, ``gap_s`` apart (the operator's storm: a scenario, not a wait)."""
    assert daemon.proc is not None
    pace = threading.Event()  # never set: its wait() paces the storm
    for _ in range(signals):
        daemon.proc.send_signal(signal.SIGHUP)
        pace.wait(gap_s)


def run_storms(tmp_path: Path, emulator: FakeApiServer, rounds: int) -> float:
    """``rounds`` storms, each over a fresh batch of files; the slowest round in seconds."""
    emulator.update(latency_process_s=0.02)
    config = write_config(tmp_path, emulator.base_url, daemon={"stability_s": 0.1})
    root = tmp_path / "studio"
    (root / "inbox").mkdir(parents=True, exist_ok=True)
    sources: dict[str, str] = {}
    slowest_s = 0.0
    with DaemonProcess(config) as daemon:
        wait_for_log(daemon, "watching 1 folder(s)")
        for round_no in range(rounds):
            started = time.monotonic()
            sources.update(drop_images(root / "inbox", FILES_PER_STORM, prefix=f"r{round_no}"))
            sighup_storm(daemon)
            wait_for(lambda: len(files_under(root / "archive")) == len(sources), timeout_s=30,
                     interval_s=0.1, what=f"every file of storm {round_no + 1} archived")
            slowest_s = max(slowest_s, time.monotonic() - started)
        assert daemon.terminate(timeout_s=20) == 0  # the loop still answers signals
    assert "reload refused" not in daemon.log_text()
    assert files_under(root / "quarantine") == []
    assert job_dirs(root / "inbox") == [] and visible_files(root / "inbox") == []
    assert_outbox_complete_and_decodable(root / "outbox", sorted(sources))
    return slowest_s


def test_a_sighup_storm_while_files_are_processed_archives_every_file(
    tmp_path: Path, emulator: FakeApiServer,
) -> None:
    run_storms(tmp_path, emulator, rounds=2)


@pytest.mark.torture
@pytest.mark.timeout(SIZES.timeout_s)
def test_many_sighup_storms_archive_every_file(
    tmp_path: Path, emulator: FakeApiServer,
) -> None:
    run_storms(tmp_path, emulator, rounds=20 if SIZES.mode == "long" else 8)


def test_a_reload_that_changes_variants_leaves_a_running_job_on_its_own_variants(
    tmp_path: Path, emulator: FakeApiServer,
) -> None:
    config = write_config(tmp_path, emulator.base_url, retry={"max_attempts": 1000})
    root = tmp_path / "studio"
    inbox = root / "inbox"
    emulator.update(fail_truncate=1.0)  # every download breaks off: the job waits processed
    with InProcessDaemon(config) as daemon:
        make_valid_jpeg(inbox, "early.jpg")
        wait_for(lambda: states(inbox) == ["processed"]
                 and any(e.fault == "truncate" for e in emulator.requests()),
                 what="the job processed, its downloads failing")
        write_config(tmp_path, emulator.base_url, retry={"max_attempts": 1000},
                     variant_names=("full", "thumb"))
        daemon.service.handle_reload(signal.SIGHUP, None)
        wait_for(lambda: len(daemon.service.config.folders[0].variants) == 2,
                 what="the reload applied")
        emulator.update(fail_truncate=0.0)
        wait_for(lambda: len(files_under(root / "archive")) == 1, what="the early job archived")
        make_valid_jpeg(inbox, "late.jpg", size=(70, 50))
        wait_for(lambda: len(files_under(root / "archive")) == 2, what="the late job archived")
    outputs = sorted(p.name for p in files_under(root / "outbox"))
    assert outputs == ["early.full.png", "early.thumb.webp", "early.white.jpg",
                       "late.full.png", "late.thumb.webp"]
    assert files_under(root / "quarantine") == []
