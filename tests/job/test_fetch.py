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


def test_the_decisive_failure_covers_the_others() -> None:
    disk, auth = LocalDiskError("full"), AuthError("download", "bad key", 401)
    missing = RemoteFileMissingError("download", "gone", 404)
    bad, service = BadOutputError("download", "html"), ServiceError("download", "busy", 503)
    assert decisive([service, bad, missing, auth, disk]) is disk
    assert decisive([service, bad, missing, auth]) is auth
    assert decisive([service, bad, missing]) is missing
    assert decisive([service, bad]) is bad
    assert decisive([service, ServiceError("download", "bad gateway", 502)]) is service
