"""``bgcut-watchd status``: the table, the JSON document, with and without a daemon; whether a
daemon runs comes from its lock, whatever the status file says (exit 3 when none is alive)."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from bgcut_watchd.cli import main
from bgcut_watchd.commands.status import LEGEND, collect_status
from bgcut_watchd.exitcodes import EXIT_NOT_RUNNING, EXIT_OK
from bgcut_watchd.fake_api import FakeApiServer
from tests.hostile import make_text_named_jpg, make_valid_jpeg
from tests.support import (
    API_KEY,
    DaemonProcess,
    InProcessDaemon,
    drop_images,
    files_under,
    job_dirs,
    load_checked,
    states,
    wait_for,
    write_config,
)

TOP_KEYS = {"config", "state_dir", "daemon", "pause", "state_dir_problem", "health", "folders",
            "credits", "recent_errors", "notes"}
FOLDER_KEYS = {"name", "inbox", "waiting", "in_work_area", "in_progress", "done", "quarantined",
               "failed", "error_files", "paused", "live", "quarantined_now", "quarantined_total"}
ERROR_KEYS = {"job_id", "folder", "file", "outcome", "stage", "reason", "http_status", "error",
              "at"}


@pytest.fixture(autouse=True)
def no_key_in_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """status must work without the API key: none is available."""
    monkeypatch.delenv("BGCUT_API_KEY", raising=False)
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)


def _status_json(config: Path, capsys: pytest.CaptureFixture[str],
                 code: int = EXIT_NOT_RUNNING) -> dict[str, Any]:
    assert main(["status", "-c", str(config), "--json"]) == code
    doc: dict[str, Any] = json.loads(capsys.readouterr().out)
    return doc


def _one_done_one_quarantined(tmp_path: Path, emulator: FakeApiServer,
                              monkeypatch: pytest.MonkeyPatch,
                              capsys: pytest.CaptureFixture[str]) -> Path:
    config = write_config(tmp_path, emulator.base_url)
    inbox = tmp_path / "studio" / "inbox"
    inbox.mkdir(parents=True, exist_ok=True)
    make_valid_jpeg(inbox, "good.jpg")
    make_text_named_jpg(inbox)
    with monkeypatch.context() as m:
        m.setenv("BGCUT_API_KEY", API_KEY)
        assert main(["process", "-c", str(config), str(inbox)]) == 1
    capsys.readouterr()
    make_valid_jpeg(inbox, "waiting.jpg")
    (inbox / "ignored.part").write_bytes(b"partial")
    return config


def test_json_counts_a_done_job_a_quarantined_one_and_the_waiting_file(
    tmp_path: Path, emulator: FakeApiServer, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = _one_done_one_quarantined(tmp_path, emulator, monkeypatch, capsys)

    doc = _status_json(config, capsys)

    assert set(doc) == TOP_KEYS
    assert doc["daemon"] == {"running": False, "pid": None, "updated_at": None}
    assert doc["pause"] is None and doc["notes"] == [] and doc["state_dir_problem"] is None
    [folder] = doc["folders"]
    assert set(folder) == FOLDER_KEYS
    assert {k: folder[k] for k in ("name", "waiting", "in_work_area", "in_progress", "done",
                                   "quarantined", "failed", "error_files", "paused")} == {
        "name": "studio", "waiting": 1, "in_work_area": 0, "in_progress": 0, "done": 1,
        "quarantined": 1, "failed": 0, "error_files": 1, "paused": None}
    [error] = doc["recent_errors"]
    assert set(error) == ERROR_KEYS
    assert (error["file"], error["reason"], error["stage"]) == ("notes.jpg", "invalid_image",
                                                                "validate")


def test_table_shows_the_same_figures_and_the_last_error(
    tmp_path: Path, emulator: FakeApiServer, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = _one_done_one_quarantined(tmp_path, emulator, monkeypatch, capsys)

    assert main(["status", "-c", str(config)]) == EXIT_NOT_RUNNING

    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "daemon: not running (never ran with this state_dir)"
    assert lines[1] == "API: - (no daemon running)"
    header = next(line for line in lines if line.startswith("folder"))
    assert header.split()[:3] == ["folder", "waiting", "claimed"]
    row = next(line for line in lines if line.startswith("studio"))
    # waiting, claimed, in progress, done, quarantined now, quarantined total, failed, paused
    assert row.split() == ["studio", "1", "0", "0", "1", "1", "1", "0", "-"]
    legend = lines[lines.index("columns:"):]  # under the table, as in --help
    assert legend == LEGEND.splitlines()
    assert legend[-1].startswith("API: ok, or paused")
    assert any('"notes.jpg": quarantined at validate: invalid_image' in line for line in lines)


def test_every_timestamp_has_the_one_precision_of_error_files(
    tmp_path: Path, emulator: FakeApiServer, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``recent_errors[].at`` came with microseconds, ``daemon.updated_at`` and the error files
    to the second: one formatter (``clock.iso_utc_seconds``) for every time status shows."""
    config = _one_done_one_quarantined(tmp_path, emulator, monkeypatch, capsys)
    doc = _status_json(config, capsys)
    [error] = doc["recent_errors"]
    error_file = json.loads((tmp_path / "studio" / "quarantine" / "notes.jpg.error.json")
                            .read_text())
    seconds = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00"
    assert re.fullmatch(seconds, error["at"]), error["at"]
    assert re.fullmatch(seconds, error_file["quarantined_at"])


def test_a_missing_state_dir_is_no_jobs_yet_and_status_creates_nothing(
    tmp_path: Path, emulator: FakeApiServer, capsys: pytest.CaptureFixture[str],
) -> None:
    """status is read-only: run as root before the daemon's first start, it used to create
    state_dir and the ledger, root-owned, which the daemon's user then could not write."""
    config = write_config(tmp_path, emulator.base_url)
    shutil.rmtree(tmp_path / "studio")  # not even the inbox exists yet
    doc = _status_json(config, capsys)
    [folder] = doc["folders"]
    assert (folder["done"], folder["quarantined"], doc["recent_errors"]) == (0, 0, [])
    assert doc["credits"] == {"studio": {"today": 0.0, "this_month": 0.0}}
    assert folder["waiting"] is None  # the inbox does not exist yet: a note, no traceback
    assert any("inbox of studio" in note for note in doc["notes"])
    assert any("no jobs yet" in note for note in doc["notes"])
    assert not (tmp_path / "studio").exists()  # status creates no folder
    assert not (tmp_path / "state").exists()  # nor the state folder, nor the ledger


def test_status_opens_the_ledger_read_only(
    tmp_path: Path, emulator: FakeApiServer, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = _one_done_one_quarantined(tmp_path, emulator, monkeypatch, capsys)
    state = tmp_path / "state"
    for extra in state.glob("ledger.sqlite3-*"):  # -wal, -shm: gone once the last writer closed
        extra.unlink()
    before = sorted(p.name for p in state.iterdir())
    ledger = state / "ledger.sqlite3"
    ledger_before = ledger.read_bytes()
    doc = _status_json(config, capsys)
    assert doc["folders"][0]["done"] == 1
    assert ledger.read_bytes() == ledger_before  # not migrated, not written
    assert sorted(p.name for p in state.iterdir() if not p.name.endswith(("-wal", "-shm"))) \
        == before


def test_an_unusable_state_dir_degrades_to_a_note(
    tmp_path: Path, emulator: FakeApiServer, capsys: pytest.CaptureFixture[str],
) -> None:
    state = tmp_path / "state-is-a-file"
    state.write_text("not a folder")
    config = write_config(tmp_path, emulator.base_url, daemon={"state_dir": str(state)})
    (tmp_path / "studio" / "inbox").mkdir(parents=True, exist_ok=True)

    assert main(["status", "-c", str(config)]) == EXIT_NOT_RUNNING

    out = capsys.readouterr().out
    assert "note: cannot read the ledger in" in out
    row = next(line for line in out.splitlines() if line.startswith("studio"))
    assert row.split() == ["studio", "0", "0", "?", "?", "0", "?", "?", "-"]


def test_a_running_daemon_and_its_pause_are_shown(
    tmp_path: Path, emulator: FakeApiServer, capsys: pytest.CaptureFixture[str],
) -> None:
    config = write_config(tmp_path, emulator.base_url, retry={"auth_pause_s": 30})
    emulator.update(auth_fail=True)
    with InProcessDaemon(config) as daemon:
        make_valid_jpeg(tmp_path / "studio" / "inbox", "a.jpg")
        cfg = load_checked(config)
        wait_for(lambda: (collect_status(cfg)["pause"] or {}).get("reason") == "auth",
                 what="the daemon's pause in status")
        doc = _status_json(config, capsys, code=EXIT_OK)
        assert main(["status", "-c", str(config)]) == EXIT_OK
        table = capsys.readouterr().out
        emulator.update(auth_fail=False)  # the key is good again: resumed, "API: ok"
        daemon.service.engine.api_pause.resume()
        wait_for(lambda: collect_status(cfg)["folders"][0]["done"] == 1
                 and collect_status(cfg)["pause"] is None, what="the file done, no pause")
        assert main(["status", "-c", str(config)]) == EXIT_OK
        assert "API: ok" in capsys.readouterr().out.splitlines()
    assert doc["daemon"]["running"] is True
    assert doc["daemon"]["pid"] == os.getpid()
    assert doc["folders"][0]["live"]["watch"] in ("inotify", "polling")
    assert doc["pause"]["description"].startswith("paused: API key rejected (401)")
    assert f"daemon: running (pid {os.getpid()})" in table
    assert "API: paused: API key rejected (401)" in table

    assert API_KEY not in table and API_KEY not in json.dumps(doc)


def test_a_configuration_error_exits_78(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    broken = tmp_path / "config.toml"
    broken.write_text("[daemon]\nworkers = 0\n", "utf-8")
    assert main(["status", "-c", str(broken)]) == 78
    assert "daemon.workers" in capsys.readouterr().err


def test_a_killed_daemon_is_not_running_and_leaves_no_job_in_progress(
    tmp_path: Path, emulator: FakeApiServer, capsys: pytest.CaptureFixture[str],
) -> None:
    emulator.update(latency_process_s=30.0)  # its process calls never answer
    config = write_config(tmp_path, emulator.base_url, daemon={"stability_s": 0.1})
    inbox = tmp_path / "studio" / "inbox"
    drop_images(inbox, 2)
    with DaemonProcess(config) as daemon:
        wait_for(lambda: states(inbox).count("uploaded") == 2, what="two jobs in flight")
        wait_for(lambda: collect_status(load_checked(config))["folders"][0]["in_progress"] == 2,
                 what="status shows them in progress")
        daemon.kill9()
    doc = _status_json(config, capsys)
    assert main(["status", "-c", str(config)]) == EXIT_NOT_RUNNING
    table = capsys.readouterr().out.splitlines()
    assert doc["daemon"]["running"] is False and doc["pause"] is None
    [folder] = doc["folders"]
    assert (folder["in_progress"], folder["in_work_area"], folder["live"]) == (0, 2, None)
    assert table[0].startswith("daemon: not running (last seen ")
    assert table[1] == "API: - (no daemon running)"


def test_a_state_dir_removed_under_a_running_daemon_is_recreated_and_status_tells_the_truth(
    tmp_path: Path, emulator: FakeApiServer, capsys: pytest.CaptureFixture[str],
) -> None:
    config = write_config(tmp_path, emulator.base_url)
    state_dir = tmp_path / "state"
    with InProcessDaemon(config):
        wait_for(lambda: (state_dir / "status.json").exists(), what="the first status file")
        shutil.rmtree(state_dir)
        doc = _status_json(config, capsys, code=EXIT_OK)
        make_valid_jpeg(tmp_path / "studio" / "inbox", "after.jpg")
        wait_for(lambda: len(files_under(tmp_path / "studio" / "archive")) == 1,
                 what="a file processed after the removal")
        wait_for(lambda: _status_json(config, capsys, code=EXIT_OK)["folders"][0]["done"] == 1,
                 what="its job recorded in the new ledger")
    assert doc["daemon"]["running"] is True
    assert (state_dir / "daemon.lock").exists()
    assert job_dirs(tmp_path / "studio" / "inbox") == []
    assert _status_json(config, capsys)["daemon"]["running"] is False  # stopped: exit 3


def test_the_legend_is_in_help_too(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["status", "--help"])
    shown = capsys.readouterr().out
    for line in LEGEND.splitlines():
        assert line.strip() in shown


def test_quarantined_now_drops_after_a_requeue_and_the_total_stays(
    tmp_path: Path, emulator: FakeApiServer, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = _one_done_one_quarantined(tmp_path, emulator, monkeypatch, capsys)
    [before] = _status_json(config, capsys)["folders"]
    assert (before["quarantined_now"], before["quarantined_total"]) == (1, 1)
    assert main(["requeue", "-c", str(config), "--all"]) == 0
    capsys.readouterr()
    [after] = _status_json(config, capsys)["folders"]
    assert (after["quarantined_now"], after["quarantined_total"]) == (0, 1)
    assert after["waiting"] == before["waiting"] + 1  # back in the inbox
