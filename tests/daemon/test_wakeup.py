"""daemon.wakeup: a wake-up a signal handler may ring (no lock anywhere), on real signals."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from types import FrameType

import pytest

from bgcut_watchd.daemon.wakeup import Wakeup

SIGNALS = 2000


@pytest.fixture
def wakeup() -> Iterator[Wakeup]:
    made = Wakeup()
    yield made
    made.close()


def test_a_ring_wakes_a_wait_until_cleared(wakeup: Wakeup) -> None:
    assert not wakeup.is_set() and wakeup.wait(0.0) is False
    wakeup.set()
    wakeup.set()
    assert wakeup.is_set() and wakeup.wait(5.0) is True
    wakeup.clear()
    assert not wakeup.is_set()


def test_a_ring_from_another_thread_ends_a_long_wait(wakeup: Wakeup) -> None:
    ringer = threading.Timer(0.05, wakeup.set)
    ringer.start()
    started = time.monotonic()
    assert wakeup.wait(10.0) is True
    assert time.monotonic() - started < 5.0
    ringer.join()


def test_a_closed_wakeup_ignores_rings_and_never_blocks() -> None:
    wakeup = Wakeup()
    wakeup.close()
    wakeup.close()
    wakeup.set()
    assert wakeup.wait(10.0) is True  # returns at once: nothing left to wait for


def test_rings_from_a_signal_handler_amid_waits_and_clears_never_deadlock(
    wakeup: Wakeup,
) -> None:
    """What deadlocked the daemon with a threading.Event: the handler runs on the main thread
    between two bytecodes, possibly inside ``clear``/``wait``, and rings again."""
    rung: list[int] = []

    def handler(signum: int, frame: FrameType | None) -> None:
        rung.append(signum)
        wakeup.set()

    stop = threading.Event()  # also paces the signals, so they spread over the loop below

    def send() -> None:
        for _ in range(SIGNALS):
            if stop.wait(0.0002):
                return
            os.kill(os.getpid(), signal.SIGUSR1)

    previous = signal.signal(signal.SIGUSR1, handler)
    sender = threading.Thread(target=send)
    try:
        sender.start()
        while sender.is_alive():  # the main loop's own pattern, as fast as it goes: it
            wakeup.clear()        # clears, rings itself (a file noticed by its own scan)
            wakeup.set()          # and waits
            wakeup.wait(0.0)
        sender.join()
    finally:
        stop.set()
        sender.join()
        signal.signal(signal.SIGUSR1, previous)
    assert rung  # the handler ran (signals of one kind may coalesce)
