"""A real sd_notify listener: an AF_UNIX datagram socket, read on a thread, every line stamped.

systemd reads ``$NOTIFY_SOCKET`` the same way: one datagram per notification, newline-separated
``KEY=value`` assignments (sd_notify(3)).
"""

from __future__ import annotations

import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support import wait_for

SYNC = "X_TEST_SYNC="


@dataclass(frozen=True)
class Notification:
    at_s: float      # time.monotonic() when it was read
    line: str        # one KEY=value assignment


class NotifyListener:
    """Binds ``path`` and records every assignment received until ``close()``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.bind(str(path))
        self._sock.settimeout(0.05)
        self._lines: list[Notification] = []
        self.datagrams: list[bytes] = []
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True, name="notify-listener")
        self._thread.start()

    def _read(self) -> None:
        while not self._closed.is_set():
            try:
                data = self._sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            now = time.monotonic()
            with self._lock:
                self.datagrams.append(data)
                self._lines.extend(Notification(now, line)
                                   for line in data.decode("utf-8", "replace").splitlines())

    def lines(self, prefix: str = "") -> list[Notification]:
        with self._lock:
            return [n for n in self._lines if n.line.startswith(prefix)
                    and not n.line.startswith(SYNC)]

    def values(self, key: str) -> list[str]:
        """The values of every ``KEY=`` assignment received so far, in order."""
        return [n.line[len(key) + 1:] for n in self.lines(key + "=")]

    def wait_for_line(self, line: str, timeout_s: float = 15.0, after_s: float = 0.0) -> float:
        """Wait for the assignment ``line`` (read after ``after_s``); return when it was read."""
        found: list[float] = []

        def seen() -> bool:
            found[:] = [n.at_s for n in self.lines(line) if n.line == line and n.at_s > after_s]
            return bool(found)

        wait_for(seen, timeout_s, what=f"notification {line!r}")
        return found[0]

    def sync(self) -> None:
        """Return once every datagram sent before this call has been read (FIFO socket)."""
        marker = f"{SYNC}{time.monotonic_ns()}"
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sender:
            sender.sendto(marker.encode(), str(self.path))
        wait_for(lambda: any(n.line == marker for n in self._all()), 5.0, what="listener sync")

    def _all(self) -> list[Notification]:
        with self._lock:
            return list(self._lines)

    def close(self) -> None:
        self._closed.set()
        self._thread.join(timeout=5)
        self._sock.close()


@pytest.fixture
def notify_socket() -> Iterator[NotifyListener]:
    # Not under tmp_path: a socket path must fit in sun_path (108 bytes).
    with tempfile.TemporaryDirectory(prefix="bgcut-notify-") as folder:
        listener = NotifyListener(Path(folder) / "notify.sock")
        try:
            yield listener
        finally:
            listener.close()
