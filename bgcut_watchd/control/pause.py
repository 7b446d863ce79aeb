"""Pauses with a single probe: one type for all API work and for each folder.

product.md, "Failure": when the account or the configuration is to blame (401, 402), or the
service as a whole is down (unreachable, failing for every job), every worker stops calling the
API and nothing is quarantined; when a folder's disk fails, that folder stops taking work and its
inputs stay. Both are a :class:`ProbedPause`: when it expires, exactly ONE
thread gets the probe and makes the next real attempt while the others keep waiting.

* the probe succeeds -> :meth:`ProbedPause.report_success`: the pause ends for everyone;
* the probe fails the same way -> :meth:`ProbedPause.pause` again: renewed, the probe taken back;
* the probe is inconclusive (a 5xx, a timeout, a job that ended elsewhere) ->
  :meth:`ProbedPause.release_probe`: the next waiter probes at once. A prober that never reports
  loses the probe after ``probe_lease_s``.

The prober is the calling thread (one job runs on one worker thread from start to end), so a
success or a release from any other thread is ignored: its work may have started before the pause.
:class:`FolderPauses` keeps one :class:`ProbedPause` per folder name.

Clocks and waiters are injected (``clock.py``): tests drive them with a fake clock and short real
waits; a wait re-reads the clock at least every ``max_wait_s``.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import Enum

from bgcut_watchd.clock import DEFAULT_MAX_WAIT_S, Clock, Waiter

logger = logging.getLogger("bgcut_watchd.control.pause")

DEFAULT_PROBE_LEASE_S = 600.0


class PauseReason(Enum):
    """Why work is paused; ``value`` is the stable code shown by ``status --json``."""

    AUTH = "auth"
    CREDITS = "credits"
    UNREACHABLE = "unreachable"
    DISK = "disk"
    BUDGET = "budget"

    @property
    def description(self) -> str:
        """Human wording for status output and the systemd STATUS line."""
        return {
            PauseReason.AUTH: "API key rejected (401)",
            PauseReason.CREDITS: "out of credits (402)",
            PauseReason.UNREACHABLE: "service unreachable",
            PauseReason.DISK: "folder not writable",
            PauseReason.BUDGET: "daily budget reached",
        }[self]


@dataclass(frozen=True)
class PauseState:
    """A snapshot of one pause. Times are on its clock; ``probe_in_s`` is relative."""

    paused: bool
    reason: PauseReason | None = None
    detail: str = ""
    since_s: float | None = None
    until_s: float | None = None  # the next probe may start at this time
    probe_in_s: float = 0.0
    probing: bool = False
    paused_for_s: float = 0.0

    def describe(self, wall_now: datetime) -> str:
        """One line for humans, e.g. ``paused: API key rejected (401), next try 14:05`` or
        ``paused: service unreachable since 13:52, next try 14:05``."""
        if not self.paused or self.reason is None:
            return "running"
        what = self.reason.description
        if self.reason is PauseReason.UNREACHABLE:
            what += f" since {wall_now - timedelta(seconds=self.paused_for_s):%H:%M}"
        if self.probing:
            return f"paused: {what}, probing now"
        next_try = wall_now + timedelta(seconds=self.probe_in_s)
        if self.reason is PauseReason.BUDGET:
            return budget_pause_line(self.detail, next_try)
        return f"paused: {what}, next try {next_try:%H:%M}"


def budget_pause_line(detail: str, ends: datetime) -> str:
    """The budget pause in words, the same in ``status``, the status line and the status page:
    ``paused: daily budget of 5 credits reached, resumes at 00:00`` (``detail`` names the cap;
    ``ends``, the pause's end, is shown to the nearest minute: 00:00, not 23:59)."""
    at = ends + timedelta(seconds=30)
    return f"paused: {detail or PauseReason.BUDGET.description}, resumes at {at:%H:%M}"


@dataclass(frozen=True)
class _Pause:
    reason: PauseReason
    detail: str
    since_s: float
    until_s: float
    prober: int | None = None  # thread ident of the thread holding the probe
    probe_started_s: float = 0.0


class ProbedPause:
    """One scope's pause (all API work, or one folder). Thread-safe; raises nothing."""

    def __init__(
        self,
        scope: str = "API work",
        clock: Clock = time.monotonic,
        wait: Waiter = threading.Event.wait,
        max_wait_s: float = DEFAULT_MAX_WAIT_S,
        probe_lease_s: float = DEFAULT_PROBE_LEASE_S,
    ) -> None:
        """``scope`` names what is paused in the log lines (``API work``, ``folder studio``)."""
        self.scope = scope
        self._clock = clock
        self._wait = wait
        self._max_wait_s = max_wait_s
        self._probe_lease_s = probe_lease_s
        self._lock = threading.Lock()
        self._pause: _Pause | None = None

    def pause(self, reason: PauseReason, duration_s: float, detail: str = "") -> None:
        """Pause for ``duration_s`` from now, or renew the running pause.

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
            else:  # a shorter renewal changes nothing but takes the probe back
                self._pause = replace(old, prober=None)
        verb = "paused" if old is None else "still paused"
        logger.warning("%s %s: %s; next try in %.0fs%s", self.scope, verb, reason.description,
                       max(duration_s, 0.0), f" ({detail})" if detail else "")

    def try_enter(self) -> float | None:
        """None when the calling thread may go on now (taking the probe if one is due), else
        the seconds to wait before asking again."""
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
        logger.info("%s: pause (%s) expired: probing with one attempt", self.scope,
                    p.reason.description)
        return None

    def wait_until_open(self, cancel: threading.Event, timeout_s: float | None = None) -> bool:
        """Wait until this thread may go on (see :meth:`try_enter`); True when it may.

        False when ``cancel`` is set or ``timeout_s`` (seconds on the clock) runs out first.
        """
        deadline_s = None if timeout_s is None else self._clock() + timeout_s
        while not cancel.is_set():
            wait_s = self.try_enter()
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
        """The calling thread's attempt succeeded: if it held the probe, end the pause.

        Returns True when this call ended a pause.
        """
        with self._lock:
            old = self._pause
            if old is None or old.prober != threading.get_ident():
                return False
            self._pause = None
            paused_for_s = self._clock() - old.since_s
        logger.warning("%s resumed after %.0fs (%s)", self.scope, paused_for_s,
                       old.reason.description)
        return True

    def holds_probe(self) -> bool:
        """True when the calling thread holds the probe of a running pause."""
        with self._lock:
            return self._pause is not None and self._pause.prober == threading.get_ident()

    def release_probe(self) -> None:
        """The calling thread's probe ended without a verdict: the next waiter probes at once."""
        with self._lock:
            old = self._pause
            if old is not None and old.prober == threading.get_ident():
                self._pause = replace(old, prober=None)

    def resume(self) -> None:
        """End the pause now, whoever calls (an operator's ``resume``, a reload)."""
        with self._lock:
            old, self._pause = self._pause, None
        if old is not None:
            logger.warning("%s resumed (%s)", self.scope, old.reason.description)

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
                probing=self._probe_alive(p, now_s), paused_for_s=max(0.0, now_s - p.since_s),
            )

    def _probe_alive(self, p: _Pause, now_s: float) -> bool:
        return p.prober is not None and now_s - p.probe_started_s < self._probe_lease_s


class FolderPauses:
    """One :class:`ProbedPause` per folder, made on first use. Thread-safe; raises nothing."""

    def __init__(
        self, clock: Clock = time.monotonic, probe_lease_s: float = DEFAULT_PROBE_LEASE_S
    ) -> None:
        self._clock = clock
        self._probe_lease_s = probe_lease_s
        self._lock = threading.Lock()
        self._pauses: dict[str, ProbedPause] = {}

    def of(self, folder: str) -> ProbedPause:
        """The pause of ``folder``."""
        with self._lock:
            pause = self._pauses.get(folder)
            if pause is None:
                pause = ProbedPause(f"folder {folder}", self._clock,
                                    probe_lease_s=self._probe_lease_s)
                self._pauses[folder] = pause
            return pause

    def snapshot(self) -> dict[str, PauseState]:
        """Every paused folder (expired ones awaiting their probe included), for ``status``."""
        with self._lock:
            pauses = dict(self._pauses)
        states = {name: pause.state() for name, pause in pauses.items()}
        return {name: state for name, state in states.items() if state.paused}
