"""``control.slots``: at most ``count`` jobs in API calls; closing wakes every waiter."""

from __future__ import annotations

import threading

import pytest

from bgcut_watchd.control.guard import GateClosed
from bgcut_watchd.control.slots import ApiSlots

WAIT_S = 10.0


def _waiter(slots: ApiSlots, outcome: list[str]) -> threading.Thread:
    def wait() -> None:
        try:
            slots.take()
            outcome.append("taken")
        except GateClosed:
            outcome.append("closed")

    thread = threading.Thread(target=wait, daemon=True)
    thread.start()
    return thread


def _taken(slots: ApiSlots) -> int:
    """How many slots are taken: each is given back until giving one more is refused."""
    given = 0
    while True:
        try:
            slots.give()
        except ValueError:
            return given
        given += 1


def test_a_third_taker_waits_until_a_slot_is_given_back() -> None:
    slots = ApiSlots(2)
    slots.take()
    slots.take()
    outcome: list[str] = []
    thread = _waiter(slots, outcome)
    thread.join(0.2)  # the scenario: it is still waiting a while later
    assert thread.is_alive() and outcome == []
    slots.give()
    thread.join(WAIT_S)
    assert outcome == ["taken"] and _taken(slots) == 2


def test_closing_wakes_the_waiters_with_gate_closed_and_refuses_later_takers() -> None:
    slots = ApiSlots(1)
    slots.take()
    outcome: list[str] = []
    threads = [_waiter(slots, outcome) for _ in range(3)]
    slots.close()
    for thread in threads:
        thread.join(WAIT_S)
    assert outcome == ["closed"] * 3
    with pytest.raises(GateClosed):
        slots.take()
    slots.give()  # the job that held one still gives it back
    assert _taken(slots) == 0


def test_giving_back_a_slot_never_taken_is_a_bug() -> None:
    with pytest.raises(ValueError, match="not taken"):
        ApiSlots(1).give()
    with pytest.raises(ValueError, match=">= 1"):
        ApiSlots(0)
