"""The one request rate limiter shared by every worker thread (``api.max_requests_per_minute``).

A token bucket written as GCRA (the "generic cell rate algorithm"): one number, the theoretical
arrival time ``tat``, replaces the token count. A request is allowed at ``now`` when
``now >= tat - tolerance``; taking it moves ``tat`` to ``max(tat, now) + interval``. With
``interval = 60 / max_per_minute`` and ``tolerance = (burst - 1) * interval`` this admits at most
``burst + W / interval`` requests in any window of ``W`` seconds: in any minute, at most
``max_per_minute + burst``.

Burst: by default two seconds' worth of requests, at least 1 (``120/min`` -> 4, one per default
worker, so a cold start does not serialise the first uploads; ``30/min`` -> 1). Small on purpose:
the API's own window is undocumented and a 429 costs a whole backoff.

After a 429, :meth:`RateLimiter.penalise` pushes the next token out by the server's delay for
every worker at once, and leaves no burst behind: the first request after the penalty goes out
alone, the next one an interval later.

Waiting needs no condition variable: a token's due time only ever moves later (by taking or
penalising), so a waiter computes when to look again and sleeps on its cancel event until then
(at most ``max_wait_s`` at a time, so a fake clock in tests is noticed promptly).
"""

from __future__ import annotations

import logging
import threading
import time

from bgcut_watchd.clock import DEFAULT_MAX_WAIT_S, Clock, Waiter

logger = logging.getLogger("bgcut_watchd.control.ratelimit")

BURST_WINDOW_S = 2.0


def default_burst(max_per_minute: int) -> int:
    """The default burst: ``BURST_WINDOW_S`` seconds' worth of requests, at least 1."""
    return max(1, round(max_per_minute / 60.0 * BURST_WINDOW_S))


class RateLimiter:
    """A thread-safe token bucket: ``max_per_minute`` requests a minute plus a small burst.

    Raises ``ValueError`` on construction when ``max_per_minute`` or ``burst`` is below 1.
    """

    def __init__(
        self,
        max_per_minute: int,
        clock: Clock = time.monotonic,
        wait: Waiter = threading.Event.wait,
        burst: int | None = None,
        max_wait_s: float = DEFAULT_MAX_WAIT_S,
    ) -> None:
        if max_per_minute < 1:
            raise ValueError(f"max_per_minute must be >= 1, got {max_per_minute}")
        self.burst = default_burst(max_per_minute) if burst is None else burst
        if self.burst < 1:
            raise ValueError(f"burst must be >= 1, got {self.burst}")
        self.max_per_minute = max_per_minute
        self._interval_s = 60.0 / max_per_minute
        self._tolerance_s = (self.burst - 1) * self._interval_s
        self._clock = clock
        self._wait = wait
        self._max_wait_s = max_wait_s
        self._lock = threading.Lock()
        self._never = threading.Event()
        self._tat = clock()  # the bucket starts full

    def acquire(
        self, timeout_s: float | None = None, cancel: threading.Event | None = None
    ) -> bool:
        """Take one token, waiting for it; True when taken.

        Returns False, without taking a token, when ``cancel`` is set or ``timeout_s`` (seconds on
        the injected clock; None waits for ever) runs out first. Raises nothing.
        """
        event = self._never if cancel is None else cancel
        deadline_s = None if timeout_s is None else self._clock() + timeout_s
        while not event.is_set():
            due_in_s = self._try_take()
            if due_in_s is None:
                return True
            if deadline_s is not None:
                left_s = deadline_s - self._clock()
                if due_in_s > left_s:
                    # Due times only move later: the token comes after the deadline, say so now.
                    return False
                due_in_s = min(due_in_s, left_s)
            self._wait(event, min(due_in_s, self._max_wait_s))
        return False

    def penalise(self, delay_s: float) -> None:
        """Hold every worker's next request back until ``delay_s`` from now (after a 429).

        Never shortens an earlier penalty; a delay <= 0 changes nothing. Raises nothing.
        """
        with self._lock:
            now_s = self._clock()
            self._tat = max(self._tat, now_s + max(delay_s, 0.0) + self._tolerance_s)
        logger.info("rate limiter: holding API requests back for %.1fs", max(delay_s, 0.0))

    def _try_take(self) -> float | None:
        """Take a token if one is due: None when taken, else the seconds until one is due."""
        with self._lock:
            now_s = self._clock()
            due_at_s = self._tat - self._tolerance_s
            if now_s < due_at_s:
                return due_at_s - now_s
            self._tat = max(self._tat, now_s) + self._interval_s
            return None
