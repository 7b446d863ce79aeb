"""The single-flight registry: one job at a time holds a content key; the others are told no
until it lets go."""

from __future__ import annotations

import threading

from bgcut_watchd.engine.inflight import InFlight


def test_the_first_job_holds_a_key_and_the_others_wait_until_it_ends() -> None:
    flights = InFlight()
    assert flights.begin("k", "a")
    assert flights.begin("k", "a")  # again, by the holder: still its own
    assert not flights.begin("k", "b")
    assert flights.busy("k", "b") and not flights.busy("k", "a")
    assert not flights.busy("other", "b")
    flights.end("b")  # a waiter ending holds nothing: no effect
    assert flights.busy("k", "b")
    flights.end("a")
    assert not flights.busy("k", "b")
    assert flights.begin("k", "b")
    assert flights.held() == 1


def test_a_job_holds_one_key_at_most() -> None:
    flights = InFlight()
    assert flights.begin("k1", "a")
    assert flights.begin("k2", "a")
    assert not flights.busy("k1", "b")
    assert flights.held() == 1
    flights.end("a")
    assert flights.held() == 0


def test_of_eight_threads_racing_for_one_key_exactly_one_wins() -> None:
    flights = InFlight()
    barrier = threading.Barrier(8)
    winners: list[str] = []
    lock = threading.Lock()

    def race(job_id: str) -> None:
        barrier.wait()
        if flights.begin("k", job_id):
            with lock:
                winners.append(job_id)

    threads = [threading.Thread(target=race, args=(f"j{n}",)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert len(winners) == 1
