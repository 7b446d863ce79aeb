"""The alarm clock behind every call's deadline: one thread, many alarms, cheap cancels."""

from __future__ import annotations

import threading
import time

import pytest

from bgcut_watchd.api import alarms
from bgcut_watchd.api.alarms import AlarmClock
from tests.support import wait_for


def test_alarms_ring_in_time_order_and_a_cancelled_one_never_rings() -> None:
    clock, rang = AlarmClock(), []
    started = time.monotonic()
    clock(0.3, lambda: rang.append(("late", time.monotonic() - started)))
    clock(0.1, lambda: rang.append(("early", time.monotonic() - started)))  # wakes the thread
    clock(0.2, lambda: rang.append(("cancelled", 0.0))).cancel()
    wait_for(lambda: len(rang) == 2, timeout_s=5, what="two alarms")
    assert [name for name, _ in rang] == ["early", "late"]
    assert 0.1 <= rang[0][1] < 0.25 and 0.3 <= rang[1][1] < 0.45
    assert len(rang) == 2


def test_cancelling_after_it_rang_does_nothing() -> None:
    clock, rang = AlarmClock(), threading.Event()
    alarm = clock(0.0, rang.set)
    assert rang.wait(5)
    alarm.cancel()
    clock(0.0, rang.set).cancel()  # and the clock still works


def test_cancelled_alarms_do_not_pile_up() -> None:
    clock = AlarmClock()
    for _ in range(10_000):
        clock(300.0, lambda: None).cancel()  # a call that ended long before its deadline
    assert len(clock._heap) <= 2 * 1 + 64  # white-box: rebuilt once over twice the live ones


def test_a_failing_action_does_not_stop_later_alarms(caplog: pytest.LogCaptureFixture) -> None:
    clock, rang = AlarmClock(), threading.Event()

    def broken() -> None:
        raise RuntimeError("bug")

    clock(0.0, broken)
    clock(0.05, rang.set)
    assert rang.wait(5)
    assert any("deadline's action failed" in r.getMessage() for r in caplog.records)


def test_the_thread_ends_when_idle_and_comes_back_on_demand(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(alarms, "IDLE_S", 0.1)
    clock, rang = AlarmClock(), threading.Event()

    def alarm_threads() -> int:
        return sum(t.name == "bgcut-alarms" for t in threading.enumerate())

    before = alarm_threads()
    clock(0.0, lambda: None)
    wait_for(lambda: alarm_threads() == before, timeout_s=5, what="the idle thread ended")
    clock(0.0, rang.set)
    assert rang.wait(5)
