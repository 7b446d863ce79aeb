"""The daemon's lifecycle as systemd drives it, on a real subprocess: SIGTERM (once, twice),
bad configurations (exit 78), SIGHUP reloads, startup recovery, and the API key never leaking.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from bgcut_watchd.fake_api import FakeApiServer
from tests.hostile import make_text_named_jpg, make_valid_jpeg, make_valid_png
from tests.support import (
    API_KEY,
    REPO,
    WORK_DIR,
    DaemonProcess,
    api_calls_per_job,
    assert_no_partial_set_visible,
    assert_outbox_complete_and_decodable,
    drop_images,
    files_under,
    inputs_anywhere,
    job_dirs,
    sha256_of,
    states,
    visible_files,
    wait_for,
    wait_for_log,
    write_config,
)

SECRET_PART = API_KEY[-10:]  # a fragment of the key: no part of it may leak either


# -- SIGTERM ------------------------------------------------------------------------------------

@pytest.mark.parametrize("shutdown_timeout_s", [5.0, 0.5])
def test_sigterm_with_jobs_in_flight_exits_0_in_time_and_loses_nothing(
    tmp_path: Path, emulator: FakeApiServer, shutdown_timeout_s: float,
) -> None:
    emulator.update(latency_process_s=1.0)
    config = write_config(tmp_path, emulator.base_url, daemon={
        "workers": 2, "stability_s": 0.1, "shutdown_timeout_s": shutdown_timeout_s})
    root = tmp_path / "studio"
    sources = drop_images(root / "inbox", 5)

    with DaemonProcess(config) as daemon:
        wait_for(lambda: states(root / "inbox").count("uploaded") == 2,
                 what="two process calls in flight")
        started = time.monotonic()
        assert daemon.terminate(timeout_s=shutdown_timeout_s + 10) == 0
        elapsed_s = time.monotonic() - started
    assert elapsed_s < shutdown_timeout_s + 2.0
    finished_in_time = shutdown_timeout_s > 1.5  # the in-flight calls take about 1 s
    assert len(files_under(root / "archive")) == (2 if finished_in_time else 0)
    assert ("stopped with jobs in flight" in daemon.log_text()) is not finished_in_time
    assert daemon.log_text().count("draining") == 1  # said once, not at every look
    assert inputs_anywhere(root) == Counter(sources.values())
    assert_no_partial_set_visible(root / "outbox")

    emulator.update(latency_process_s=0.0)
    with DaemonProcess(config) as again:
        wait_for(lambda: len(files_under(root / "archive")) == 5, what="every input archived")
        assert again.terminate() == 0
    assert inputs_anywhere(root) == Counter(sources.values())
    assert job_dirs(root / "inbox") == [] and visible_files(root / "inbox") == []
    assert_outbox_complete_and_decodable(root / "outbox", sorted(sources))


def test_a_second_sigterm_exits_at_once_and_still_loses_nothing(
    tmp_path: Path, emulator: FakeApiServer,
) -> None:
    emulator.update(latency_process_s=3.0)
    config = write_config(tmp_path, emulator.base_url, daemon={
        "workers": 2, "stability_s": 0.1, "shutdown_timeout_s": 10})
    root = tmp_path / "studio"
    sources = drop_images(root / "inbox", 3)

    with DaemonProcess(config) as daemon:
        assert daemon.proc is not None
        wait_for(lambda: states(root / "inbox").count("uploaded") == 2,
                 what="two process calls in flight")
        daemon.proc.send_signal(signal.SIGTERM)
        wait_for_log(daemon, "stopping: no new claims")  # the first one was handled
        started = time.monotonic()
        daemon.proc.send_signal(signal.SIGTERM)
        assert daemon.proc.wait(timeout=10) == 0
        elapsed_s = time.monotonic() - started
    assert elapsed_s < 1.0  # not the 3 s of the calls in flight, nor the 10 s timeout
    status = json.loads((tmp_path / "state" / "status.json").read_text("utf-8"))
    assert status["running"] is False
    assert "stopped with jobs in flight" in daemon.log_text()
    assert inputs_anywhere(root) == Counter(sources.values())
    # The two in flight and the third, claimed and checked, waiting for an API slot.
    assert len(job_dirs(root / "inbox")) == 3
    assert_no_partial_set_visible(root / "outbox")

    emulator.update(latency_process_s=0.0)
    with DaemonProcess(config) as again:
        wait_for(lambda: len(files_under(root / "archive")) == 3, what="every input archived")
        assert again.terminate() == 0
    assert inputs_anywhere(root) == Counter(sources.values())
    assert_outbox_complete_and_decodable(root / "outbox", sorted(sources))


# -- bad configuration --------------------------------------------------------------------------

def run_once(config: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``python -m bgcut_watchd run -c CONFIG`` with exactly ``env`` (plus PYTHONPATH)."""
    return subprocess.run(
        [sys.executable, "-m", "bgcut_watchd", "run", "-c", str(config)],
        env={"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(REPO), **env},
        capture_output=True, text=True, timeout=20, check=False, stdin=subprocess.DEVNULL)


def test_a_bad_configuration_exits_78_listing_every_problem_without_a_traceback(
    tmp_path: Path,
) -> None:
    config = write_config(
        tmp_path, "http://127.0.0.1:9", daemon={"workers": 0, "bogus_key": 1},
        api={"connect_timeout_s": "soon"}, folder={"on_success": "shred"},
        variant_names=("full", "nope"))
    result = run_once(config, {"BGCUT_API_KEY": API_KEY})
    assert result.returncode == 78
    for key_path in ("daemon.workers", "daemon.bogus_key", "api.connect_timeout_s",
                     "folders[0].on_success", "folders[0].variants[1]"):
        assert key_path in result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""
    # Readable lines, one problem per line: never one line with literal "\n" in it.
    lines = result.stderr.splitlines()
    assert lines[0] == "invalid configuration (5 problem(s)):"
    assert all(line.startswith("  - ") for line in lines[1:6]) and "\\n" not in result.stderr
    assert not (tmp_path / "state" / "status.json").exists()  # it never started


def test_an_unreadable_configuration_file_exits_78(tmp_path: Path) -> None:
    broken = tmp_path / "broken.toml"
    broken.write_text("[daemon\nworkers = ", "utf-8")
    for path in (broken, tmp_path / "missing.toml"):
        result = run_once(path, {"BGCUT_API_KEY": API_KEY})
        assert result.returncode == 78
        assert str(path) in result.stderr and "Traceback" not in result.stderr


def test_a_missing_api_key_exits_78_naming_where_it_looked(tmp_path: Path) -> None:
    key_file = tmp_path / "secrets" / "api-key"
    config = write_config(tmp_path, "http://127.0.0.1:9", api={"api_key_file": str(key_file)})
    result = run_once(config, {})
    assert result.returncode == 78
    for place in ("CREDENTIALS_DIRECTORY", "BGCUT_API_KEY", str(key_file)):
        assert place in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("where", ["environment", "key file", "credential"])
def test_an_unusable_api_key_exits_78_and_never_shows_the_key(
    tmp_path: Path, where: str,
) -> None:
    key_file = tmp_path / "secrets" / "api-key"
    key_file.parent.mkdir()
    config = write_config(tmp_path, "http://127.0.0.1:9", api={"api_key_file": str(key_file)})
    env: dict[str, str] = {}
    if where == "environment":
        env["BGCUT_API_KEY"] = f"{API_KEY} with spaces"
    elif where == "key file":
        key_file.write_bytes(b"\xff\xfe" + API_KEY.encode())  # not UTF-8
    else:
        (tmp_path / "creds").mkdir()
        (tmp_path / "creds" / "api-key").write_text(f"{API_KEY}\x07\n", "utf-8")
        env["CREDENTIALS_DIRECTORY"] = str(tmp_path / "creds")
    result = run_once(config, env)
    assert result.returncode == 78
    assert "api" in result.stderr and "Traceback" not in result.stderr
    assert SECRET_PART not in result.stderr + result.stdout


@pytest.mark.parametrize("damage", ["not a database", "newer schema"])
def test_an_unusable_ledger_exits_78_without_a_traceback(tmp_path: Path, damage: str) -> None:
    config = write_config(tmp_path, "http://127.0.0.1:9")
    ledger = tmp_path / "state" / "ledger.sqlite3"
    ledger.parent.mkdir()
    if damage == "not a database":
        ledger.write_bytes(b"this is not an SQLite file, it is just text\n" * 20)
    else:
        with contextlib.closing(sqlite3.connect(ledger)) as conn:
            conn.execute("PRAGMA user_version = 99")
    result = run_once(config, {"BGCUT_API_KEY": API_KEY})
    assert result.returncode == 78
    assert "daemon.state_dir" in result.stderr and "Traceback" not in result.stderr


# -- SIGHUP -------------------------------------------------------------------------------------

def test_sighup_adds_a_folder_and_an_invalid_reload_keeps_the_running_configuration(
    tmp_path: Path, emulator: FakeApiServer,
) -> None:
    config = write_config(tmp_path, emulator.base_url, daemon={"stability_s": 0.1})
    with DaemonProcess(config) as daemon:
        assert daemon.proc is not None
        wait_for_log(daemon, "watching 1 folder(s)")
        write_config(tmp_path, emulator.base_url, folders=("studio", "second"),
                     daemon={"stability_s": 0.1})
        daemon.proc.send_signal(signal.SIGHUP)
        wait_for_log(daemon, "configuration reloaded: 2 folder(s)")
        make_valid_png(tmp_path / "second" / "inbox", "new.png")
        wait_for(lambda: len(files_under(tmp_path / "second" / "archive")) == 1,
                 what="the new folder's file archived")

        write_config(tmp_path, emulator.base_url, folders=("studio", "second"),
                     daemon={"stability_s": 0.1, "workers": 0})
        daemon.proc.send_signal(signal.SIGHUP)
        wait_for_log(daemon, "reload refused")
        make_valid_jpeg(tmp_path / "studio" / "inbox", "old.jpg")
        make_valid_jpeg(tmp_path / "second" / "inbox", "newer.jpg")
        wait_for(lambda: len(files_under(tmp_path / "studio" / "archive")) == 1
                 and len(files_under(tmp_path / "second" / "archive")) == 2,
                 what="both folders still served")
        assert daemon.proc.poll() is None
        assert daemon.terminate() == 0
    assert "daemon.workers" in daemon.log_text()  # the refusal says why
    assert len(visible_files(tmp_path / "second" / "outbox")) == 6


def test_sighup_resumes_the_jobs_left_in_a_folder_it_adds_back(
    tmp_path: Path, emulator: FakeApiServer,
) -> None:
    emulator.update(latency_process_s=30.0)  # the killed daemon's call never answers
    both = ("studio", "second")
    config = write_config(tmp_path, emulator.base_url, folders=both, daemon={"stability_s": 0.1})
    second = tmp_path / "second"
    (second / "inbox").mkdir(parents=True, exist_ok=True)
    source = sha256_of(make_valid_jpeg(second / "inbox", "left.jpg"))
    with DaemonProcess(config) as first:
        wait_for(lambda: states(second / "inbox") == ["uploaded"], what="the job uploaded")
        first.kill9()

    emulator.update(latency_process_s=0.0)
    write_config(tmp_path, emulator.base_url, folders=("studio",), daemon={"stability_s": 0.1})
    with DaemonProcess(config) as daemon:
        assert daemon.proc is not None
        wait_for_log(daemon, "watching 1 folder(s)")
        write_config(tmp_path, emulator.base_url, folders=both, daemon={"stability_s": 0.1},
                     api={"max_requests_per_minute": 600})
        daemon.proc.send_signal(signal.SIGHUP)
        # The resumed job looks for the killed call's outputs for process_timeout_s first.
        wait_for(lambda: len(files_under(second / "archive")) == 1, timeout_s=30,
                 what="the job resumed")
        assert daemon.terminate() == 0
    log_text = daemon.log_text()
    assert "configuration reloaded: 2 folder(s), 1 unfinished job(s) resumed" in log_text
    assert "changes to [api] take effect only after a restart" in log_text
    assert [sha256_of(p) for p in files_under(second / "archive")] == [source]
    assert_outbox_complete_and_decodable(second / "outbox", ["left.jpg"])


# -- startup recovery ---------------------------------------------------------------------------

def test_files_present_at_startup_are_processed_and_ignored_ones_left_alone(
    tmp_path: Path, emulator: FakeApiServer,
) -> None:
    config = write_config(tmp_path, emulator.base_url, daemon={"stability_s": 0.1})
    root = tmp_path / "studio"
    sources = drop_images(root / "inbox", 3)
    sources.update({f"sub/{k}": v for k, v in drop_images(root / "inbox" / "sub", 2).items()})
    ignored = [make_valid_jpeg(root / "inbox", ".hidden.jpg"),
               make_valid_jpeg(root / "inbox", "upload.jpg.part")]
    with DaemonProcess(config) as daemon:
        wait_for(lambda: len(files_under(root / "archive")) == 5, what="five inputs archived")
        assert daemon.terminate() == 0
    assert_outbox_complete_and_decodable(root / "outbox", sorted(sources))
    assert [p for p in files_under(root / "inbox") if WORK_DIR not in p.parts] == sorted(ignored)


def test_jobs_left_in_the_work_area_by_a_killed_daemon_are_resumed_without_uploading_again(
    tmp_path: Path, emulator: FakeApiServer,
) -> None:
    emulator.update(latency_process_s=30.0)  # the calls in flight never answer the killed one
    config = write_config(tmp_path, emulator.base_url, daemon={"stability_s": 0.1})
    root = tmp_path / "studio"
    sources = drop_images(root / "inbox", 3)
    with DaemonProcess(config) as first:
        wait_for(lambda: states(root / "inbox").count("uploaded") == 3, what="three jobs uploaded")
        first.kill9()
    assert visible_files(root / "inbox") == [] and len(job_dirs(root / "inbox")) == 3
    # Each request is logged once answered (a moment after the daemon had its answer).
    wait_for(lambda: sum(e.endpoint == "upload" for e in emulator.requests()) == 3,
             what="the three uploads logged")
    uploads_before = [e for e in emulator.requests() if e.endpoint == "upload"]

    emulator.update(latency_process_s=0.0)
    with DaemonProcess(config) as second:
        # Each resumed job looks for the killed call's outputs for process_timeout_s first.
        wait_for(lambda: len(files_under(root / "archive")) == 3, timeout_s=30,
                 what="three inputs archived")
        assert second.terminate() == 0
    assert "3 unfinished job(s) resumed" in second.log_text()
    assert [e for e in emulator.requests() if e.endpoint == "upload"] == uploads_before
    calls = api_calls_per_job(emulator.requests())
    assert sorted(c["process"] for c in calls.values()) == [1, 1, 1]
    assert inputs_anywhere(root) == Counter(sources.values())
    assert job_dirs(root / "inbox") == []
    assert_outbox_complete_and_decodable(root / "outbox", sorted(sources))


# -- the API key never leaks --------------------------------------------------------------------

def test_the_api_key_appears_in_no_log_status_or_error_file(
    tmp_path: Path, emulator: FakeApiServer,
) -> None:
    emulator.update(fail_5xx=0.3, latency_process_s=0.02)
    config = write_config(tmp_path, emulator.base_url, daemon={"stability_s": 0.1},
                          retry={"auth_pause_s": 0.5})
    root = tmp_path / "studio"
    status_path = tmp_path / "state" / "status.json"
    drop_images(root / "inbox", 3)
    make_text_named_jpg(root / "inbox")
    env = {"BGCUT_WATCHD_LOG_LEVEL": "DEBUG"}
    with DaemonProcess(config, env=env) as daemon:
        wait_for(lambda: len(files_under(root / "archive")) == 3, what="three inputs archived")
        emulator.update(auth_fail=True, fail_5xx=0.0)
        drop_images(root / "inbox", 1, prefix="during-401")
        wait_for(lambda: status_path.exists()
                 and json.loads(status_path.read_text("utf-8"))["pause"] is not None,
                 what="the 401 pause reported in status.json")
        emulator.update(auth_fail=False)
        wait_for(lambda: len(files_under(root / "archive")) == 4, what="resumed after the 401")
        assert daemon.terminate() == 0

    scanned = [p for p in files_under(tmp_path)
               if p != config and "emulator-storage" not in p.parts]
    names = {p.name for p in scanned}
    assert {"daemon.log", "status.json", "notes.jpg.error.json"} <= names
    assert "401" in (tmp_path / "daemon.log").read_text("utf-8")  # the pause was logged
    leaking = [p for p in scanned
               if API_KEY.encode() in p.read_bytes() or SECRET_PART.encode() in p.read_bytes()]
    assert leaking == []
