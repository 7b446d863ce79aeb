"""Is a daemon alive for this ``state_dir``? A lock says so, not a file's presence.

Every running daemon holds a *shared* ``flock`` on ``<state_dir>/daemon.lock`` for its whole
life (shared: two daemons may share a state_dir, product.md's fault model). The kernel drops it
when the process dies, however it dies (``kill -9`` included), so :func:`daemon_alive` only has
to try an *exclusive* lock without blocking: refused means some daemon lives.

The daemon checks its lock every second (:meth:`DaemonLock.check`): if ``state_dir`` was removed
or replaced under it (the lock file at the path is no longer the one it holds), it re-creates the
folder and the lock (and reopens the ledger there), so ``status`` finds the truth again within a
second. When neither the lock file nor the ledger is there (a state_dir removed, or never used),
``status`` waits up to ``REAPPEAR_S`` for the lock to come back before it says "not running".
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from pathlib import Path

from bgcut_watchd.clock import Clock
from bgcut_watchd.ledger import LEDGER_NAME

LOCK_NAME = "daemon.lock"
REAPPEAR_S = 2.5  # a live daemon re-creates a lost lock within its 1 s report interval
_POLL_S = 0.05


class DaemonLock:
    """The running daemon's shared lock on ``<state_dir>/daemon.lock``."""

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / LOCK_NAME
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        """True once the lock was taken (even if ``state_dir`` lost it since)."""
        return self._fd is not None

    def acquire(self) -> None:
        """Create the folder and the file if needed and hold the shared lock. Raises OSError."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH)  # status holds LOCK_EX only for an instant
        except BaseException:
            os.close(fd)
            raise
        self.release()
        self._fd = fd

    def check(self) -> bool:
        """Re-take the lock if ``state_dir`` lost it (removed or replaced); True when it did.

        Raises OSError when it cannot be re-taken (the next call tries again).
        """
        if self._fd is not None and self._holds_the_file():
            return False
        self.acquire()
        return True

    def release(self) -> None:
        """Let go of the lock. Idempotent."""
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)

    def _holds_the_file(self) -> bool:
        assert self._fd is not None
        try:
            at_path = self.path.lstat()
        except FileNotFoundError:
            return False
        held = os.fstat(self._fd)
        return (at_path.st_dev, at_path.st_ino) == (held.st_dev, held.st_ino)


def daemon_alive(state_dir: Path, reappear_s: float = REAPPEAR_S,
                 clock: Clock = time.monotonic) -> bool | None:
    """True when a daemon holds ``state_dir``'s lock, False when none does, None when it cannot
    be told (the file cannot be opened: another user's, unreadable). A missing lock file in a
    state_dir without a ledger (removed under a daemon, or never used) gets ``reappear_s`` to
    come back (a live daemon re-creates it). Raises nothing."""
    fresh = not (state_dir / LEDGER_NAME).exists()
    deadline_s = clock() + (reappear_s if fresh else 0.0)
    while True:
        try:
            fd = os.open(state_dir / LOCK_NAME, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
        except (FileNotFoundError, NotADirectoryError):  # no lock: no daemon ever took it
            if clock() >= deadline_s:
                return False
            time.sleep(_POLL_S)  # polling for a file a live daemon re-creates
            continue
        except OSError:
            return None
        try:
            return _locked(fd)
        finally:
            os.close(fd)


def _locked(fd: int) -> bool | None:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return None
    with contextlib.suppress(OSError):
        fcntl.flock(fd, fcntl.LOCK_UN)
    return False
