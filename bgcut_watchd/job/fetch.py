"""A job's downloads run side by side: its critical path is its slowest download, not the sum.

The worker carrying the job fetches too, and up to ``DOWNLOADS_PER_JOB - 1`` helpers from the
engine's shared pool take the job's other outputs from the same list, so a job never holds more
than ``DOWNLOADS_PER_JOB`` connections and the pool (sized ``workers * (DOWNLOADS_PER_JOB - 1)``
by the engine) never makes a job wait for a free thread. Every download still goes through the
API guard: the rate limiter and the API pause are shared as before.

Nothing here journals: each download either leaves its verified ``.part`` or fails; the job
looks at the failures of the round once, after all of them ended (``steps``), so two 404s in
one round count as one, as they did one after another.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, Future
from typing import TypeVar

from bgcut_watchd.errors import ApiError, BadOutputError, PauseError, RemoteFileMissingError

T = TypeVar("T")

DOWNLOADS_PER_JOB = 4
"""At most this many downloads of one job at once (the worker and three helpers)."""


def fetch_all(items: Sequence[T], fetch_one: Callable[[T], None],
                 pool: Executor | None) -> list[BaseException]:
    """Run ``fetch_one`` on every item, up to ``DOWNLOADS_PER_JOB`` at once (one after another
    when ``pool`` is None); wait for all of them. Returns what the failed ones raised, in the
    items' order; raises nothing itself."""
    failures: dict[int, BaseException] = {}
    queue = iter(list(enumerate(items)))
    lock = threading.Lock()

    def drain() -> None:
        while True:
            with lock:
                picked = next(queue, None)
            if picked is None:
                return
            index, item = picked
            try:
                fetch_one(item)
            except Exception as exc:  # handed to the job, which decides what it means
                failures[index] = exc

    helpers: list[Future[None]] = []
    if pool is not None:
        helpers = [pool.submit(drain) for _ in range(min(DOWNLOADS_PER_JOB, len(items)) - 1)]
    drain()
    for helper in helpers:
        helper.result()  # drain() raises nothing
    return [failures[index] for index in sorted(failures)]


def decisive(failed: Sequence[BaseException]) -> BaseException:
    """Of one round's failures, the one whose handling covers the others: anything not from
    the API (the disk, a bug) first, then a pause (a bad key, no credits), then a missing
    remote file (it may redo the job), then a bad output, then the first."""
    def rank(exc: BaseException) -> int:
        if not isinstance(exc, ApiError):
            return 0
        if isinstance(exc, PauseError):
            return 1
        if isinstance(exc, RemoteFileMissingError):
            return 2
        if isinstance(exc, BadOutputError):
            return 3
        return 4
    return min(failed, key=rank)
