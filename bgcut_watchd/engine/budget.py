"""The daily spend cap (``[budget] max_credits_per_day``): decided here, applied through the
API pause.

Before each process call the job asks :meth:`DailyBudget.paying` with the call's estimated
credits (``job.cost``). While today's spent credits (the ledger's, so a restart does not reset
the day) plus the calls in flight plus this one stay within the cap, the call goes on; after
it the estimate is counted for its folder and day unless the API answered an error (an
answered call did not run and is not charged; an ambiguous one may have run and is counted).
A call that would cross the cap is not sent: all API work pauses (``PauseReason.BUDGET``) until
00:00 local time, exactly like a 402 (nothing quarantined), and ``BudgetExceededError`` hands
the job back. An operator's resume (the pause ended while the day is the same) lifts the cap
for the rest of that day. The cap 0 means no cap; credits are counted all the same.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from datetime import date, datetime, time, timedelta

from bgcut_watchd.clock import WallClock, utc_now
from bgcut_watchd.config.model import BudgetConfig, Variant
from bgcut_watchd.control.pause import PauseReason, ProbedPause
from bgcut_watchd.errors import AmbiguousOutcomeError, ApiError, BudgetExceededError
from bgcut_watchd.job.cost import call_credits
from bgcut_watchd.ledger import Ledger

log = logging.getLogger("bgcut_watchd.engine")

_SLACK = 1e-9  # float sums of estimates


class DailyBudget:
    """Counts credits per day and folder and holds API work at the daily cap. Thread-safe."""

    def __init__(self, budget: BudgetConfig, ledger: Ledger, api_pause: ProbedPause,
                 wall_clock: WallClock = utc_now) -> None:
        self.budget = budget
        self._ledger = ledger
        self._pause = api_pause
        self._wall_clock = wall_clock
        self._lock = threading.Lock()
        self._pending = 0.0  # estimates of calls in flight
        self._tripped_day: str | None = None  # the day this budget paused API work
        self._waived_day: str | None = None  # the day an operator resumed past the cap

    def configure(self, budget: BudgetConfig) -> None:
        """A reload's new numbers, for the calls from now on."""
        self.budget = budget

    @contextlib.contextmanager
    def paying(self, folder: str, input_pixels: int,
               variants: Sequence[Variant]) -> Iterator[float]:
        """Hold the estimate of one process call of ``folder`` while the block sends it; count
        it when the block ends, unless it raised an answered ApiError. Yields the estimate.
        Raises BudgetExceededError (API work paused) when the call would cross the cap."""
        credits = call_credits(self.budget, input_pixels, variants)
        day = self._reserve(credits)
        charged = True
        try:
            yield credits
        except ApiError as exc:
            charged = isinstance(exc, AmbiguousOutcomeError)
            raise
        finally:
            with self._lock:
                self._pending = max(0.0, self._pending - credits)
            if charged:
                self._count(day, folder, credits)

    def _count(self, day: str, folder: str, credits: float) -> None:
        """Write the spend down; a ledger failure is logged, never fails the paid call."""
        try:
            self._ledger.add_credits(day, folder, credits)
        except sqlite3.Error as exc:
            log.error("cannot count %.2f credits of folder %s in the ledger: %s", credits,
                      folder, exc)

    def _reserve(self, credits: float) -> str:
        """Today's date once ``credits`` fit today's budget. Raises BudgetExceededError."""
        now = self._wall_clock().astimezone()
        day = now.date().isoformat()
        cap = self.budget.max_credits_per_day
        with self._lock:
            if cap > 0 and not self._waived(day):
                spent = sum(self._ledger.credits_spent(day, day).values())
                if spent + self._pending + credits > cap + _SLACK:
                    self._trip(day, cap, _until_midnight_s(now), spent, credits)
            self._pending += credits
        return day

    def _waived(self, day: str) -> bool:
        """Whether the cap is lifted today: an operator ended this budget's pause today."""
        if self._tripped_day == day and not self._pause.state().paused:
            if self._waived_day != day:
                log.warning("%s lifted for the rest of %s (resumed)",
                            _cap_words(self.budget.max_credits_per_day), day)
            self._waived_day = day
        return self._waived_day == day

    def _trip(self, day: str, cap: float, pause_s: float, spent: float,
              credits: float) -> None:
        """Pause all API work until midnight (once: each job refused while that pause runs
        is handed back without renewing it, so one trip logs one pause). Raises
        BudgetExceededError."""
        detail = f"{_cap_words(cap)} reached"
        state = self._pause.state()
        if self._tripped_day != day or state.reason is not PauseReason.BUDGET:
            log.warning("%s: %.2f spent today, the next call would cost about %.2f", detail,
                        spent + self._pending, credits)
            self._pause.pause(PauseReason.BUDGET, pause_s, detail)
        self._tripped_day = day
        raise BudgetExceededError(detail, pause_s)


def _cap_words(cap: float) -> str:
    """``daily budget of 5 credits`` (``of 1 credit``)."""
    return f"daily budget of {cap:g} credit{'' if cap == 1 else 's'}"


def _until_midnight_s(now: datetime) -> float:
    """Seconds from the aware local ``now`` to the next 00:00 local time."""
    tomorrow: date = now.date() + timedelta(days=1)
    midnight = datetime.combine(tomorrow, time(0), tzinfo=now.tzinfo)
    return max(1.0, (midnight - now).total_seconds())


def month_bounds(today: date) -> tuple[str, str]:
    """The first and last ISO dates of ``today``'s month (for ``status``)."""
    first = today.replace(day=1)
    next_month = (first + timedelta(days=32)).replace(day=1)
    return first.isoformat(), (next_month - timedelta(days=1)).isoformat()
