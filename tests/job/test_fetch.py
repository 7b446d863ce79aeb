"""``job.fetch``: a job's downloads side by side, bounded, and the failure that decides."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from bgcut_watchd.errors import (
    AuthError,
    BadOutputError,
    LocalDiskError,
    RemoteFileMissingError,
    ServiceError,
)
from bgcut_watchd.job.fetch import DOWNLOADS_PER_JOB, decisive, fetch_all

WAIT_S = 10.0


@pytest.fixture
def pool() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(2 * DOWNLOADS_PER_JOB) as executor:
        yield executor


def test_every_item_is_fetched_once_and_at_most_the_bound_run_at_once(
        pool: ThreadPoolExecutor) -> None:
    lock = threading.Lock()
    running, peak, seen = 0, 0, []
    all_in = threading.Barrier(DOWNLOADS_PER_JOB, timeout=WAIT_S)

    def fetch(item: int) -> None:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
            seen.append(item)
        if item < DOWNLOADS_PER_JOB:
            all_in.wait()  # the first ones meet: they did run at the same time
        with lock:
            running -= 1

    assert fetch_all(list(range(10)), fetch, pool) == []
    assert sorted(seen) == list(range(10))
    assert peak == DOWNLOADS_PER_JOB


def test_without_a_pool_items_are_fetched_one_after_another_on_the_caller() -> None:
    threads: set[int] = set()
    assert fetch_all([1, 2, 3], lambda _: threads.add(threading.get_ident()), None) == []
    assert threads == {threading.get_ident()}


def test_failures_come_back_in_item_order_and_the_others_still_run(
        pool: ThreadPoolExecutor) -> None:
    done: list[int] = []

    def fetch(item: int) -> None:
        if item in (1, 3):
            raise ServiceError("download", f"item {item}")
        done.append(item)

    failed = fetch_all([0, 1, 2, 3, 4], fetch, pool)
    assert [str(exc) for exc in failed] == ["download: item 1", "download: item 3"]
    assert sorted(done) == [0, 2, 4]


def test_checks_run_after_the_fetches_and_the_slot_goes_back_before_the_last_checks(
        pool: ThreadPoolExecutor) -> None:
    """Every fetch ends before ``on_fetched``; ``on_fetched`` runs once, before some check is
    still to come (here: before any, the checks wait for it), and a failed fetch is not checked.
    """
    lock = threading.Lock()
    events: list[str] = []
    given_back = threading.Event()

    def fetch(item: int) -> None:
        if item == 2:
            raise ServiceError("download", "reset")
        with lock:
            events.append(f"fetch {item}")

    def check(item: int) -> None:
        assert given_back.wait(WAIT_S)  # a check never holds up the slot's return
        with lock:
            events.append(f"check {item}")
        if item == 3:
            raise BadOutputError("download", "html")

    def slot_back() -> None:
        with lock:
            events.append("slot back")
        given_back.set()

    failed = fetch_all([0, 1, 2, 3], fetch, pool, check_one=check, on_fetched=slot_back)
    assert [type(exc) for exc in failed] == [ServiceError, BadOutputError]
    assert events.count("slot back") == 1
    back = events.index("slot back")
    assert sorted(events[:back]) == ["fetch 0", "fetch 1", "fetch 3"]
    assert sorted(events[back + 1:]) == ["check 0", "check 1", "check 3"]


def test_without_a_pool_the_slot_goes_back_before_the_first_check() -> None:
    events: list[str] = []
    fetch_all([1, 2], lambda item: events.append(f"fetch {item}"), None,
              check_one=lambda item: events.append(f"check {item}"),
              on_fetched=lambda: events.append("slot back"))
    assert events[:3] == ["fetch 1", "fetch 2", "slot back"]
    assert sorted(events[3:]) == ["check 1", "check 2"]


def test_with_nothing_to_fetch_the_slot_goes_back_at_once(pool: ThreadPoolExecutor) -> None:
    events: list[str] = []
    assert fetch_all([], events.append, pool, on_fetched=lambda: events.append("back")) == []
    assert events == ["back"]


def test_the_decisive_failure_covers_the_others() -> None:
    disk, auth = LocalDiskError("full"), AuthError("download", "bad key", 401)
    missing = RemoteFileMissingError("download", "gone", 404)
    bad, service = BadOutputError("download", "html"), ServiceError("download", "busy", 503)
    assert decisive([service, bad, missing, auth, disk]) is disk
    assert decisive([service, bad, missing, auth]) is auth
    assert decisive([service, bad, missing]) is missing
    assert decisive([service, bad]) is bad
    assert decisive([service, ServiceError("download", "bad gateway", 502)]) is service
