"""The daily spend cap: a burst that crosses ``max_credits_per_day`` pauses all API work like a
402 (nothing quarantined, status says why and when it resumes), an operator's resume lets the
rest through, and a restart does not reset the day's count (the ledger keeps it). The same
numbers against the emulator's own balance: when it runs out, its 402 pauses the daemon the same
way, and the real ``bgcut-watchd resume`` command ends either pause."""

from __future__ import annotations

from pathlib import Path

import pytest

from bgcut_watchd.commands.status import collect_status, render_table
from bgcut_watchd.control.pause import PauseReason
from bgcut_watchd.daemon.status import read_status
from bgcut_watchd.exitcodes import EXIT_OK
from bgcut_watchd.fake_api import FakeApiServer
from tests.commands.test_resume import resume
from tests.hostile import make_valid_jpeg
from tests.support import (
    DaemonProcess,
    InProcessDaemon,
    files_under,
    load_checked,
    wait_for,
    write_config,
)

PER_IMAGE = 1.500074  # the example set on a 64x48 input: 0.500074 + 0.25 * 2 + 0.5
CAP = 5  # three images fit (4.5 credits), the fourth would cross


def _capped(tmp_path: Path, emulator: FakeApiServer) -> tuple[Path, Path, Path]:
    """One worker, a daily cap of CAP credits: the configuration, the inbox, the archive."""
    config = write_config(tmp_path, emulator.base_url, daemon={"workers": 1})
    with config.open("a") as handle:
        handle.write(f"\n[budget]\nmax_credits_per_day = {CAP}\n")
    return config, tmp_path / "studio" / "inbox", tmp_path / "studio" / "archive"


def _charged_calls(emulator: FakeApiServer) -> int:
    return int(emulator.usage()["charged_calls"])


def test_a_burst_crossing_the_cap_pauses_then_resumes(tmp_path: Path,
                                                      emulator: FakeApiServer) -> None:
    config, inbox, archive = _capped(tmp_path, emulator)
    with InProcessDaemon(config) as daemon:
        engine = daemon.service.engine
        for n in range(6):
            make_valid_jpeg(inbox, f"b{n}.jpg")
        wait_for(lambda: engine.api_pause.state().reason is PauseReason.BUDGET,
                 what="the budget pause")
        wait_for(lambda: len(files_under(archive)) == 3, what="three jobs done")
        assert _charged_calls(emulator) == 3
        assert files_under(tmp_path / "studio" / "quarantine") == []
        line = daemon.service.reporter.status_line()
        assert line == f"paused: daily budget of {CAP} credits reached, resumes at 00:00"
        daemon.service.reporter.write()
        doc = collect_status(load_checked(config))
        assert doc["pause"]["reason"] == "budget"
        assert doc["credits"]["studio"]["today"] == pytest.approx(3 * PER_IMAGE, abs=0.01)
        assert "resumes at 00:00" in render_table(doc)
        engine.api_pause.resume()  # what SIGUSR1 does (below): the cap is lifted for today
        wait_for(lambda: len(files_under(archive)) == 6, what="the other three done")
    assert _charged_calls(emulator) == 6
    assert files_under(tmp_path / "studio" / "quarantine") == []
    # A restart keeps the day's count: the cap holds again at once, nothing is sent.
    with InProcessDaemon(config) as daemon:
        make_valid_jpeg(inbox, "after-restart.jpg")
        wait_for(lambda: daemon.service.engine.api_pause.state().reason is PauseReason.BUDGET,
                 what="the budget pause after a restart")
    assert _charged_calls(emulator) == 6
    assert files_under(tmp_path / "studio" / "quarantine") == []


def _paused_for(state: Path, reason: str) -> bool:
    return ((read_status(state) or {}).get("pause") or {}).get("reason") == reason


def test_the_resume_command_lifts_the_daily_cap(tmp_path: Path,
                                                emulator: FakeApiServer) -> None:
    config, inbox, archive = _capped(tmp_path, emulator)
    with DaemonProcess(config) as daemon:
        for n in range(5):
            make_valid_jpeg(inbox, f"b{n}.jpg")
        wait_for(lambda: _paused_for(tmp_path / "state", "budget"), 30,
                 what="the budget pause in status.json")
        wait_for(lambda: len(files_under(archive)) == 3, what="three jobs done")
        answer = resume(config)
        assert answer.returncode == EXIT_OK, answer.stdout + answer.stderr
        wait_for(lambda: len(files_under(archive)) == 5, 30, what="the other two done")
        assert daemon.terminate() == 0
    assert _charged_calls(emulator) == 5
    assert files_under(tmp_path / "studio" / "quarantine") == []


def test_an_emptied_balance_pauses_like_402_and_resume_goes_on_once_topped_up(
        tmp_path: Path, emulator: FakeApiServer) -> None:
    """The emulator's balance pays for two images; its 402 on the third pauses all API work,
    nothing is quarantined; credits bought and ``resume`` told, the rest goes through."""
    emulator.update(credits_balance=2 * PER_IMAGE + 0.1)
    config = write_config(tmp_path, emulator.base_url, daemon={"workers": 1},
                          retry={"credits_pause_s": 600})
    inbox, archive = tmp_path / "studio" / "inbox", tmp_path / "studio" / "archive"
    with DaemonProcess(config) as daemon:
        for n in range(4):
            make_valid_jpeg(inbox, f"c{n}.jpg")
        wait_for(lambda: _paused_for(tmp_path / "state", "credits"), 30,
                 what="the credits pause in status.json")
        assert len(files_under(archive)) == 2 and _charged_calls(emulator) == 2
        assert files_under(tmp_path / "studio" / "quarantine") == []
        emulator.update(credits_balance=100.0)  # the operator bought credits
        answer = resume(config)
        assert answer.returncode == EXIT_OK, answer.stdout + answer.stderr
        wait_for(lambda: len(files_under(archive)) == 4, 30, what="the other two done")
        assert daemon.terminate() == 0
    assert _charged_calls(emulator) == 4
    assert float(emulator.usage()["credits_balance"]) == pytest.approx(100 - 2 * PER_IMAGE)
    assert files_under(tmp_path / "studio" / "quarantine") == []
