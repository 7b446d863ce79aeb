"""Tests for bgcut_watchd.control.pause: the single probe of a pause, for the API and per folder."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime

import pytest

from bgcut_watchd.control.pause import FolderPauses, PauseReason, PauseState, ProbedPause

QUIET_S = 0.1  # how long a "nothing happens" check watches


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

    def set(self, now_s: float) -> None:
        with self._lock:
            self._now_s = now_s


def short_real_wait(event: threading.Event, timeout_s: float) -> bool:
    """Real waits of at most 2 ms: the fake clock is re-read promptly."""
    return event.wait(min(timeout_s, 0.002))


class Worker:
    """A thread that passes the gate, reports it, then runs the commands it is sent."""

    def __init__(self, gate: ProbedPause, passed: queue.Queue[Worker], cancel: threading.Event):
        self.gate, self.passed, self.cancel = gate, passed, cancel
        self.commands: queue.Queue[Callable[[], object]] = queue.Queue()
        self.was_probe: list[bool] = []
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while self.gate.wait_until_open(self.cancel):
            self.was_probe.append(self.gate.state().probing)
            self.passed.put(self)
            command = self.commands.get()
            command()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def gate(clock: FakeClock) -> ProbedPause:
    return ProbedPause(clock=clock, wait=short_real_wait, max_wait_s=0.002, probe_lease_s=1000.0)


@pytest.fixture
def cancel() -> Iterator[threading.Event]:
    event = threading.Event()
    yield event
    event.set()


def _start_workers(gate: ProbedPause, cancel: threading.Event, n: int) -> queue.Queue[Worker]:
    passed: queue.Queue[Worker] = queue.Queue()
    for _ in range(n):
        Worker(gate, passed, cancel)
    return passed


def _nobody_passes(passed: queue.Queue[Worker]) -> bool:
    return not wait_for(lambda: not passed.empty(), timeout_s=QUIET_S)


def test_an_open_gate_lets_everyone_through(gate: ProbedPause, cancel: threading.Event) -> None:
    assert not gate.state().paused
    assert gate.wait_until_open(cancel, timeout_s=0)
    assert not gate.state().probing
    assert gate.state() == PauseState(paused=False)


def test_one_probe_after_expiry_renewal_on_failure_then_resume(
    gate: ProbedPause, clock: FakeClock, cancel: threading.Event
) -> None:
    gate.pause(PauseReason.AUTH, 300.0, detail="Invalid token")
    passed = _start_workers(gate, cancel, 4)
    clock.set(399.0)
    assert _nobody_passes(passed)

    clock.set(400.0)
    prober = passed.get(timeout=5)
    assert prober.was_probe == [True]
    assert gate.state().probing
    assert _nobody_passes(passed)  # the other three keep waiting for the verdict

    prober.commands.put(lambda: gate.pause(PauseReason.AUTH, 300.0))  # the probe failed
    assert wait_for(lambda: not gate.state().probing)
    assert gate.state().until_s == 700.0
    clock.set(699.0)
    assert _nobody_passes(passed)

    clock.set(700.0)
    second = passed.get(timeout=5)
    assert second.was_probe[-1] is True
    assert _nobody_passes(passed)
    second.commands.put(gate.report_success)  # the probe succeeded: everyone goes
    everyone = {passed.get(timeout=5) for _ in range(4)}  # the prober passes again too
    assert len(everyone) == 4
    assert not gate.state().paused
    assert all(w.was_probe[-1] is False for w in everyone)


def test_an_inconclusive_probe_hands_the_probe_on(
    gate: ProbedPause, clock: FakeClock, cancel: threading.Event
) -> None:
    gate.pause(PauseReason.CREDITS, 900.0)
    passed = _start_workers(gate, cancel, 2)
    clock.set(1000.0)
    prober = passed.get(timeout=5)
    prober.commands.put(gate.release_probe)  # e.g. a 5xx: no verdict on the credits
    successor = passed.get(timeout=5)
    assert successor.was_probe[-1] is True
    assert gate.state().paused


def test_a_lost_probe_expires_after_its_lease(clock: FakeClock, cancel: threading.Event) -> None:
    gate = ProbedPause(clock=clock, wait=short_real_wait, max_wait_s=0.002, probe_lease_s=60.0)
    gate.pause(PauseReason.AUTH, 10.0)
    passed = _start_workers(gate, cancel, 2)
    clock.set(110.0)
    passed.get(timeout=5)  # this prober never reports back
    clock.set(169.0)
    assert _nobody_passes(passed)
    clock.set(170.0)
    assert passed.get(timeout=5).was_probe[-1] is True


def test_success_of_a_thread_that_is_not_the_probe_is_ignored(gate: ProbedPause) -> None:
    gate.pause(PauseReason.AUTH, 300.0)
    assert gate.report_success() is False
    assert gate.state().paused


def test_resume_opens_the_gate_for_waiting_workers(
    gate: ProbedPause, cancel: threading.Event
) -> None:
    gate.pause(PauseReason.AUTH, 300.0)
    passed = _start_workers(gate, cancel, 3)
    assert _nobody_passes(passed)
    gate.resume()
    assert len({passed.get(timeout=5) for _ in range(3)}) == 3


def test_cancel_and_timeout_end_the_wait(gate: ProbedPause, cancel: threading.Event) -> None:
    gate.pause(PauseReason.AUTH, 300.0)
    assert gate.wait_until_open(cancel, timeout_s=0) is False
    result: list[bool] = []
    thread = threading.Thread(target=lambda: result.append(gate.wait_until_open(cancel)))
    thread.start()
    cancel.set()
    thread.join(timeout=5)
    assert result == [False]


def test_a_renewal_never_shortens_and_keeps_since(gate: ProbedPause, clock: FakeClock) -> None:
    gate.pause(PauseReason.CREDITS, 900.0, detail="no credits")
    clock.set(150.0)
    gate.pause(PauseReason.AUTH, 10.0)
    state = gate.state()
    assert (state.reason, state.detail, state.since_s, state.until_s) == (
        PauseReason.CREDITS, "no credits", 100.0, 1000.0)
    assert state.probe_in_s == 850.0


def test_state_describes_the_pause_for_the_status_line(gate: ProbedPause, clock: FakeClock) -> None:
    gate.pause(PauseReason.AUTH, 300.0)
    clock.set(160.0)
    state = gate.state()
    assert state.paused and state.reason is PauseReason.AUTH and not state.probing
    wall_now = datetime(2025, 1, 2, 14, 1, 0)
    assert state.describe(wall_now) == "paused: API key rejected (401), next try 14:05"
    assert PauseState(paused=False).describe(wall_now) == "running"


def test_an_outage_says_since_when_the_service_is_unreachable(
        gate: ProbedPause, clock: FakeClock) -> None:
    gate.pause(PauseReason.UNREACHABLE, 60.0, "request not sent")
    clock.set(700.0)  # ten minutes later, renewed by a failed probe
    gate.pause(PauseReason.UNREACHABLE, 120.0, "request not sent")
    wall_now = datetime(2025, 1, 2, 14, 1, 0)
    assert gate.state().describe(wall_now) == (
        "paused: service unreachable since 13:51, next try 14:03")


def test_folder_pause_expires_and_resumes(clock: FakeClock) -> None:
    pauses = FolderPauses(clock=clock)
    studio = pauses.of("studio")
    studio.pause(PauseReason.DISK, 60.0, "outbox full")
    assert studio.try_enter() == 60.0 and pauses.of("shop").try_enter() is None
    assert pauses.snapshot()["studio"].detail == "outbox full"
    assert set(pauses.snapshot()) == {"studio"}
    clock.set(159.0)
    assert studio.try_enter() == pytest.approx(1.0)
    studio.resume()
    assert studio.try_enter() is None and pauses.snapshot() == {}


def _admit_in_thread(pauses: FolderPauses, folder: str) -> bool:
    result: list[bool] = []
    thread = threading.Thread(target=lambda: result.append(pauses.of(folder).try_enter() is None))
    thread.start()
    thread.join(timeout=5)
    return result[0]


def test_folder_admits_one_probe_after_expiry(clock: FakeClock) -> None:
    pauses = FolderPauses(clock=clock, probe_lease_s=100.0)
    studio = pauses.of("studio")
    studio.pause(PauseReason.DISK, 60.0, "outbox full")
    assert studio.try_enter() is not None
    assert _admit_in_thread(pauses, "shop")  # other folders are unaffected
    clock.set(160.0)
    assert studio.try_enter() is None  # this thread is the probe
    assert studio.try_enter() is None  # and stays admitted
    assert not _admit_in_thread(pauses, "studio")
    studio.pause(PauseReason.DISK, 60.0, "still full")  # the probe failed: renewed, released
    assert studio.try_enter() is not None
    clock.set(220.0)
    assert _admit_in_thread(pauses, "studio")
    clock.set(320.0)  # that probe never reported: its lease is over
    assert studio.try_enter() is None
    assert studio.report_success()  # the probe proved the disk works: open for all
    assert _admit_in_thread(pauses, "studio")


def test_release_probe_lets_the_next_thread_probe_at_once(clock: FakeClock) -> None:
    pauses = FolderPauses(clock=clock, probe_lease_s=100.0)
    studio = pauses.of("studio")
    studio.pause(PauseReason.DISK, 60.0, "outbox full")
    clock.set(160.0)
    assert studio.try_enter() is None
    assert not _admit_in_thread(pauses, "studio")
    studio.release_probe()  # e.g. the probe's file vanished: no verdict on the disk
    assert _admit_in_thread(pauses, "studio")
    assert studio.state().paused  # still paused until a probe succeeds
