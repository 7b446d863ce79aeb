"""systemd integration: sd_notify messages that can never raise.

Uses systemd-python (the ``systemd`` extra) when it is installed, else a plain datagram to
``$NOTIFY_SOCKET``, which is the whole protocol (sd_notify(3)). A broken socket is logged once
and then ignored: the daemon's work never depends on its supervisor hearing about it.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable, Mapping

log = logging.getLogger("bgcut_watchd.systemd")

Sender = Callable[[str], bool]


def _socket_address(name: str) -> str | bytes:
    # An abstract socket is written "@name" and sent as "\0name" (sd_notify(3)).
    return b"\0" + name[1:].encode() if name.startswith("@") else name


class Notifier:
    """Sends sd_notify messages; every method returns quietly when nothing listens.

    ``environ`` is read once: NOTIFY_SOCKET and WATCHDOG_USEC. Raises nothing, ever.
    """

    def __init__(self, environ: Mapping[str, str] = os.environ) -> None:
        self._socket_name = environ.get("NOTIFY_SOCKET", "")
        self._watchdog_usec = _parse_int(environ.get("WATCHDOG_USEC", ""))
        self._lock = threading.Lock()
        self._failed = False
        self._last_status = ""

    @property
    def enabled(self) -> bool:
        """True when a supervisor listens on NOTIFY_SOCKET."""
        return bool(self._socket_name)

    @property
    def watchdog_interval_s(self) -> float | None:
        """Half of systemd's WatchdogSec (how often to send WATCHDOG=1), or None."""
        return self._watchdog_usec / 2e6 if self._watchdog_usec else None

    def ready(self, status: str) -> None:
        self.send(f"READY=1\nSTATUS={status}")

    def status(self, status: str) -> None:
        """STATUS=..., sent only when it changed (the main loop calls this often)."""
        if status != self._last_status:
            self.send(f"STATUS={status}")

    def reloading(self) -> None:
        self.send("RELOADING=1")

    def reloaded(self, status: str) -> None:
        self.send(f"READY=1\nSTATUS={status}")

    def stopping(self, status: str = "stopping") -> None:
        self.send(f"STOPPING=1\nSTATUS={status}")

    def watchdog(self) -> None:
        self.send("WATCHDOG=1")

    def send(self, message: str) -> bool:
        """Send one datagram; True when it was delivered. Logs the first failure only."""
        if not self._socket_name:
            return False
        for line in message.splitlines():
            if line.startswith("STATUS="):
                self._last_status = line[len("STATUS="):]
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.connect(_socket_address(self._socket_name))
                sock.sendall(message.encode("utf-8", "replace"))
        except OSError as exc:
            with self._lock:
                if not self._failed:
                    self._failed = True
                    log.warning("cannot notify systemd at NOTIFY_SOCKET=%s: %s "
                                "(further failures are not logged)", self._socket_name, exc)
            return False
        return True


def _parse_int(text: str) -> int:
    try:
        return max(0, int(text))
    except ValueError:
        return 0
