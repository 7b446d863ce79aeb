"""The bounded worker pool: exactly ``workers`` threads, a ready queue and a delayed heap.

The scheduler knows nothing about HTTP or files. It hands a :class:`JobTicket` (folder name and
path, nothing open) to ``run_job`` on one of its threads; the :class:`Outcome` says what happened:
done, quarantined, skipped, retry after a delay (next attempt) or paused (run again later, attempt
not counted). A retry due at ``t`` waits in the delayed heap and becomes ready at ``t``.

No timer thread: idle workers sleep on one condition variable until a submit, a finish or the next
due time. Folders are served round-robin (one FIFO each), so a full inbox starves no other. The
intake never blocks: ``max_waiting`` bounds the ready queue (``submit`` returns False, the rescan
offers the file again) and a (folder, path) already queued or running is refused as a duplicate.
An exception escaping ``run_job`` is logged and the ticket dropped (the file stays in its inbox or
work area for the rescan or the next recovery pass; the engine's ``run_job`` lets nothing escape
and lets go of a job it cannot run, so this is a last resort); the worker lives on.
:meth:`Scheduler.stop_accepting` starts the warm shutdown (``Engine.drain`` waits for the
running jobs); :meth:`Scheduler.is_stalled` feeds the systemd watchdog.

Over 300 lines on purpose: the queue helpers share one lock and one set of invariants
(every key counted once while waiting, delayed or running) that must be read together.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from pathlib import Path

from bgcut_watchd.clock import DEFAULT_MAX_WAIT_S, Clock
from bgcut_watchd.control.tickets import (
    FolderStats,
    JobTicket,
    Outcome,
    OutcomeKind,
    SchedulerStats,
    TicketKey,
)

__all__ = ["FolderStats", "JobTicket", "Outcome", "OutcomeKind", "Scheduler", "SchedulerStats"]

logger = logging.getLogger("bgcut_watchd.control.scheduler")

RunJob = Callable[[JobTicket], Outcome]


class Scheduler:
    """A pool of exactly ``workers`` threads running ``run_job``. Thread-safe."""

    def __init__(
        self,
        workers: int,
        run_job: RunJob,
        clock: Clock = time.monotonic,
        max_waiting: int | None = None,
        max_wait_s: float = DEFAULT_MAX_WAIT_S,
        thread_name: str = "bgcut-worker",
    ) -> None:
        """Build an idle pool; :meth:`start` starts the threads. Raises ``ValueError``."""
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        self.workers = workers
        self._run_job = run_job
        self._clock = clock
        self._max_waiting = max_waiting
        self._max_wait_s = max_wait_s
        self._thread_name = thread_name
        self._cond = threading.Condition()
        self._ready: dict[str, deque[JobTicket]] = {}  # insertion order = round-robin order
        self._ready_count = 0
        self._delayed: list[tuple[float, int, JobTicket]] = []
        self._seq = itertools.count()
        self._keys: Counter[TicketKey] = Counter()
        self._in_progress: Counter[str] = Counter()
        self._finished: dict[str, Counter[str]] = {}
        self._busy = 0
        self._accepting = True
        self._stopping = False
        self._threads: list[threading.Thread] = []
        self._last_progress_s = clock()
        self._active: dict[int, float] = {}  # worker thread -> its job's last sign of life
        self._running: dict[int, TicketKey | None] = {}  # worker thread -> its ticket's key

    def start(self) -> None:
        """Start the worker threads (daemon threads). Raises ``RuntimeError`` if started."""
        with self._cond:
            if self._threads:
                raise RuntimeError("scheduler already started")
            self._threads = [
                threading.Thread(target=self._work, name=f"{self._thread_name}-{n}", daemon=True)
                for n in range(1, self.workers + 1)
            ]
        for thread in self._threads:
            thread.start()

    def submit(self, ticket: JobTicket) -> bool:
        """Queue ``ticket`` to run as soon as a worker is free; never blocks.

        False (and nothing queued) when the scheduler no longer accepts work, when the same
        (folder, path) is already waiting, delayed or running, or when the ready queue holds
        ``max_waiting`` tickets.
        """
        with self._cond:
            if not self._admissible(ticket):
                return False
            if self._max_waiting is not None and self._ready_count >= self._max_waiting:
                return False
            self._push_ready(ticket)
            self._cond.notify()
            return True

    def submit_later(self, ticket: JobTicket, delay_s: float) -> bool:
        """Queue ``ticket`` to become ready ``delay_s`` from now; False like :meth:`submit`.

        Not bounded by ``max_waiting`` (delayed tickets are retries and recovered jobs).
        """
        with self._cond:
            if not self._admissible(ticket):
                return False
            self._push_delayed(ticket, self._clock() + delay_s)
            self._cond.notify()
            return True

    def stop_accepting(self) -> None:
        """Warm shutdown's first step: accept and start nothing new; returns at once.

        Running jobs go on (``stats().busy`` counts them; the engine's drain waits for them);
        unstarted tickets are dropped (their files wait in the inbox or the work area); the
        threads end as their jobs finish. Raises nothing.
        """
        with self._cond:
            self._accepting = False
            self._stopping = True
            self._cond.notify_all()
            logger.info("scheduler: draining %d running job(s), %d queued left unstarted",
                        self._busy, self._ready_count + len(self._delayed))

    def stats(self) -> SchedulerStats:
        """Per-folder counters and the pool's state."""
        with self._cond:
            delayed = Counter(entry[2].folder for entry in self._delayed)
            names = set(self._ready) | set(delayed) | set(self._in_progress) | set(self._finished)
            folders = {
                name: FolderStats(
                    waiting=len(self._ready.get(name, ())),
                    delayed=delayed[name],
                    in_progress=self._in_progress[name],
                    **self._finished.get(name, Counter()),
                )
                for name in sorted(names)
            }
            return SchedulerStats(folders, self.workers, self._busy, self._accepting,
                                  self._last_progress_s)

    def release_running_key(self) -> None:
        """The calling worker's ticket no longer stands for its (folder, path): the job has
        claimed the file (moved it out of the inbox), so a new file arriving under the same
        name may be queued while this job still runs. No-op outside a worker."""
        with self._cond:
            key = self._running.get(threading.get_ident())
            if key is not None:
                self._running[threading.get_ident()] = None
                self._forget(key)

    def heartbeat(self) -> None:
        """Record progress of the calling worker's job (e.g. an API call that completed)."""
        with self._cond:
            now_s = self._clock()
            self._last_progress_s = now_s
            me = threading.get_ident()
            if me in self._active:
                self._active[me] = now_s

    def is_stalled(self, max_quiet_s: float) -> bool:
        """True when SOME running job showed no sign of life for over ``max_quiet_s``.

        Per worker, not per pool: one hung worker must count even while the others progress.
        """
        with self._cond:
            now_s = self._clock()
            return any(now_s - seen_s > max_quiet_s for seen_s in self._active.values())

    def is_idle(self) -> bool:
        """True when nothing is waiting, delayed or running."""
        with self._cond:
            return self._idle()

    # -- the worker loop -------------------------------------------------------------------

    def _work(self) -> None:
        while (ticket := self._take()) is not None:
            self._finish(ticket, self._run(ticket))

    def _take(self) -> JobTicket | None:
        """Block until a ticket is ready (None when draining) and mark it running."""
        with self._cond:
            while not self._stopping:
                now_s = self._clock()
                self._promote_due(now_s)
                if self._ready_count:
                    ticket = self._pop_ready()
                    self._in_progress[ticket.folder] += 1
                    self._busy += 1
                    self._last_progress_s = now_s
                    self._active[threading.get_ident()] = now_s
                    self._running[threading.get_ident()] = ticket.key
                    return ticket
                self._cond.wait(self._idle_wait_s(now_s))
            return None

    def _run(self, ticket: JobTicket) -> Outcome | None:
        """Call ``run_job``; None when it raised (logged, never fatal to the worker)."""
        try:
            return self._run_job(ticket)
        except BaseException:  # a bug in the runner must not shrink the pool
            logger.exception("scheduler: job for %s in folder %s raised; ticket dropped",
                             _shown(ticket.path), ticket.folder)
            return None

    def _finish(self, ticket: JobTicket, outcome: Outcome | None) -> None:
        with self._cond:
            now_s = self._clock()
            self._busy -= 1
            self._in_progress[ticket.folder] -= 1
            self._last_progress_s = now_s
            self._active.pop(threading.get_ident(), None)
            key = self._running.pop(threading.get_ident(), None)
            if key is not None:
                self._forget(key)
            tally = self._finished.setdefault(ticket.folder, Counter())
            tally["crashed" if outcome is None else outcome.kind.value] += 1
            again = _follow_up(ticket, outcome)
            if again is not None and outcome is not None:
                self._push_delayed(again, now_s + max(outcome.delay_s, 0.0))
            self._cond.notify_all()

    # -- queue helpers (call with the lock held) -------------------------------------------

    def _admissible(self, ticket: JobTicket) -> bool:
        return self._accepting and self._keys[ticket.key] == 0

    def _push_ready(self, ticket: JobTicket) -> None:
        self._ready.setdefault(ticket.folder, deque()).append(ticket)
        self._ready_count += 1
        self._keys[ticket.key] += 1

    def _push_delayed(self, ticket: JobTicket, due_s: float) -> None:
        heapq.heappush(self._delayed, (due_s, next(self._seq), ticket))
        self._keys[ticket.key] += 1

    def _pop_ready(self) -> JobTicket:
        """Take the head of the first folder's queue and send that folder to the back."""
        folder = next(iter(self._ready))
        queue = self._ready.pop(folder)
        ticket = queue.popleft()
        if queue:
            self._ready[folder] = queue
        self._ready_count -= 1
        return ticket

    def _promote_due(self, now_s: float) -> None:
        promoted = 0
        while self._delayed and self._delayed[0][0] <= now_s:
            ticket = heapq.heappop(self._delayed)[2]
            self._ready.setdefault(ticket.folder, deque()).append(ticket)
            self._ready_count += 1
            promoted += 1
        if promoted > 1:
            self._cond.notify(promoted - 1)  # this worker takes one; wake others for the rest

    def _idle_wait_s(self, now_s: float) -> float | None:
        if not self._delayed:
            return None  # only a submit, a finish or a stop can bring work: they notify
        return max(0.0, min(self._delayed[0][0] - now_s, self._max_wait_s))

    def _forget(self, key: TicketKey) -> None:
        self._keys[key] -= 1
        if self._keys[key] <= 0:
            del self._keys[key]

    def _idle(self) -> bool:
        return self._ready_count == 0 and not self._delayed and self._busy == 0


def _follow_up(ticket: JobTicket, outcome: Outcome | None) -> JobTicket | None:
    """The ticket to run again after ``outcome``, or None."""
    if outcome is None:
        return None
    if outcome.kind is OutcomeKind.RETRY:
        return outcome.ticket or ticket.next_attempt()
    if outcome.kind is OutcomeKind.PAUSED:
        return outcome.ticket or ticket
    return None


def _shown(path: Path) -> str:
    """``path`` safe for a log line even when its name is not valid UTF-8."""
    return str(path).encode("utf-8", "backslashreplace").decode("utf-8")
