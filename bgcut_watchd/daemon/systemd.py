"""systemd integration: sd_notify messages that can never raise.

Sends through systemd-python's ``systemd.daemon.notify`` (libsystemd's sd_notify, the
``systemd`` extra) when it is installed, else as a plain datagram to ``$NOTIFY_SOCKET``, which
is the whole protocol (sd_notify(3)). A broken socket is logged once and then ignored: the
daemon's work never depends on its supervisor hearing about it.

Messages the daemon sends (the unit is ``Type=notify``): ``READY=1`` once the folders are
watched and the startup scan begins, ``STATUS=`` with the live figures, ``RELOADING=1`` /
``READY=1`` around a SIGHUP reload, ``STOPPING=1`` and ``WATCHDOG=1`` (see ``service.py``).
"""

from __future__ import annotations

import importlib
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Mapping

log = logging.getLogger("bgcut_watchd.daemon.systemd")

Sender = Callable[[str], None]
"""Delivers one notification; raises OSError when it cannot."""


def _socket_address(name: str) -> str | bytes:
    # An abstract socket is written "@name" and sent as "\0name" (sd_notify(3)).
    return b"\0" + name[1:].encode() if name.startswith("@") else name


def datagram_sender(socket_name: str) -> Sender:
    """A sender writing one AF_UNIX datagram to ``socket_name`` (raises OSError on failure)."""
    address = _socket_address(socket_name)

    def send(message: str) -> None:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(message.encode("utf-8", "backslashreplace"))

    return send


def libsystemd_sender() -> Sender | None:
    """systemd-python's sd_notify, or None when the ``systemd`` extra is not installed.

    It reads ``NOTIFY_SOCKET`` from the process environment itself.
    """
    try:
        # import_module: mypy would take the repository's systemd/ folder (the unit) for it
        daemon = importlib.import_module("systemd.daemon")
    except ImportError:
        return None

    def send(message: str) -> None:
        if not daemon.notify(message):  # False: NOTIFY_SOCKET vanished from os.environ
            raise OSError("sd_notify: NOTIFY_SOCKET is not set in the environment")

    return send


def _default_sender(socket_name: str, environ: Mapping[str, str]) -> tuple[Sender, str]:
    # libsystemd reads os.environ: use it only when that is the environment we were given.
    if environ is os.environ or os.environ.get("NOTIFY_SOCKET") == socket_name:
        sender = libsystemd_sender()
        if sender is not None:
            return sender, "libsystemd"
    return datagram_sender(socket_name), "socket"


class Notifier:
    """Sends sd_notify messages; every method returns quietly when nothing listens.

    ``environ`` is read once: NOTIFY_SOCKET, WATCHDOG_USEC and WATCHDOG_PID. ``sender``
    replaces the default transport (libsystemd, else a raw datagram). Raises nothing, ever.
    """

    def __init__(self, environ: Mapping[str, str] = os.environ,
                 sender: Sender | None = None) -> None:
        self._socket_name = environ.get("NOTIFY_SOCKET", "")
        self._watchdog_usec = _watchdog_usec(environ)
        self._lock = threading.Lock()
        self._failed = False
        self._last_status = ""
        self.backend = "none"
        self._send: Sender | None = None
        if sender is not None:
            self._send, self.backend = sender, "custom"
        elif self._socket_name:
            self._send, self.backend = _default_sender(self._socket_name, environ)

    @property
    def enabled(self) -> bool:
        """True when a supervisor listens on NOTIFY_SOCKET."""
        return self._send is not None

    @property
    def watchdog_interval_s(self) -> float | None:
        """Half of systemd's WatchdogSec (how often to send WATCHDOG=1), or None."""
        return self._watchdog_usec / 2e6 if self._watchdog_usec and self.enabled else None

    def ready(self, status: str) -> None:
        """READY=1: startup is over (folders watched, the startup scan begun)."""
        self.send(f"READY=1\nSTATUS={_one_line(status)}")

    def status(self, status: str) -> None:
        """STATUS=..., sent only when it changed (the main loop calls this often)."""
        if _one_line(status) != self._last_status:
            self.send(f"STATUS={_one_line(status)}")

    def reloading(self) -> None:
        """RELOADING=1 with the MONOTONIC_USEC= that systemd >= 253 asks to go with it."""
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        self.send(f"RELOADING=1\nMONOTONIC_USEC={usec}\nSTATUS=reloading the configuration")

    def reloaded(self, status: str) -> None:
        """READY=1 again: the reload is over (applied or refused)."""
        self.send(f"READY=1\nSTATUS={_one_line(status)}")

    def stopping(self, status: str = "stopping") -> None:
        self.send(f"STOPPING=1\nSTATUS={_one_line(status)}")

    def watchdog(self) -> None:
        self.send("WATCHDOG=1")

    def send(self, message: str) -> bool:
        """Send one notification; True when it was delivered. Logs the first failure only."""
        if self._send is None:
            return False
        for line in message.splitlines():
            if line.startswith("STATUS="):
                self._last_status = line[len("STATUS="):]
        try:
            self._send(message)
        except Exception as exc:  # never raise: the daemon's work comes first
            self._log_failure_once(exc)
            return False
        return True

    def _log_failure_once(self, exc: Exception) -> None:
        with self._lock:
            if self._failed:
                return
            self._failed = True
        log.warning("cannot notify systemd at NOTIFY_SOCKET=%s: %s (further failures are not "
                    "logged)", self._socket_name, exc)


def _one_line(text: str) -> str:
    # A newline would end the STATUS= assignment and start a bogus one.
    return " ".join(text.splitlines())


def _watchdog_usec(environ: Mapping[str, str]) -> int:
    """WATCHDOG_USEC when the watchdog is meant for this process (sd_watchdog_enabled(3))."""
    usec = _parse_int(environ.get("WATCHDOG_USEC", ""))
    pid = environ.get("WATCHDOG_PID", "")
    if pid and _parse_int(pid) != os.getpid():
        return 0
    return usec


def _parse_int(text: str) -> int:
    try:
        return max(0, int(text))
    except ValueError:
        return 0
