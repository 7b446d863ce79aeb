"""The API slots: at most ``workers`` jobs between their upload and the end of their last
download.

The worker pool has more threads than slots (``engine.threads_for``): while ``workers`` jobs
wait on the API, the other threads claim and check the next files, or publish and dispose of
the last ones, so a job's local work no longer stands between two jobs' API calls (issue 14:
it was ~20% of a job's wall time). A job takes a slot right before its first API call and gives
it back when its last download has ended (the outputs' checks run after: ``job.fetch``), or
when its run ends, whatever the outcome.

A job waiting for a slot when the daemon stops must not start API work: :meth:`close` wakes
every waiter with :class:`GateClosed` (the job is put back, resumed at the next start). No
timer: waiters sleep on one condition variable until a slot is given back or the slots close.
"""

from __future__ import annotations

import threading

from bgcut_watchd.control.guard import GateClosed


class ApiSlots:
    """``count`` slots; :meth:`take` waits for one. Thread-safe."""

    def __init__(self, count: int) -> None:
        """Raises ValueError when ``count`` < 1."""
        if count < 1:
            raise ValueError(f"slots must be >= 1, got {count}")
        self.count = count
        self._free = count
        self._closed = False
        self._cond = threading.Condition()

    def take(self) -> None:
        """Wait for a free slot and take it. Raises GateClosed once the slots are closed."""
        with self._cond:
            while self._free == 0 and not self._closed:
                self._cond.wait()
            if self._closed:
                raise GateClosed("stopping: no new API work")
            self._free -= 1

    def give(self) -> None:
        """Give a taken slot back. Raises ValueError when none is taken (a bug)."""
        with self._cond:
            if self._free >= self.count:
                raise ValueError("an API slot was given back that was not taken")
            self._free += 1
            self._cond.notify()

    def close(self) -> None:
        """Stop handing out slots: every waiter, now and later, gets GateClosed."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
