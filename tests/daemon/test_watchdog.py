"""WATCHDOG=1 only while the workers progress or idle: a hung worker must trip systemd's watchdog.

A real hang, not a slow answer. Every HTTP call has a total deadline (``api.deadline``), so the
network can no longer hold a worker; what still can is a disk that stops answering, the way a
hard-mounted NFS share does when its server goes away. Here the folder's outbox is a real sshfs
mount over loopback (``tests.netfs.sshfs``) and the test stops the sshfs process with SIGSTOP:
the worker's write of its outputs then blocks in the kernel until SIGCONT. The daemon under test
is a real subprocess and the notifications arrive on a real $NOTIFY_SOCKET.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bgcut_watchd.fake_api import FakeApiServer
from tests.daemon.conftest import NotifyListener
from tests.hostile import make_valid_jpeg
from tests.netfs.sshfs import SshServer, mount, unmount
from tests.support import DaemonProcess, files_under, wait_for, write_config

WATCHDOG_USEC = 2_000_000       # WatchdogSec=2s: the daemon beats every 1 s while healthy
# Service._workers_healthy: stalled after max(2 * 1 s, connect + longest read timeout + 5 s)
API_TIMEOUTS = {"connect_timeout_s": 0.5, "upload_timeout_s": 0.5, "process_timeout_s": 0.5,
                "download_timeout_s": 0.5}
STALL_AFTER_S = 0.5 + 0.5 + 5.0
SLACK_S = 3.0                   # the job before the hang, one report period, scheduling


class FrozenShare:
    """An sshfs mount whose client process can be frozen (SIGSTOP) and thawed (SIGCONT)."""

    def __init__(self, proc: subprocess.Popen[bytes], mountpoint: Path) -> None:
        self._proc = proc
        self.mountpoint = mountpoint
        self.frozen = False

    def freeze(self) -> None:
        os.kill(self._proc.pid, signal.SIGSTOP)
        self.frozen = True

    def thaw(self) -> None:
        if self.frozen:
            os.kill(self._proc.pid, signal.SIGCONT)
            self.frozen = False


@pytest.fixture
def frozen_share(ssh_server: SshServer, tmp_path: Path) -> Iterator[FrozenShare]:
    share, proc = mount(ssh_server, tmp_path / "server", tmp_path / "client")
    handle = FrozenShare(proc, share.client)
    try:
        yield handle
    finally:
        handle.thaw()
        unmount(proc, share.client)


def daemon_for(tmp_path: Path, emulator: FakeApiServer, share: FrozenShare,
               listener: NotifyListener, folders: tuple[str, ...], workers: int) -> DaemonProcess:
    """``studio``'s outbox is on the share; any other folder is all local."""
    config = write_config(tmp_path, emulator.base_url, api=API_TIMEOUTS, variant_names=("full",),
                          folders=folders, daemon={"workers": workers, "stability_s": 0.1})
    local_outbox = f'outbox = "{tmp_path / "studio" / "outbox"}"'
    text = config.read_text("utf-8")
    assert local_outbox in text
    config.write_text(text.replace(local_outbox, f'outbox = "{share.mountpoint / "outbox"}"'),
                      "utf-8")
    env = {"NOTIFY_SOCKET": str(listener.path), "WATCHDOG_USEC": str(WATCHDOG_USEC)}
    return DaemonProcess(config, env=env)


def beats_between(listener: NotifyListener, start_s: float, end_s: float) -> list[float]:
    return [n.at_s for n in listener.lines("WATCHDOG=1") if start_s <= n.at_s < end_s]


def wait_for_silence(listener: NotifyListener, since_s: float, quiet_s: float,
                     timeout_s: float) -> float:
    """Wait until no WATCHDOG=1 came for ``quiet_s``; return when the silence began."""
    began: list[float] = []

    def quiet() -> bool:
        now = time.monotonic()
        beats = beats_between(listener, since_s, now)
        last = beats[-1] if beats else since_s
        began[:] = [last]
        return now - last >= quiet_s

    wait_for(quiet, timeout_s, interval_s=0.1, what=f"{quiet_s}s without WATCHDOG=1")
    return began[0]


@pytest.mark.slow
def test_a_hung_worker_stops_the_watchdog_and_recovery_resumes_it(
    tmp_path: Path, emulator: FakeApiServer, frozen_share: FrozenShare,
    notify_socket: NotifyListener,
) -> None:
    inbox = tmp_path / "studio" / "inbox"
    with daemon_for(tmp_path, emulator, frozen_share, notify_socket, ("studio",),
                    workers=1) as daemon:
        notify_socket.wait_for_line("WATCHDOG=1")  # healthy while idle
        frozen_share.freeze()
        make_valid_jpeg(inbox, "hang-me.jpg")  # its outputs' write will block on the share
        hung_s = time.monotonic()
        # Still beating for a while (a job may legitimately take its timeouts), then silence
        # long enough for systemd (WatchdogSec=2s) to kill and restart the daemon.
        silent_from = wait_for_silence(notify_socket, hung_s, quiet_s=2.5,
                                       timeout_s=STALL_AFTER_S + SLACK_S + 3.0)
        assert silent_from - hung_s <= STALL_AFTER_S + SLACK_S
        assert daemon.proc is not None and daemon.proc.poll() is None  # alive, only stuck
        # The main loop itself still runs: a new file changes STATUS=, yet no WATCHDOG=1.
        statuses_before = len(notify_socket.values("STATUS"))
        make_valid_jpeg(inbox, "queued.jpg")
        wait_for(lambda: len(notify_socket.values("STATUS")) > statuses_before,
                 what="a STATUS= update while hung")
        assert beats_between(notify_socket, silent_from + 0.01, time.monotonic()) == []
        assert files_under(tmp_path / "server" / "outbox") == []  # nothing got through
        # The disk answers again: the write completes and the beats come back.
        frozen_share.thaw()
        thawed_s = time.monotonic()
        notify_socket.wait_for_line("WATCHDOG=1", timeout_s=10, after_s=thawed_s)
        wait_for(lambda: len(files_under(tmp_path / "studio" / "archive")) == 2,
                 what="both inputs archived after the hang")
        assert len(files_under(tmp_path / "server" / "outbox")) == 2
        assert daemon.terminate() == 0


@pytest.mark.slow
def test_one_hung_worker_stops_the_watchdog_even_while_another_progresses(
    tmp_path: Path, emulator: FakeApiServer, frozen_share: FrozenShare,
    notify_socket: NotifyListener,
) -> None:
    with daemon_for(tmp_path, emulator, frozen_share, notify_socket, ("studio", "steady"),
                    workers=2) as daemon:
        notify_socket.wait_for_line("WATCHDOG=1")
        frozen_share.freeze()
        make_valid_jpeg(tmp_path / "studio" / "inbox", "hang-me.jpg")
        hung_s = time.monotonic()
        steady_inbox = tmp_path / "steady" / "inbox"
        archive = tmp_path / "steady" / "archive"
        deadline_s = hung_s + STALL_AFTER_S + SLACK_S + 2.5
        fed = 0
        silent = False
        while time.monotonic() < deadline_s and not silent:
            fed += 1  # the other worker finishes a job of the local folder meanwhile
            make_valid_jpeg(steady_inbox, f"steady-{fed}.jpg")
            wait_for(lambda n=fed: len(files_under(archive)) == n, what=f"{fed} archived")
            beats = beats_between(notify_socket, hung_s, time.monotonic())
            silent = time.monotonic() - (beats[-1] if beats else hung_s) >= 2.5
        assert fed >= 2, "the healthy worker should have gone on working"
        frozen_share.thaw()
        wait_for(lambda: len(files_under(tmp_path / "studio" / "archive")) == 1,
                 what="the hung job finished once the share answered")
        assert daemon.terminate() == 0
    assert silent, "WATCHDOG=1 kept coming although one worker was hung the whole time"
