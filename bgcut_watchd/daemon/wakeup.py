"""A wake-up call that a signal handler may ring: a self-pipe, no lock anywhere.

Why not ``threading.Event``: its ``set``, ``clear`` and ``wait`` take the lock of a condition
variable, and a Python signal handler runs in the main thread *between any two bytecodes*,
including inside ``Event.clear()`` or at the end of ``Event.wait()`` while that lock is held.
A handler calling ``set()`` there waits forever for a lock its own thread holds: the main loop
deadlocks. A SIGHUP storm (300 reloads, one every 5 ms) hit that window about once in five runs
(issue 9, finding 14; ``tests/daemon/test_reload_storm.py``). Writing a byte to a pipe takes no
lock, so ``ring()`` is safe from a signal handler and from any thread alike.
"""

from __future__ import annotations

import contextlib
import math
import os
import select


class Wakeup:
    """Ring from anywhere (signal handlers included); wait and clear on one thread. Close it."""

    def __init__(self) -> None:
        self._read_fd, self._write_fd = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._poll = select.poll()
        self._poll.register(self._read_fd, select.POLLIN)

    def set(self) -> None:
        """Ring: the next (or current) ``wait`` returns at once. Never blocks, never raises."""
        if self._write_fd < 0:
            return
        with contextlib.suppress(OSError):  # a full pipe is rung already
            os.write(self._write_fd, b"\0")

    def is_set(self) -> bool:
        """True when a ring waits to be cleared."""
        return self.wait(0.0)

    def wait(self, timeout_s: float | None = None) -> bool:
        """Sleep until rung or ``timeout_s`` passed; True when rung. Does not clear."""
        if self._read_fd < 0:
            return True
        timeout_ms = None if timeout_s is None else max(0, math.ceil(timeout_s * 1000))
        return bool(self._poll.poll(timeout_ms))

    def clear(self) -> None:
        """Forget every ring so far."""
        if self._read_fd < 0:
            return
        with contextlib.suppress(BlockingIOError):
            while os.read(self._read_fd, 4096):
                pass

    def close(self) -> None:
        """Close the pipe; later rings are ignored and waits return at once. Idempotent.
        Call it once no other thread rings any more (a closed descriptor's number is reused)."""
        fds, self._read_fd, self._write_fd = (self._read_fd, self._write_fd), -1, -1
        for fd in fds:
            if fd >= 0:
                os.close(fd)
