"""Every API call goes through here: the API pause, then the shared rate limiter.

The guard applies pauses, it does not decide them: every API failure is handed at once, before
any other worker can send another request, to ``on_failure`` (the failure policy,
``engine.failures``), which pauses all API work after a 401/402, and every success to
``on_success`` (it ends a streak of service failures). Here, while a pause runs,
exactly one call (the probe) goes through; its success ends the pause (for a 402 pause, only a
process call's success: nothing else can tell). A 429 holds every worker back for the clamped
Retry-After: that is the rate limiter's business, not a decision about the job.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

from bgcut_watchd.control.pause import PauseReason, ProbedPause
from bgcut_watchd.control.ratelimit import RateLimiter
from bgcut_watchd.errors import ApiError, RateLimitedError

T = TypeVar("T")

GATE_WAIT_S = 1.0  # a worker waits this long at a closed pause, then hands its job back


class GateClosed(Exception):
    """API work is paused, or the daemon is stopping: put the job back, count no attempt."""


class ApiGuard:
    """Runs API calls under the API pause and the rate limiter. Thread-safe."""

    def __init__(self, pause: ProbedPause, limiter: RateLimiter, cancel: threading.Event, *,
                 penalty_s: float, on_answer: Callable[[], None] = lambda: None,
                 on_failure: Callable[[ApiError], None] = lambda exc: None,
                 on_success: Callable[[], None] = lambda: None) -> None:
        """``penalty_s`` holds everyone back after a 429 without a Retry-After; ``on_answer``
        runs after every call that got an answer (the worker is alive); ``on_failure`` with
        every API failure, before it is raised; ``on_success`` after every call that worked."""
        self.pause = pause
        self.limiter = limiter
        self._cancel = cancel
        self._penalty_s = penalty_s
        self._on_answer = on_answer
        self._on_failure = on_failure
        self._on_success = on_success

    def call(self, endpoint: str, fn: Callable[[], T]) -> T:
        """Wait for the pause to let this thread through and for a token, then run ``fn``.

        Raises GateClosed when the pause stays on for GATE_WAIT_S or the daemon stops, and
        whatever ``fn`` raises (after holding everyone back on a 429).
        """
        if not self.pause.wait_until_open(self._cancel, timeout_s=GATE_WAIT_S):
            raise GateClosed(f"{endpoint}: API work is paused")
        if not self.limiter.acquire(cancel=self._cancel):
            self.pause.release_probe()
            raise GateClosed(f"{endpoint}: stopping")
        try:
            result = fn()
        except ApiError as exc:
            self._on_answer()
            if isinstance(exc, RateLimitedError):
                self.limiter.penalise(exc.retry_after_s or self._penalty_s)
            self._on_failure(exc)
            raise
        self._on_answer()
        self._on_success()
        if self._settles_pause(endpoint):
            self.pause.report_success()
        return result

    def _settles_pause(self, endpoint: str) -> bool:
        """Whether a success of ``endpoint`` proves the pause's cause gone.

        Only a process call can answer 402 or cross the daily budget: a probe that uploads and
        succeeds says nothing about credits, so its thread keeps the probe and its process call
        decides.
        """
        reason = self.pause.state().reason
        return endpoint == "process" or reason not in (PauseReason.CREDITS, PauseReason.BUDGET)
