"""Where one job's wall time goes, from the daemon's own monotonic clock (issue 14).

A job's run is cut into consecutive spans, each named after what ended it: the API calls
(``upload``, ``process``, ``download``: the job's downloads side by side, first start to last
end) and the work between them (``claim``, ``wait`` for a worker, ``check``, ``slot``: the wait
for one of the ``workers`` API slots, ``journal``, ``publish``, ``dispose``, ``ledger``,
``finish``). When the job is done, its spans go to one DEBUG line of the logger
``bgcut_watchd.timeline``, e.g. ``job 3f2a... timeline ms: claim=3.1 check=4.0 upload=51.9
journal=4.2 process=401.3 ...``, which ``bench/timeline.py`` sums into "API time / wall time
per job" and the largest gaps. Cost: a clock read and a list append per span; the line is only
formatted when DEBUG is on.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

log = logging.getLogger("bgcut_watchd.timeline")

API_SPANS = frozenset({"upload", "process", "download"})


class Timeline:
    """The spans of one job's run in this process. Thread-safe (downloads mark from helpers)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._last = clock()
        self._spans: list[tuple[str, float]] = []

    def mark(self, name: str) -> None:
        """The span since the previous mark (or the start) was ``name``."""
        with self._lock:
            now = self._clock()
            self._spans.append((name, now - self._last))
            self._last = now

    def spans(self) -> list[tuple[str, float]]:
        """``(name, seconds)`` in order; a name may come more than once (a retried step)."""
        with self._lock:
            return list(self._spans)

    def log_done(self, job_id: str) -> None:
        """The DEBUG line of a finished job (nothing is formatted unless DEBUG is on)."""
        if log.isEnabledFor(logging.DEBUG):
            log.debug("job %s timeline ms: %s", job_id, " ".join(
                f"{name}={seconds * 1000:.1f}" for name, seconds in self.spans()))
