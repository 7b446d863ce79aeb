"""Tests for bgcut_watchd.control.ratelimit: the shared token bucket, on a virtual clock."""

from __future__ import annotations

import threading
import time

import pytest

from bgcut_watchd.control.ratelimit import RateLimiter, default_burst


class VirtualTime:
    """A clock and a waiter: waiting ``t`` moves time to ``now + t`` (never backwards).

    Each thread's last clock reading is kept, so a test knows the exact time at which the
    limiter granted that thread its token (the last reading inside ``acquire``).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._now_s = 1000.0
        self._local = threading.local()

    def __call__(self) -> float:
        with self._lock:
            self._local.last_s = self._now_s
            return self._now_s

    def wait(self, event: threading.Event, timeout_s: float) -> bool:
        with self._lock:
            self._now_s = max(self._now_s, self._local.last_s + timeout_s)
        return event.is_set()

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._now_s += seconds

    def last_reading_s(self) -> float:
        return float(self._local.last_s)


def _max_in_window(times_s: list[float], window_s: float) -> int:
    times_s = sorted(times_s)
    best = 0
    for i, start in enumerate(times_s):
        count = sum(1 for t in times_s[i:] if t < start + window_s)
        best = max(best, count)
    return best


def test_default_burst_is_two_seconds_worth_at_least_one() -> None:
    assert default_burst(120) == 4
    assert default_burst(30) == 1
    assert default_burst(1) == 1
    assert default_burst(600) == 20


def test_one_thread_never_exceeds_the_rate_plus_burst_and_uses_it_fully() -> None:
    clock = VirtualTime()
    limiter = RateLimiter(60, clock=clock, wait=clock.wait)
    start_s = clock()
    grants_s = []
    for _ in range(200):
        assert limiter.acquire()
        grants_s.append(clock.last_reading_s())
    assert _max_in_window(grants_s, 60.0) <= 60 + limiter.burst
    # Not slower than the rate either: 200 tokens, ``burst`` of them free at the start.
    assert grants_s[-1] - start_s == pytest.approx((200 - limiter.burst) * 1.0)


def test_eight_threads_share_one_budget() -> None:
    clock = VirtualTime()
    limiter = RateLimiter(120, clock=clock, wait=clock.wait)
    grants_s: list[float] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(40):
            assert limiter.acquire(timeout_s=3600.0)
            with lock:
                grants_s.append(clock.last_reading_s())

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(grants_s) == 320
    assert _max_in_window(grants_s, 60.0) <= 120 + limiter.burst
    assert _max_in_window(grants_s, 1.0) <= 2 + limiter.burst


def test_penalise_holds_everyone_back_and_leaves_no_burst() -> None:
    clock = VirtualTime()
    limiter = RateLimiter(120, clock=clock, wait=clock.wait)  # interval 0.5 s, burst 4
    t0_s = clock()
    limiter.penalise(30.0)
    grants_s = []
    for _ in range(3):
        assert limiter.acquire()
        grants_s.append(clock.last_reading_s() - t0_s)
    assert grants_s == pytest.approx([30.0, 30.5, 31.0])


def test_penalise_never_shortens_an_earlier_penalty() -> None:
    clock = VirtualTime()
    limiter = RateLimiter(60, clock=clock, wait=clock.wait)
    t0_s = clock()
    limiter.penalise(50.0)
    limiter.penalise(5.0)
    limiter.penalise(-3.0)
    assert limiter.acquire()
    assert clock.last_reading_s() - t0_s == pytest.approx(50.0)


def test_timeout_returns_false_without_taking_a_token() -> None:
    clock = VirtualTime()
    limiter = RateLimiter(60, clock=clock, wait=clock.wait, burst=1)
    assert limiter.acquire()
    t0_s = clock()
    assert not limiter.acquire(timeout_s=0.5)
    assert clock() - t0_s < 0.5  # the token is due after the deadline: no point waiting
    assert limiter.acquire(timeout_s=1.0)
    assert clock.last_reading_s() - t0_s == pytest.approx(1.0)


def test_cancel_wakes_a_waiting_thread_on_the_real_clock() -> None:
    limiter = RateLimiter(1, burst=1)  # real clock and waiter: the next token is a minute away
    assert limiter.acquire()
    cancel = threading.Event()
    result: list[bool] = []
    thread = threading.Thread(target=lambda: result.append(limiter.acquire(cancel=cancel)))
    thread.start()
    started_s = time.monotonic()
    cancel.set()
    thread.join(timeout=5)
    assert result == [False]
    assert time.monotonic() - started_s < 2.0


def test_a_set_cancel_refuses_even_a_free_token() -> None:
    limiter = RateLimiter(60)
    cancel = threading.Event()
    cancel.set()
    assert not limiter.acquire(cancel=cancel)
    assert limiter.acquire()


@pytest.mark.parametrize(("per_minute", "burst"), [(0, None), (-5, None), (60, 0)])
def test_invalid_limits_are_refused(per_minute: int, burst: int | None) -> None:
    with pytest.raises(ValueError):
        RateLimiter(per_minute, burst=burst)
