"""Tests for bgcut_watchd.control.guard: every API call passes the API pause and the limiter;
the guard applies pauses but never decides them."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from bgcut_watchd import errors
from bgcut_watchd.control.guard import ApiGuard, GateClosed
from bgcut_watchd.control.pause import PauseReason, ProbedPause
from bgcut_watchd.control.ratelimit import RateLimiter


class _Clock:
    """A monotonic clock a test moves on."""

    def __init__(self) -> None:
        self.now_s = 1000.0

    def __call__(self) -> float:
        return self.now_s


def make_guard(answers: list[int] | None = None, clock: Callable[[], float] = time.monotonic,
               ) -> tuple[ApiGuard, ProbedPause, RateLimiter]:
    pause = ProbedPause(max_wait_s=0.01)
    limiter = RateLimiter(60_000, clock=clock)
    counter = answers if answers is not None else []
    guard = ApiGuard(pause, limiter, threading.Event(), penalty_s=7.0,
                     on_answer=lambda: counter.append(1))
    return guard, pause, limiter


def test_a_call_passes_and_counts_as_a_sign_of_life() -> None:
    answers: list[int] = []
    guard, _, _ = make_guard(answers)
    assert guard.call("upload", lambda: "ok") == "ok"
    assert answers == [1]


def test_an_api_failure_is_not_a_pause_decision() -> None:
    """A 401 goes back to the failure policy; the guard itself pauses nothing."""
    guard, pause, _ = make_guard()

    def refused() -> None:
        raise errors.AuthError("upload", "Invalid token", 401)

    with pytest.raises(errors.AuthError):
        guard.call("upload", refused)
    assert not pause.state().paused


@pytest.mark.parametrize(("retry_after_s", "held_s"), [(30.0, 30.0), (None, 7.0)])
def test_a_429_holds_everyone_back_by_its_retry_after_or_the_penalty(
        retry_after_s: float | None, held_s: float) -> None:
    clock = _Clock()
    guard, _, limiter = make_guard(clock=clock)

    def limited() -> None:
        raise errors.RateLimitedError("process", "slow down", retry_after_s=retry_after_s)

    with pytest.raises(errors.RateLimitedError):
        guard.call("process", limited)
    # A token due after the deadline is refused at once; the one after the hold is taken.
    assert not limiter.acquire(timeout_s=held_s - 0.5)
    clock.now_s += held_s + 0.5
    assert limiter.acquire(timeout_s=0.0)


def test_a_closed_pause_hands_the_job_back() -> None:
    guard, pause, _ = make_guard()
    pause.pause(PauseReason.AUTH, 300.0, "Invalid token")
    with pytest.raises(GateClosed):
        guard.call("upload", lambda: "never sent")


def test_the_probe_success_ends_an_auth_pause() -> None:
    guard, pause, _ = make_guard()
    pause.pause(PauseReason.AUTH, 0.0, "Invalid token")
    assert guard.call("upload", lambda: "ok") == "ok"  # this thread took the probe
    assert not pause.state().paused


def test_only_a_process_call_ends_a_credits_pause() -> None:
    guard, pause, _ = make_guard()
    pause.pause(PauseReason.CREDITS, 0.0, "Insufficient credits")
    guard.call("upload", lambda: "uploaded")  # says nothing about credits
    assert pause.state().paused and pause.state().probing
    guard.call("process", lambda: "processed")
    assert not pause.state().paused


def test_every_api_failure_reaches_on_failure_before_it_is_raised() -> None:
    seen: list[BaseException] = []
    pause = ProbedPause(max_wait_s=0.01)
    guard = ApiGuard(pause, RateLimiter(60_000), threading.Event(), penalty_s=1.0,
                     on_failure=seen.append)
    exc = errors.CreditsError("process", "Insufficient credits", 402)

    def refused() -> None:
        assert seen == []  # not yet: the call is still running
        raise exc

    with pytest.raises(errors.CreditsError):
        guard.call("process", refused)
    assert seen == [exc]
