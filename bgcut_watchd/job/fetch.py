"""A job's downloads run side by side: its critical path is its slowest download, not the sum.

The worker carrying the job fetches too, and up to ``DOWNLOADS_PER_JOB - 1`` helpers from the
engine's shared pool take the job's other outputs from the same list, so a job never holds more
than ``DOWNLOADS_PER_JOB`` connections and the pool (sized ``workers * (DOWNLOADS_PER_JOB - 1)``
by the engine) never makes a job wait for a free thread. Every download still goes through the
API guard: the rate limiter and the API pause are shared as before.

A job holds its API slot for its API calls only: the slot goes back when its last download
ended, and the checks of the outputs (decode, verify: a 3 MP photo's cut-out is ~35 ms of CPU,
several times that when eight jobs' checks meet on two cores) run after it, while the next
job's upload and process call already use the slot. Photos, 8 workers: downloads with their
checks held the slot ~580 ms a job for ~120 ms of network.

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


def fetch_all(items: Sequence[T], fetch_one: Callable[[T], None], pool: Executor | None, *,
              check_one: Callable[[T], None] | None = None,
              on_fetched: Callable[[], None] | None = None) -> list[BaseException]:
    """Run ``fetch_one`` on every item, up to ``DOWNLOADS_PER_JOB`` at once (one after another
    when ``pool`` is None), then ``check_one`` on every item fetched; wait for all of them.

    The network first: a thread takes the next item to fetch while one is left, and only then
    the checks of what was fetched (its own or another thread's), so no check stands between
    two downloads. ``on_fetched`` runs once, on the thread that ended the last fetch, before
    the checks of the last items: the job's API slot goes back there (``steps``), its local
    checks (decode, verify) run off the API's critical path. It must not raise.

    Returns what the failed fetches and checks raised, in the items' order (a failed fetch is
    not checked); raises nothing itself."""
    failures: dict[int, BaseException] = {}
    queue = iter(list(enumerate(items)))
    fetched: list[tuple[int, T]] = []
    ended = 0
    lock = threading.Lock()

    def fetch(index: int, item: T) -> None:
        nonlocal ended
        try:
            fetch_one(item)
        except Exception as exc:  # handed to the job, which decides what it means
            failures[index] = exc
        with lock:
            ended += 1
            last = ended == len(items)
            if index not in failures and check_one is not None:
                fetched.append((index, item))
        if last and on_fetched is not None:
            on_fetched()

    def drain() -> None:
        while True:
            with lock:
                picked = next(queue, None)
                checked = fetched.pop() if picked is None and fetched else None
            if picked is not None:
                fetch(*picked)
            elif checked is not None and check_one is not None:
                try:
                    check_one(checked[1])
                except Exception as exc:  # as above
                    failures[checked[0]] = exc
            else:
                return

    if not items and on_fetched is not None:
        on_fetched()  # nothing left to download: the slot is not needed any more either
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
