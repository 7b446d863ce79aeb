"""WATCHDOG=1 only while the workers progress or idle: a hung worker must trip systemd's watchdog.

A real hang, not a slow answer: between the daemon and the emulator sits a TCP proxy that, for
the first request carrying a marker file name, answers a status line and then one header byte
every 50 ms. Each byte resets requests' read timeout, so the call never ends by itself (the way
a half-dead load balancer or a tarpit behaves). The daemon under test is a real subprocess and
the notifications arrive on a real $NOTIFY_SOCKET.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from bgcut_watchd.fake_api import FakeApiServer
from tests.daemon.conftest import NotifyListener
from tests.hostile import make_valid_jpeg
from tests.support import DaemonProcess, files_under, wait_for, write_config

MARKER = b"hang-me"
WATCHDOG_USEC = 2_000_000       # WatchdogSec=2s: the daemon beats every 1 s while healthy
# Service._workers_healthy: stalled after max(2 * 1 s, connect + longest read timeout + 5 s)
API_TIMEOUTS = {"connect_timeout_s": 0.5, "upload_timeout_s": 0.5, "process_timeout_s": 0.5,
                "download_timeout_s": 0.5}
STALL_AFTER_S = 0.5 + 0.5 + 5.0
SLACK_S = 2.0                   # one report period, scheduling, start-up


class StallingProxy:
    """Forwards TCP to ``upstream``; stalls the first request containing ``MARKER``."""

    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        self._upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.base_url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        self.stalled = threading.Event()     # a request is being stalled now
        self.released = threading.Event()    # stop stalling: close that connection
        self._used = threading.Lock()        # held once the one stall has been handed out
        self._threads: list[threading.Thread] = []

    def start(self) -> StallingProxy:
        self._spawn(self._accept)
        return self

    def close(self) -> None:
        self.released.set()
        self._listener.close()

    def _spawn(self, target: Callable[..., None], *args: object) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self._upstream)
            stall = threading.Event()
            self._spawn(self._client_to_upstream, client, upstream, stall)
            self._spawn(self._upstream_to_client, upstream, client, stall)

    def _client_to_upstream(self, client: socket.socket, upstream: socket.socket,
                            stall: threading.Event) -> None:
        tail = b""
        with contextlib.suppress(OSError):
            while data := client.recv(65536):
                if not stall.is_set() and MARKER in tail + data and self._used.acquire(False):
                    stall.set()
                    self._spawn(self._trickle, client)
                tail = data[-len(MARKER):]
                if not stall.is_set():
                    upstream.sendall(data)
        upstream.close()

    def _upstream_to_client(self, upstream: socket.socket, client: socket.socket,
                            stall: threading.Event) -> None:
        with contextlib.suppress(OSError):
            while data := upstream.recv(65536):
                if not stall.is_set():
                    client.sendall(data)

    def _trickle(self, client: socket.socket) -> None:
        self.stalled.set()
        with contextlib.suppress(OSError):
            client.sendall(b"HTTP/1.1 200 OK\r\nX-Stall: ")
            while not self.released.wait(0.05):
                client.sendall(b"z")
        self.stalled.clear()
        with contextlib.suppress(OSError):
            client.shutdown(socket.SHUT_RDWR)
        client.close()


@pytest.fixture
def stalling_proxy(emulator: FakeApiServer) -> Iterator[StallingProxy]:
    proxy = StallingProxy(emulator.base_url).start()
    try:
        yield proxy
    finally:
        proxy.close()


def daemon_for(tmp_path: Path, proxy: StallingProxy, listener: NotifyListener,
               workers: int) -> DaemonProcess:
    config = write_config(tmp_path, proxy.base_url, api=API_TIMEOUTS, variant_names=("full",),
                          daemon={"workers": workers, "stability_s": 0.1})
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
    tmp_path: Path, stalling_proxy: StallingProxy, notify_socket: NotifyListener,
) -> None:
    inbox = tmp_path / "studio" / "inbox"
    with daemon_for(tmp_path, stalling_proxy, notify_socket, workers=1) as daemon:
        notify_socket.wait_for_line("WATCHDOG=1")  # healthy while idle
        make_valid_jpeg(inbox, "hang-me.jpg")
        wait_for(stalling_proxy.stalled.is_set, what="the upload stalled")
        hung_s = time.monotonic()
        # Still beating for a while (a call may legitimately take its timeouts), then silence
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
        # Unstuck (the connection drops): the job is retried and the beats come back.
        stalling_proxy.released.set()
        released_s = time.monotonic()
        notify_socket.wait_for_line("WATCHDOG=1", timeout_s=10, after_s=released_s)
        wait_for(lambda: len(files_under(tmp_path / "studio" / "archive")) == 2,
                 what="both inputs archived after the hang")
        assert daemon.terminate() == 0


@pytest.mark.slow
def test_one_hung_worker_stops_the_watchdog_even_while_another_progresses(
    tmp_path: Path, stalling_proxy: StallingProxy, notify_socket: NotifyListener,
) -> None:
    inbox = tmp_path / "studio" / "inbox"
    with daemon_for(tmp_path, stalling_proxy, notify_socket, workers=2) as daemon:
        notify_socket.wait_for_line("WATCHDOG=1")
        make_valid_jpeg(inbox, "hang-me.jpg")
        wait_for(stalling_proxy.stalled.is_set, what="the upload stalled")
        hung_s = time.monotonic()
        archive = tmp_path / "studio" / "archive"
        deadline_s = hung_s + STALL_AFTER_S + SLACK_S + 2.5
        fed = 0
        silent = False
        while time.monotonic() < deadline_s and not silent:
            fed += 1  # the other worker finishes a job about every half second
            make_valid_jpeg(inbox, f"steady-{fed}.jpg")
            wait_for(lambda n=fed: len(files_under(archive)) == n, what=f"{fed} archived")
            beats = beats_between(notify_socket, hung_s, time.monotonic())
            silent = time.monotonic() - (beats[-1] if beats else hung_s) >= 2.5
        stalling_proxy.released.set()
        assert daemon.terminate() == 0
    assert silent, "WATCHDOG=1 kept coming although one worker was hung the whole time"
