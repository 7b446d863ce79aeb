"""Every API call goes through here: the global pause gate, then the shared rate limiter.

The guard is where the account-level failures take effect for all workers at once: a 401 or
402 pauses every API call (quarantining nothing), a 429 holds every worker back for the
clamped Retry-After. After a pause, exactly one call (the probe) goes through; its success
opens the gate again (for a 402 pause, only a process call's success: nothing else can tell).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

from bgcut_watchd.errors import ApiError, CreditsError, PauseError, RateLimitedError
from bgcut_watchd.pause import PauseGate, PauseReason
from bgcut_watchd.ratelimit import RateLimiter
from bgcut_watchd.retry import RetryPolicy

T = TypeVar("T")

GATE_WAIT_S = 1.0  # a worker waits this long at a closed gate, then hands its job back


class GateClosed(Exception):
    """API work is paused, or the daemon is stopping: put the job back, count no attempt."""


class ApiGuard:
    """Runs API calls under the pause gate and the rate limiter. Thread-safe."""

    def __init__(self, gate: PauseGate, limiter: RateLimiter, policy: RetryPolicy,
                 cancel: threading.Event,
                 on_answer: Callable[[], None] = lambda: None) -> None:
        """``on_answer`` runs after every call that got an answer (the worker is alive)."""
        self.gate = gate
        self.limiter = limiter
        self.policy = policy
        self._cancel = cancel
        self._on_answer = on_answer

    def call(self, endpoint: str, fn: Callable[[], T]) -> T:
        """Wait for the gate and a token, then run ``fn`` and note what it tells about pauses.

        Raises GateClosed when the gate stays closed for GATE_WAIT_S or the daemon stops,
        and whatever ``fn`` raises (after pausing or slowing everyone down when it says so).
        """
        if not self.gate.wait_until_open(self._cancel, timeout_s=GATE_WAIT_S):
            raise GateClosed(f"{endpoint}: API work is paused")
        if not self.limiter.acquire(cancel=self._cancel):
            self.gate.release_probe()
            raise GateClosed(f"{endpoint}: stopping")
        try:
            result = fn()
        except ApiError as exc:
            self._on_answer()
            self._after_failure(exc)
            raise
        except BaseException:
            self.gate.release_probe()
            raise
        self._on_answer()
        if self._settles_pause(endpoint):
            self.gate.report_success()
        return result

    def _after_failure(self, exc: ApiError) -> None:
        """Pause everyone (401/402), slow everyone down (429), or free the probe."""
        if isinstance(exc, PauseError):
            self._pause_for(exc)
            return
        if isinstance(exc, RateLimitedError):
            self.limiter.penalise(exc.retry_after_s or self.policy.base_delay_s)
        self.gate.release_probe()

    def _settles_pause(self, endpoint: str) -> bool:
        """Whether a success of ``endpoint`` proves the pause's cause gone.

        Only a process call can answer 402: a probe that uploads and succeeds says nothing
        about credits, so its thread keeps the probe and its process call decides.
        """
        return not (self.gate.state().reason is PauseReason.CREDITS and endpoint != "process")

    def _pause_for(self, exc: PauseError) -> None:
        """402 pauses for ``credits_pause_s``; 401 (and any other PauseError) ``auth_pause_s``."""
        if isinstance(exc, CreditsError):
            self.gate.pause(PauseReason.CREDITS, self.policy.credits_pause_s, exc.detail)
        else:
            self.gate.pause(PauseReason.AUTH, self.policy.auth_pause_s, exc.detail)
