"""Timed actions for the calls' deadlines: one thread for many alarms.

Every HTTP call sets an alarm (``api.deadline``) and nearly every call cancels it well before it
rings. ``threading.Timer`` would start a thread per call, about 0.1 ms of CPU each, five times
per job; an :class:`AlarmClock` keeps the alarms in a heap served by one daemon thread, which
wakes only for the earliest one (a new alarm due later costs a heap push, no wake-up). Cancelled
alarms stay in the heap until they come up, unless they pile up (more than twice the live ones):
then the heap is rebuilt. The thread ends after ``IDLE_S`` without alarms and starts again on
demand. Actions run on that thread, outside the lock, one at a time: they must be quick (a
deadline's only shuts a socket down).
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable
from typing import Final, Protocol

log = logging.getLogger("bgcut_watchd.api")

IDLE_S: Final = 30.0
_COMPACT_SLACK: Final = 64


class Cancellable(Protocol):
    """A set alarm (or a started ``threading.Timer``)."""

    def cancel(self) -> None: ...


TimerFactory = Callable[[float, Callable[[], None]], Cancellable]


class _Alarm:
    def __init__(self, clock: AlarmClock, action: Callable[[], None]) -> None:
        self.clock = clock
        self.action = action
        self.done = False  # rung or cancelled: the clock's lock guards it

    def cancel(self) -> None:
        self.clock.cancel(self)


class AlarmClock:
    """A ``TimerFactory``: ``clock(delay_s, action)`` runs ``action`` after ``delay_s`` unless
    the returned alarm is cancelled first. Thread-safe."""

    def __init__(self, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._monotonic = monotonic
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, _Alarm]] = []
        self._order = itertools.count()  # ties in time ring in the order they were set
        self._live = 0
        self._running = False

    def __call__(self, delay_s: float, action: Callable[[], None]) -> Cancellable:
        """Set an alarm; returns it (``cancel()`` it when it is no longer wanted)."""
        alarm = _Alarm(self, action)
        with self._cond:
            heapq.heappush(self._heap, (self._monotonic() + delay_s, next(self._order), alarm))
            self._live += 1
            if len(self._heap) > 2 * self._live + _COMPACT_SLACK:
                self._heap = [entry for entry in self._heap if not entry[2].done]
                heapq.heapify(self._heap)
            if not self._running:
                self._running = True
                threading.Thread(target=self._serve, name="bgcut-alarms", daemon=True).start()
            elif self._heap[0][2] is alarm:
                self._cond.notify()  # the new earliest: the thread sleeps until a later one
        return alarm

    def cancel(self, alarm: _Alarm) -> None:
        """Cancel ``alarm``; nothing happens if it has rung already."""
        with self._cond:
            if not alarm.done:
                alarm.done = True
                self._live -= 1

    def _serve(self) -> None:
        while (alarm := self._next_due()) is not None:
            try:
                alarm.action()
            except Exception:  # an action's bug must not stop every later alarm
                log.exception("a deadline's action failed")

    def _next_due(self) -> _Alarm | None:
        """The next alarm to ring, once it is due; None after IDLE_S without alarms."""
        with self._cond:
            while True:
                if self._live == 0:
                    self._heap.clear()
                    if not self._cond.wait(IDLE_S) and self._live == 0:
                        self._running = False
                        return None
                    continue
                due_s, _, alarm = self._heap[0]
                if alarm.done:  # cancelled
                    heapq.heappop(self._heap)
                    continue
                wait_s = due_s - self._monotonic()
                if wait_s > 0:
                    self._cond.wait(wait_s)
                    continue
                heapq.heappop(self._heap)
                alarm.done = True
                self._live -= 1
                return alarm
