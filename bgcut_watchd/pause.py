"""Pauses: the global gate in front of all API work, and per-folder pauses after disk errors.

:class:`PauseGate` (product.md, "Failure": 401, 402): when the account or the configuration is to
blame, every worker stops calling the API and nothing is quarantined. When the pause expires
exactly ONE worker gets the probe: it makes the next real call while the others keep waiting.

* probe succeeds -> the prober calls :meth:`PauseGate.report_success`: the gate opens for all;
* probe fails the same way -> the runner calls :meth:`PauseGate.pause` again: the pause is renewed;
* probe inconclusive (a 5xx, a timeout, a local problem) -> :meth:`PauseGate.release_probe`: the
  next waiter probes at once. A prober that never reports loses the probe after ``probe_lease_s``.

The prober is the calling thread (one job runs on one worker thread from start to end).
``PauseReason.RATE_LIMITED`` lets the runner also pause on a 429 with a long Retry-After; the
usual reaction to a 429 is :meth:`RateLimiter.penalise` plus a delayed retry.

:class:`FolderPauses` (product.md: "the local disk: keep the input, pause that folder, retry
later"): folder -> until, with the same single-probe rule through :meth:`FolderPauses.admit`, so a
full outbox costs one job's work per pause period, not one per waiting file.

Both take an injected clock; :class:`PauseGate` also takes the waiter (``threading.Event.wait``
in production) and re-reads the clock at least every ``max_wait_s``, so tests drive it with a
fake clock and short real waits.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import Enum

from bgcut_watchd.ratelimit import DEFAULT_MAX_WAIT_S, Clock, Waiter

logger = logging.getLogger("bgcut_watchd.pause")

DEFAULT_PROBE_LEASE_S = 600.0


class PauseReason(Enum):
    """Why all API work is paused; ``value`` is the stable code shown by ``status --json``."""

    AUTH = "auth"
    CREDITS = "credits"
    RATE_LIMITED = "rate_limited"

    @property
    def description(self) -> str:
        """Human wording for status output and the systemd STATUS line."""
        return {
            PauseReason.AUTH: "API key rejected (401)",
            PauseReason.CREDITS: "out of credits (402)",
            PauseReason.RATE_LIMITED: "rate limited by the API (429)",
        }[self]


@dataclass(frozen=True)
class PauseState:
    """A snapshot of the gate. Times are on the gate's clock; ``probe_in_s`` is relative."""

    paused: bool
    reason: PauseReason | None = None
    detail: str = ""
    since_s: float | None = None
    until_s: float | None = None  # the next probe may start at this time
    probe_in_s: float = 0.0
    probing: bool = False

    def describe(self, wall_now: datetime) -> str:
        """One line for humans, e.g. ``paused: API key rejected (401), next try 14:05``."""
        if not self.paused or self.reason is None:
            return "running"
        if self.probing:
            return f"paused: {self.reason.description}, probing now"
        next_try = wall_now + timedelta(seconds=self.probe_in_s)
        return f"paused: {self.reason.description}, next try {next_try:%H:%M}"


@dataclass(frozen=True)
class _Pause:
    reason: PauseReason
    detail: str
    since_s: float
    until_s: float
    prober: int | None = None  # thread ident of the worker holding the probe
    probe_started_s: float = 0.0


class PauseGate:
    """The global pause for API work, shared by every worker. Thread-safe; raises nothing."""

    def __init__(
        self,
        clock: Clock = time.monotonic,
        wait: Waiter = threading.Event.wait,
        max_wait_s: float = DEFAULT_MAX_WAIT_S,
        probe_lease_s: float = DEFAULT_PROBE_LEASE_S,
    ) -> None:
        self._clock = clock
        self._wait = wait
        self._max_wait_s = max_wait_s
        self._probe_lease_s = probe_lease_s
        self._lock = threading.Lock()
        self._pause: _Pause | None = None

    def pause(self, reason: PauseReason, duration_s: float, detail: str = "") -> None:
        """Pause all API work for ``duration_s`` from now, or renew the running pause.

        A renewal never shortens the pause, keeps ``since``, and takes the probe back from
        whoever held it (a failed probe renews the pause this way).
        """
        with self._lock:
            now_s = self._clock()
            until_s = now_s + max(duration_s, 0.0)
            old = self._pause
            if old is None:
                self._pause = _Pause(reason, detail, since_s=now_s, until_s=until_s)
            elif until_s >= old.until_s:
                self._pause = replace(old, reason=reason, detail=detail, until_s=until_s,
                                      prober=None)
            else:
                self._pause = replace(old, prober=None)
        verb = "paused" if old is None else "still paused"
        logger.warning("API work %s: %s; next try in %.0fs", verb, reason.description,
                       max(duration_s, 0.0))

    def wait_until_open(
        self, cancel: threading.Event, timeout_s: float | None = None
    ) -> bool:
        """Wait until this thread may call the API; True when it may.

        True when the gate is open, or when the pause has expired and this thread now holds the
        single probe (see the module docstring for what it must report). False when ``cancel``
        is set or ``timeout_s`` (seconds on the gate's clock) runs out first.
        """
        deadline_s = None if timeout_s is None else self._clock() + timeout_s
        while not cancel.is_set():
            wait_s = self._try_enter()
            if wait_s is None:
                return True
            if deadline_s is not None:
                left_s = deadline_s - self._clock()
                if left_s <= 0:
                    return False
                wait_s = min(wait_s, left_s)
            self._wait(cancel, min(wait_s, self._max_wait_s))
        return False

    def report_success(self) -> bool:
        """An API call of this thread succeeded: if it was the probe, open the gate.

        Returns True when this call ended a pause. A success reported by any other thread is
        ignored: its request may have been sent before the pause began.
        """
        with self._lock:
            old = self._pause
            if old is None or old.prober != threading.get_ident():
                return False
            self._pause = None
            paused_for_s = self._clock() - old.since_s
        logger.warning("API work resumed after %.0fs (%s)", paused_for_s, old.reason.description)
        return True

    def release_probe(self) -> None:
        """This thread's probe ended without a verdict: let the next waiter probe at once."""
        with self._lock:
            old = self._pause
            if old is not None and old.prober == threading.get_ident():
                self._pause = replace(old, prober=None)

    def resume(self) -> None:
        """Open the gate now, whoever calls (e.g. an operator's reload with a new key)."""
        with self._lock:
            old, self._pause = self._pause, None
        if old is not None:
            logger.warning("API work resumed (%s)", old.reason.description)

    def holds_probe(self) -> bool:
        """True when the calling thread holds the probe of a running pause."""
        with self._lock:
            return self._pause is not None and self._pause.prober == threading.get_ident()

    def is_open(self) -> bool:
        """True when no pause is running (a pause being probed is still a pause)."""
        with self._lock:
            return self._pause is None

    def state(self) -> PauseState:
        """A consistent snapshot for ``status`` and the systemd STATUS line."""
        with self._lock:
            p = self._pause
            if p is None:
                return PauseState(paused=False)
            now_s = self._clock()
            return PauseState(
                paused=True, reason=p.reason, detail=p.detail, since_s=p.since_s,
                until_s=p.until_s, probe_in_s=max(0.0, p.until_s - now_s),
                probing=self._probe_alive(p, now_s),
            )

    def _try_enter(self) -> float | None:
        """None when the caller may proceed (taking the probe if due), else seconds to wait."""
        me = threading.get_ident()
        with self._lock:
            p = self._pause
            if p is None or p.prober == me:
                return None
            now_s = self._clock()
            if now_s < p.until_s:
                return p.until_s - now_s
            if self._probe_alive(p, now_s):
                return self._max_wait_s  # someone else is probing: wait for the verdict
            self._pause = replace(p, prober=me, probe_started_s=now_s)
        logger.info("API pause (%s) expired: probing with one request", p.reason.description)
        return None

    def _probe_alive(self, p: _Pause, now_s: float) -> bool:
        return p.prober is not None and now_s - p.probe_started_s < self._probe_lease_s


@dataclass(frozen=True)
class FolderPause:
    """One folder's pause. Times are on the clock of :class:`FolderPauses`."""

    folder: str
    reason: str
    since_s: float
    until_s: float
    prober: int | None = None
    probe_started_s: float = 0.0


class FolderPauses:
    """Per-folder pauses after a ``LocalDiskError``. Thread-safe; raises nothing."""

    def __init__(
        self, clock: Clock = time.monotonic, probe_lease_s: float = DEFAULT_PROBE_LEASE_S
    ) -> None:
        self._clock = clock
        self._probe_lease_s = probe_lease_s
        self._lock = threading.Lock()
        self._pauses: dict[str, FolderPause] = {}

    def pause(self, folder: str, seconds: float, reason: str) -> None:
        """Pause ``folder`` for ``seconds`` from now, or renew its pause (never shorter)."""
        with self._lock:
            now_s = self._clock()
            until_s = now_s + max(seconds, 0.0)
            old = self._pauses.get(folder)
            if old is None:
                self._pauses[folder] = FolderPause(folder, reason, now_s, until_s)
            else:
                self._pauses[folder] = replace(
                    old, reason=reason, until_s=max(until_s, old.until_s), prober=None
                )
        logger.warning("folder %s paused for %.0fs, its inputs kept: %s", folder,
                       max(seconds, 0.0), reason)

    def resume(self, folder: str) -> None:
        """End ``folder``'s pause (after any successful write there); no-op when not paused."""
        with self._lock:
            old = self._pauses.pop(folder, None)
        if old is not None:
            logger.warning("folder %s resumed", folder)

    def is_paused(self, folder: str) -> bool:
        """True while ``folder`` is paused and its pause has not yet expired (a pure query)."""
        return self.remaining_s(folder) > 0.0

    def remaining_s(self, folder: str) -> float:
        """Seconds until ``folder``'s pause expires; 0.0 when it is not paused or expired."""
        with self._lock:
            p = self._pauses.get(folder)
            return 0.0 if p is None else max(0.0, p.until_s - self._clock())

    def admit(self, folder: str) -> bool:
        """May this thread start work for ``folder``? True when not paused.

        After expiry exactly one thread is admitted as the probe (until it calls :meth:`resume`
        or :meth:`pause`, or ``probe_lease_s`` passes); the others get False meanwhile.
        """
        me = threading.get_ident()
        with self._lock:
            p = self._pauses.get(folder)
            if p is None or p.prober == me:
                return True
            now_s = self._clock()
            if now_s < p.until_s:
                return False
            if p.prober is not None and now_s - p.probe_started_s < self._probe_lease_s:
                return False
            self._pauses[folder] = replace(p, prober=me, probe_started_s=now_s)
            return True

    def snapshot(self) -> dict[str, FolderPause]:
        """Every paused folder (expired ones awaiting their probe included), for ``status``."""
        with self._lock:
            return dict(self._pauses)
