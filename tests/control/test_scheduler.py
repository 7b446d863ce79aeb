"""Tests for bgcut_watchd.control.scheduler: the pool, delayed retries, drain, back-pressure."""

from __future__ import annotations

import logging
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bgcut_watchd.control.scheduler import JobTicket, Outcome, Scheduler

Job = Callable[[JobTicket], Outcome]


def wait_for(predicate: Callable[[], bool], timeout_s: float = 5.0) -> bool:
    deadline_s = time.monotonic() + timeout_s
    while time.monotonic() < deadline_s:
        if predicate():
            return True
        threading.Event().wait(0.002)
    return predicate()


class FakeClock:
    def __init__(self, start_s: float = 100.0) -> None:
        self._now_s = start_s
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self._now_s

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._now_s += seconds


class Recorder:
    """A run_job that records calls and concurrency; jobs can be held until released."""

    def __init__(self, outcome: Callable[[JobTicket], Outcome] = lambda t: Outcome.done()):
        self.outcome = outcome
        self.release = threading.Event()
        self.hold = False
        self.lock = threading.Lock()
        self.running = 0
        self.max_running = 0
        self.calls: list[JobTicket] = []

    def __call__(self, ticket: JobTicket) -> Outcome:
        with self.lock:
            self.calls.append(ticket)
            self.running += 1
            self.max_running = max(self.max_running, self.running)
        try:
            if self.hold:
                assert self.release.wait(10)
            return self.outcome(ticket)
        finally:
            with self.lock:
                self.running -= 1

    def count(self) -> int:
        with self.lock:
            return len(self.calls)


def ticket(n: int, folder: str = "studio") -> JobTicket:
    return JobTicket(folder, Path(f"/srv/{folder}/inbox/img{n}.jpg"))


@pytest.fixture
def schedulers() -> Iterator[list[Scheduler]]:
    made: list[Scheduler] = []
    yield made
    for scheduler in made:
        scheduler.stop_accepting()


def make(schedulers: list[Scheduler], job: Job, workers: int = 2, **kwargs: object) -> Scheduler:
    scheduler = Scheduler(workers, job, max_wait_s=0.002, **kwargs)  # type: ignore[arg-type]
    schedulers.append(scheduler)
    return scheduler


def test_never_more_than_workers_jobs_at_once(schedulers: list[Scheduler]) -> None:
    job = Recorder()
    job.hold = True
    scheduler = make(schedulers, job, workers=3)
    scheduler.start()
    for n in range(20):
        assert scheduler.submit(ticket(n))
    assert wait_for(lambda: job.running == 3)
    assert scheduler.stats().busy == 3 and scheduler.stats().total.waiting == 17
    job.release.set()
    assert wait_for(scheduler.is_idle, timeout_s=10)
    assert job.max_running == 3
    assert scheduler.stats().total.done == 20
    assert sorted(t.path.name for t in job.calls) == sorted(f"img{n}.jpg" for n in range(20))


def test_a_retry_waits_in_the_delayed_heap_until_due(schedulers: list[Scheduler]) -> None:
    clock = FakeClock()
    job = Recorder(lambda t: Outcome.retry(30.0) if t.attempt == 1 else Outcome.done())
    scheduler = make(schedulers, job, clock=clock)
    scheduler.start()
    scheduler.submit(ticket(1))
    assert wait_for(lambda: scheduler.stats().total.delayed == 1)
    clock.advance(29.0)
    assert not wait_for(lambda: job.count() > 1, timeout_s=0.1)
    assert not scheduler.is_idle()
    clock.advance(1.0)
    assert wait_for(lambda: scheduler.is_idle())
    assert [t.attempt for t in job.calls] == [1, 2]
    stats = scheduler.stats().folders["studio"]
    assert (stats.retried, stats.done, stats.delayed) == (1, 1, 0)


def test_paused_runs_again_without_counting_and_may_carry_a_new_ticket(
    schedulers: list[Scheduler],
) -> None:
    claimed = JobTicket("studio", Path("/srv/studio/inbox/.bgcut-work/abc/input.jpg"),
                        job_id="abc")
    job = Recorder(lambda t: Outcome.paused(0.0, claimed) if t.job_id is None else Outcome.done())
    scheduler = make(schedulers, job)
    scheduler.start()
    scheduler.submit(ticket(1))
    assert wait_for(scheduler.is_idle)
    assert [(t.job_id, t.attempt) for t in job.calls] == [(None, 1), ("abc", 1)]
    assert scheduler.stats().folders["studio"].paused == 1


def test_stop_accepting_lets_the_running_finish_and_starts_nothing_more(
        schedulers: list[Scheduler]) -> None:
    job = Recorder()
    job.hold = True
    scheduler = make(schedulers, job, workers=2, thread_name="bgcut-drain")
    scheduler.start()
    for n in range(10):
        scheduler.submit(ticket(n))
    scheduler.submit_later(ticket(99), 3600.0)
    assert wait_for(lambda: job.running == 2)
    scheduler.stop_accepting()  # returns at once: the engine's drain does the waiting
    stats = scheduler.stats()
    assert (stats.busy, stats.accepting) == (2, False)  # the two still run
    assert not scheduler.submit(ticket(100)) and not scheduler.submit_later(ticket(101), 1.0)
    total = scheduler.stats().total
    assert (total.waiting, total.delayed) == (8, 1)  # left unstarted
    job.release.set()
    assert wait_for(lambda: scheduler.stats().busy == 0)
    assert job.count() == 2  # nothing new started while draining
    assert scheduler.stats().total.waiting + scheduler.stats().total.delayed == 9
    assert wait_for(lambda: _pool_threads("bgcut-drain") == 0)  # the workers ended


def test_an_exception_in_run_job_does_not_kill_the_worker(
    schedulers: list[Scheduler], caplog: pytest.LogCaptureFixture
) -> None:
    def job(t: JobTicket) -> Outcome:
        if t.path.name == "img1.jpg":
            raise RuntimeError("bug in the runner")
        if t.path.name == "img2.jpg":
            raise SystemExit(3)
        return Outcome.done()

    scheduler = make(schedulers, job, workers=1)
    for n in (1, 2, 3):
        scheduler.submit(ticket(n))
    with caplog.at_level(logging.ERROR, logger="bgcut_watchd.control.scheduler"):
        scheduler.start()
        assert wait_for(scheduler.is_idle)
    stats = scheduler.stats().folders["studio"]
    assert (stats.crashed, stats.done) == (2, 1)
    assert "img1.jpg" in caplog.text and "RuntimeError: bug in the runner" in caplog.text
    assert scheduler.submit(ticket(4)) and wait_for(scheduler.is_idle)
    assert scheduler.stats().folders["studio"].done == 2


def _traced_bytes(action: Callable[[], object]) -> tuple[int, object]:
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        result = action()
        return tracemalloc.get_traced_memory()[0] - before, result
    finally:
        tracemalloc.stop()


def _pool_threads(prefix: str) -> int:
    return sum(1 for t in threading.enumerate() if t.name.startswith(prefix))


def test_100000_tickets_make_no_extra_threads_and_stay_cheap(
    schedulers: list[Scheduler],
) -> None:
    job = Recorder()
    job.hold = True
    before = threading.active_count()
    scheduler = make(schedulers, job, workers=4, thread_name="bgcut-100k")
    scheduler.start()
    ticket_bytes, _ = _traced_bytes(lambda: [ticket(n) for n in range(10_000)])
    tickets = [ticket(n) for n in range(100_000)]
    queue_bytes, accepted = _traced_bytes(lambda: all(scheduler.submit(t) for t in tickets))
    assert accepted
    assert _pool_threads("bgcut-100k") == 4
    assert threading.active_count() <= before + 4
    # A waiting file costs a ticket (a Path and a few fields) plus its queue entry.
    assert ticket_bytes / 10_000 + queue_bytes / 100_000 < 1024
    job.release.set()
    assert wait_for(scheduler.is_idle, timeout_s=60)
    assert scheduler.stats().total.done == 100_000
    assert _pool_threads("bgcut-100k") == 4
    assert threading.active_count() <= before + 4


def test_duplicates_and_capacity(schedulers: list[Scheduler]) -> None:
    scheduler = make(schedulers, Recorder(), max_waiting=2)
    assert scheduler.submit(ticket(1))
    assert not scheduler.submit(ticket(1))  # same folder and path: refused
    assert not scheduler.submit_later(ticket(1), 1.0)
    assert scheduler.submit(ticket(2))
    assert not scheduler.submit(ticket(3))  # the ready queue is full
    assert scheduler.submit_later(ticket(3), 10.0)  # retries are not bounded
    scheduler.start()
    assert wait_for(lambda: scheduler.stats().total.done == 2)  # queued work runs


def test_a_running_ticket_can_free_its_path_for_a_new_file(schedulers: list[Scheduler]) -> None:
    """After the claim moved the file away, the same name may arrive again (a camera after a
    card reset): the running ticket releases its key, a new ticket for that path is taken."""
    released = threading.Event()
    finish = threading.Event()

    def job(t: JobTicket) -> Outcome:
        if t.attempt == 1 and t.job_id is None and not released.is_set():
            scheduler.release_running_key()
            released.set()
            finish.wait(10)
        return Outcome.done()

    scheduler = make(schedulers, job, workers=2)
    scheduler.start()
    assert scheduler.submit(ticket(1))
    assert wait_for(released.is_set)
    assert scheduler.submit(ticket(1))  # the same (folder, path), while the first still runs
    assert wait_for(lambda: scheduler.stats().total.done == 1)
    finish.set()
    assert wait_for(lambda: scheduler.stats().total.done == 2)
    scheduler.release_running_key()  # outside a worker: nothing to release, no error


def test_folders_are_served_round_robin(schedulers: list[Scheduler]) -> None:
    job = Recorder()
    scheduler = make(schedulers, job, workers=1)
    for n in range(5):
        scheduler.submit(ticket(n, "big"))
    scheduler.submit(ticket(0, "small"))
    scheduler.start()
    assert wait_for(scheduler.is_idle)
    assert [t.folder for t in job.calls][:3] == ["big", "small", "big"]


def test_progress_and_stall_detection_for_the_watchdog(schedulers: list[Scheduler]) -> None:
    clock = FakeClock()
    job = Recorder()
    job.hold = True
    scheduler = make(schedulers, job, workers=1, clock=clock)
    scheduler.start()
    clock.advance(10.0)
    scheduler.submit(ticket(1))
    assert wait_for(lambda: job.running == 1)
    assert scheduler.stats().last_progress_at_s == 110.0
    clock.advance(61.0)
    assert scheduler.is_stalled(60.0)
    scheduler.heartbeat()  # from outside any job: progress, but it cannot vouch for the worker
    assert scheduler.is_stalled(60.0) and scheduler.stats().last_progress_at_s == 171.0
    clock.advance(5.0)
    job.release.set()
    assert wait_for(scheduler.is_idle)
    assert scheduler.stats().last_progress_at_s == 176.0
    clock.advance(1000.0)
    assert not scheduler.is_stalled(60.0)  # idle is not hung


def test_one_hung_worker_is_stalled_while_another_progresses(
    schedulers: list[Scheduler],
) -> None:
    clock = FakeClock()
    hung = threading.Event()
    beat = threading.Event()
    beaten = threading.Event()

    def job(ticket: JobTicket) -> Outcome:
        if ticket.path.name == "img1.jpg":
            hung.wait(10)  # never heartbeats
        else:
            while not hung.is_set():  # a healthy worker heartbeats on request
                if beat.wait(0.01):
                    beat.clear()
                    scheduler.heartbeat()
                    beaten.set()
        return Outcome.done()

    scheduler = make(schedulers, job, workers=2, clock=clock)
    scheduler.start()
    scheduler.submit(ticket(1))
    scheduler.submit(ticket(2))
    assert wait_for(lambda: scheduler.stats().busy == 2)
    clock.advance(61.0)
    beat.set()
    assert wait_for(beaten.is_set)
    assert scheduler.stats().last_progress_at_s == clock()  # the pool as a whole progressed...
    assert scheduler.is_stalled(60.0)  # ...yet one worker is hung: the watchdog must trip
    hung.set()
    assert wait_for(scheduler.is_idle)
    assert not scheduler.is_stalled(60.0)


def test_start_twice_and_zero_workers_are_refused(schedulers: list[Scheduler]) -> None:
    with pytest.raises(ValueError):
        Scheduler(0, Recorder())
    scheduler = make(schedulers, Recorder())
    scheduler.start()
    with pytest.raises(RuntimeError):
        scheduler.start()
