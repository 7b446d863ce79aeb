"""sd_notify as systemd sees it: a real daemon subprocess, a real $NOTIFY_SOCKET datagram socket.

The watchdog's behaviour with a hung worker is in test_watchdog.py.
"""

from __future__ import annotations

import itertools
import json
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from bgcut_watchd.daemon.systemd import Notifier, datagram_sender, libsystemd_sender
from bgcut_watchd.fake_api import FakeApiServer
from tests.daemon.conftest import NotifyListener
from tests.hostile import make_text_named_jpg, make_valid_jpeg, make_valid_png
from tests.support import API_KEY, REPO, DaemonProcess, files_under, wait_for, write_config

FIGURES = re.compile(r"^watching (\d+) folder\(s\) · (\d+) waiting · (\d+) in progress · "
                     r"(\d+) done · (\d+) quarantined$")
PAUSED_401 = re.compile(r"^paused: API key rejected \(401\), (next try \d\d:\d\d|probing now)$")
WATCHDOG_ENV = {"WATCHDOG_USEC": "2000000"}  # WatchdogSec=2s: WATCHDOG=1 at least every 1s


def notify_env(listener: NotifyListener, **extra: str) -> dict[str, str]:
    return {"NOTIFY_SOCKET": str(listener.path), **WATCHDOG_ENV, **extra}


def figures(status: str) -> tuple[int, ...] | None:
    match = FIGURES.match(status)
    return tuple(int(g) for g in match.groups()) if match else None


def test_ready_status_watchdog_and_stopping_reach_the_notify_socket(
    tmp_path: Path, emulator: FakeApiServer, notify_socket: NotifyListener,
) -> None:
    config = write_config(tmp_path, emulator.base_url, folders=("studio", "shop"))
    with DaemonProcess(config, env=notify_env(notify_socket)) as daemon:
        notify_socket.wait_for_line("READY=1")
        for name in ("studio", "shop"):  # READY only once every folder exists
            assert all((tmp_path / name / sub).is_dir()
                       for sub in ("inbox", "outbox", "quarantine", "archive"))
        # The main loop runs once WATCHDOG=1 comes: the startup scan is over, so these two
        # files can only be noticed by the watchers READY promised.
        notify_socket.wait_for_line("WATCHDOG=1")
        make_valid_jpeg(tmp_path / "studio" / "inbox", "one.jpg")
        make_valid_png(tmp_path / "shop" / "inbox", "two.png")
        wait_for(lambda: (2, 0, 0, 2, 0) in map(figures, notify_socket.values("STATUS")),
                 what="STATUS= with 2 done")
        first_watchdog = notify_socket.lines("WATCHDOG=1")[0].at_s
        notify_socket.wait_for_line("WATCHDOG=1", after_s=first_watchdog + 2.5)
        assert daemon.terminate() == 0
    notify_socket.sync()
    statuses = notify_socket.values("STATUS")
    assert [figures(s) for s in statuses if s.startswith("watching") and "·" in s][-1] == (
        2, 0, 0, 2, 0)
    assert notify_socket.values("READY") == ["1"]
    stopping = notify_socket.lines("STOPPING=1")
    assert len(stopping) == 1
    assert notify_socket.lines("READY=1")[0].at_s < stopping[0].at_s
    # WATCHDOG=1 kept coming, busy and idle, every report (1 s, WatchdogSec/2), with a margin
    # well short of WatchdogSec: an idle sleep begun just before a report was due used to put
    # up to 2 s between two beats (1.5-1.65 s measured).
    beats = [n.at_s for n in notify_socket.lines("WATCHDOG=1") if n.at_s < stopping[0].at_s]
    assert len(beats) >= 3
    assert max(b - a for a, b in itertools.pairwise(beats)) < 1.4, beats


def test_sighup_sends_reloading_then_ready(
    tmp_path: Path, emulator: FakeApiServer, notify_socket: NotifyListener,
) -> None:
    config = write_config(tmp_path, emulator.base_url)
    with DaemonProcess(config, env=notify_env(notify_socket)) as daemon:
        ready_s = notify_socket.wait_for_line("READY=1")
        assert daemon.proc is not None
        daemon.proc.send_signal(signal.SIGHUP)
        reloading_s = notify_socket.wait_for_line("RELOADING=1")
        ready_again_s = notify_socket.wait_for_line("READY=1", after_s=reloading_s - 0.001)
        assert daemon.terminate() == 0
    assert ready_s < reloading_s <= ready_again_s
    usec = notify_socket.values("MONOTONIC_USEC")  # systemd >= 253 wants it with RELOADING=1
    assert len(usec) == 1 and int(usec[0]) > 0


def test_a_bad_configuration_exits_78_without_ready(
    tmp_path: Path, notify_socket: NotifyListener,
) -> None:
    config = write_config(tmp_path, "http://127.0.0.1:9", daemon={"workers": 0})
    with DaemonProcess(config, env=notify_env(notify_socket)) as daemon:
        assert daemon.proc is not None
        assert daemon.proc.wait(timeout=30) == 78
    notify_socket.sync()
    assert notify_socket.lines("READY=1") == []
    assert notify_socket.lines("WATCHDOG=1") == []
    assert "daemon.workers" in daemon.log_text()
    assert "Traceback" not in daemon.log_text()


def test_a_notify_socket_that_does_not_exist_is_one_warning_not_a_crash(
    tmp_path: Path, emulator: FakeApiServer,
) -> None:
    config = write_config(tmp_path, emulator.base_url)
    missing = tmp_path / "no-such-dir" / "notify.sock"
    inbox = tmp_path / "studio" / "inbox"
    env = {"NOTIFY_SOCKET": str(missing), **WATCHDOG_ENV}
    with DaemonProcess(config, env=env) as daemon:
        wait_for(inbox.is_dir, what="the inbox created")
        for count, name in enumerate(("a.jpg", "b.jpg"), start=1):
            make_valid_jpeg(inbox, name)  # each one changes STATUS= and so tries to send again
            wait_for(lambda n=count: len(files_under(tmp_path / "studio" / "archive")) == n,
                     what=f"{name} archived")
        assert daemon.terminate() == 0
    log = daemon.log_text()
    assert log.count("cannot notify systemd") == 1, log
    assert str(missing) in log
    assert "Traceback" not in log


def test_the_api_key_is_in_no_notification_and_no_status_output(
    tmp_path: Path, emulator: FakeApiServer, notify_socket: NotifyListener,
) -> None:
    config = write_config(tmp_path, emulator.base_url, retry={"auth_pause_s": 60})
    inbox = tmp_path / "studio" / "inbox"
    env = notify_env(notify_socket, BGCUT_WATCHD_LOG_LEVEL="DEBUG")
    with DaemonProcess(config, env=env) as daemon:
        notify_socket.wait_for_line("READY=1")
        make_text_named_jpg(inbox)  # quarantined: an error file
        wait_for(lambda: any(p.name.endswith(".error.json")
                             for p in files_under(tmp_path / "studio" / "quarantine")),
                 what="an error file")
        emulator.update(auth_fail=True)
        make_valid_jpeg(inbox, "during-401.jpg")
        wait_for(lambda: any(PAUSED_401.match(s) for s in notify_socket.values("STATUS")),
                 what="STATUS= saying the 401 pause")
        outputs = [_status_command(config, *flags) for flags in ((), ("--json",))]
        assert daemon.terminate() == 0
    assert "paused" in outputs[0] and json.loads(outputs[1])["pause"] is not None
    notify_socket.sync()
    seen = b"".join(notify_socket.datagrams) + "".join(outputs).encode()
    for place in files_under(tmp_path):
        if place != config and "emulator-storage" not in place.parts:
            seen += place.read_bytes()
    assert API_KEY.encode() not in seen
    assert API_KEY[-8:].encode() not in seen


def _status_command(config: Path, *flags: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "bgcut_watchd", "status", "-c", str(config), *flags],
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO), "BGCUT_API_KEY": API_KEY},
        capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    return result.stdout + result.stderr


# -- the Notifier itself, on a real socket ------------------------------------------------------

def test_both_transports_deliver_one_datagram_per_message(
    notify_socket: NotifyListener, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", str(notify_socket.path))
    libsystemd = libsystemd_sender()
    senders = [datagram_sender(str(notify_socket.path))]
    if libsystemd is not None:
        senders.append(libsystemd)
    for index, sender in enumerate(senders):
        notifier = Notifier({"NOTIFY_SOCKET": str(notify_socket.path)}, sender=sender)
        notifier.status(f"line one\nline two {index}")
        notifier.status(f"line one\nline two {index}")  # unchanged: not sent again
    notify_socket.sync()
    assert notify_socket.values("STATUS") == [f"line one line two {i}"
                                              for i in range(len(senders))]


def test_the_default_transport_is_libsystemd_when_installed(
    notify_socket: NotifyListener, monkeypatch: pytest.MonkeyPatch,
) -> None:
    pytest.importorskip("systemd.daemon", reason="the systemd extra (systemd-python) is absent")
    monkeypatch.setenv("NOTIFY_SOCKET", str(notify_socket.path))
    notifier = Notifier()
    notifier.ready("up")
    notify_socket.wait_for_line("READY=1")
    assert notifier.backend == "libsystemd"
    assert Notifier({"NOTIFY_SOCKET": "/elsewhere"}).backend == "socket"  # not os.environ's


def test_a_watchdog_meant_for_another_process_is_ignored() -> None:
    environ = {"NOTIFY_SOCKET": "/run/x", "WATCHDOG_USEC": "4000000"}
    assert Notifier(environ).watchdog_interval_s == 2.0
    assert Notifier({**environ, "WATCHDOG_PID": "1"}).watchdog_interval_s is None
    assert Notifier({"WATCHDOG_USEC": "4000000"}).watchdog_interval_s is None  # nobody listens


def test_a_failing_socket_never_raises_and_is_logged_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    refused = tmp_path / "refused.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as bound:
        bound.bind(str(refused))
    # The socket file stays but nobody reads it: connect() is refused, as after a crash.
    notifier = Notifier({"NOTIFY_SOCKET": str(refused)})
    with caplog.at_level("WARNING", logger="bgcut_watchd.daemon.systemd"):
        results = [notifier.send("WATCHDOG=1") for _ in range(5)]
        notifier.ready("x")
        notifier.stopping()
    assert results == [False] * 5
    assert len(caplog.records) == 1
    assert "cannot notify systemd" in caplog.records[0].getMessage()
