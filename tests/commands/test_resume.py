"""``bgcut-watchd resume``: a real daemon paused for credits resumes at once when told, not
after ``credits_pause_s``; without a pause or without a daemon it says so."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bgcut_watchd.cli import main
from bgcut_watchd.daemon.status import read_status
from bgcut_watchd.exitcodes import EXIT_FAILURE, EXIT_NOT_RUNNING, EXIT_OK
from bgcut_watchd.fake_api import FakeApiServer
from tests.support import REPO, DaemonProcess, drop_images, files_under, wait_for, write_config

LONG_PAUSE_S = 600


def resume(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bgcut_watchd", "resume", "-c", str(config),
                           "--json"], capture_output=True, text=True, timeout=30, check=False,
                          env={**os.environ, "PYTHONPATH": str(REPO)})


@pytest.mark.slow
def test_resume_ends_a_credits_pause_now(tmp_path: Path, emulator: FakeApiServer) -> None:
    config = write_config(tmp_path, emulator.base_url, retry={"credits_pause_s": LONG_PAUSE_S})
    emulator.update(credits_exhausted=True)
    state = tmp_path / "state"
    with DaemonProcess(config) as daemon:
        drop_images(tmp_path / "studio" / "inbox", 2)
        wait_for(lambda: ((read_status(state) or {}).get("pause") or {}).get("reason")
                 == "credits", 20, what="the daemon paused for credits")
        still = resume(config)  # nothing fixed yet: the next try pauses it again
        if still.returncode != EXIT_OK:  # seen within the command's wait (the usual case)
            assert still.returncode == EXIT_FAILURE, still.stdout + still.stderr
            assert json.loads(still.stdout)["pause"]["reason"] == "credits"
        wait_for(lambda: ((read_status(state) or {}).get("pause") or {}).get("reason")
                 == "credits", 20, what="the daemon paused again")
        emulator.update(credits_exhausted=False)  # the operator bought credits
        asked_at = time.monotonic()
        answer = resume(config)
        assert answer.returncode == EXIT_OK, answer.stdout + answer.stderr
        assert json.loads(answer.stdout)["was_paused"] is True
        wait_for(lambda: len(files_under(tmp_path / "studio" / "archive")) == 2, 20,
                 what="both files processed")
        assert time.monotonic() - asked_at < LONG_PAUSE_S / 10
        assert "resume asked (SIGUSR1): ending the API pause now" in daemon.log_text()
        assert resume(config).stdout.count('"was_paused": false') == 1  # nothing to resume
        assert daemon.terminate() == 0


def test_resume_without_a_daemon_exits_3(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                         emulator: FakeApiServer) -> None:
    config = write_config(tmp_path, emulator.base_url)
    assert main(["resume", "-c", str(config)]) == EXIT_NOT_RUNNING
    assert "not running" in capsys.readouterr().out
