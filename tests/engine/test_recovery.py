"""Orphans are adopted while running (issue 9, finding 12): a job in a work area whose lock is
free (the daemon that held it died, or a run of ours let it go) is taken over by a live daemon
within one rescan interval, without a restart; jobs a live process holds are left alone."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from bgcut_watchd.fake_api import FakeApiServer
from bgcut_watchd.job.steps import JobRunner
from bgcut_watchd.job.workarea import ClaimedJob
from tests.support import (
    DaemonProcess,
    InProcessDaemon,
    api_calls_per_job,
    assert_outbox_complete_and_decodable,
    drop_images,
    files_under,
    job_dirs,
    visible_files,
    wait_for,
    wait_for_log,
    write_config,
)

RESCAN_S = 1.0


def config_named(tmp_path: Path, base_url: str, name: str) -> Path:
    """A configuration of the shared ``studio`` folders with its own state dir."""
    path = write_config(tmp_path, base_url, daemon={
        "stability_s": 0.1, "rescan_interval_s": RESCAN_S, "state_dir": str(tmp_path / name)})
    return path.rename(tmp_path / f"{name}.toml")


def test_a_live_daemon_adopts_the_jobs_of_one_that_died_without_a_restart(
    tmp_path: Path, emulator: FakeApiServer,
) -> None:
    emulator.update(auth_fail=True)  # the first daemon claims every file, then waits paused
    first, second = (config_named(tmp_path, emulator.base_url, n) for n in ("first", "second"))
    root = tmp_path / "studio"
    inbox = root / "inbox"
    sources = drop_images(inbox, 3)
    with DaemonProcess(first, log_path=tmp_path / "first.log") as dying:
        wait_for(lambda: len(job_dirs(inbox)) == 3 and not visible_files(inbox),
                 what="every file claimed by the first daemon")
        with DaemonProcess(second, log_path=tmp_path / "second.log") as survivor:
            wait_for_log(survivor, "watching 1 folder(s), 0 unfinished job(s) resumed")
            dying.kill9()
            emulator.update(auth_fail=False)
            died = time.monotonic()
            wait_for(lambda: len(files_under(root / "archive")) == 3 and not job_dirs(inbox),
                     timeout_s=RESCAN_S + 10, what="the orphans adopted and finished")
            adopted_s = time.monotonic() - died
            assert survivor.proc is not None and survivor.proc.poll() is None
            assert survivor.terminate() == 0
    assert "adopting 3 orphaned job(s)" in survivor.log_text()
    assert adopted_s < RESCAN_S + 5.0
    assert {p.name for p in files_under(root / "archive")} == set(sources)
    assert_outbox_complete_and_decodable(root / "outbox", sorted(sources))
    uploads = [c["upload"] for c in api_calls_per_job(emulator.requests()).values()]
    assert sorted(uploads) == [1, 1, 1]  # their uploads were kept: resumed, not redone


def test_a_job_whose_run_failed_in_a_bug_is_let_go_and_adopted_by_the_same_daemon(
    tmp_path: Path, emulator: FakeApiServer, monkeypatch: pytest.MonkeyPatch,
) -> None:
    real_progress: Callable[[JobRunner, ClaimedJob], tuple[int, int]] = JobRunner.progress
    failed: list[str] = []

    def progress_with_a_bug(self: JobRunner, job: ClaimedJob) -> tuple[int, int]:
        if not failed:
            failed.append(job.job_id)
            raise RuntimeError("a bug outside the failure policy's reach")
        return real_progress(self, job)

    monkeypatch.setattr(JobRunner, "progress", progress_with_a_bug)
    config = write_config(tmp_path, emulator.base_url, daemon={"rescan_interval_s": RESCAN_S})
    root = tmp_path / "studio"
    with InProcessDaemon(config):
        sources = drop_images(root / "inbox", 1)
        wait_for(lambda: len(files_under(root / "archive")) == 1, timeout_s=RESCAN_S + 10,
                 what="the job adopted after its failed run")
    assert failed and job_dirs(root / "inbox") == []
    assert_outbox_complete_and_decodable(root / "outbox", sorted(sources))
