"""The clocks and the waiter every timed part takes as an argument, so tests inject fakes.

* :data:`Clock`: seconds on a monotonic clock (``time.monotonic`` in production), for deadlines,
  pauses, rate limits and settling.
* :data:`WallClock`: an aware UTC datetime (:func:`utc_now` in production), for what is written
  down: journals, error files, the status file.
* :data:`Waiter`: sleep up to ``timeout_s`` unless ``event`` is set first and say whether it is
  set; ``threading.Event.wait`` itself in production.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], float]
WallClock = Callable[[], datetime]
Waiter = Callable[[threading.Event, float], bool]

DEFAULT_MAX_WAIT_S = 1.0
"""The longest single sleep of a waiting loop, so a fake clock in a test is noticed promptly."""


def utc_now() -> datetime:
    """The production wall clock: an aware UTC datetime."""
    return datetime.now(UTC)


def iso_utc(moment: datetime) -> str:
    """``moment`` as ISO 8601 in UTC with microseconds (sorts as text)."""
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def iso_utc_seconds(moment: datetime | str) -> str:
    """``moment`` (or an ISO 8601 text) as ISO 8601 in UTC to the second: the one precision of
    the times people read (error files, status). A text that does not parse is returned as is."""
    if isinstance(moment, str):
        try:
            parsed = datetime.fromisoformat(moment)
        except ValueError:
            return moment
        return parsed.astimezone(UTC).isoformat(timespec="seconds")
    return moment.astimezone(UTC).isoformat(timespec="seconds")
